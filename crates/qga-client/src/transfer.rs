//! Pipelined file transfers: several guest-file-read or guest-file-write requests in flight
//! on one channel, so that the agent finds its next request waiting instead of a round trip
//! of idle time (on virtio-serial a round trip is hundreds of microseconds).
//!
//! Agents answer one connection's requests in order (qemu-ga and ours), so each reply belongs
//! to the oldest request still in flight. Nothing read is ever dropped: after the agent
//! reports the end of the file, no more requests go out, but what the requests already sent
//! bring back (a file that grew, a FIFO) is still handed over, in order. After a failure the
//! replies still in flight are read and discarded, so the channel stays usable.
//!
//! Use a depth of 1 with agents other than this project's: qemu-ga over virtio-serial can
//! leave the last of several pipelined requests unanswered until more input arrives
//! (docs/compat.md); `qga cp` pipelines only when guest-info lists `__org.qga_*` commands.

use std::collections::VecDeque;
use std::io::{Read, Write};

use crate::{Base64Text, Client, ClientError};

/// Reads a guest file from its handle's position to its end, with up to `depth`
/// guest-file-read requests in flight; made by [`Client::file_reader`].
#[derive(Debug)]
pub struct FileReader<'c, S: Read + Write> {
    client: &'c mut Client<S>,
    handle: i64,
    chunk: i64,
    depth: usize,
    in_flight: usize,
    /// No more requests go out: the end was reported, or a call failed.
    stopped: bool,
}

impl<'c, S: Read + Write> FileReader<'c, S> {
    pub(crate) fn new(
        client: &'c mut Client<S>,
        handle: i64,
        chunk: i64,
        depth: usize,
    ) -> Result<Self, ClientError> {
        client.resync_if_needed()?;
        Ok(FileReader {
            client,
            handle,
            chunk,
            depth: depth.max(1),
            in_flight: 0,
            stopped: false,
        })
    }

    /// The next bytes of the file (never empty), or `None` once the agent reported the end
    /// and every reply in flight was read.
    pub fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ClientError> {
        let mut buf = Vec::new();
        Ok(self.next_chunk_into(&mut buf)?.then_some(buf))
    }

    /// As [`FileReader::next_chunk`], decoding into `buf` (its contents replaced): a buffer
    /// used again costs no new memory. Returns `false` at the end, `buf` then empty.
    pub fn next_chunk_into(&mut self, buf: &mut Vec<u8>) -> Result<bool, ClientError> {
        loop {
            while !self.stopped && self.in_flight < self.depth {
                if let Err(e) = self.client.send_file_read(self.handle, self.chunk) {
                    self.broken();
                    return Err(e);
                }
                self.in_flight += 1;
            }
            if self.in_flight == 0 {
                buf.clear();
                return Ok(false);
            }
            let r = self.client.recv_file_read(std::mem::take(buf));
            self.in_flight -= 1;
            match r {
                Ok(c) => {
                    if c.eof || c.data.is_empty() {
                        self.stopped = true;
                    }
                    *buf = c.data;
                    if !buf.is_empty() {
                        return Ok(true);
                    }
                }
                Err(e @ (ClientError::Io(_) | ClientError::Closed)) => {
                    self.broken();
                    return Err(e);
                }
                Err(e) => {
                    self.stopped = true;
                    self.drain();
                    return Err(e);
                }
            }
        }
    }

    /// Reads and drops the replies still in flight after a failure.
    fn drain(&mut self) {
        while self.in_flight > 0 {
            self.in_flight -= 1;
            let r = self.client.recv_file_read(Vec::new());
            if let Err(ClientError::Io(_) | ClientError::Closed) = r {
                self.broken();
            }
        }
    }

    /// The channel failed: the next call resynchronises.
    fn broken(&mut self) {
        self.stopped = true;
        self.in_flight = 0;
        self.client.desynced = true;
    }
}

impl<S: Read + Write> Drop for FileReader<'_, S> {
    fn drop(&mut self) {
        // Replies still to come must not be taken for the next call's.
        if self.in_flight > 0 {
            self.client.desynced = true;
        }
    }
}

