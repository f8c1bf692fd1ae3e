//! Tests of the password fallback: the shadow/passwd update on a temporary root, and
//! SHA-512 crypt against the specification's test vector.

use std::os::unix::fs::PermissionsExt;

use super::*;

const SHADOW: &str =
    "root:*:19000:0:99999:7:::\nalice:$6$old$hash:19000:0:99999:7:::\nbob:!:18000::::::\n";

fn root_with(files: &[(&str, &str, u32)]) -> (tempfile::TempDir, SysRoot) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("etc")).unwrap();
    for (name, text, mode) in files {
        let p = dir.path().join("etc").join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
    let root = SysRoot::at(dir.path());
    (dir, root)
}

#[test]
fn test_set_password_field() {
    let out = set_password_field(SHADOW, "alice", "$6$new$x", Some(20000)).unwrap();
    assert_eq!(
        out,
        "root:*:19000:0:99999:7:::\nalice:$6$new$x:20000:0:99999:7:::\nbob:!:18000::::::\n"
    );
    assert_eq!(set_password_field(SHADOW, "carol", "h", Some(1)), None);
    // Only the first matching line; a prefix of a name is not a match.
    assert_eq!(
        set_password_field("al:x:1\nal:y:2", "al", "h", None).unwrap(),
        "al:h:1\nal:y:2"
    );
    assert_eq!(set_password_field("alice2:x:1", "alice", "h", None), None);
    // passwd lines keep their other fields.
    assert_eq!(
        set_password_field("u:x:1000:1000::/home/u:/bin/sh", "u", "h", None).unwrap(),
        "u:h:1000:1000::/home/u:/bin/sh"
    );
    // Malformed lines and comments are kept as they are.
    assert_eq!(
        set_password_field("# c\n\nu\nu:p", "u", "h", Some(5)).unwrap(),
        "# c\n\nu\nu:h"
    );
}

#[test]
fn test_update_shadow_on_temp_root() {
    let (dir, root) = root_with(&[
        ("shadow", SHADOW, 0o640),
        ("passwd", "alice:x:1:1::/:/bin/sh\n", 0o644),
    ]);
    update_account_file(&root, "alice", "$6$s$h", 20001).unwrap();
    let shadow = dir.path().join("etc/shadow");
    assert_eq!(
        std::fs::read_to_string(&shadow).unwrap(),
        "root:*:19000:0:99999:7:::\nalice:$6$s$h:20001:0:99999:7:::\nbob:!:18000::::::\n"
    );
    assert_eq!(
        std::fs::metadata(&shadow).unwrap().permissions().mode() & 0o7777,
        0o640
    );
    assert!(!dir.path().join("etc/shadow+").exists());
    // passwd is left alone when there is a shadow file.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("etc/passwd")).unwrap(),
        "alice:x:1:1::/:/bin/sh\n"
    );
    let err = update_account_file(&root, "carol", "h", 1).unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to set user password: user 'carol' not found in /etc/shadow"
    );
    assert!(!dir.path().join("etc/shadow+").exists());
    assert!(
        std::fs::read_to_string(&shadow)
            .unwrap()
            .contains("alice:$6$s$h")
    );
}

#[test]
fn test_update_passwd_without_shadow() {
    let (dir, root) = root_with(&[(
        "passwd",
        "root:x:0:0::/root:/bin/sh\nu:x:1:1::/home/u:/bin/sh",
        0o644,
    )]);
    update_account_file(&root, "u", "$6$a$b", 7).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("etc/passwd")).unwrap(),
        "root:x:0:0::/root:/bin/sh\nu:$6$a$b:1:1::/home/u:/bin/sh"
    );
}

#[test]
fn test_busybox_temp_file_blocks_then_fails() {
    let (dir, root) = root_with(&[("shadow", SHADOW, 0o600)]);
    std::fs::write(dir.path().join("etc/shadow+"), "someone else").unwrap();
    let err = update_account_file(&root, "alice", "h", 1).unwrap_err();
    assert_eq!(
        err.to_string(),
        "failed to set user password: create /etc/shadow+: File exists"
    );
    // The other writer's file and the shadow file are untouched.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("etc/shadow+")).unwrap(),
        "someone else"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("etc/shadow")).unwrap(),
        SHADOW
    );
}

#[test]
fn test_crypt_sha512_known_vector() {
    // From the SHA-crypt specification.
    assert_eq!(
        crypt_sha512(b"Hello world!", "saltstring").unwrap(),
        "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
    );
    let salt = random_salt().unwrap();
    assert_eq!(salt.len(), 16);
    let h = crypt_sha512(b"pw", &salt).unwrap();
    assert!(h.starts_with(&format!("$6${salt}$")), "{h}");
    assert_eq!(crypt_sha512(b"pw", &salt).unwrap(), h);
    assert_ne!(random_salt().unwrap(), salt);
}
