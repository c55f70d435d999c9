//! Scalar multiplication for Ed25519 verification: the fixed-base comb tables (the base
//! point's, and a key's once it has earned one), the signed-digit and wNAF recodings of a
//! scalar, and the one-shot wNAF double-and-add for a key verified once. Which table a key
//! gets, and when, is decided in `mod.rs`.

use super::point::{batch_to_niels, Ext, Niels, PNiels, Proj};
/// wNAF window of the one-shot path (odd multiples 1·A … 15·A).
const NAF_WINDOW: u32 = 5;

/// Fixed-base comb: rows q = 0..G, row q holds j·2^(w·t·q)·P for j = 1 … 2^(w−1).
/// [d]P for a scalar written as n = G·t signed digits of w bits is then t rounds of
/// G table additions separated by w doublings (Horner over the teeth).
pub(super) struct Comb {
    window: u32,
    teeth: usize,
    rows: usize,
    /// rows × 2^(w−1) points, row-major.
    points: Vec<Niels>,
}

impl Comb {
    fn entries(window: u32) -> usize {
        1 << (window - 1)
    }

    pub(super) fn build(p: &Ext, window: u32, teeth: usize) -> Option<Comb> {
        let digits = 256usize.div_ceil(window as usize);
        if teeth == 0 || !digits.is_multiple_of(teeth) {
            return None;
        }
        let rows = digits / teeth;
        let per = Comb::entries(window);
        let mut ext = Vec::with_capacity(rows * per);
        let mut base = *p;
        for _ in 0..rows {
            let base_n = base.to_pniels();
            let mut m = base;
            ext.push(m);
            for _ in 1..per {
                m = m.add_pniels(&base_n).to_ext();
                ext.push(m);
            }
            // m = 2^(w−1)·base; the next row's base is 2^(w·t)·base
            let mut next = m.double();
            for _ in 0..(window as usize * teeth - window as usize) {
                next = next.to_proj().double();
            }
            base = next.to_ext();
        }
        Some(Comb {
            window,
            teeth,
            rows,
            points: batch_to_niels(&ext)?,
        })
    }

    /// Reads the table entries `digits` will use ([`Comb::add_multiple`]), all at once: under
    /// load the tables (480 KiB for B, up to 165 KiB per hot key) are mostly out of the
    /// caches, and the additions each wait for their entry one after the other; independent
    /// reads up front overlap those misses. Public data: which entries are read is no secret.
    pub(super) fn touch(&self, digits: &[i16]) {
        let mut sink = 0u32;
        for (i, &digit) in digits.iter().enumerate().take(self.rows * self.teeth) {
            if let Some(n) = self.entry(i / self.teeth, digit) {
                sink ^= touch_niels(n);
            }
        }
        std::hint::black_box(sink);
    }

    /// The table point for a nonzero `digit` in row `q` (`None` for 0).
    #[inline(always)]
    fn entry(&self, q: usize, digit: i16) -> Option<&Niels> {
        if digit == 0 {
            return None;
        }
        let per = Comb::entries(self.window);
        self.points
            .get(q * per + (digit.unsigned_abs() as usize - 1))
    }

    /// acc + [sign·d]P for the scalar with `digits` (signed, base 2^w, least significant
    /// first; exactly rows·teeth of them).
    pub(super) fn add_multiple(&self, acc: Ext, digits: &[i16], negate: bool) -> Ext {
        let mut acc = acc;
        for r in (0..self.teeth).rev() {
            if r + 1 < self.teeth {
                let mut d = acc.double();
                for _ in 1..self.window {
                    d = d.to_proj().double();
                }
                acc = d.to_ext();
            }
            for q in 0..self.rows {
                let digit = digits.get(q * self.teeth + r).copied().unwrap_or(0);
                let Some(n) = self.entry(q, digit) else {
                    continue;
                };
                acc = acc.add_niels(n, (digit < 0) != negate).to_ext();
            }
        }
        acc
    }
}

/// Reads every cache line of a table point (120 bytes: at most three lines) and returns a
/// value that depends on the reads, so that they cannot be left out. (Here, not in point.rs:
/// no arithmetic, nothing for scripts/limb_bounds.py to analyse.)
#[inline(always)]
fn touch_niels(n: &Niels) -> u32 {
    n.ypx.touch() ^ n.ymx.touch() ^ n.xy2d.touch()
}

