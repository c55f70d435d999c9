//! Guest memory and arguments, shared by every group of calls: reading and writing linear
//! memory, allocating in the guest (`copyToPointerSize`), decoding the widened arguments, and
//! the `mem!`/`wasi_mem!` macros that read guest bytes or return the matching error status.

use super::state::HostState;
use crate::abi::status;
use wasmi::{Caller, Val};

/// What an implemented import returns: the status/errno for its result (`None` for calls
/// without one), or an error that traps the guest.
pub(super) type HostResult = Result<Option<u32>, wasmi::Error>;

/// `Ok(Some(status))`: the import returns `status`.
pub(super) fn reply(status: u32) -> HostResult {
    Ok(Some(status))
}

/// The guest bytes at (`$ptr`, `$len`), or return `InvalidMemoryAccess` from the import.
macro_rules! mem {
    ($caller:expr, $ptr:expr, $len:expr) => {
        match $crate::host::memory::read($caller, $ptr, $len) {
            Some(v) => v,
            None => return $crate::host::memory::reply($crate::abi::status::INVALID_MEMORY_ACCESS),
        }
    };
}
pub(super) use mem;

/// [`mem!`] for WASI calls: returns `EFAULT` instead.
macro_rules! wasi_mem {
    ($caller:expr, $ptr:expr, $len:expr) => {
        match $crate::host::memory::read($caller, $ptr, $len) {
            Some(v) => v,
            None => return $crate::host::memory::reply($crate::abi::errno::FAULT),
        }
    };
}
pub(super) use wasi_mem;

pub(super) fn read(caller: &Caller<'_, HostState>, ptr: u64, len: u64) -> Option<Vec<u8>> {
    let mem = caller.data().memory?;
    let data = mem.data(caller);
    let start = usize::try_from(ptr).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    data.get(start..end).map(<[u8]>::to_vec)
}

pub(super) fn write(caller: &mut Caller<'_, HostState>, ptr: u64, bytes: &[u8]) -> bool {
    let Some(mem) = caller.data().memory else {
        return false;
    };
    let Ok(start) = usize::try_from(ptr) else {
        return false;
    };
    mem.write(&mut *caller, start, bytes).is_ok()
}

pub(super) fn write_u32(caller: &mut Caller<'_, HostState>, ptr: u64, v: u32) -> bool {
    write(caller, ptr, &v.to_le_bytes())
}

pub(super) fn write_u64(caller: &mut Caller<'_, HostState>, ptr: u64, v: u64) -> bool {
    write(caller, ptr, &v.to_le_bytes())
}

/// Guest memory for `bytes` through its allocator export; `Ok(None)` when it returns 0.
fn alloc_copy(
    caller: &mut Caller<'_, HostState>,
    bytes: &[u8],
) -> Result<Option<u64>, wasmi::Error> {
    let Some(alloc) = caller.data().alloc else {
        return Ok(None);
    };
    let mut out = [Val::I32(0)];
    alloc.call(&mut *caller, &[Val::I32(bytes.len() as i32)], &mut out)?;
    let ptr = match out {
        [Val::I32(p)] => u64::from(p as u32),
        _ => 0,
    };
    if ptr == 0 || !write(caller, ptr, bytes) {
        return Ok(None);
    }
    Ok(Some(ptr))
}

/// proxy-wasm-cpp-host `copyToPointerSize`: an empty value is pointer 0, size 0.
pub(super) fn copy_to_pointer_size(
    caller: &mut Caller<'_, HostState>,
    bytes: &[u8],
    ptr_ptr: u64,
    size_ptr: u64,
) -> Result<u32, wasmi::Error> {
    let ptr = if bytes.is_empty() {
        0
    } else {
        match alloc_copy(caller, bytes)? {
            Some(p) => p,
            None => return Ok(status::INVALID_MEMORY_ACCESS),
        }
    };
    if !write_u32(caller, ptr_ptr, ptr as u32) || !write_u32(caller, size_ptr, bytes.len() as u32) {
        return Ok(status::INVALID_MEMORY_ACCESS);
    }
    Ok(status::OK)
}

/// Argument `i` (0 when missing).
pub(super) fn arg(a: &[u64], i: usize) -> u64 {
    a.get(i).copied().unwrap_or(0)
}

/// Argument `i` as an i32-sized value.
pub(super) fn arg32(a: &[u64], i: usize) -> u32 {
    arg(a, i) as u32
}