/// Writes to a guest file with up to `depth` guest-file-write requests in flight; made by
/// [`Client::file_writer`]. Call [`FileWriter::finish`] to wait for the last replies.
#[derive(Debug)]
pub struct FileWriter<'c, S: Read + Write> {
    client: &'c mut Client<S>,
    handle: i64,
    depth: usize,
    /// The length of each request in flight, oldest first.
    in_flight: VecDeque<usize>,
    acknowledged: u64,
    failed: bool,
}

impl<'c, S: Read + Write> FileWriter<'c, S> {
    pub(crate) fn new(
        client: &'c mut Client<S>,
        handle: i64,
        depth: usize,
    ) -> Result<Self, ClientError> {
        client.resync_if_needed()?;
        Ok(FileWriter {
            client,
            handle,
            depth: depth.max(1),
            in_flight: VecDeque::new(),
            acknowledged: 0,
            failed: false,
        })
    }

    /// Sends `data` (encoded straight into the request), first waiting for the oldest reply
    /// if `depth` requests are in flight.
    pub fn write(&mut self, data: &[u8]) -> Result<(), ClientError> {
        self.send(data.len(), qga_proto::b64::encoded_len(data.len()), |out| {
            qga_proto::b64::encode_to_slice(data, out);
        })
    }

    /// Sends already encoded text, as [`FileWriter::write`].
    pub fn write_b64(&mut self, text: &Base64Text) -> Result<(), ClientError> {
        let bytes = text.as_str().as_bytes();
        let pad = bytes.iter().rev().take(2).filter(|&&b| b == b'=').count();
        self.send(bytes.len() / 4 * 3 - pad, bytes.len(), |out| {
            out.copy_from_slice(bytes);
        })
    }

    /// Bytes the agent has confirmed written so far, in order from the first.
    pub fn acknowledged(&self) -> u64 {
        self.acknowledged
    }

    /// Waits for every reply; returns the bytes written. After a failure,
    /// [`FileWriter::acknowledged`] still tells what was confirmed.
    pub fn finish(&mut self) -> Result<u64, ClientError> {
        while !self.in_flight.is_empty() {
            self.settle_one()?;
        }
        Ok(self.acknowledged)
    }

    /// One request of `data_len` bytes whose `text_len` characters of base64 `fill` puts in
    /// place.
    fn send(
        &mut self,
        data_len: usize,
        text_len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), ClientError> {
        self.make_room()?;
        if let Err(e) = self.client.send_file_write(self.handle, text_len, fill) {
            self.broken();
            return Err(e);
        }
        self.in_flight.push_back(data_len);
        Ok(())
    }

    fn make_room(&mut self) -> Result<(), ClientError> {
        if self.failed {
            return Err(ClientError::Protocol(
                "an earlier write of this transfer failed".into(),
            ));
        }
        while self.in_flight.len() >= self.depth {
            self.settle_one()?;
        }
        Ok(())
    }

    /// Reads the oldest reply; a failure or a short count ends the transfer.
    fn settle_one(&mut self) -> Result<(), ClientError> {
        let Some(asked) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let e = match self.client.recv_file_write() {
            Ok(n) if usize::try_from(n) == Ok(asked) => {
                self.acknowledged += asked as u64;
                return Ok(());
            }
            Ok(written) => ClientError::ShortWrite { written, asked },
            Err(e @ (ClientError::Io(_) | ClientError::Closed)) => {
                self.broken();
                return Err(e);
            }
            Err(e) => e,
        };
        self.failed = true;
        while !self.in_flight.is_empty() {
            self.in_flight.pop_front();
            if let Err(ClientError::Io(_) | ClientError::Closed) = self.client.recv_file_write() {
                self.broken();
            }
        }
        Err(e)
    }

    fn broken(&mut self) {
        self.failed = true;
        self.in_flight.clear();
        self.client.desynced = true;
    }
}

impl<S: Read + Write> Drop for FileWriter<'_, S> {
    fn drop(&mut self) {
        if !self.in_flight.is_empty() {
            self.client.desynced = true;
        }
    }
}
