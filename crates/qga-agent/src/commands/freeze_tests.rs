#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::sync::Mutex as StdMutex;

use super::*;

/// A fake filesystem layer: never touches a real mount.
#[derive(Debug, Default)]
struct FakeFs {
    mounts: Vec<Mount>,
    /// Mount points whose freeze fails (`true`: open fails, `false`: FIFREEZE fails).
    fail: Vec<(String, bool)>,
    /// Mount points that cannot be frozen (EOPNOTSUPP/EBUSY).
    unsupported: Vec<String>,
    calls: StdMutex<Vec<String>>,
}

impl FsOps for FakeFs {
    fn mounts(&self) -> Result<Vec<Mount>, String> {
        Ok(self.mounts.clone())
    }
    fn freeze(&self, dir: &str) -> Result<bool, FreezeError> {
        self.calls.lock().unwrap().push(format!("freeze {dir}"));
        if let Some((_, open)) = self.fail.iter().find(|(d, _)| d == dir) {
            let e = std::io::Error::from_raw_os_error(if *open { 13 } else { 5 });
            return Err(if *open {
                FreezeError::Open(e)
            } else {
                FreezeError::Freeze(e)
            });
        }
        Ok(!self.unsupported.iter().any(|d| d == dir))
    }
    fn thaw(&self, dir: &str) -> bool {
        self.calls.lock().unwrap().push(format!("thaw {dir}"));
        true
    }
}

fn mount(dir: &str, minor: u32) -> Mount {
    Mount {
        dir: dir.into(),
        fs_type: "ext4".into(),
        major: 8,
        minor,
    }
}

struct Setup {
    dir: tempfile::TempDir,
    ctx: &'static FreezeCtx,
}

impl Setup {
    fn new(hook_body: Option<&str>, watchdog: Option<Duration>) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let hook = hook_body.map(|body| {
            let p = dir.path().join("hook");
            std::fs::write(
                &p,
                format!("#!/bin/sh\necho \"$1\" >> \"$(dirname \"$0\")/log\"\n{body}\n"),
            )
            .unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            p
        });
        let ctx = Box::leak(Box::new(FreezeCtx::new(FreezeSettings {
            hook,
            hook_timeout: Some(Duration::from_secs(10)),
            watchdog,
            marker: dir.path().join("qga.state.isfrozen"),
        })));
        Setup { dir, ctx }
    }
    fn hook_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }
    fn marker(&self) -> bool {
        self.dir.path().join("qga.state.isfrozen").exists()
    }
}

fn leak(fs: FakeFs) -> &'static FakeFs {
    Box::leak(Box::new(fs))
}

#[test]
fn test_freeze_over_zero_filesystems_runs_both_hooks() {
    let s = Setup::new(Some(""), None);
    let fs = leak(FakeFs::default());
    assert_eq!(s.ctx.freeze(fs, None).unwrap(), 0);
    assert!(!s.ctx.is_frozen());
    assert!(!s.marker());
    assert_eq!(s.hook_log(), "freeze\nthaw\n");
}

