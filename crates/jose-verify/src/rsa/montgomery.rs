//! Montgomery arithmetic on little-endian `u32` limbs with `u64` accumulators: the wide
//! product and square, Montgomery reduction, and the three Montgomery operations RSAVP1 is
//! made of. Limb counts are multiples of [`ROWS`].
//!
//! Products and reductions run four rows at a time (separated operand scanning): four
//! independent carry chains and one load/store of the accumulator per four multiplies,
//! which is what the wasm → x86-64 code V8 emits is limited by (about 1.5 cycles per 32×32
//! multiply-add). The squaring computes each cross product once.

/// `a < b` for equal-length little-endian limbs.
pub(super) fn less_than(a: &[u32], b: &[u32]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x < y;
        }
    }
    false
}

/// `a -= b` (equal lengths), wrapping modulo `2^(32·len)`.
fn sub_in_place(a: &mut [u32], b: &[u32]) {
    let mut borrow = 0u64;
    for (x, y) in a.iter_mut().zip(b) {
        let v = u64::from(*x)
            .wrapping_sub(u64::from(*y))
            .wrapping_sub(borrow);
        *x = v as u32;
        borrow = (v >> 32) & 1;
    }
}

const LO32: u64 = 0xffff_ffff;

/// Limb counts are padded to a multiple of this: the products below work on four rows at
/// a time.
pub(super) const ROWS: usize = 4;

/// Four rows of a product at once. Column by column, `t += x[0]·y + x[1]·p[0] + x[2]·p[1] +
/// x[3]·p[2]`, where `p` holds the `y` of the three previous columns (row `r` lags `r`
/// columns behind row 0). Each row keeps its own carry in `c[r]`: four independent carry
/// chains, and one load and one store of `t` for four products. No sum overflows: each is
/// at most `(2³²−1) + (2³²−1)² + (2³²−1) = 2⁶⁴−1`.
#[inline(always)]
fn step4(t: &mut u32, y: u64, x: &[u64; 4], c: &mut [u64; 4], p: &mut [u64; 3]) {
    let v0 = (u64::from(*t) + x[0] * y) + c[0];
    c[0] = v0 >> 32;
    let v1 = ((v0 & LO32) + x[1] * p[0]) + c[1];
    c[1] = v1 >> 32;
    let v2 = ((v1 & LO32) + x[2] * p[1]) + c[2];
    c[2] = v2 >> 32;
    let v3 = ((v2 & LO32) + x[3] * p[2]) + c[3];
    c[3] = v3 >> 32;
    *t = v3 as u32;
    p[2] = p[1];
    p[1] = p[0];
    p[0] = y;
}

/// `step4` over `t` and `y` (same length), unrolled by two.
#[inline(always)]
fn rows4(t: &mut [u32], y: &[u32], x: &[u64; 4], c: &mut [u64; 4], p: &mut [u64; 3]) {
    let mut ti = t.chunks_exact_mut(2);
    let mut yi = y.chunks_exact(2);
    for (tt, yy) in ti.by_ref().zip(yi.by_ref()) {
        let ([t0, t1], [y0, y1]) = (tt, yy) else {
            continue;
        };
        step4(t0, u64::from(*y0), x, c, p);
        step4(t1, u64::from(*y1), x, c, p);
    }
    for (tt, yy) in ti.into_remainder().iter_mut().zip(yi.remainder()) {
        step4(tt, u64::from(*yy), x, c, p);
    }
}

/// Reduces a Montgomery result held in `out` plus a carry bit below `n`.
fn finish(out: &mut [u32], extra: u64, n: &[u32]) {
    if extra != 0 || !less_than(out, n) {
        sub_in_place(out, n);
    }
}

