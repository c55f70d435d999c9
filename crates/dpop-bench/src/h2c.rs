//! A minimal HTTP/2 cleartext client connection (prior knowledge, RFC 9113), for
//! `dpop-bench replay --h2`: one request at a time, given as HTTP/1.1 bytes (translated to a
//! HEADERS frame and a DATA frame), the answer's `:status` and body read back.
//!
//! Enough for a hyper server such as dpop-replay, not a general client: the requests are our
//! own; the response header block is decoded only for `:status` (it comes first; src/hpack.rs),
//! which works because the SETTINGS sent at connect ask for a zero-size HPACK dynamic table,
//! so a status is either a static-table index or a literal (raw or Huffman-coded digits).
//! Push is turned off; the receive windows are opened wide at connect and topped up; the send
//! window of the connection is tracked (request bodies are small).

use crate::hpack::{status_of, translate};
use crate::http::Response;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PUSH_PROMISE: u8 = 5;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const WINDOW_UPDATE: u8 = 8;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
/// Largest frame we accept (we never raise SETTINGS_MAX_FRAME_SIZE from its default).
const MAX_FRAME: usize = 16_384;
const MAX_WINDOW: u32 = 0x7fff_ffff;
const MAX_BODY: usize = 4 * 1024 * 1024;

pub struct Conn {
    stream: TcpStream,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    next_id: u32,
    /// What the server still lets us send on the connection, and on a new stream.
    send_window: i64,
    stream_window: i64,
    peer_max_frame: usize,
    /// DATA bytes received since the last connection WINDOW_UPDATE we sent.
    unacked: u64,
    /// GOAWAY received: finish the current exchange, then reconnect.
    closing: bool,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn frame_head(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    let len = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
    out.extend_from_slice(len.get(1..).unwrap_or_default());
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
}

fn window_update(out: &mut Vec<u8>, stream: u32, inc: u32) {
    frame_head(out, 4, WINDOW_UPDATE, 0, stream);
    out.extend_from_slice(&inc.to_be_bytes());
}

fn be32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(..4)?.try_into().ok()?))
}