#[test]
fn test_freeze_reverse_order_marker_and_thaw() {
    let s = Setup::new(Some(""), None);
    let fs = leak(FakeFs {
        mounts: vec![mount("/", 1), mount("/boot", 2), mount("/srv", 3)],
        unsupported: vec!["/boot".into()],
        ..Default::default()
    });
    assert_eq!(s.ctx.freeze(fs, None).unwrap(), 2);
    assert!(s.ctx.is_frozen());
    assert!(s.marker());
    let mode = std::fs::metadata(s.dir.path().join("qga.state.isfrozen"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(s.hook_log(), "freeze\n");
    assert_eq!(s.ctx.thaw(fs).unwrap(), 3);
    assert!(!s.ctx.is_frozen());
    assert!(!s.marker());
    assert_eq!(s.hook_log(), "freeze\nthaw\n");
    assert_eq!(
        *fs.calls.lock().unwrap(),
        [
            "freeze /srv",
            "freeze /boot",
            "freeze /",
            "thaw /",
            "thaw /boot",
            "thaw /srv"
        ]
    );
}

#[test]
fn test_freeze_list_only_named_mountpoints() {
    let s = Setup::new(None, None);
    let fs = leak(FakeFs {
        mounts: vec![mount("/", 1), mount("/srv", 3)],
        ..Default::default()
    });
    let only = ["/srv".to_string(), "/nonexistent".to_string()];
    assert_eq!(s.ctx.freeze(fs, Some(&only)).unwrap(), 1);
    assert_eq!(*fs.calls.lock().unwrap(), ["freeze /srv"]);
    s.ctx.thaw(fs).unwrap();
}

#[test]
fn test_freeze_error_thaws_everything() {
    for (open, text) in [
        (true, "failed to open /a: Permission denied"),
        (false, "failed to freeze /a: Input/output error"),
    ] {
        let s = Setup::new(Some(""), None);
        let fs = leak(FakeFs {
            mounts: vec![mount("/a", 1), mount("/b", 2)],
            fail: vec![("/a".into(), open)],
            ..Default::default()
        });
        let e = s.ctx.freeze(fs, None).unwrap_err();
        assert_eq!(e.to_string(), text);
        assert!(!s.ctx.is_frozen());
        assert!(!s.marker());
        assert_eq!(s.hook_log(), "freeze\nthaw\n");
        assert_eq!(
            *fs.calls.lock().unwrap(),
            ["freeze /b", "freeze /a", "thaw /a", "thaw /b"]
        );
    }
}

#[test]
fn test_failing_freeze_hook_freezes_nothing() {
    let s = Setup::new(
        Some("[ \"$1\" = freeze ] && { echo no; exit 2; }; exit 0"),
        None,
    );
    let fs = leak(FakeFs {
        mounts: vec![mount("/", 1)],
        ..Default::default()
    });
    let e = s.ctx.freeze(fs, None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "child process has failed to execute fsfreeze hook: no\n"
    );
    assert!(fs.calls.lock().unwrap().is_empty());
    assert!(!s.marker());
}

#[test]
fn test_failing_thaw_hook_reports_after_thawing() {
    let s = Setup::new(Some("[ \"$1\" = thaw ] && exit 7; exit 0"), None);
    let fs = leak(FakeFs {
        mounts: vec![mount("/", 1)],
        ..Default::default()
    });
    assert_eq!(s.ctx.freeze(fs, None).unwrap(), 1);
    let e = s.ctx.thaw(fs).unwrap_err();
    assert_eq!(
        e.to_string(),
        "child process has failed to execute fsfreeze hook: exit status 7"
    );
    assert!(!s.ctx.is_frozen());
    assert!(!s.marker());
}

#[test]
fn test_watchdog_thaws() {
    let s = Setup::new(Some(""), Some(Duration::from_millis(200)));
    let fs = leak(FakeFs {
        mounts: vec![mount("/", 1)],
        ..Default::default()
    });
    assert_eq!(s.ctx.freeze(fs, None).unwrap(), 1);
    assert!(s.ctx.is_frozen());
    let start = std::time::Instant::now();
    while s.ctx.is_frozen() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!s.ctx.is_frozen());
    assert!(!s.marker());
    assert_eq!(*fs.calls.lock().unwrap(), ["freeze /", "thaw /"]);
    // The hook's thaw call follows the state change.
    let start = std::time::Instant::now();
    while s.hook_log() != "freeze\nthaw\n" && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(s.hook_log(), "freeze\nthaw\n");
}

#[test]
fn test_stale_watchdog_does_nothing() {
    let s = Setup::new(None, Some(Duration::from_millis(300)));
    let fs = leak(FakeFs {
        mounts: vec![mount("/", 1)],
        ..Default::default()
    });
    s.ctx.freeze(fs, None).unwrap();
    s.ctx.thaw(fs).unwrap();
    s.ctx.freeze(fs, None).unwrap();
    std::thread::sleep(Duration::from_millis(150));
    // The first watchdog's deadline has passed only for the first freeze.
    assert!(s.ctx.is_frozen());
    s.ctx.thaw(fs).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(fs.calls.lock().unwrap().len(), 4);
}

#[test]
fn test_trim_results() {
    let list = [mount("/", 1), mount("/srv", 2), mount("/x", 3)];
    let r = trim_all(&list, &|d| match d {
        "/" => Ok((4096, 512)),
        "/srv" => Err("trim not supported".into()),
        _ => Err("failed to open: Permission denied".into()),
    });
    assert_eq!(
        serde_json::to_string(&r).unwrap(),
        r#"{"paths":[{"path":"/x","error":"failed to open: Permission denied"},{"path":"/srv","error":"trim not supported"},{"path":"/","trimmed":4096,"minimum":512}]}"#
    );
}

#[test]
fn test_hook_timeout_freezes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hook");
    std::fs::write(&p, "#!/bin/sh\n[ \"$1\" = freeze ] && sleep 30\nexit 0\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ctx = Box::leak(Box::new(FreezeCtx::new(FreezeSettings {
        hook: Some(p),
        hook_timeout: Some(Duration::from_millis(300)),
        watchdog: None,
        marker: dir.path().join("qga.state.isfrozen"),
    })));
    let fs = leak(FakeFs {
        mounts: vec![mount("/", 1)],
        ..Default::default()
    });
    let start = std::time::Instant::now();
    let e = ctx.freeze(fs, None).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(
        e.to_string(),
        "child process has failed to execute fsfreeze hook: timed out after 0 seconds"
    );
    assert!(fs.calls.lock().unwrap().is_empty());
    assert!(!ctx.is_frozen());
}
