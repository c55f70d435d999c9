//! Properties: `proxy_get_property` (Envoy's path walk, [`property_path`]) and
//! `proxy_set_property` (recorded on the stream), plus [`HostState::set_property`] for tests.

use super::memory::{arg, copy_to_pointer_size, mem, reply, HostResult};
use super::state::HostState;
use crate::abi::status::{NOT_FOUND, OK, UNIMPLEMENTED};
use wasmi::Caller;

impl HostState {
    /// A property, path given as segments.
    pub fn set_property(&mut self, path: &[&[u8]], value: &[u8]) {
        self.properties
            .insert(path.iter().map(|s| s.to_vec()).collect(), value.to_vec());
    }
}

/// Envoy's `Context::getProperty` walk: segments split on NUL; a trailing NUL ends the path
/// (the SDK sends none, other guests send one), an empty path has no segment.
pub fn property_path(path: &[u8]) -> Vec<Vec<u8>> {
    let mut parts: Vec<Vec<u8>> = path.split(|b| *b == 0).map(<[u8]>::to_vec).collect();
    if path.is_empty() || path.ends_with(&[0]) {
        parts.pop();
    }
    parts
}

/// The property calls; `ctx`: the context the call acts on.
pub(super) fn call(
    caller: &mut Caller<'_, HostState>,
    name: &str,
    a: &[u64],
    ctx: u32,
) -> HostResult {
    match name {
        "proxy_get_property" => {
            let path = mem!(caller, arg(a, 0), arg(a, 1));
            let key = property_path(&path);
            match caller.data().properties.get(&key).cloned() {
                None => reply(NOT_FOUND),
                Some(v) => copy_to_pointer_size(caller, &v, arg(a, 2), arg(a, 3)).map(Some),
            }
        }
        "proxy_set_property" => {
            let k = mem!(caller, arg(a, 0), arg(a, 1));
            let v = mem!(caller, arg(a, 2), arg(a, 3));
            match caller.data_mut().streams.get_mut(&ctx) {
                Some(st) => st.properties_set.push((k, v)),
                None => return reply(NOT_FOUND),
            }
            reply(OK)
        }
        // not reached: `KNOWN` routes only this group's names here
        _ => reply(UNIMPLEMENTED),
    }
}
