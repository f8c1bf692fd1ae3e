//! Tests of the key-file logic, on a temporary home directory of the current user.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use super::*;

fn keys(k: &[&str]) -> Vec<String> {
    k.iter().map(|s| s.to_string()).collect()
}

fn account(home: &std::path::Path) -> Account {
    Account {
        uid: nix::unistd::geteuid().as_raw(),
        gid: nix::unistd::getegid().as_raw(),
        home: home.to_path_buf(),
    }
}

#[test]
fn test_check_keys() {
    check_keys(&keys(&["ssh-ed25519 AAAA x", ""])).unwrap();
    assert_eq!(
        check_keys(&keys(&["ok", "#c", "a\nb"]))
            .unwrap_err()
            .to_string(),
        "invalid OpenSSH public key: '#c'"
    );
    assert_eq!(
        check_keys(&keys(&["a\nb"])).unwrap_err().to_string(),
        "invalid OpenSSH public key: 'a\nb'"
    );
}

#[test]
fn test_lookup_user() {
    assert_eq!(
        lookup_user("no-such-user-qga").unwrap_err().to_string(),
        "failed to lookup user 'no-such-user-qga': Success"
    );
    assert_eq!(
        lookup_user("").unwrap_err().to_string(),
        "failed to lookup user '': Success"
    );
    assert_eq!(lookup_user("root").unwrap().uid, 0);
}

#[test]
fn test_text_helpers() {
    let text = "algo key1 c\n  algo key2 c \r\n\n# comment\n\t#x\nalgo key3\n";
    assert_eq!(
        keys_from_text(text),
        ["algo key3", "algo key2 c", "algo key1 c"]
    );
    assert_eq!(keys_from_text("a\0\nb\n"), ["a"]);
    assert_eq!(add_to_text(None, &keys(&["k2", "k1", "k2"])), "k2\nk1\n");
    assert_eq!(add_to_text(Some("k1\n"), &keys(&["k1", "k3"])), "k1\nk3\n");
    assert_eq!(add_to_text(Some("k1"), &keys(&["k3"])), "k1\nk3\n");
    assert_eq!(add_to_text(Some(""), &[]), "");
    let authkeys =
        "algo key1 comments\nalgo key1 comments\n# a commented line\nalgo some-key another\n";
    assert_eq!(
        remove_from_text(authkeys, &keys(&["algo key2 comments"])),
        authkeys
    );
    assert_eq!(
        remove_from_text(
            authkeys,
            &keys(&["algo key1 comments", "algo key2 comments"])
        ),
        "# a commented line\nalgo some-key another\n"
    );
    assert_eq!(build_filename("/", &[".ssh"]), "/.ssh");
    assert_eq!(build_filename("/home/u/", &[".ssh", "a"]), "/home/u/.ssh/a");
    assert_eq!(build_filename("", &[".ssh"]), ".ssh");
}

#[test]
fn test_round_trip_in_temp_home() {
    let dir = tempfile::tempdir().unwrap();
    let acct = account(dir.path());
    let home = dir.path().display().to_string();
    assert_eq!(
        get_keys(&acct).unwrap_err().to_string(),
        format!(
            "failed to read '{home}/.ssh/authorized_keys': Failed to open file \
             “{home}/.ssh/authorized_keys”: No such file or directory"
        )
    );
    // Removing from nothing is fine and creates nothing.
    remove_keys(&acct, &keys(&["x"])).unwrap();
    assert!(!dir.path().join(".ssh").exists());

    add_keys(&acct, &keys(&["algo key2 comments"]), false).unwrap();
    let ssh = dir.path().join(".ssh");
    let file = ssh.join("authorized_keys");
    assert_eq!(
        std::fs::metadata(&ssh).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(std::fs::metadata(&file).unwrap().uid(), acct.uid);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "algo key2 comments\n"
    );

    add_keys(
        &acct,
        &keys(&["algo key1 comments", "algo key2 comments"]),
        false,
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "algo key2 comments\nalgo key1 comments\n"
    );
    assert_eq!(
        get_keys(&acct).unwrap(),
        ["algo key1 comments", "algo key2 comments"]
    );

    remove_keys(&acct, &keys(&["algo key2 comments"])).unwrap();
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "algo key1 comments\n"
    );

    add_keys(&acct, &keys(&["k3"]), true).unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "k3\n");
    add_keys(&acct, &[], true).unwrap();
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "");
    assert_eq!(get_keys(&acct).unwrap(), Vec::<String>::new());
    // No temporary files are left behind.
    let names: Vec<_> = std::fs::read_dir(&ssh)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["authorized_keys"]);
}

