//! Header maps: [`HeaderMap`] (one map of a stream), [`HeaderOp`] (a mutation the guest made),
//! which map a call refers to, and the `proxy_*_header_map_*` calls with Envoy's semantics
//! (lower-cased names, the first value on lookup, replace = remove all + add).

use super::memory::{arg, arg32, copy_to_pointer_size, mem, reply, write_u32, HostResult};
use super::state::HostState;
use crate::abi::{
    self,
    status::{BAD_ARGUMENT, INVALID_MEMORY_ACCESS, NOT_FOUND, OK, UNIMPLEMENTED},
    Pairs,
};
use wasmi::Caller;

/// A header-map mutation the guest made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderOp {
    Add {
        map: u32,
        name: Vec<u8>,
        value: Vec<u8>,
    },
    Replace {
        map: u32,
        name: Vec<u8>,
        value: Vec<u8>,
    },
    Remove {
        map: u32,
        name: Vec<u8>,
    },
    SetPairs {
        map: u32,
        pairs: Option<Pairs>,
    },
}

/// One header map of a stream. `raw`, when set, is handed to the guest verbatim by
/// `proxy_get_header_map_pairs` instead of the serialization of `pairs` (malformed-map tests);
/// every other call works on `pairs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderMap {
    pub pairs: Pairs,
    pub raw: Option<Vec<u8>>,
}

impl HeaderMap {
    pub fn from_pairs(pairs: Pairs) -> HeaderMap {
        HeaderMap { pairs, raw: None }
    }
    /// All values of `name` (ASCII case-insensitive), in order.
    pub fn values(&self, name: &str) -> Vec<&[u8]> {
        self.pairs
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_slice())
            .collect()
    }
    fn get_first(&self, lower_name: &[u8]) -> Option<&[u8]> {
        self.pairs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(lower_name))
            .map(|(_, v)| v.as_slice())
    }
    fn remove(&mut self, lower_name: &[u8]) {
        self.pairs
            .retain(|(k, _)| !k.eq_ignore_ascii_case(lower_name));
        self.raw = None;
    }
    fn add(&mut self, lower_name: Vec<u8>, value: Vec<u8>) {
        self.pairs.push((lower_name, value));
        self.raw = None;
    }
}

impl HostState {
    /// The map for writing (the active stream's four maps only).
    fn map_mut(&mut self, map: u32) -> Option<&mut HeaderMap> {
        use abi::map_type as M;
        let ctx = self.active_context();
        let s = self.streams.get_mut(&ctx)?;
        match map {
            M::HTTP_REQUEST_HEADERS => Some(&mut s.request_headers),
            M::HTTP_REQUEST_TRAILERS => Some(&mut s.request_trailers),
            M::HTTP_RESPONSE_HEADERS => Some(&mut s.response_headers),
            M::HTTP_RESPONSE_TRAILERS => Some(&mut s.response_trailers),
            _ => None,
        }
    }

    /// The map for reading; callout maps only while a callout response is delivered.
    fn map(&self, map: u32) -> Option<HeaderMap> {
        use abi::map_type as M;
        match map {
            M::HTTP_CALL_RESPONSE_HEADERS => self
                .callout_response
                .as_ref()
                .map(|r| HeaderMap::from_pairs(r.headers.clone())),
            M::HTTP_CALL_RESPONSE_TRAILERS => self
                .callout_response
                .as_ref()
                .map(|r| HeaderMap::from_pairs(r.trailers.clone())),
            _ => {
                let s = self.streams.get(&self.active_context())?;
                match map {
                    M::HTTP_REQUEST_HEADERS => Some(s.request_headers.clone()),
                    M::HTTP_REQUEST_TRAILERS => Some(s.request_trailers.clone()),
                    M::HTTP_RESPONSE_HEADERS => Some(s.response_headers.clone()),
                    M::HTTP_RESPONSE_TRAILERS => Some(s.response_trailers.clone()),
                    _ => None,
                }
            }
        }
    }
}

