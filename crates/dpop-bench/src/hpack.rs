//! The HPACK (RFC 7541) part of the h2c client (src/h2c.rs): an HTTP/1.1 request turned into
//! a header block (literals, never Huffman, never indexed), and the `:status` read back from a
//! response's block, which needs no dynamic table because the client sets its size to 0.

use std::io;

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

fn put_int(out: &mut Vec<u8>, first: u8, prefix_bits: u32, mut v: usize) {
    let max = (1usize << prefix_bits) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 0x80 {
        out.push((v & 0x7f) as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_int(out, 0, 7, s.len());
    out.extend_from_slice(s);
}

/// Literal field without indexing, name from the static table.
fn put_named(out: &mut Vec<u8>, index: usize, value: &[u8]) {
    put_int(out, 0, 4, index);
    put_str(out, value);
}

/// An HTTP/1.1 request (request line, headers, body) as an HPACK header block and the body.
pub fn translate(req: &[u8]) -> io::Result<(Vec<u8>, &[u8])> {
    let end = req
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("request without end of head"))?;
    let head = std::str::from_utf8(req.get(..end).unwrap_or_default())
        .map_err(|_| bad("request head is not UTF-8"))?;
    let body = req.get(end + 4..).unwrap_or_default();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let (method, path) = (first.next().unwrap_or("GET"), first.next().unwrap_or("/"));
    let mut block = Vec::with_capacity(head.len());
    match method {
        "GET" => block.push(0x82),
        "POST" => block.push(0x83),
        m => put_named(&mut block, 2, m.as_bytes()),
    }
    block.push(0x86); // :scheme http
    if path == "/" {
        block.push(0x84);
    } else {
        put_named(&mut block, 4, path.as_bytes());
    }
    let fields: Vec<(String, &str)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim()))
        .collect();
    if let Some((_, host)) = fields.iter().find(|(k, _)| k == "host") {
        put_named(&mut block, 1, host.as_bytes());
    }
    for (k, v) in &fields {
        let hop = ["host", "connection", "keep-alive", "proxy-connection"];
        if hop.contains(&k.as_str()) || k == "transfer-encoding" || k == "upgrade" {
            continue;
        }
        block.push(0);
        put_str(&mut block, k.as_bytes());
        put_str(&mut block, v.as_bytes());
    }
    Ok((block, body))
}

fn get_int(b: &[u8], pos: &mut usize, prefix_bits: u32) -> Option<usize> {
    let max = (1usize << prefix_bits) - 1;
    let mut v = usize::from(*b.get(*pos)?) & max;
    *pos += 1;
    if v < max {
        return Some(v);
    }
    let mut shift = 0;
    loop {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v = v.checked_add(usize::from(byte & 0x7f).checked_shl(shift)?)?;
        if byte & 0x80 == 0 {
            return Some(v);
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
}

/// Huffman-decodes a string of decimal digits (their codes are 5 bits for 0-2, 6 bits for
/// 3-9); anything else is refused. Padding: fewer than 8 one bits.
fn huffman_digits(b: &[u8]) -> Option<Vec<u8>> {
    let total = b.len() * 8;
    let bits = |at: usize, n: usize| -> Option<u32> {
        let mut v = 0u32;
        for i in at..at + n {
            let byte = *b.get(i / 8)?;
            v = v << 1 | u32::from(byte >> (7 - i % 8) & 1);
        }
        Some(v)
    };
    let mut out = Vec::with_capacity(4);
    let mut at = 0;
    while at < total {
        let left = total - at;
        if left < 8 && bits(at, left)? == (1 << left) - 1 {
            break;
        }
        match bits(at, 5)? {
            v @ 0..=2 => {
                out.push(b'0' + v as u8);
                at += 5;
            }
            _ => match bits(at, 6)? {
                v @ 0x19..=0x1f => {
                    out.push(b'3' + (v - 0x19) as u8);
                    at += 6;
                }
                _ => return None,
            },
        }
    }
    Some(out)
}

/// The `:status` of a response header block (the first field after any table size updates).
pub fn status_of(b: &[u8]) -> Option<u16> {
    const STATIC: [u16; 7] = [200, 204, 206, 304, 400, 404, 500]; // indexes 8..=14
    let mut pos = 0;
    while b.get(pos)? & 0xe0 == 0x20 {
        get_int(b, &mut pos, 5)?;
    }
    let first = *b.get(pos)?;
    let prefix = match first {
        0x80..=0xff => {
            let i = get_int(b, &mut pos, 7)?;
            return STATIC.get(i.checked_sub(8)?).copied();
        }
        0x40..=0x7f => 6,
        _ => 4, // without indexing (0000) or never indexed (0001)
    };
    let name = get_int(b, &mut pos, prefix)?;
    if !(8..=14).contains(&name) {
        return None;
    }
    let huffman = b.get(pos)? & 0x80 != 0;
    let len = get_int(b, &mut pos, 7)?;
    let raw = b.get(pos..pos.checked_add(len)?)?;
    let digits = if huffman {
        huffman_digits(raw)?
    } else {
        raw.to_vec()
    };
    match *digits.as_slice() {
        [x, y, z] if digits.iter().all(u8::is_ascii_digit) => {
            Some(u16::from(x - b'0') * 100 + u16::from(y - b'0') * 10 + u16::from(z - b'0'))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        // RFC 7541 C.6.1 and C.6.2 (Huffman "302", "307" with padding)
        assert_eq!(status_of(&[0x48, 0x82, 0x64, 0x02, 0x58]), Some(302));
        assert_eq!(status_of(&[0x48, 0x83, 0x64, 0x0e, 0xff]), Some(307));
        // "201" Huffman-coded, without indexing, after a table size update to 0
        assert_eq!(status_of(&[0x20, 0x08, 0x82, 0x10, 0x03]), Some(201));
        assert_eq!(status_of(b"\x08\x03409"), Some(409));
        assert_eq!(status_of(&[0x88]), Some(200));
        assert_eq!(status_of(&[0x8d]), Some(404));
        assert_eq!(status_of(&[0x81]), None); // :authority
        assert_eq!(status_of(&[0xbe]), None); // dynamic table
        assert_eq!(status_of(b"\x08\x0220"), None);
        assert_eq!(status_of(b"\x04\x03409"), None); // :path
        assert_eq!(status_of(&[0x08, 0x82, 0x10, 0x00]), None); // bad padding
    }

    #[test]
    fn ints() {
        let mut v = Vec::new();
        put_int(&mut v, 0, 5, 1337); // RFC 7541 C.1.2
        assert_eq!(v, [31, 154, 10]);
        let mut pos = 0;
        assert_eq!(get_int(&v, &mut pos, 5), Some(1337));
        assert_eq!(pos, 3);
    }

    #[test]
    fn requests() {
        let req = b"POST /v1/replay HTTP/1.1\r\nHost: a:1\r\nContent-Type: x\r\n\r\n{}";
        let (block, body) = translate(req).unwrap();
        assert_eq!(body, b"{}");
        let mut want = vec![0x83, 0x86, 0x04, 10];
        want.extend_from_slice(b"/v1/replay");
        want.extend_from_slice(b"\x01\x03a:1\x00\x0ccontent-type\x01x");
        assert_eq!(block, want);
    }
}
