//! The opt-in `hotplug-online` mode: a thread that onlines vCPUs and memory blocks hot-added
//! after the agent started (docs/extensions.md). It waits for the kernel's uevents and
//! falls back to looking every two seconds when the uevent socket cannot be opened.

use std::time::Duration;

use qga_sys::hotplug::{Known, UeventSocket, is_hotplug_add, parse_uevent};
use qga_sys::sysroot::SysRoot;

/// How long to let the kernel finish adding a device before looking at its state.
const SETTLE: Duration = Duration::from_millis(100);
/// How often to look when there are no uevents.
const POLL: Duration = Duration::from_secs(2);

fn pass(known: &mut Known, root: &SysRoot) {
    let r = known.online_new(root);
    for name in &r.done {
        log::info!("hotplug: brought {name} online");
    }
    for failure in &r.failed {
        log::warn!("hotplug: cannot bring {failure} online");
    }
}

/// Starts watching (call after daemonizing: the thread must be the child's).
pub(crate) fn start() {
    let root = SysRoot::host();
    let mut known = Known::snapshot(&root);
    let socket = UeventSocket::open();
    let spawned = std::thread::Builder::new()
        .name("qga-hotplug".into())
        .stack_size(256 * 1024)
        .spawn(move || match socket {
            Ok(socket) => {
                let mut buf = vec![0u8; 8192];
                loop {
                    match socket.recv(&mut buf) {
                        Ok(n) => {
                            if parse_uevent(&buf[..n]).is_some_and(|e| is_hotplug_add(&e)) {
                                std::thread::sleep(SETTLE);
                                pass(&mut known, &root);
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            // ENOBUFS: events were lost; look at the state anyway.
                            log::debug!("hotplug: uevent socket: {e}");
                            pass(&mut known, &root);
                        }
                    }
                }
            }
            Err(e) => {
                log::warn!("hotplug: no kernel uevents ({e}); looking every 2 seconds");
                loop {
                    std::thread::sleep(POLL);
                    pass(&mut known, &root);
                }
            }
        });
    if let Err(e) = spawned {
        log::error!("hotplug: cannot start the watcher: {e}");
    }
}
