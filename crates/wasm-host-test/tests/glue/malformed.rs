//! A serialized header map that is not what the ABI says is a host bug, not attacker input; the
//! guest must still not trap, and must not let the request through unchecked.

use crate::common::*;
use proxy_wasm_emu::dpop::{check_reply_shape, Key};
use proxy_wasm_emu::{serialize_pairs, Outcome, Request};

/// The key of the proof in the malformed maps.
fn key() -> Key {
    Key::new(20)
}

fn maps() -> Vec<(&'static str, Vec<u8>)> {
    let key = key();
    let p = proof(&key, "/api", None);
    let good = serialize_pairs(&get(b"/api", &[(b"dpop", p.as_bytes())]).headers);
    let mut out: Vec<(&'static str, Vec<u8>)> = vec![
        ("count larger than the data", {
            let mut b = good.clone();
            b[..4].copy_from_slice(&1000u32.to_le_bytes());
            b
        }),
        ("count u32::MAX", {
            let mut b = good.clone();
            b[..4].copy_from_slice(&u32::MAX.to_le_bytes());
            b
        }),
        ("count 0x2000_0000 (count*8 wraps in 32 bits)", {
            let mut b = good.clone();
            b[..4].copy_from_slice(&0x2000_0000u32.to_le_bytes());
            b
        }),
        ("a length past the end", {
            let mut b = good.clone();
            b[4..8].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
            b
        }),
        ("missing NULs", {
            let pairs = [
                (b":path".as_slice(), b"/api".as_slice()),
                (b"dpop", p.as_bytes()),
            ];
            let mut b = Vec::new();
            b.extend_from_slice(&2u32.to_le_bytes());
            for (k, v) in pairs {
                b.extend_from_slice(&(k.len() as u32).to_le_bytes());
                b.extend_from_slice(&(v.len() as u32).to_le_bytes());
            }
            for (k, v) in pairs {
                b.extend_from_slice(k);
                b.extend_from_slice(v);
            }
            b
        }),
        ("a NUL replaced", {
            let mut b = good.clone();
            let last = b.len() - 1;
            b[last] = b'x';
            b
        }),
        ("trailing garbage", {
            let mut b = good.clone();
            b.extend_from_slice(b"\x00\xff\xff");
            b
        }),
        ("1 byte", vec![1]),
        ("3 bytes", vec![1, 0, 0]),
        ("count only", 1u32.to_le_bytes().to_vec()),
        ("all 0xff", vec![0xff; 64]),
    ];
    for cut in [5, 8, 12, 30, good.len() / 2, good.len() - 1] {
        out.push(("truncated", good[..cut].to_vec()));
    }
    out
}

#[test]
fn malformed_maps_never_trap_and_never_pass() {
    let mut vm = start(r#"{"required": true}"#);
    for (what, raw) in maps() {
        let mut req = get(b"/api", &[]);
        req.raw_headers = Some(raw.clone());
        let ex = vm
            .run(&req)
            .unwrap_or_else(|t| panic!("{what}: {t}\nmap bytes: {raw:?}"));
        match &ex.outcome {
            Outcome::LocalReply(r) => {
                check_reply_shape(r).unwrap_or_else(|e| panic!("{what}: {e}"));
                assert!(r.status == 401 || r.status >= 500, "{what}: {}", r.status);
            }
            // bytes after the last pair leave every pair intact: reading them is fine
            Outcome::Upstream(h) if what == "trailing garbage" => {
                assert_eq!(values(h, "x-dpop-jkt"), vec![key().jkt().as_bytes()]);
            }
            other => panic!("{what}: a required route answered {other:?}"),
        }
    }
}

#[test]
fn empty_map_is_a_request_without_headers() {
    // pointer 0, size 0: what Envoy hands over for an empty map
    let mut vm = start(r#"{"required": true}"#);
    let ex = run(&mut vm, &Request::default());
    assert!(
        ex.local_reply()
            .is_some_and(|r| r.status == 401 || r.status == 503),
        "{:?}",
        ex.outcome
    );
}
