//! A minimal keep-alive HTTP/1.1 client connection: write a pre-formatted request, read one
//! response (status line, headers, Content-Length or chunked body). [`Client`] is that or an
//! HTTP/2 cleartext connection (src/h2c.rs) that takes the same request bytes.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 4 * 1024 * 1024;

/// The protocol of a load run's connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// HTTP/1.1 keep-alive.
    H1,
    /// HTTP/2 cleartext with prior knowledge, one request at a time per connection.
    H2c,
}

/// One connection of either protocol; requests are given as HTTP/1.1 bytes.
pub enum Client {
    H1(Conn),
    H2c(crate::h2c::Conn),
}

impl Client {
    pub fn connect(addr: SocketAddr, timeout: Duration, proto: Proto) -> io::Result<Client> {
        Ok(match proto {
            Proto::H1 => Client::H1(Conn::connect(addr, timeout)?),
            Proto::H2c => Client::H2c(crate::h2c::Conn::connect(addr, timeout)?),
        })
    }

    pub fn round_trip(&mut self, request: &[u8]) -> io::Result<Response> {
        match self {
            Client::H1(c) => c.round_trip(request),
            Client::H2c(c) => c.round_trip(request),
        }
    }
}

pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

pub struct Response {
    pub status: u16,
    /// The server will close the connection after this response.
    pub close: bool,
    /// The body, kept only for non-200 responses (for the error report).
    pub body: Vec<u8>,
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Conn {
    pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(4096),
        })
    }

    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed by the server",
            ));
        }
        self.buf
            .extend_from_slice(chunk.get(..n).unwrap_or_default());
        Ok(())
    }

    /// Sends one request and reads its response.
    pub fn round_trip(&mut self, request: &[u8]) -> io::Result<Response> {
        self.stream.write_all(request)?;
        self.buf.clear();
        let head_end = loop {
            if let Some(p) = find(&self.buf, b"\r\n\r\n") {
                break p + 4;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(bad("response head too large"));
            }
            self.fill()?;
        };
        let head = std::str::from_utf8(self.buf.get(..head_end).unwrap_or_default())
            .map_err(|_| bad("response head is not UTF-8"))?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.split(' ');
        if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
            return Err(bad("not an HTTP/1.x response"));
        }
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("bad status line"))?;
        let mut content_length: Option<usize> = None;
        let mut chunked = false;
        let mut close = status_line.starts_with("HTTP/1.0");
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                content_length = Some(value.parse().map_err(|_| bad("bad content-length"))?);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            }
        }
        let body_start = head_end;
        if chunked {
            // Enough for error bodies: read until the last chunk and the final CRLF.
            while find(self.buf.get(body_start..).unwrap_or_default(), b"0\r\n\r\n").is_none() {
                if self.buf.len() > MAX_BODY {
                    return Err(bad("chunked body too large"));
                }
                self.fill()?;
            }
        } else if let Some(len) = content_length {
            if len > MAX_BODY {
                return Err(bad("body too large"));
            }
            while self.buf.len() < body_start + len {
                self.fill()?;
            }
        } else if !(status < 200 || status == 204 || status == 304) {
            // No framing: the body runs to the end of the connection.
            close = true;
            while self.buf.len() < MAX_BODY && self.fill().is_ok() {}
        }
        let body = if status == 200 {
            Vec::new()
        } else {
            self.buf.get(body_start..).unwrap_or_default().to_vec()
        };
        Ok(Response {
            status,
            close,
            body,
        })
    }
}
