//! guest-set-user-password, guest-ssh-get-authorized-keys, guest-ssh-add-authorized-keys,
//! guest-ssh-remove-authorized-keys.

use qga_schema::{
    Empty, GuestAuthorizedKeys, GuestSetUserPassword, GuestSshAddAuthorizedKeys,
    GuestSshGetAuthorizedKeys, GuestSshRemoveAuthorizedKeys, SetUserPasswordArgs, SshAddKeysArgs,
    SshRemoveKeysArgs, SshUserArgs,
};
use qga_sys::{password, ssh};

use crate::agent::Agent;
use crate::error::CommandError;
use crate::registry::Handle;

fn failed(e: impl std::fmt::Display) -> CommandError {
    CommandError::Failed(e.to_string())
}

/// The text up to the first NUL, as qemu-ga's C strings see it.
fn c_str(bytes: &[u8]) -> &[u8] {
    bytes.split(|&b| b == 0).next().unwrap_or_default()
}

/// guest-set-user-password's checks, in qemu-ga's order: base64, newline in the password,
/// newline or colon in the user name. A crypted password may not contain a colon either
/// (it would split the shadow line; qemu-ga passes it to chpasswd).
pub(crate) fn checked_password(
    args: &SetUserPasswordArgs,
) -> Result<(&str, Vec<u8>), CommandError> {
    let decoded = qga_proto::b64::decode(&args.password).map_err(failed)?;
    let raw = c_str(&decoded).to_vec();
    if raw.contains(&b'\n') {
        return Err(failed("forbidden characters in raw password"));
    }
    let user = args.username.split('\0').next().unwrap_or_default();
    if user.contains(['\n', ':']) {
        return Err(failed("forbidden characters in username"));
    }
    if args.crypted && raw.contains(&b':') {
        return Err(failed("forbidden characters in crypted password"));
    }
    Ok((user, raw))
}

impl Handle for GuestSetUserPassword {
    fn handle(_agent: &mut Agent, args: SetUserPasswordArgs) -> Result<Empty, CommandError> {
        let (user, raw) = checked_password(&args)?;
        password::set_password(user, &raw, args.crypted).map_err(failed)?;
        Ok(Empty {})
    }
}

impl Handle for GuestSshGetAuthorizedKeys {
    fn handle(_agent: &mut Agent, args: SshUserArgs) -> Result<GuestAuthorizedKeys, CommandError> {
        let acct = ssh::lookup_user(&args.username).map_err(failed)?;
        let keys = ssh::get_keys(&acct).map_err(failed)?;
        Ok(GuestAuthorizedKeys { keys })
    }
}

impl Handle for GuestSshAddAuthorizedKeys {
    fn handle(_agent: &mut Agent, args: SshAddKeysArgs) -> Result<Empty, CommandError> {
        ssh::check_keys(&args.keys).map_err(failed)?;
        let acct = ssh::lookup_user(&args.username).map_err(failed)?;
        ssh::add_keys(&acct, &args.keys, args.reset.unwrap_or(false)).map_err(failed)?;
        Ok(Empty {})
    }
}

impl Handle for GuestSshRemoveAuthorizedKeys {
    fn handle(_agent: &mut Agent, args: SshRemoveKeysArgs) -> Result<Empty, CommandError> {
        ssh::check_keys(&args.keys).map_err(failed)?;
        let acct = ssh::lookup_user(&args.username).map_err(failed)?;
        ssh::remove_keys(&acct, &args.keys).map_err(failed)?;
        Ok(Empty {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(user: &str, password: &str, crypted: bool) -> SetUserPasswordArgs {
        SetUserPasswordArgs {
            username: user.into(),
            password: password.into(),
            crypted,
        }
    }

    fn check(user: &str, password: &str, crypted: bool) -> Result<Vec<u8>, String> {
        let a = args(user, password, crypted);
        checked_password(&a)
            .map(|(_, raw)| raw)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn test_password_checks_in_qemu_order() {
        assert_eq!(
            check("x:y", "!!!", false).unwrap_err(),
            "Base64 data contains invalid characters"
        );
        assert_eq!(
            check("x:y", "YQpi", false).unwrap_err(),
            "forbidden characters in raw password"
        );
        assert_eq!(
            check("x:y", "YWJj", false).unwrap_err(),
            "forbidden characters in username"
        );
        assert_eq!(
            check("x\ny", "YWJj", true).unwrap_err(),
            "forbidden characters in username"
        );
        // "\0\n": the C string ends before the newline.
        assert_eq!(check("u", "AAo=", false).unwrap(), b"");
        assert_eq!(check("u", "YWJj", false).unwrap(), b"abc");
        // A colon is fine in a raw password but not in a hash.
        assert_eq!(check("u", "YTpi", false).unwrap(), b"a:b");
        assert_eq!(
            check("u", "YTpi", true).unwrap_err(),
            "forbidden characters in crypted password"
        );
    }
}
