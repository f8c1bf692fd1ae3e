//! guest-fsfreeze-freeze, -freeze-list, -thaw and guest-fstrim, with qemu-ga's rules
//! (hook first, reverse order, EOPNOTSUPP/EBUSY ignored, thaw repeated until it fails) and
//! the frozen state: `qga.state.isfrozen` in the statedir, logging off, only the freeze-safe
//! commands (the dispatcher enforces `agent.frozen`).
//!
//! Beyond qemu-ga: the thaw hook also runs when the freeze hook ran but nothing was frozen,
//! the hook has a time limit, an optional watchdog thaws after a configured time, and
//! SIGTERM while frozen thaws before exiting (`run.rs` calls [`thaw_on_exit`]).
//!
//! The state is shared by every connection and the watchdog thread: a lock serialises whole
//! freeze and thaw operations (hooks included), so two clients cannot interleave them, and
//! the frozen flag is mirrored in an atomic that the dispatcher reads before every request
//! ([`refresh`]) without waiting for a running freeze or hook. The watchdog is a thread
//! that sleeps until its deadline and then thaws like guest-fsfreeze-thaw.

use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use qga_schema::{
    FreezeListArgs, FstrimArgs, GuestFilesystemTrimResponse, GuestFilesystemTrimResult,
    GuestFsfreezeFreeze, GuestFsfreezeFreezeList, GuestFsfreezeThaw, GuestFstrim, NoArgs,
};
use qga_sys::freeze::{self, FreezeError};
use qga_sys::mounts::{self, Mount};
use qga_sys::sysroot::SysRoot;

use crate::agent::Agent;
use crate::error::{CommandError, strerror};
use crate::logging::LOGGING_ENABLED;
use crate::registry::Handle;

/// The default bound on one run of the fsfreeze hook.
pub(crate) const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(300);

/// How freezing is configured (from `-F`, `-t` and our `[general]` keys).
#[derive(Debug, Clone, Default)]
pub(crate) struct FreezeSettings {
    /// The hook, if enabled.
    pub(crate) hook: Option<PathBuf>,
    /// The bound on a hook run (`None`: none).
    pub(crate) hook_timeout: Option<Duration>,
    /// Thaw automatically after this long (`None`: never).
    pub(crate) watchdog: Option<Duration>,
    /// `<statedir>/qga.state.isfrozen`.
    pub(crate) marker: PathBuf,
}

/// The freeze state shared by the main loop and the watchdog thread.
#[derive(Debug, Default)]
struct Shared {
    /// Whether filesystems are frozen (the truth; `agent.frozen` mirrors it).
    frozen: bool,
    /// Bumped on every freeze and thaw, so a stale watchdog does nothing.
    generation: u64,
}

/// Settings and shared state; one per agent (a global in the binary, one per test).
#[derive(Debug, Default)]
pub(crate) struct FreezeCtx {
    settings: FreezeSettings,
    /// Held for a whole freeze, thaw or watchdog thaw, hooks included (taken before `shared`).
    operation: Mutex<()>,
    shared: Mutex<Shared>,
    /// `shared.frozen`, readable without waiting for an operation.
    frozen_now: AtomicBool,
}

static GLOBAL: OnceLock<FreezeCtx> = OnceLock::new();

/// Installs the agent's settings (once, at start-up); returns whether the marker says a
/// previous instance left the filesystems frozen, in which case the state starts frozen
/// (the caller sets `agent.frozen` and logs qemu-ga's warning).
pub(crate) fn init(settings: FreezeSettings) -> bool {
    let frozen = settings.marker.exists();
    let ctx = FreezeCtx::new(settings);
    ctx.lock().frozen = frozen;
    ctx.frozen_now.store(frozen, Ordering::SeqCst);
    let _ = GLOBAL.set(ctx);
    if frozen {
        // Left frozen by a previous instance: the watchdog counts from now.
        global().arm_watchdog(&RealFs, 0);
    }
    frozen
}

fn global() -> &'static FreezeCtx {
    GLOBAL.get_or_init(FreezeCtx::default)
}

/// The filesystem operations, real or faked in tests.
pub(crate) trait FsOps: Sync {
    /// The mount list.
    fn mounts(&self) -> Result<Vec<Mount>, String>;
    /// FIFREEZE one mount point.
    fn freeze(&self, dir: &str) -> Result<bool, FreezeError>;
    /// FITHAW one mount point until it fails.
    fn thaw(&self, dir: &str) -> bool;
}

/// The running system.
#[derive(Debug)]
pub(crate) struct RealFs;

impl FsOps for RealFs {
    fn mounts(&self) -> Result<Vec<Mount>, String> {
        mounts::read_mounts(&SysRoot::host())
    }
    fn freeze(&self, dir: &str) -> Result<bool, FreezeError> {
        freeze::freeze(dir)
    }
    fn thaw(&self, dir: &str) -> bool {
        freeze::thaw(dir)
    }
}