#[test]
fn test_symlinks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let acct = account(dir.path());
    let home = dir.path().display().to_string();
    let target = tempfile::tempdir().unwrap();
    std::fs::write(target.path().join("secret"), "root:hash:1::::::\n").unwrap();
    // authorized_keys -> secret
    std::fs::create_dir(dir.path().join(".ssh")).unwrap();
    std::os::unix::fs::symlink(
        target.path().join("secret"),
        dir.path().join(".ssh/authorized_keys"),
    )
    .unwrap();
    let want = format!(
        "failed to read '{home}/.ssh/authorized_keys': Failed to open file \
         “{home}/.ssh/authorized_keys”: Too many levels of symbolic links"
    );
    let all_refused = |reset: bool| {
        assert_eq!(get_keys(&acct).unwrap_err().to_string(), want);
        let added = add_keys(&acct, &keys(&["k"]), reset);
        assert_eq!(added.unwrap_err().to_string(), want);
        let removed = remove_keys(&acct, &keys(&["k"]));
        assert_eq!(removed.unwrap_err().to_string(), want);
    };
    all_refused(false);
    // With reset nothing is read, and the link itself is replaced, not its target.
    add_keys(&acct, &keys(&["k"]), true).unwrap();
    assert_eq!(
        std::fs::read_to_string(target.path().join("secret")).unwrap(),
        "root:hash:1::::::\n"
    );
    assert!(
        !std::fs::symlink_metadata(dir.path().join(".ssh/authorized_keys"))
            .unwrap()
            .file_type()
            .is_symlink()
    );

    // .ssh -> another directory
    std::fs::remove_dir_all(dir.path().join(".ssh")).unwrap();
    std::os::unix::fs::symlink(target.path(), dir.path().join(".ssh")).unwrap();
    all_refused(true);
    assert!(!target.path().join("authorized_keys").exists());
}

#[test]
fn test_odd_files() {
    let dir = tempfile::tempdir().unwrap();
    let acct = account(dir.path());
    let home = dir.path().display().to_string();
    let ssh = dir.path().join(".ssh");
    // A directory named authorized_keys.
    std::fs::create_dir_all(ssh.join("authorized_keys")).unwrap();
    assert_eq!(
        get_keys(&acct).unwrap_err().to_string(),
        format!(
            "failed to read '{home}/.ssh/authorized_keys': Failed to open file \
             “{home}/.ssh/authorized_keys”: Is a directory"
        )
    );
    std::fs::remove_dir(ssh.join("authorized_keys")).unwrap();
    // A FIFO does not hang the agent.
    nix::unistd::mkfifo(
        &ssh.join("authorized_keys"),
        Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    assert!(
        get_keys(&acct)
            .unwrap_err()
            .to_string()
            .ends_with("not a regular file")
    );
    std::fs::remove_file(ssh.join("authorized_keys")).unwrap();
    // .ssh is a regular file: add cannot create the directory.
    std::fs::remove_dir(&ssh).unwrap();
    std::fs::write(&ssh, "").unwrap();
    assert_eq!(
        add_keys(&acct, &keys(&["k"]), false)
            .unwrap_err()
            .to_string(),
        format!("failed to create directory '{home}/.ssh': File exists")
    );
    remove_keys(&acct, &keys(&["k"])).unwrap();
    // A home that does not exist.
    let gone = account(&dir.path().join("nonexistent"));
    assert_eq!(
        add_keys(&gone, &keys(&["k"]), false)
            .unwrap_err()
            .to_string(),
        format!("failed to create directory '{home}/nonexistent/.ssh': No such file or directory")
    );
    remove_keys(&gone, &keys(&["k"])).unwrap();
}

#[test]
fn test_hard_link_to_foreign_file_is_refused() {
    // Needs a file owned by someone else: only as root.
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut acct = account(dir.path());
    acct.uid = 4242;
    std::fs::create_dir(dir.path().join(".ssh")).unwrap();
    let foreign = dir.path().join("foreign");
    std::fs::write(&foreign, "secret\n").unwrap();
    std::fs::hard_link(&foreign, dir.path().join(".ssh/authorized_keys")).unwrap();
    let err = get_keys(&acct).unwrap_err().to_string();
    assert!(
        err.ends_with("a hard link to a file the user does not own"),
        "{err}"
    );
}