/// The header-map calls.
pub(super) fn call(caller: &mut Caller<'_, HostState>, name: &str, a: &[u64]) -> HostResult {
    match name {
        "proxy_get_header_map_pairs" => {
            if arg32(a, 0) > abi::map_type::MAX {
                return reply(BAD_ARGUMENT);
            }
            let Some(map) = caller.data().map(arg32(a, 0)) else {
                return reply(NOT_FOUND);
            };
            let bytes = match map.raw {
                Some(raw) => raw,
                None if map.pairs.is_empty() => Vec::new(),
                None => abi::serialize_pairs(&map.pairs),
            };
            copy_to_pointer_size(caller, &bytes, arg(a, 1), arg(a, 2)).map(Some)
        }
        "proxy_set_header_map_pairs" => {
            let data = mem!(caller, arg(a, 1), arg(a, 2));
            let map = arg32(a, 0);
            let pairs = abi::parse_pairs(&data);
            let st = caller.data_mut();
            let ctx = st.active_context();
            let Some(m) = st.map_mut(map) else {
                return reply(BAD_ARGUMENT);
            };
            *m = HeaderMap::from_pairs(pairs.clone().unwrap_or_default());
            if let Some(stream) = st.streams.get_mut(&ctx) {
                stream.header_ops.push(HeaderOp::SetPairs { map, pairs });
            }
            reply(OK)
        }
        "proxy_get_header_map_size" => {
            let Some(map) = caller.data().map(arg32(a, 0)) else {
                return reply(NOT_FOUND);
            };
            let size = abi::serialize_pairs(&map.pairs).len() as u32;
            reply(if write_u32(caller, arg(a, 1), size) {
                OK
            } else {
                INVALID_MEMORY_ACCESS
            })
        }
        "proxy_get_header_map_value" => {
            if arg32(a, 0) > abi::map_type::MAX {
                return reply(BAD_ARGUMENT);
            }
            let key = abi::lower(&mem!(caller, arg(a, 1), arg(a, 2)));
            let Some(map) = caller.data().map(arg32(a, 0)) else {
                return reply(NOT_FOUND);
            };
            match map.get_first(&key) {
                None => reply(NOT_FOUND),
                Some(v) => {
                    let v = v.to_vec();
                    copy_to_pointer_size(caller, &v, arg(a, 3), arg(a, 4)).map(Some)
                }
            }
        }
        "proxy_add_header_map_value"
        | "proxy_replace_header_map_value"
        | "proxy_remove_header_map_value" => {
            let map = arg32(a, 0);
            if map > abi::map_type::MAX {
                return reply(BAD_ARGUMENT);
            }
            let key = abi::lower(&mem!(caller, arg(a, 1), arg(a, 2)));
            let value = if name == "proxy_remove_header_map_value" {
                Vec::new()
            } else {
                mem!(caller, arg(a, 3), arg(a, 4))
            };
            let st = caller.data_mut();
            let ctx = st.active_context();
            let Some(m) = st.map_mut(map) else {
                return reply(BAD_ARGUMENT);
            };
            let op = match name {
                "proxy_add_header_map_value" => {
                    m.add(key.clone(), value.clone());
                    HeaderOp::Add {
                        map,
                        name: key,
                        value,
                    }
                }
                "proxy_replace_header_map_value" => {
                    // Envoy's setCopy: every existing value goes, one is added
                    m.remove(&key);
                    m.add(key.clone(), value.clone());
                    HeaderOp::Replace {
                        map,
                        name: key,
                        value,
                    }
                }
                _ => {
                    m.remove(&key);
                    HeaderOp::Remove { map, name: key }
                }
            };
            if let Some(stream) = st.streams.get_mut(&ctx) {
                stream.header_ops.push(op);
            }
            reply(OK)
        }
        // not reached: `KNOWN` routes only this group's names here
        _ => reply(UNIMPLEMENTED),
    }
}