/// A scalar's little-endian bytes as four u64 words.
fn le_words(bytes: &[u8; 32]) -> [u64; 4] {
    let mut words = [0u64; 4];
    for (w, c) in words.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut a = [0u8; 8];
        a.copy_from_slice(c);
        *w = u64::from_le_bytes(a);
    }
    words
}

/// Signed base-2^w digits of a scalar < 2^253 (little-endian bytes), least significant
/// first, each in [−2^(w−1), 2^(w−1)); ⌈256/w⌉ of them. w ≤ 8.
pub(super) fn signed_digits(bytes: &[u8; 32], window: u32) -> [i16; 64] {
    let words = le_words(bytes);
    let n = 256usize.div_ceil(window as usize);
    let half = 1i16 << (window - 1);
    let mask = (1u64 << window) - 1;
    let mut out = [0i16; 64];
    let mut carry = 0i16;
    for (i, o) in out.iter_mut().enumerate().take(n) {
        let start = i * window as usize;
        let (w, s) = (start / 64, start % 64);
        let lo = words.get(w).copied().unwrap_or(0) >> s;
        let hi = if s == 0 {
            0
        } else {
            words.get(w + 1).copied().unwrap_or(0) << (64 - s)
        };
        let d = ((lo | hi) & mask) as i16 + carry;
        if d >= half {
            *o = d - 2 * half;
            carry = 1;
        } else {
            *o = d;
            carry = 0;
        }
    }
    out
}

/// Width-w non-adjacent form of a scalar < 2^253: 256 digits, zero or odd in
/// (−2^(w−1), 2^(w−1)), least significant first.
pub(super) fn wnaf(bytes: &[u8; 32], window: u32) -> [i8; 256] {
    let words = le_words(bytes);
    let width = 1u64 << window;
    let mask = width - 1;
    let mut naf = [0i8; 256];
    let mut pos = 0usize;
    let mut carry = 0u64;
    while pos < 256 {
        let i = pos / 64;
        let s = pos % 64;
        let lo = words.get(i).copied().unwrap_or(0) >> s;
        let hi = if s == 0 {
            0
        } else {
            words.get(i + 1).copied().unwrap_or(0) << (64 - s)
        };
        let window_bits = carry + ((lo | hi) & mask);
        if window_bits & 1 == 0 {
            pos += 1;
            continue;
        }
        if let Some(d) = naf.get_mut(pos) {
            if window_bits < width / 2 {
                carry = 0;
                *d = window_bits as i8;
            } else {
                carry = 1;
                *d = (window_bits as i64 - width as i64) as i8;
            }
        }
        pos += window as usize;
    }
    naf
}

/// −[k]A by width-5 wNAF double-and-add (the one-shot path).
pub(super) fn minus_mul_wnaf(a: &Ext, k: &[u8; 32]) -> Ext {
    let a2 = a.double().to_ext().to_pniels();
    let mut odd: [PNiels; 8] = [a.to_pniels(); 8];
    let mut m = *a;
    for o in odd.iter_mut().skip(1) {
        m = m.add_pniels(&a2).to_ext();
        *o = m.to_pniels();
    }
    let naf = wnaf(k, NAF_WINDOW);
    let Some(top) = naf.iter().rposition(|d| *d != 0) else {
        return Ext::IDENTITY;
    };
    let mut acc: Proj = Ext::IDENTITY.to_proj();
    let mut last = Ext::IDENTITY;
    for (i, &d) in naf.iter().enumerate().take(top + 1).rev() {
        let c = acc.double();
        let c = if d == 0 {
            c
        } else {
            let e = c.to_ext();
            let idx = (d.unsigned_abs() / 2) as usize;
            match odd.get(idx) {
                // subtracting: this computes −[k]A
                Some(n) if d > 0 => e.sub_pniels(n),
                Some(n) => e.add_pniels(n),
                None => c,
            }
        };
        if i == 0 {
            last = c.to_ext();
        } else {
            acc = c.to_proj();
        }
    }
    last
}