/// Montgomery reduction: `out = t·R⁻¹ mod n`, fully reduced, for `t < n·R` held in exactly
/// `2k` limbs (`t` is clobbered; `k` a multiple of 4). `out` has `k` limbs.
///
/// Four rows at a time: the multipliers `m_i..m_(i+3)` that clear limbs `i..i+3` are found
/// in the first four columns (each once the rows before it have been added there), then
/// the four rows `m_(i+r)·n` run together.
fn redc(t: &mut [u32], n: &[u32], n0inv: u32, out: &mut [u32]) {
    let k = n.len();
    let ([n0, n1, n2, n3, ..], Some(n_rest)) = (n, n.get(ROWS..)) else {
        return;
    };
    let (n0, n1, n2, n3) = (
        u64::from(*n0),
        u64::from(*n1),
        u64::from(*n2),
        u64::from(*n3),
    );
    let ninv = u64::from(n0inv);
    let lo = |v: u64| v & LO32;
    let mut extra = 0u64;
    for i in (0..k).step_by(ROWS) {
        let Some(win) = t.get_mut(i..) else {
            return;
        };
        let Some((low, high)) = win.split_at_mut_checked(k) else {
            return;
        };
        let ([t0, t1, t2, t3, ..], [h0, h1, h2, h3, ..]) = (&mut *low, high) else {
            return;
        };
        // Column 0: m0 clears it.
        let m0 = lo(u64::from(*t0) * ninv);
        let mut c = [(u64::from(*t0) + m0 * n0) >> 32, 0, 0, 0];
        // Column 1: row 0, then m1 clears what is left.
        let v0 = (u64::from(*t1) + m0 * n1) + c[0];
        c[0] = v0 >> 32;
        let m1 = lo(lo(v0) * ninv);
        c[1] = (lo(v0) + m1 * n0) >> 32;
        // Column 2: rows 0 and 1, then m2.
        let v0 = (u64::from(*t2) + m0 * n2) + c[0];
        c[0] = v0 >> 32;
        let v1 = (lo(v0) + m1 * n1) + c[1];
        c[1] = v1 >> 32;
        let m2 = lo(lo(v1) * ninv);
        c[2] = (lo(v1) + m2 * n0) >> 32;
        // Column 3: rows 0 to 2, then m3.
        let v0 = (u64::from(*t3) + m0 * n3) + c[0];
        c[0] = v0 >> 32;
        let v1 = (lo(v0) + m1 * n2) + c[1];
        c[1] = v1 >> 32;
        let v2 = (lo(v1) + m2 * n1) + c[2];
        c[2] = v2 >> 32;
        let m3 = lo(lo(v2) * ninv);
        c[3] = (lo(v2) + m3 * n0) >> 32;
        // Columns 4..k: all four rows.
        let x = [m0, m1, m2, m3];
        let mut p = [n3, n2, n1];
        if let Some(body) = low.get_mut(ROWS..) {
            rows4(body, n_rest, &x, &mut c, &mut p);
        }
        // Columns k..k+3 (relative) hold the upper half: rows 1..3 finish there, plus the
        // carry out of the previous group.
        c[0] += extra;
        step4(h0, 0, &x, &mut c, &mut p);
        step4(h1, 0, &x, &mut c, &mut p);
        step4(h2, 0, &x, &mut c, &mut p);
        let w = u64::from(*h3) + c[0] + c[1] + c[2] + c[3];
        *h3 = w as u32;
        extra = w >> 32;
    }
    let Some(res) = t.get(k..) else {
        return;
    };
    out.copy_from_slice(res);
    finish(out, extra, n);
}

/// `t = a·b` (`2k` limbs; `k` a multiple of 4).
pub(super) fn mul_wide(a: &[u32], b: &[u32], t: &mut [u32]) {
    let k = b.len();
    t.fill(0);
    for (g, quad) in a.chunks_exact(ROWS).enumerate() {
        let [a0, a1, a2, a3] = quad else {
            return;
        };
        let x = [a0, a1, a2, a3].map(|v| u64::from(*v));
        let Some(win) = t.get_mut(ROWS * g..) else {
            return;
        };
        let Some((low, high)) = win.split_at_mut_checked(k) else {
            return;
        };
        let [h0, h1, h2, h3, ..] = high else {
            return;
        };
        let (mut c, mut p) = ([0u64; 4], [0u64; 3]);
        // Rows 1..3 start with p = 0: no terms before their first column.
        rows4(low, b, &x, &mut c, &mut p);
        step4(h0, 0, &x, &mut c, &mut p);
        step4(h1, 0, &x, &mut c, &mut p);
        step4(h2, 0, &x, &mut c, &mut p);
        *h3 = (c[0] + c[1] + c[2] + c[3]) as u32;
    }
}

