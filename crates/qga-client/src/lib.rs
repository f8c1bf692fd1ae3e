//! Host-side client for the QEMU guest agent protocol: connect to the host end of an agent
//! channel, resynchronise robustly, and run typed commands.
//!
//! ```no_run
//! use qga_client::Client;
//! use qga_schema::{GuestGetTime, NoArgs};
//! let mut c = Client::connect_unix("/run/qga.sock")?;
//! c.sync()?;
//! let ns = c.execute::<GuestGetTime>(&NoArgs {})?;
//! # Ok::<(), qga_client::ClientError>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use qga_proto::{Frame, Framer, QgaError, Value};
use qga_schema::Command;

pub mod channel;
pub mod discover;
mod transfer;
mod virsh;

pub use channel::{Channel, Target};
pub use transfer::{FileReader, FileWriter};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The channel failed or timed out.
    #[error("channel error: {0}")]
    Io(#[from] io::Error),
    /// The agent answered with an error.
    #[error("{}: {}", .0.class.as_str(), .0.desc)]
    Agent(QgaError),
    /// The reply could not be understood.
    #[error("malformed reply: {0}")]
    Protocol(String),
    /// The channel closed.
    #[error("the agent closed the channel")]
    Closed,
    /// A guest-file-write of a pipelined transfer wrote less than it was given.
    #[error("the agent wrote {written} of {asked} bytes")]
    ShortWrite {
        /// The count the agent reported.
        written: i64,
        /// The bytes sent.
        asked: usize,
    },
}

/// One reply line as received.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// Whether the line was preceded by the 0xFF delimiter.
    pub delimited: bool,
    /// The line without delimiter and newline.
    pub line: Vec<u8>,
}

impl Reply {
    /// Parses the line. Replies are plain JSON, except that an agent echoes an `id` in
    /// QEMU's dialect (e.g. `inf`); such lines go through QEMU's parser. Replies are not
    /// bound by the agent's 64 MiB request limit (a 48 MiB read is longer).
    pub fn value(&self) -> Result<Value, ClientError> {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&self.line) {
            return Ok(Value::from_json(v));
        }
        let mut frames = Framer::new().feed_collect(&self.line);
        match frames.pop() {
            Some(Frame::Message(v)) if frames.is_empty() => Ok(v),
            _ => {
                let shown: String = String::from_utf8_lossy(&self.line)
                    .chars()
                    .take(200)
                    .collect();
                Err(ClientError::Protocol(shown))
            }
        }
    }

    /// The `id` member, if any.
    pub fn id(&self) -> Option<Value> {
        match self.value().ok()? {
            Value::Dict(d) => d.get("id").cloned(),
            _ => None,
        }
    }

    /// `Ok(return value)` or `Err(agent error)`.
    pub fn result(&self) -> Result<Value, ClientError> {
        let Value::Dict(mut d) = self.value()? else {
            return Err(ClientError::Protocol("reply is not an object".into()));
        };
        if let Some(ret) = d.remove("return") {
            return Ok(ret);
        }
        match d.remove("error") {
            Some(Value::Dict(e)) => {
                let text = |k: &str| match e.get(k) {
                    Some(Value::Str(s)) => s.clone(),
                    _ => String::new(),
                };
                Err(ClientError::Agent(QgaError {
                    class: qga_proto::ErrorClass::from_wire(&text("class")),
                    desc: text("desc"),
                }))
            }
            _ => Err(ClientError::Protocol(
                "reply has neither return nor error".into(),
            )),
        }
    }
}

/// A connection to an agent.
#[derive(Debug)]
pub struct Client<S: Read + Write> {
    reader: BufReader<S>,
    /// A read failed (timeout, garbage): the next call resynchronises first.
    desynced: bool,
    /// Request buffer of file writes, kept between calls (its length only grows).
    scratch: Vec<u8>,
}