impl FreezeCtx {
    /// A context with `settings`, thawed.
    pub(crate) fn new(settings: FreezeSettings) -> Self {
        Self {
            settings,
            ..Self::default()
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        crate::agent::lock(&self.shared)
    }

    fn begin(&self) -> std::sync::MutexGuard<'_, ()> {
        crate::agent::lock(&self.operation)
    }

    fn run_hook(&self, arg: &str) -> Result<(), CommandError> {
        let Some(hook) = &self.settings.hook else {
            return Ok(());
        };
        log::debug!("executing fsfreeze hook with arg '{arg}'");
        freeze::run_hook(&hook.to_string_lossy(), arg, self.settings.hook_timeout)
            .map_err(|e| CommandError::Failed(e.to_string()))
    }

    fn set_frozen(&self, shared: &mut Shared) {
        if shared.frozen {
            return;
        }
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&self.settings.marker);
        if let Err(e) = created {
            log::warn!(
                "unable to create {}, fsfreeze may not function properly: {e}",
                self.settings.marker.display()
            );
        }
        log::warn!("disabling logging due to filesystem freeze");
        LOGGING_ENABLED.store(false, Ordering::SeqCst);
        shared.frozen = true;
        self.frozen_now.store(true, Ordering::SeqCst);
        shared.generation += 1;
    }

    fn unset_frozen(&self, shared: &mut Shared) {
        if !shared.frozen {
            return;
        }
        LOGGING_ENABLED.store(true, Ordering::SeqCst);
        log::warn!("logging re-enabled due to filesystem unfreeze");
        shared.frozen = false;
        self.frozen_now.store(false, Ordering::SeqCst);
        shared.generation += 1;
        if let Err(e) = std::fs::remove_file(&self.settings.marker)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            log::warn!(
                "unable to delete {}, fsfreeze may not function properly",
                self.settings.marker.display()
            );
        }
    }

    /// Thaws every mount and clears the state: the count of filesystems thawed.
    fn thaw_locked(&self, ops: &dyn FsOps, shared: &mut Shared) -> Result<i64, CommandError> {
        let list = ops.mounts().map_err(CommandError::Failed)?;
        let count = list.iter().filter(|m| ops.thaw(&m.dir)).count();
        self.unset_frozen(shared);
        Ok(i64::try_from(count).unwrap_or(i64::MAX))
    }

    /// guest-fsfreeze-freeze(-list): the number of filesystems frozen.
    pub(crate) fn freeze(
        &'static self,
        ops: &'static dyn FsOps,
        only: Option<&[String]>,
    ) -> Result<i64, CommandError> {
        let _operation = self.begin();
        if self.is_frozen() {
            // Another connection froze while this request waited: what a single client
            // would have been told by the frozen policy.
            return Err(CommandError::Disabled(if only.is_some() {
                "guest-fsfreeze-freeze-list"
            } else {
                "guest-fsfreeze-freeze"
            }));
        }
        self.run_hook("freeze")?;
        let list = match ops.mounts() {
            Ok(l) => l,
            Err(e) => {
                // The freeze hook ran: tell it (qemu-ga does not).
                if let Err(h) = self.run_hook("thaw") {
                    log::warn!("{h}");
                }
                return Err(CommandError::Failed(e));
            }
        };
        let mut shared = self.lock();
        self.set_frozen(&mut shared);
        let mut count = 0i64;
        for m in list.iter().rev() {
            if only.is_some_and(|l| !l.contains(&m.dir)) {
                continue;
            }
            let failure = match ops.freeze(&m.dir) {
                Ok(true) => {
                    count += 1;
                    continue;
                }
                Ok(false) => continue,
                Err(FreezeError::Open(e)) => format!("failed to open {}: {}", m.dir, strerror(&e)),
                Err(FreezeError::Freeze(e)) => {
                    format!("failed to freeze {}: {}", m.dir, strerror(&e))
                }
            };
            // Undo everything, as qemu-ga: thaw, clear the state, run the thaw hook.
            let _ = self.thaw_locked(ops, &mut shared);
            drop(shared);
            if let Err(h) = self.run_hook("thaw") {
                log::warn!("{h}");
            }
            return Err(CommandError::Failed(failure));
        }
        if count == 0 {
            self.unset_frozen(&mut shared);
            drop(shared);
            // Nothing frozen, but the freeze hook ran: let it release what it took.
            if let Err(h) = self.run_hook("thaw") {
                log::warn!("{h}");
            }
            return Ok(0);
        }
        self.arm_watchdog(ops, shared.generation);
        Ok(count)
    }

    /// Starts the watchdog (if configured) for the freeze of `generation`.
    fn arm_watchdog(&'static self, ops: &'static dyn FsOps, generation: u64) {
        if let Some(after) = self.settings.watchdog {
            std::thread::spawn(move || {
                std::thread::sleep(after);
                self.watchdog_fire(ops, generation, after);
            });
        }
    }

    fn watchdog_fire(&self, ops: &dyn FsOps, generation: u64, after: Duration) {
        let _operation = self.begin();
        let mut shared = self.lock();
        if !shared.frozen || shared.generation != generation {
            return;
        }
        match self.thaw_locked(ops, &mut shared) {
            Ok(n) => log::warn!(
                "fsfreeze watchdog: no guest-fsfreeze-thaw within {} seconds, thawed {n} filesystems",
                after.as_secs()
            ),
            Err(e) => {
                log::warn!("fsfreeze watchdog: {e}");
                return;
            }
        }
        drop(shared);
        if let Err(h) = self.run_hook("thaw") {
            log::warn!("{h}");
        }
    }

    /// guest-fsfreeze-thaw: the number of filesystems thawed.
    pub(crate) fn thaw(&self, ops: &dyn FsOps) -> Result<i64, CommandError> {
        let _operation = self.begin();
        let mut shared = self.lock();
        let count = self.thaw_locked(ops, &mut shared)?;
        drop(shared);
        if crate::logging::enabled() {
            qga_sys::process::syslog_info("guest-fsthaw called");
        }
        self.run_hook("thaw")?;
        Ok(count)
    }

    fn is_frozen(&self) -> bool {
        self.frozen_now.load(Ordering::SeqCst)
    }
}