/// `t = a²` (`2k` limbs; `k` a multiple of 4): the cross products `a_i·a_j`, `i < j`, four
/// rows at a time, then doubled, plus the squares.
pub(super) fn sqr_wide(a: &[u32], t: &mut [u32]) {
    let k = a.len();
    t.fill(0);
    for (g, quad) in a.chunks_exact(ROWS).enumerate() {
        let i = ROWS * g;
        let [a0, a1, a2, a3] = quad else {
            return;
        };
        let x = [a0, a1, a2, a3].map(|v| u64::from(*v));
        // Row r multiplies a_(i+r) by a_j, j > i+r, into column i+r+j; with row r lagging r
        // columns, column i+J gets a_(i+r)·a_(J−r), wanted only when J−r > i+r. The first
        // six columns (J = i+1..i+6) mask the rows not yet wanted.
        let (Some(win), Some(ys)) = (t.get_mut(2 * i + 1..=i + k + 3), a.get(i + 1..)) else {
            return;
        };
        let Some((last, cols)) = win.split_last_mut() else {
            return;
        };
        let (mut c, mut p) = ([0u64; 4], [0u64; 3]);
        let masked = |j: usize| {
            [
                x[0],
                if j >= 3 { x[1] } else { 0 },
                if j >= 5 { x[2] } else { 0 },
                if j >= 7 { x[3] } else { 0 },
            ]
        };
        let head = ys.len().min(6);
        let Some((cols_head, cols_rest)) = cols.split_at_mut_checked(head) else {
            return;
        };
        let (Some(ys_head), Some(ys_rest)) = (ys.get(..head), ys.get(head..)) else {
            return;
        };
        for (j, (tj, y)) in (1..).zip(cols_head.iter_mut().zip(ys_head)) {
            step4(tj, u64::from(*y), &masked(j), &mut c, &mut p);
        }
        let Some((cols_body, cols_tail)) = cols_rest.split_at_mut_checked(ys_rest.len()) else {
            return;
        };
        rows4(cols_body, ys_rest, &x, &mut c, &mut p);
        // Three more columns where rows 1..3 finish (still masked in the last groups).
        for (j, tj) in (ys.len() + 1..).zip(cols_tail.iter_mut()) {
            step4(tj, 0, &masked(j), &mut c, &mut p);
        }
        *last = (c[0] + c[1] + c[2] + c[3]) as u32;
    }
    // Double the cross products and add the squares a_i² at limb 2i.
    let mut carry = 0u64;
    let mut shifted_in = 0u32;
    for (pair, xi) in t.chunks_exact_mut(2).zip(a.iter()) {
        let sq = u64::from(*xi) * u64::from(*xi);
        let [d0, d1] = pair else {
            continue;
        };
        let v = u64::from((*d0 << 1) | shifted_in) + (sq & LO32) + carry;
        shifted_in = *d0 >> 31;
        *d0 = v as u32;
        carry = v >> 32;
        let v = u64::from((*d1 << 1) | shifted_in) + (sq >> 32) + carry;
        shifted_in = *d1 >> 31;
        *d1 = v as u32;
        carry = v >> 32;
    }
}

/// `out = a·b·R⁻¹ mod n`; `t` is `2k` limbs of scratch.
pub(super) fn mont_mul(
    a: &[u32],
    b: &[u32],
    n: &[u32],
    n0inv: u32,
    t: &mut [u32],
    out: &mut [u32],
) {
    mul_wide(a, b, t);
    redc(t, n, n0inv, out);
}

/// `x = x·b·R⁻¹ mod n`.
pub(super) fn mont_mul_inplace(x: &mut [u32], b: &[u32], n: &[u32], n0inv: u32, t: &mut [u32]) {
    mul_wide(x, b, t);
    redc(t, n, n0inv, x);
}

/// `x = x²·R⁻¹ mod n`.
pub(super) fn mont_sqr(x: &mut [u32], n: &[u32], n0inv: u32, t: &mut [u32]) {
    sqr_wide(x, t);
    redc(t, n, n0inv, x);
}