/// One guest-file-read result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChunk {
    /// The bytes read.
    pub data: Vec<u8>,
    /// Whether the agent reported end of file.
    pub eof: bool,
}

/// Base64 text made by encoding bytes, so it can go into a request without escaping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base64Text(String);

impl Base64Text {
    /// Encodes `bytes`.
    pub fn encode(bytes: &[u8]) -> Base64Text {
        Base64Text(qga_proto::b64::encode(bytes))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What comes before the base64 text in a guest-file-read reply, from qemu-ga and from this
/// project's agent alike (the members in QDict order).
const READ_REPLY_HEAD: &[u8] = b"{\"return\": {\"count\": ";
const READ_REPLY_B64: &[u8] = b", \"buf-b64\": \"";

/// Decodes the base64 text of a reply as it arrives, group-aligned; what the canonical
/// decoder refuses (line breaks, odd padding) is kept and decoded leniently at the end.
struct StreamDecoder {
    data: Vec<u8>,
    len: usize,
    pending: Vec<u8>,
    lenient: bool,
}

impl StreamDecoder {
    fn new(mut data: Vec<u8>, expected: usize) -> StreamDecoder {
        data.clear();
        data.resize(expected + 3, 0);
        StreamDecoder {
            data,
            len: 0,
            pending: Vec::new(),
            lenient: false,
        }
    }

    fn decode(&mut self, text: &[u8]) -> bool {
        match qga_proto::b64::decode_canonical_to_slice(text, &mut self.data[self.len..]) {
            Some(n) => {
                self.len += n;
                true
            }
            None => false,
        }
    }

    fn feed(&mut self, mut text: &[u8]) {
        if self.lenient {
            self.pending.extend_from_slice(text);
            return;
        }
        if !self.pending.is_empty() {
            let take = (4 - self.pending.len()).min(text.len());
            self.pending.extend_from_slice(&text[..take]);
            text = &text[take..];
            if self.pending.len() < 4 {
                return;
            }
            let group = std::mem::take(&mut self.pending);
            if !self.decode(&group) {
                self.lenient = true;
                self.pending = group;
                self.pending.extend_from_slice(text);
                return;
            }
        }
        let whole = text.len() / 4 * 4;
        if !self.decode(&text[..whole]) {
            self.lenient = true;
            self.pending.extend_from_slice(text);
            return;
        }
        self.pending.extend_from_slice(&text[whole..]);
    }

    fn finish(mut self) -> Result<Vec<u8>, ClientError> {
        self.data.truncate(self.len);
        if !self.pending.is_empty() {
            let text = std::str::from_utf8(&self.pending)
                .map_err(|_| ClientError::Protocol("buf-b64 is not text".into()))?;
            let tail = qga_proto::b64::decode(text)
                .map_err(|e| ClientError::Protocol(format!("buf-b64: {e}")))?;
            self.data.extend_from_slice(&tail);
        }
        Ok(self.data)
    }
}

impl Client<Channel> {
    /// Opens any target (unix socket, vsock, serial device) with a per-reply timeout.
    pub fn open(target: &Target, timeout: Option<Duration>) -> Result<Self, ClientError> {
        Ok(Client::new(Channel::open(target, timeout)?))
    }

    /// Sets the time to wait for each reply.
    pub fn set_channel_timeout(&mut self, timeout: Option<Duration>) {
        self.reader.get_mut().set_timeout(timeout);
    }

    /// Runs a command that sends no reply on success (shutdown, suspend), then waits up to
    /// `wait` for the error reply it sends on failure: silence (or the channel closing as the
    /// guest goes down) is success.
    pub fn execute_no_reply<C: Command>(
        &mut self,
        args: &C::Args,
        wait: Duration,
    ) -> Result<(), ClientError> {
        self.execute::<C>(args)?;
        if C::SUCCESS_RESPONSE {
            return Ok(());
        }
        let old = self.reader.get_ref().timeout();
        self.set_channel_timeout(Some(wait));
        let r = self.read_reply();
        self.set_channel_timeout(old);
        match r {
            Ok(reply) => reply.result().map(drop),
            Err(ClientError::Io(e)) if e.kind() == io::ErrorKind::TimedOut => Ok(()),
            Err(ClientError::Closed) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Client<UnixStream> {
    /// Connects to a unix socket (a QEMU chardev or libvirt channel socket, or an agent
    /// started with `-m unix-listen`), with a 10 s default timeout per reply.
    pub fn connect_unix(path: impl AsRef<Path>) -> Result<Self, ClientError> {
        let s = UnixStream::connect(path)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Client::new(s))
    }

    /// Sets the time to wait for each reply.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<(), ClientError> {
        self.reader.get_ref().set_read_timeout(timeout)?;
        Ok(())
    }
}

impl<S: Read + Write> Client<S> {
    /// Wraps an open stream.
    pub fn new(stream: S) -> Self {
        Client {
            reader: BufReader::with_capacity(256 * 1024, stream),
            desynced: false,
            scratch: Vec::new(),
        }
    }

    /// The underlying stream.
    pub fn get_mut(&mut self) -> &mut S {
        self.reader.get_mut()
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<(), ClientError> {
        let s = self.reader.get_mut();
        s.write_all(bytes)?;
        s.flush()?;
        Ok(())
    }

    /// Reads the next reply line.
    pub fn read_reply(&mut self) -> Result<Reply, ClientError> {
        let mut line = Vec::new();
        let n = match self.reader.read_until(b'\n', &mut line) {
            Ok(n) => n,
            Err(e) => {
                // A reply may still arrive later: it must not be taken for the next one.
                self.desynced = true;
                return Err(e.into());
            }
        };
        if n == 0 || line.last() != Some(&b'\n') {
            return Err(ClientError::Closed);
        }
        line.pop();
        let delimited = line.first() == Some(&0xFF);
        if delimited {
            line.remove(0);
        }
        Ok(Reply { delimited, line })
    }

    /// Resynchronises: sends 0xFF and guest-sync-delimited with a fresh id, then discards
    /// everything (stale replies, the error for the 0xFF, garbage, a partial line) up to the
    /// matching reply. Calls after a failed read do this by themselves.
    pub fn sync(&mut self) -> Result<(), ClientError> {
        let id = sync_id();
        let req = format!(
            "\u{ff}{{\"execute\":\"guest-sync-delimited\",\"arguments\":{{\"id\":{id}}}}}\n"
        );
        // The 0xFF must go out as a raw byte, not as UTF-8.
        let mut bytes = req.into_bytes();
        bytes.splice(0..2, [0xFF]);
        self.send_raw(&bytes)?;
        loop {
            let mut r = self.read_reply()?;
            // Whatever precedes the last 0xFF (garbage, the rest of a torn line) is dropped.
            if let Some(pos) = r.line.iter().rposition(|&b| b == 0xFF) {
                r.line.drain(..=pos);
                r.delimited = true;
            }
            if !r.delimited {
                continue;
            }
            match r.result() {
                Ok(Value::Int(v)) if v == id => {
                    self.desynced = false;
                    return Ok(());
                }
                // Agents send errors undelimited; a delimited one is the channel's own (virsh).
                Err(e @ ClientError::Agent(_)) => return Err(e),
                _ => {}
            }
        }
    }

    /// Resynchronises first if an earlier call left the channel out of step.
    fn resync_if_needed(&mut self) -> Result<(), ClientError> {
        if self.desynced {
            self.sync()?;
        }
        Ok(())
    }

    /// Runs a command by name with JSON arguments and returns its `return` value; `None`
    /// when the command does not reply on success (the channel is not read then).
    pub fn execute_value(
        &mut self,
        name: &str,
        args: Option<Value>,
        expect_reply: bool,
    ) -> Result<Option<Value>, ClientError> {
        self.resync_if_needed()?;
        let mut req = qga_proto::Dict::new();
        req.insert("execute", Value::Str(name.to_string()));
        if let Some(a) = args {
            req.insert("arguments", a);
        }
        let mut bytes = Vec::new();
        qga_proto::writer::write_value(&mut bytes, &Value::Dict(req));
        bytes.push(b'\n');
        self.send_raw(&bytes)?;
        if !expect_reply {
            return Ok(None);
        }
        self.read_reply()?.result().map(Some)
    }

    /// guest-file-read of up to `count` bytes. The reply's base64 text is decoded as it
    /// arrives, without holding the reply line; a reply of another shape (an error, an
    /// agent that orders members differently) takes the general path.
    pub fn file_read(&mut self, handle: i64, count: i64) -> Result<FileChunk, ClientError> {
        self.resync_if_needed()?;
        let r = self.file_read_streamed(handle, count);
        if let Err(ClientError::Io(_)) = r {
            // The rest of the reply may still arrive: it must not be taken for the next one.
            self.desynced = true;
        }
        r
    }

    fn file_read_streamed(&mut self, handle: i64, count: i64) -> Result<FileChunk, ClientError> {
        self.send_file_read(handle, count)?;
        self.recv_file_read(Vec::new())
    }

    fn send_file_read(&mut self, handle: i64, count: i64) -> Result<(), ClientError> {
        let req = format!(
            "{{\"execute\":\"guest-file-read\",\"arguments\":{{\"handle\":{handle},\"count\":{count}}}}}\n"
        );
        self.send_raw(req.as_bytes())
    }

    /// Reads one guest-file-read reply, decoding its text as it arrives into `buf` (its
    /// contents replaced; a buffer used before has its pages already).
    fn recv_file_read(&mut self, buf: Vec<u8>) -> Result<FileChunk, ClientError> {
        // The head of the reply, up to the opening quote of the base64 text or the line end.
        let mut head = Vec::new();
        let mut line_done = false;
        while !line_done && !head.ends_with(READ_REPLY_B64) && head.len() < 96 {
            let avail = self.reader.fill_buf()?;
            if avail.is_empty() {
                return Err(ClientError::Closed);
            }
            let mut used = 0;
            for &b in avail {
                head.push(b);
                used += 1;
                if b == b'\n' {
                    line_done = true;
                    break;
                }
                if head.len() >= 96 || head.ends_with(READ_REPLY_B64) {
                    break;
                }
            }
            self.reader.consume(used);
        }
        let count = head
            .strip_prefix(READ_REPLY_HEAD)
            .and_then(|rest| rest.strip_suffix(READ_REPLY_B64))
            .filter(|digits| !digits.is_empty() && digits.iter().all(u8::is_ascii_digit))
            .and_then(|digits| std::str::from_utf8(digits).ok()?.parse::<usize>().ok())
            .filter(|_| !line_done);
        let Some(count) = count else {
            if !line_done {
                self.reader.read_until(b'\n', &mut head)?;
            }
            return self.file_read_general(head);
        };
        let mut dec = StreamDecoder::new(buf, count);
        loop {
            let avail = self.reader.fill_buf()?;
            if avail.is_empty() {
                return Err(ClientError::Closed);
            }
            let end = memchr::memchr2(b'"', b'\n', avail);
            let text = &avail[..end.unwrap_or(avail.len())];
            dec.feed(text);
            let used = text.len();
            self.reader.consume(used);
            if end.is_some() {
                break;
            }
        }
        // The rest of the line, checked through the general parser with the text left out.
        let mut rest = head;
        let n = self.reader.read_until(b'\n', &mut rest)?;
        if n == 0 || rest.last() != Some(&b'\n') {
            return Err(ClientError::Closed);
        }
        rest.pop();
        let ret = Reply {
            delimited: false,
            line: rest,
        }
        .result()?;
        let eof = match &ret {
            Value::Dict(d) => matches!(d.get("eof"), Some(Value::Bool(true))),
            _ => false,
        };
        let data = dec.finish()?;
        if data.len() != count {
            return Err(ClientError::Protocol(format!(
                "guest-file-read reply has count {count} but {} bytes",
                data.len()
            )));
        }
        Ok(FileChunk { data, eof })
    }

    fn file_read_general(&mut self, mut line: Vec<u8>) -> Result<FileChunk, ClientError> {
        if line.last() == Some(&b'\n') {
            line.pop();
        }
        let delimited = line.first() == Some(&0xFF);
        if delimited {
            line.remove(0);
        }
        let ret = Reply { delimited, line }.result()?;
        let r: qga_schema::files::GuestFileRead = serde_json::from_value(ret.into_json())
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let data = qga_proto::b64::decode(&r.buf_b64)
            .map_err(|e| ClientError::Protocol(format!("buf-b64: {e}")))?;
        Ok(FileChunk { data, eof: r.eof })
    }

    /// Reads `handle` from its position to the end of the file in requests of `chunk`
    /// bytes, with up to `depth` of them in flight (module `transfer`).
    pub fn file_reader(
        &mut self,
        handle: i64,
        chunk: i64,
        depth: usize,
    ) -> Result<FileReader<'_, S>, ClientError> {
        FileReader::new(self, handle, chunk, depth)
    }

    /// Writes to `handle` with up to `depth` guest-file-write requests in flight (module
    /// `transfer`); each reply's count is checked against what was sent.
    pub fn file_writer(
        &mut self,
        handle: i64,
        depth: usize,
    ) -> Result<FileWriter<'_, S>, ClientError> {
        FileWriter::new(self, handle, depth)
    }

    /// guest-file-write of `data`, encoded straight into the request; returns the count
    /// the agent reports.
    pub fn file_write(&mut self, handle: i64, data: &[u8]) -> Result<i64, ClientError> {
        self.file_write_with(handle, qga_proto::b64::encoded_len(data.len()), |out| {
            qga_proto::b64::encode_to_slice(data, out);
        })
    }

    /// guest-file-write of already encoded text.
    pub fn file_write_b64(&mut self, handle: i64, text: &Base64Text) -> Result<i64, ClientError> {
        let bytes = text.as_str().as_bytes();
        self.file_write_with(handle, bytes.len(), |out| out.copy_from_slice(bytes))
    }

    fn file_write_with(
        &mut self,
        handle: i64,
        b64_len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<i64, ClientError> {
        self.resync_if_needed()?;
        self.send_file_write(handle, b64_len, fill)?;
        self.recv_file_write()
    }

    /// Sends one guest-file-write request, its text put in place by `fill`.
    fn send_file_write(
        &mut self,
        handle: i64,
        b64_len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), ClientError> {
        let head = format!(
            "{{\"execute\":\"guest-file-write\",\"arguments\":{{\"handle\":{handle},\"buf-b64\":\""
        );
        const TAIL: &[u8] = b"\"}}\n";
        let total = head.len() + b64_len + TAIL.len();
        if self.scratch.len() < total {
            self.scratch.resize(total, 0);
        }
        let buf = &mut self.scratch[..total];
        buf[..head.len()].copy_from_slice(head.as_bytes());
        fill(&mut buf[head.len()..head.len() + b64_len]);
        buf[head.len() + b64_len..].copy_from_slice(TAIL);
        let s = self.reader.get_mut();
        s.write_all(&self.scratch[..total])?;
        s.flush()?;
        // Do not keep a huge request buffer for the small writes that may follow.
        if self.scratch.len() > 8 << 20 && total < 1 << 20 {
            self.scratch = Vec::new();
        }
        Ok(())
    }

    /// Reads one guest-file-write reply: the count written.
    fn recv_file_write(&mut self) -> Result<i64, ClientError> {
        let ret = self.read_reply()?.result()?;
        let r: qga_schema::files::GuestFileWrite = serde_json::from_value(ret.into_json())
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok(r.count)
    }

    /// Runs a typed command.
    pub fn execute<C: Command>(&mut self, args: &C::Args) -> Result<C::Ret, ClientError> {
        let json = serde_json::to_value(args).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let args = match Value::from_json(json) {
            Value::Dict(d) if d.is_empty() => None,
            v => Some(v),
        };
        let ret = self
            .execute_value(C::NAME, args, C::SUCCESS_RESPONSE)?
            .unwrap_or(Value::Dict(Default::default()));
        serde_json::from_value(ret.into_json()).map_err(|e| ClientError::Protocol(e.to_string()))
    }
}

/// A sync id that differs between calls and processes (positive, fits in 31 bits so any
/// agent's integer parsing accepts it).
fn sync_id() -> i64 {
    use std::sync::atomic::{AtomicI64, Ordering};
    static COUNTER: AtomicI64 = AtomicI64::new(0);
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mix = i64::from(t)
        ^ (i64::from(std::process::id()) << 12)
        ^ COUNTER.fetch_add(7919, Ordering::Relaxed);
    (mix & 0x7FFF_FFFF).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_reply_result_and_error() {
        let ok = Reply {
            delimited: false,
            line: br#"{"return": 5, "id": "a"}"#.to_vec(),
        };
        assert_eq!(ok.result().unwrap(), Value::Int(5));
        assert_eq!(ok.id(), Some(Value::Str("a".into())));
        let err = Reply {
            delimited: false,
            line: br#"{"error": {"class": "CommandNotFound", "desc": "The command x has not been found"}}"#.to_vec(),
        };
        match err.result() {
            Err(ClientError::Agent(e)) => assert_eq!(e.desc, "The command x has not been found"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn test_stream_decoder_any_split_matches_lenient_decode() {
        let data: Vec<u8> = (0..200u32).map(|i| (i * 7 + 3) as u8).collect();
        let canonical = qga_proto::b64::encode(&data);
        let mut odd = canonical.clone();
        odd.insert(37, '\n');
        odd.insert_str(80, "QQ==");
        for text in [
            canonical.as_str(),
            odd.as_str(),
            "QQ==QQ==",
            "aGVsbG8",
            "QR==",
            "",
        ] {
            let want = qga_proto::b64::decode(text).unwrap();
            for step in 1..=text.len().max(1) {
                let mut dec = StreamDecoder::new(vec![7; 3], want.len());
                for piece in text.as_bytes().chunks(step) {
                    dec.feed(piece);
                }
                assert_eq!(dec.finish().unwrap(), want, "{text:?} in pieces of {step}");
            }
        }
    }

    #[test]
    fn test_sync_skips_stale_replies() {
        // A pipe-like stream: replies prepared before sync, including an unrelated one.
        struct Fake {
            input: io::Cursor<Vec<u8>>,
            sent: Vec<u8>,
        }
        impl Read for Fake {
            fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
                self.input.read(b)
            }
        }
        impl Write for Fake {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.sent.extend_from_slice(b);
                // Answer the sync with the id it carries.
                if let Some(pos) = self.sent.windows(5).position(|w| w == b"\"id\":") {
                    let tail = &self.sent[pos + 5..];
                    let id: String = tail
                        .iter()
                        .take_while(|c| c.is_ascii_digit())
                        .map(|&c| c as char)
                        .collect();
                    let mut data = b"{\"return\": {}}\n{\"error\": {\"class\": \"GenericError\", \"desc\": \"x\"}}\n".to_vec();
                    data.push(0xFF);
                    data.extend_from_slice(format!("{{\"return\": {id}}}\n").as_bytes());
                    self.input = io::Cursor::new(data);
                }
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut c = Client::new(Fake {
            input: io::Cursor::new(Vec::new()),
            sent: Vec::new(),
        });
        c.sync().unwrap();
        assert_eq!(c.get_mut().sent[0], 0xFF);
    }
}
