//! The agent's logger: qemu-ga's line format (`<sec>.<usec>: <level>: <msg>`) to stderr or
//! the log file, errors only unless verbose, and nothing at all while frozen.

use std::fs::File;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Switched off while filesystems are frozen: writing a log could block on them.
pub static LOGGING_ENABLED: AtomicBool = AtomicBool::new(true);

/// Where log lines go.
#[derive(Debug)]
struct Logger {
    file: Mutex<Option<File>>,
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::max_level() && LOGGING_ENABLED.load(Ordering::Relaxed)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let level = match record.level() {
            log::Level::Error => "critical",
            log::Level::Warn => "warning",
            log::Level::Info => "info",
            log::Level::Debug | log::Level::Trace => "debug",
        };
        let line = format!(
            "{}.{}: {level}: {}\n",
            now.as_secs(),
            now.subsec_micros(),
            record.args()
        );
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let _ = match guard.as_mut() {
            Some(f) => f.write_all(line.as_bytes()),
            None => std::io::stderr().write_all(line.as_bytes()),
        };
    }

    fn flush(&self) {}
}

/// Whether logging (and syslog auditing) is on: off while filesystems are frozen.
pub fn enabled() -> bool {
    LOGGING_ENABLED.load(Ordering::Relaxed)
}

/// Installs the logger; `file` replaces stderr when given.
pub fn init(file: Option<File>, verbose: bool) {
    let logger = Box::leak(Box::new(Logger {
        file: Mutex::new(file),
    }));
    if log::set_logger(logger).is_ok() {
        log::set_max_level(if verbose {
            log::LevelFilter::Debug
        } else {
            log::LevelFilter::Error
        });
    }
}
