//! Linux process accounting and CPU pinning.

use std::io;

/// Clock ticks per second for /proc/<pid>/stat times (USER_HZ).
pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(v).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// utime + stime of a whole process (all its threads), in clock ticks.
pub fn cpu_ticks(pid: u32) -> io::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&text).ok_or_else(|| io::Error::other(format!("cannot parse /proc/{pid}/stat")))
}

fn parse_stat(text: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may contain spaces or ')'.
    let rest = text.get(text.rfind(')')? + 1..)?;
    let mut fields = rest.split_ascii_whitespace();
    // After ')': field 3 (state) is index 0, so utime (14) is index 11 and stime (15) is 12.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Busy time of one CPU (everything but idle and iowait, steal included: time the CPU was not
/// free for us), in clock ticks, from /proc/stat.
pub fn cpu_busy_ticks(cpu: usize) -> io::Result<u64> {
    let text = std::fs::read_to_string("/proc/stat")?;
    let name = format!("cpu{cpu}");
    text.lines()
        .find_map(|l| {
            let mut f = l.split_ascii_whitespace();
            (f.next() == Some(name.as_str())).then(|| parse_cpu_line(f))
        })
        .flatten()
        .ok_or_else(|| io::Error::other(format!("no {name} line in /proc/stat")))
}

fn parse_cpu_line<'a>(fields: impl Iterator<Item = &'a str>) -> Option<u64> {
    // user nice system idle iowait irq softirq steal (guest time is already in user/nice)
    let v: Vec<u64> = fields
        .take(8)
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [user, nice, system, _idle, _iowait, irq, softirq, steal] = v.as_slice() else {
        return None;
    };
    Some(user + nice + system + irq + softirq + steal)
}

/// CPU time of the calling thread, seconds (time other processes take on the CPU is not in it).
pub fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Makes glibc keep freed memory instead of returning it to the kernel after each big free
/// (a wasm VM's linear memory never shrinks either). Without this, a call that allocates and
/// frees megabytes — JSON padding does — pays page faults natively that it does not pay in V8.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tunables; called before the timed work.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        libc::mallopt(libc::M_TOP_PAD, 64 << 20);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
    }
}

/// Pins the calling thread (and the threads it creates from now on) to one CPU.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::other(format!("CPU {cpu} out of range")));
    }
    // SAFETY: cpu_set_t is plain data (all-zero is the empty set); CPU_SET is given an index
    // below CPU_SETSIZE; sched_setaffinity reads exactly size_of::<cpu_set_t>() bytes.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields() {
        let s = "1234 (envoy (x) y) S 1 2 3 4 5 6 7 8 9 10 111 222 0 0 20 0";
        assert_eq!(parse_stat(s), Some(333));
        assert!(cpu_ticks(std::process::id()).is_ok());
        assert_eq!(
            parse_cpu_line("1 2 3 100 5 6 7 8 0 0".split(' ')),
            Some(1 + 2 + 3 + 6 + 7 + 8)
        );
        assert!(cpu_busy_ticks(0).is_ok());
    }
}