/// Brings `agent.frozen` in line with the shared state (another connection or the watchdog
/// may have frozen or thawed). Never waits, even while a freeze or its hook runs.
pub(crate) fn refresh(agent: &mut Agent) {
    agent.frozen = global().is_frozen();
}

/// On SIGTERM/SIGINT while frozen: thaw, run the thaw hook, clear the marker.
pub(crate) fn thaw_on_exit(agent: &mut Agent) {
    if !global().is_frozen() {
        return;
    }
    match global().thaw(&RealFs) {
        Ok(n) => log::warn!("thawed {n} filesystems before exiting"),
        Err(e) => log::error!("failed to thaw filesystems before exiting: {e}"),
    }
    agent.frozen = false;
}

impl Handle for GuestFsfreezeFreeze {
    fn handle(agent: &mut Agent, _args: NoArgs) -> Result<i64, CommandError> {
        let r = global().freeze(&RealFs, None);
        agent.frozen = global().is_frozen();
        r
    }

    fn audit(_args: &NoArgs) -> Option<String> {
        Some("guest-fsfreeze called".into())
    }
}

impl Handle for GuestFsfreezeFreezeList {
    fn handle(agent: &mut Agent, args: FreezeListArgs) -> Result<i64, CommandError> {
        let r = global().freeze(&RealFs, args.mountpoints.as_deref());
        agent.frozen = global().is_frozen();
        r
    }

    fn audit(_args: &FreezeListArgs) -> Option<String> {
        Some("guest-fsfreeze called".into())
    }
}

impl Handle for GuestFsfreezeThaw {
    fn handle(agent: &mut Agent, _args: NoArgs) -> Result<i64, CommandError> {
        let r = global().thaw(&RealFs);
        agent.frozen = global().is_frozen();
        r
    }
}

impl Handle for GuestFstrim {
    fn handle(
        _agent: &mut Agent,
        args: FstrimArgs,
    ) -> Result<GuestFilesystemTrimResponse, CommandError> {
        let list = mounts::read_mounts(&SysRoot::host()).map_err(CommandError::Failed)?;
        // As qemu-ga, a negative minimum is taken as the unsigned number it stands for.
        let minimum = args.minimum.unwrap_or(0) as u64;
        Ok(trim_all(&list, &|dir| {
            freeze::trim(dir, minimum).map_err(|e| e.to_string())
        }))
    }

    fn audit(_args: &FstrimArgs) -> Option<String> {
        Some("guest-fstrim called".into())
    }
}

/// Trims one mount point: (bytes trimmed, minimum used) or the error text.
pub(crate) type TrimFn<'a> = &'a dyn Fn(&str) -> Result<(u64, u64), String>;

/// One result per mount, in qemu-ga's order (the mount list reversed); `trim` returns the
/// bytes trimmed and the minimum extent the kernel used.
pub(crate) fn trim_all(list: &[Mount], trim: TrimFn<'_>) -> GuestFilesystemTrimResponse {
    let paths = list
        .iter()
        .rev()
        .map(|m| match trim(&m.dir) {
            Ok((n, minlen)) => GuestFilesystemTrimResult {
                path: m.dir.clone(),
                trimmed: Some(n as i64),
                minimum: Some(minlen as i64),
                error: None,
            },
            Err(e) => GuestFilesystemTrimResult {
                path: m.dir.clone(),
                error: Some(e),
                ..Default::default()
            },
        })
        .collect();
    GuestFilesystemTrimResponse { paths }
}

#[cfg(test)]
#[path = "freeze_tests.rs"]
mod tests;
