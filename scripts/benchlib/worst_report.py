"""The worst-case report: one row per input class (Envoy CPU per request, × EdDSA, native
time), written between `<!-- bench-worst:begin -->` / `<!-- bench-worst:end -->`."""

from .report import fmt
from .settings import CONCURRENCY, ENVOY_CPU, WARMUP, WORST_SECONDS


def worst_ratio(wr, eddsa):
    """Median over rounds of (class CPU µs/req ÷ EdDSA CPU µs/req of the same round), and the
    per-round values."""
    mine, base = wr.get("rounds_cpu") or [], (eddsa or {}).get("rounds_cpu") or []
    ratios = [m / b for m, b in zip(mine, base) if b]
    return (sorted(ratios)[(len(ratios) - 1) // 2] if ratios else None), ratios


def worst_report(wresults, natives, results, classes, same_rounds, meta):
    """`same_rounds`: each normal scenario's median over the rounds the worst-case classes ran
    in (the reference row and the "over plain Envoy" figures); the ratios pair rounds."""
    eddsa = results.get("eddsa")
    if eddsa and "failed" in eddsa:
        eddsa = None
    ref = same_rounds.get("eddsa")
    ref_native = natives.get("ref_eddsa")
    ref_native = ref_native if isinstance(ref_native, float) else None
    rows = ["| class | configuration | answer | req/s | p50 µs | Envoy CPU µs/req | × EdDSA | "
            "native µs/call | × EdDSA native | errors |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    if eddsa and ref:
        rows.append(f"| R. EdDSA scenario (normal proof, 4 keys), same round | shipped | 200 | "
                    f"{fmt(ref['rps'])} | {fmt(ref['p50_us'])} | {fmt(ref['envoy_cpu_us_per_req'], 1)} | "
                    f"1.00× | {fmt(ref_native, 1)} | {'1.00×' if ref_native else '—'} | — |")
    for c in classes:
        sid = c["id"]
        r = wresults.get(sid)
        if r is None:
            continue
        if "failed" in r:
            rows.append(f"| {c['label']} | {c['config_note']} | {c['expect']} | FAILED | | | | | | "
                        f"{r['failed'][:80]} |")
            continue
        ratio, _ = worst_ratio(r, eddsa)
        nat = natives.get(sid)
        nat_ratio = (nat / ref_native) if (isinstance(nat, float) and ref_native) else None
        rps = fmt(r["rps"]) + (f" ({r['seconds']:.1f} s)" if r.get("pool_exhausted") else "")
        errs = r["errors"]
        rows.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            c["label"], c["config_note"], c["expect"], rps, fmt(r["p50_us"]),
            fmt(r["envoy_cpu_us_per_req"], 1), (fmt(ratio, 1) + "×") if ratio is not None else "—",
            fmt(nat, 1) if isinstance(nat, float) else "—",
            (fmt(nat_ratio, 1) + "×") if nat_ratio is not None else "—",
            f"**{errs}**" if errs else "0"))
    rounds = max((len(r.get("rounds_cpu", [])) for r in wresults.values()), default=1)
    lines = [
        f"Run {meta['date']} — load average at start {meta['loadavg']}; Envoy {meta['envoy']}; "
        f"`dpop_guard.wasm` {meta['wasm_bytes']:,} bytes.",
        "",
        f"Same client, concurrency ({CONCURRENCY} connections) and Envoy as the scenarios above; "
        f"{WARMUP:g} s warm-up, then {WORST_SECONDS:g} s measured, {rounds} round{'s' if rounds > 1 else ''} "
        "(in the first round of the run, right after the normal scenarios). Requests with a valid "
        "proof are each sent once; refused ones cycle through 1,024 distinct requests (more than "
        "the filter's 256-entry proof-header cache, so a key is never found cached unless the "
        "class says so). \"× EdDSA\": Envoy CPU µs/req ÷ the EdDSA scenario's, same round. "
        "\"native\": `dpop-bench worst-native`, the filter's pure pipeline "
        "(`authn::decide_headers_cached` with a 256-entry header cache) on the same requests, "
        "natively, thread CPU time per call, no Envoy; its EdDSA reference is the normal request of "
        "scenario 3.",
        "",
        "\n".join(rows),
        "",
    ]
    notes = ["Requests: " + "; ".join(f"**{c['label'].split('. ')[0]}** {c['what']}"
                                     for c in classes if c["id"] in wresults) + "."]
    per_round = [f"{sid} {'/'.join(f'{x:.2f}' for x in worst_ratio(r, eddsa)[1])}"
                 for sid, r in wresults.items() if len(worst_ratio(r, eddsa)[1]) > 1]
    if per_round:
        notes.append("× EdDSA per round: " + ", ".join(per_round) + ".")
    def cpu_of(sid):
        r = wresults.get(sid) or same_rounds.get(sid)
        return r.get("envoy_cpu_us_per_req") if r and "failed" not in r else None
    shares = []
    for c in classes:
        mine, base = cpu_of(c["id"]), cpu_of(c.get("baseline") or "")
        if c["id"] in wresults and mine is not None and base is not None:
            shares.append(f"{c['label'].split('. ')[0]} {mine - base:+,.0f}")
    if shares:
        notes.append("Envoy CPU µs/req over plain Envoy with the same request (B1 for the 60 KB DPoP "
                     "values, B2 for 7a/7b) or, for requests of at most 17 KB, over scenario 1 (plain "
                     "Envoy, same round): " + ", ".join(shares) + ".")
    other = [f"{sid} {max(0.0, r['watched_cpu_busy_pct'] - r['envoy_busy_pct']):.0f}%"
             for sid, r in wresults.items() if r.get("watched_cpu_busy_pct") is not None]
    noisy = [sid for sid, r in wresults.items() if r.get("watched_cpu_busy_pct") is not None
             and r["watched_cpu_busy_pct"] - r["envoy_busy_pct"] > 10]
    if noisy:
        notes.append(f"**Noisy run**: other processes took more than 10% of CPU {ENVOY_CPU} during "
                     f"{len(noisy)} of {len(wresults)} classes; absolute numbers are inflated, ratios "
                     "less so (rerun on an idle machine).")
    if other:
        notes.append(f"CPU {ENVOY_CPU} time taken by other processes during each measured window "
                     "(noise indicator, ideally ~0%): " + ", ".join(other) + ".")
    short = [f"{sid} ({r['seconds']:.1f} s)" for sid, r in wresults.items() if r.get("pool_exhausted")]
    if short:
        notes.append("Request pool ran out before the planned duration (measured window shown): "
                     + ", ".join(short) + ".")
    for sid, r in wresults.items():
        if r.get("errors") or "failed" in r:
            notes.append(f"**{sid}: {r.get('errors', '')} errors** — {r.get('first_error') or r.get('failed')}")
    for sid, n in natives.items():
        if isinstance(n, str):
            notes.append(f"**{sid}: native timing failed** — {n[:300]}")
    lines += [f"- {n}" for n in notes]
    lines += ["", f"Reproduce: `BENCH_ONLY=eddsa,worst make bench` (`BENCH_WORST_SECONDS={WORST_SECONDS:g}`; "
              "configs in `target/bench/worst_*.yaml`, plugin configurations in `target/bench/*.plugin.json`)."]
    return "\n".join(lines)
