//! Native timing of a class (`dpop-bench worst-native`): the filter's pure pipeline
//! (`decide_headers_cached`) on the class's requests, each answer checked against the class's
//! expectation, thread CPU time per call.

use super::material::Target;
use super::requests::{generate, Pool};
use super::{Class, CYCLE, FILTER_KEY_CACHE};
use crate::proofs::now_secs;
use dpop_guard::authn::{decide_headers_cached, Decision};
use dpop_guard::config::Config;
use dpop_guard::proof::KeyCache;
use std::time::{Duration, Instant};

/// Native cost of one class: the filter's pure pipeline (`decide_headers_cached`, header
/// gathering included, with a proof-header cache of the filter's size) on the class's requests
/// in turn, after one warm-up pass; thread CPU time per call.
pub struct Native {
    pub calls: u64,
    pub us_per_call: f64,
}

pub fn native(
    class: &Class,
    cfg: &Config,
    authority: &str,
    path: &str,
    t: &Target,
    seconds: f64,
) -> Result<Native, String> {
    // Valid proofs can be reused natively (no replay store here): a few hundred unique ones.
    let n = if class.unique { 256 } else { CYCLE };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    native_on(
        class,
        cfg,
        authority,
        path,
        &generate(class, t, n, threads)?,
        seconds,
    )
}

/// [`native`] on a given pool.
pub(super) fn native_on(
    class: &Class,
    cfg: &Config,
    authority: &str,
    path: &str,
    pool: &Pool,
    seconds: f64,
) -> Result<Native, String> {
    let fixed: Vec<(String, String)> = vec![
        (":authority".into(), authority.into()),
        (":path".into(), path.into()),
        (":method".into(), "GET".into()),
        (":scheme".into(), "http".into()),
        ("x-forwarded-proto".into(), "http".into()),
        (
            "x-request-id".into(),
            "6c9a0a7b-3211-412f-aff6-8914cebe4d4e".into(),
        ),
    ];
    // Envoy hands header names over lowercased.
    let owned: Vec<Vec<(Vec<u8>, &[u8])>> = pool
        .items
        .iter()
        .map(|h| {
            fixed
                .iter()
                .chain(pool.common.iter())
                .chain(h.iter())
                .map(|(k, v)| (k.to_ascii_lowercase().into_bytes(), v.as_bytes()))
                .collect()
        })
        .collect();
    let requests: Vec<Vec<(&[u8], &[u8])>> = owned
        .iter()
        .map(|r| r.iter().map(|(k, v)| (k.as_slice(), *v)).collect())
        .collect();
    let mut cache = KeyCache::new(FILTER_KEY_CACHE);
    let now = now_secs()?;
    let check = |d: &Decision| -> Result<(), String> {
        if class.expect.matches(d) {
            Ok(())
        } else {
            Err(format!(
                "{}: expected {}, the filter decided {d:?}",
                class.id,
                class.expect.describe()
            ))
        }
    };
    for r in &requests {
        check(&decide_headers_cached(cfg, r, None, now, &mut cache))?;
    }
    let budget = Duration::try_from_secs_f64(seconds).unwrap_or(Duration::from_secs(1));
    let started = Instant::now();
    let cpu0 = crate::sys::thread_cpu_secs();
    let mut calls = 0u64;
    'outer: loop {
        for r in &requests {
            let d = decide_headers_cached(cfg, std::hint::black_box(r), None, now, &mut cache);
            calls += 1;
            if !class.expect.matches(&d) {
                check(&d)?;
            }
            if calls.is_multiple_of(8) && started.elapsed() >= budget {
                break 'outer;
            }
        }
    }
    // CPU time of this thread, as Envoy's column is CPU time: a share of the core taken by
    // another process is not counted.
    let cpu = crate::sys::thread_cpu_secs() - cpu0;
    Ok(Native {
        calls,
        us_per_call: cpu * 1e6 / calls.max(1) as f64,
    })
}