impl Conn {
    pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let mut c = Conn {
            stream,
            rbuf: Vec::with_capacity(16 * 1024),
            wbuf: Vec::with_capacity(1024),
            next_id: 1,
            send_window: 65_535,
            stream_window: 65_535,
            peer_max_frame: MAX_FRAME,
            unacked: 0,
            closing: false,
        };
        let mut w = PREFACE.to_vec();
        // HEADER_TABLE_SIZE 0, ENABLE_PUSH 0, INITIAL_WINDOW_SIZE max
        let settings: [(u16, u32); 3] = [(1, 0), (2, 0), (4, MAX_WINDOW)];
        frame_head(&mut w, 6 * settings.len(), SETTINGS, 0, 0);
        for (id, v) in settings {
            w.extend_from_slice(&id.to_be_bytes());
            w.extend_from_slice(&v.to_be_bytes());
        }
        window_update(&mut w, 0, MAX_WINDOW - 65_535);
        c.stream.write_all(&w)?;
        Ok(c)
    }

    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed by the server",
            ));
        }
        self.rbuf
            .extend_from_slice(chunk.get(..n).unwrap_or_default());
        Ok(())
    }

    /// The next frame: (type, flags, stream id, payload).
    fn read_frame(&mut self, payload: &mut Vec<u8>) -> io::Result<(u8, u8, u32)> {
        while self.rbuf.len() < 9 {
            self.fill()?;
        }
        let h: [u8; 9] = self
            .rbuf
            .get(..9)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| bad("short frame head"))?;
        let len = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
        let (kind, flags) = (h[3], h[4]);
        let id = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & MAX_WINDOW;
        if len > MAX_FRAME {
            return Err(bad(format!("frame of {len} bytes over the 16 KiB default")));
        }
        while self.rbuf.len() < 9 + len {
            self.fill()?;
        }
        payload.clear();
        payload.extend_from_slice(self.rbuf.get(9..9 + len).unwrap_or_default());
        self.rbuf.drain(..9 + len);
        Ok((kind, flags, id))
    }

    /// Handles a connection-level frame; true if it was one.
    fn control(&mut self, kind: u8, flags: u8, id: u32, p: &[u8]) -> io::Result<bool> {
        match kind {
            SETTINGS if flags & ACK == 0 => {
                for s in p.chunks_exact(6) {
                    let &[i0, i1, v0, v1, v2, v3] = s else {
                        continue;
                    };
                    let v = u32::from_be_bytes([v0, v1, v2, v3]);
                    match u16::from_be_bytes([i0, i1]) {
                        4 => self.stream_window = i64::from(v),
                        5 => self.peer_max_frame = v as usize,
                        _ => {}
                    }
                }
                frame_head(&mut self.wbuf, 0, SETTINGS, ACK, 0);
            }
            SETTINGS => {}
            PING if flags & ACK == 0 => {
                frame_head(&mut self.wbuf, p.len(), PING, ACK, 0);
                self.wbuf.extend_from_slice(p);
            }
            PING => {}
            WINDOW_UPDATE if id == 0 => {
                self.send_window += i64::from(be32(p).unwrap_or(0) & MAX_WINDOW);
            }
            GOAWAY => {
                let last = be32(p).unwrap_or(0) & MAX_WINDOW;
                if last + 2 < self.next_id {
                    return Err(bad("GOAWAY before our stream was processed"));
                }
                self.closing = true;
            }
            PUSH_PROMISE => return Err(bad("PUSH_PROMISE although push is disabled")),
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.wbuf.is_empty() {
            self.stream.write_all(&self.wbuf)?;
            self.wbuf.clear();
        }
        Ok(())
    }

    /// Sends one request (HTTP/1.1 bytes) on a new stream and reads its response.
    pub fn round_trip(&mut self, request: &[u8]) -> io::Result<Response> {
        let id = self.next_id;
        if id > MAX_WINDOW - 2 || self.closing {
            return Err(bad("connection used up (stream ids or GOAWAY)"));
        }
        self.next_id += 2;
        let (block, body) = translate(request)?;
        if block.len() > self.peer_max_frame || body.len() as i64 > self.stream_window {
            return Err(bad("request too large for one frame or the stream window"));
        }
        let mut payload = Vec::new();
        while (body.len() as i64) > self.send_window {
            let (kind, flags, sid) = self.read_frame(&mut payload)?;
            self.control(kind, flags, sid, &payload)?;
            self.flush()?;
        }
        let flags = END_HEADERS | if body.is_empty() { END_STREAM } else { 0 };
        frame_head(&mut self.wbuf, block.len(), HEADERS, flags, id);
        self.wbuf.extend_from_slice(&block);
        for (i, chunk) in body.chunks(self.peer_max_frame.max(1)).enumerate() {
            let last = (i + 1) * self.peer_max_frame.max(1) >= body.len();
            frame_head(&mut self.wbuf, chunk.len(), DATA, u8::from(last), id);
            self.wbuf.extend_from_slice(chunk);
        }
        self.send_window -= body.len() as i64;
        self.flush()?;

        let mut status: Option<u16> = None;
        let mut block = Vec::new();
        let mut in_headers = false;
        let mut out = Vec::new();
        loop {
            let (kind, flags, sid) = self.read_frame(&mut payload)?;
            if kind == DATA {
                self.unacked += payload.len() as u64;
                if self.unacked >= 1 << 30 {
                    let inc = u32::try_from(self.unacked).unwrap_or(MAX_WINDOW);
                    window_update(&mut self.wbuf, 0, inc);
                    self.unacked = 0;
                }
            }
            if self.control(kind, flags, sid, &payload)? || sid != id {
                self.flush()?;
                continue;
            }
            match kind {
                HEADERS | CONTINUATION => {
                    if kind == HEADERS {
                        in_headers = true;
                        block.clear();
                        block.extend_from_slice(strip(&payload, flags, true)?);
                    } else if in_headers {
                        block.extend_from_slice(&payload);
                    } else {
                        return Err(bad("CONTINUATION without HEADERS"));
                    }
                    if flags & END_HEADERS != 0 {
                        in_headers = false;
                        // the first block is the response's; a later one holds trailers
                        if status.is_none() {
                            status = Some(
                                status_of(&block)
                                    .ok_or_else(|| bad("cannot read :status of the response"))?,
                            );
                        }
                    }
                }
                DATA => {
                    let data = strip(&payload, flags, false)?;
                    if out.len() + data.len() > MAX_BODY {
                        return Err(bad("body too large"));
                    }
                    out.extend_from_slice(data);
                }
                RST_STREAM => return Err(bad("stream reset by the server")),
                _ => {}
            }
            if matches!(kind, HEADERS | DATA) && flags & END_STREAM != 0 {
                break;
            }
        }
        self.flush()?;
        let status = status.ok_or_else(|| bad("response without headers"))?;
        if status == 200 {
            out.clear();
        }
        Ok(Response {
            status,
            close: self.closing,
            body: out,
        })
    }
}

/// The payload of a HEADERS or DATA frame without padding (and priority fields).
fn strip(p: &[u8], flags: u8, headers: bool) -> io::Result<&[u8]> {
    let mut start = 0;
    let mut pad = 0;
    if flags & PADDED != 0 {
        pad = usize::from(*p.first().ok_or_else(|| bad("bad padding"))?);
        start = 1;
    }
    if headers && flags & PRIORITY != 0 {
        start += 5;
    }
    p.get(start..p.len().saturating_sub(pad))
        .filter(|_| start + pad <= p.len())
        .ok_or_else(|| bad("bad padding"))
}
