//! A channel through libvirt: each request line becomes one `virsh qemu-agent-command` run,
//! and its output the reply line. libvirt synchronises with the agent by itself; the client's
//! `guest-sync-delimited` is sent as `guest-sync` with the same id, and its answer is given
//! the 0xFF delimiter the client expects. A failure virsh reports becomes an error reply.

use std::io;
use std::process::Command;
use std::time::Duration;

/// The state of a virsh channel: the domain, the unfinished request line, queued replies.
#[derive(Debug)]
pub(crate) struct Virsh {
    domain: String,
    request: Vec<u8>,
    replies: Vec<u8>,
    read_pos: usize,
}

impl Virsh {
    /// A channel to `domain`; fails when virsh cannot be run.
    pub(crate) fn new(domain: &str) -> io::Result<Virsh> {
        let ok = Command::new("virsh")
            .args(["domstate", domain])
            .output()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot run virsh: {e}")))?;
        if !ok.status.success() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                String::from_utf8_lossy(&ok.stderr).trim().to_string(),
            ));
        }
        Ok(Virsh {
            domain: domain.to_string(),
            request: Vec::new(),
            replies: Vec::new(),
            read_pos: 0,
        })
    }

    /// Hands out queued reply bytes; with none queued nothing will come, which is a timeout.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = &self.replies[self.read_pos..];
        if left.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "libvirt returned no reply",
            ));
        }
        let n = left.len().min(buf.len());
        buf[..n].copy_from_slice(&left[..n]);
        self.read_pos += n;
        if self.read_pos == self.replies.len() {
            self.replies.clear();
            self.read_pos = 0;
        }
        Ok(n)
    }

    /// Collects request bytes; each complete line is run through virsh.
    pub(crate) fn write(&mut self, buf: &[u8], timeout: Option<Duration>) -> io::Result<usize> {
        self.request.extend_from_slice(buf);
        while let Some(end) = self.request.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.request.drain(..=end).collect();
            self.run(&line, timeout)?;
        }
        Ok(buf.len())
    }

    fn run(&mut self, line: &[u8], timeout: Option<Duration>) -> io::Result<()> {
        // The 0xFF resync byte means nothing to libvirt, which keeps its own channel in sync.
        let text = String::from_utf8_lossy(line)
            .trim_matches(|c: char| c == '\u{fffd}' || c.is_whitespace())
            .to_string();
        if text.is_empty() {
            return Ok(());
        }
        let (request, delimited) = match sync_id(&text) {
            Some(id) => (
                format!("{{\"execute\":\"guest-sync\",\"arguments\":{{\"id\":{id}}}}}"),
                true,
            ),
            None => (text, false),
        };
        let secs = timeout.map_or(30, |t| t.as_secs().max(1));
        let out = Command::new("virsh")
            .args(["qemu-agent-command", "--timeout", &secs.to_string()])
            .arg(&self.domain)
            .arg(&request)
            .output()?;
        if delimited {
            self.replies.push(0xFF);
        }
        if out.status.success() {
            self.replies
                .extend_from_slice(String::from_utf8_lossy(&out.stdout).trim().as_bytes());
        } else {
            let msg = String::from_utf8_lossy(&out.stderr)
                .trim()
                .trim_start_matches("error: ")
                .to_string();
            let reply = serde_json::json!({
                "error": {"class": "GenericError", "desc": format!("libvirt: {msg}")}
            });
            self.replies.extend_from_slice(reply.to_string().as_bytes());
        }
        self.replies.push(b'\n');
        Ok(())
    }
}

/// The id of a guest-sync-delimited request, if `text` is one.
fn sync_id(text: &str) -> Option<i64> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    if v["execute"] != "guest-sync-delimited" {
        return None;
    }
    v["arguments"]["id"].as_i64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_sync_id() {
        assert_eq!(
            sync_id(r#"{"execute":"guest-sync-delimited","arguments":{"id":42}}"#),
            Some(42)
        );
        assert_eq!(sync_id(r#"{"execute":"guest-ping"}"#), None);
        assert_eq!(sync_id("not json"), None);
    }
}
