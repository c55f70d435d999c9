//! Fast variable-time P-256 ECDSA verification (ES256) for wasm32.
//!
//! Verification handles only public data (key, message digest, signature), so the code is
//! variable time: it branches on values, skips zero digits and exits early. Design:
//!
//! - field: nine 29-bit limbs in i64, Montgomery (R = 2^261) with a multiplication-free
//!   reduction, lazy additions ([`field`]); wasm32 multiplies 64×64→64 natively but not
//!   64×64→128, which this layout never needs;
//! - R = u1·G + u2·Q by interleaved wNAF (Shamir's trick) with one shared doubling chain:
//!   G from a compile-time table of 64 affine odd multiples (window 8, mixed additions),
//!   Q from 8 odd multiples built per verification (window 5, Jacobian with Z², Z³ cached);
//! - a key used a second time is *prepared* (once, kept in the key): affine odd multiples
//!   of Q and of 2^128·Q, so that with a second static table for 2^128·G the four 128-bit
//!   halves of u1, u2 share a chain of 128 doublings instead of 256 (a cached key verifies
//!   about 40% faster; preparing costs about half a verification);
//! - Jacobian coordinates, a = −3 doubling; exceptional additions handled explicitly;
//! - s⁻¹ mod n by binary extended GCD; the final check x(R) ≡ r (mod n) is done
//!   projectively (X = r·Z², or (r + n)·Z² when r + n < p): no field inversion.

mod field;
mod field32;
mod gtable;
mod point;
mod scalar;

use field::Fe;
use gtable::{G128_ODD, G_ODD};
use point::{Affine, Cached, Jacobian};
use scalar::Sc;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

/// p − n: r + n < p (so x(R) = r + n is possible) exactly when r < p − n.
const P_MINUS_N: [u32; 8] = [
    0x039C_DAAE,
    0x0C46_353D,
    0x58E8_617B,
    0x4319_0553,
    0,
    0,
    0,
    0,
];

/// wNAF window for the tables of Q (8 odd multiples 1·Q … 15·Q).
const Q_WINDOW: u32 = 5;
/// wNAF window for the static tables of G (64 odd multiples 1·G … 127·G).
const G_WINDOW: u32 = 8;
/// Digits of a wNAF of a 256-bit scalar (one more than the bit length: the recoding can carry).
const NAF_LEN: usize = 257;

/// A validated P-256 public key. Construction only validates (two conversions and the
/// curve equation); the second verification with the same key object builds and keeps
/// its prepared tables (≈ 2.3 KiB), so keys held in a per-VM cache get the fast path and
/// one-shot keys never pay for it.
#[derive(Debug)]
pub struct P256VerifyingKey {
    q: Affine,
    uses: AtomicU8,
    prepared: OnceLock<Option<Box<Prepared>>>,
}

/// Affine odd multiples 1·B … 15·B of B = Q and B = 2^128·Q.
#[derive(Clone, Debug)]
struct Prepared {
    lo: [Affine; 8],
    hi: [Affine; 8],
}

impl Clone for P256VerifyingKey {
    fn clone(&self) -> Self {
        P256VerifyingKey {
            q: self.q,
            uses: AtomicU8::new(self.uses.load(Ordering::Relaxed)),
            prepared: self.prepared.clone(),
        }
    }
}

impl P256VerifyingKey {
    /// The key with affine coordinates `x`, `y` (big-endian, 32 bytes each). `None` unless
    /// both are < p and the point is on the curve (which excludes the identity, and P-256
    /// has cofactor 1, so every such point has order n).
    pub fn from_affine(x: &[u8; 32], y: &[u8; 32]) -> Option<Self> {
        let q = Affine {
            x: Fe::from_be_bytes(x)?,
            y: Fe::from_be_bytes(y)?,
        };
        if !q.is_on_curve() {
            return None;
        }
        Some(P256VerifyingKey {
            q,
            uses: AtomicU8::new(0),
            prepared: OnceLock::new(),
        })
    }

    /// The affine coordinates, big-endian.
    pub fn to_affine(&self) -> ([u8; 32], [u8; 32]) {
        (self.q.x.to_be_bytes(), self.q.y.to_be_bytes())
    }

    /// Builds the prepared tables now (otherwise done at the second verification).
    pub fn prepare(&self) {
        let _ = self.prepared();
    }

    /// Whether the prepared tables exist (the fast path is in use).
    pub fn is_prepared(&self) -> bool {
        matches!(self.prepared.get(), Some(Some(_)))
    }

    fn prepared(&self) -> Option<&Prepared> {
        self.prepared
            .get_or_init(|| prepare(&self.q).map(Box::new))
            .as_deref()
    }

    /// The prepared tables if they exist or this key has been used before.
    fn prepared_if_reused(&self) -> Option<&Prepared> {
        if let Some(p) = self.prepared.get() {
            return p.as_deref();
        }
        if self.uses.fetch_add(1, Ordering::Relaxed) == 0 {
            return None;
        }
        self.prepared()
    }

    /// ECDSA verification of `sig` = r ‖ s (32 bytes each, big-endian, as in JWS ES256)
    /// over a 256-bit message digest. r and s must be in [1, n − 1]; high s is accepted
    /// (as the `p256` crate and RFC 7518 do).
    pub fn verify_prehashed(&self, digest: &[u8; 32], sig: &[u8; 64]) -> bool {
        let (rb, sb) = split_sig(sig);
        let (Some(r), Some(s)) = (
            Sc::from_be_bytes_nonzero(&rb),
            Sc::from_be_bytes_nonzero(&sb),
        ) else {
            return false;
        };
        // bits2int of a 256-bit digest is the digest itself; reduce once mod n.
        let e = Sc::reduce_be_bytes(digest);
        let w = s.invert();
        let u1 = e.mul(&w);
        let u2 = r.mul(&w);
        let big_r = match self.prepared_if_reused() {
            Some(p) => lincomb_prepared(&u1, &u2, p),
            None => lincomb(&u1, &u2, &q_table(&self.q)),
        };
        let Some(big_r) = big_r else {
            return false;
        };
        x_matches(&big_r, &r)
    }

    /// ES256: SHA-256 of `msg`, then [`Self::verify_prehashed`]; `sig` must be 64 bytes.
    pub fn verify_sha256(&self, msg: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = <&[u8; 64]>::try_from(sig) else {
            return false;
        };
        let digest: [u8; 32] = Sha256::digest(msg).into();
        self.verify_prehashed(&digest, sig)
    }
}

/// Odd multiples 1·B, 3·B, …, 15·B (B never the identity).
fn odd_multiples(b: &Jacobian) -> [Jacobian; 8] {
    let b2 = b.double().to_cached();
    let mut out = [*b; 8];
    let mut acc = *b;
    for t in out.iter_mut().skip(1) {
        acc = acc.add_cached(&b2, false);
        *t = acc;
    }
    out
}

/// The per-verification table of Q for the unprepared path.
fn q_table(q: &Affine) -> [Cached; 8] {
    odd_multiples(&Jacobian::from_affine(q)).map(|p| p.to_cached())
}

/// Prepared tables: odd multiples of Q and 2^128·Q, made affine with one shared inversion
/// (Montgomery's trick). `None` if a Z were zero (impossible for a point of prime order).
fn prepare(q: &Affine) -> Option<Prepared> {
    let qj = Jacobian::from_affine(q);
    let mut q128 = qj;
    for _ in 0..128 {
        q128 = q128.double();
    }
    let lo = odd_multiples(&qj);
    let hi = odd_multiples(&q128);
    let mut pts = [qj; 16];
    for (o, p) in pts.iter_mut().zip(lo.iter().chain(hi.iter())) {
        *o = *p;
    }
    // before[i] = Z0·…·Z(i−1); acc = Z0·…·Z15
    let mut before = [Fe::ONE; 16];
    let mut acc = Fe::ONE;
    for (b, p) in before.iter_mut().zip(pts.iter()) {
        *b = acc;
        acc = acc.mul(&p.z);
    }
    if acc.is_zero() {
        return None;
    }
    let mut inv = acc.invert();
    let zero = Affine {
        x: Fe::ZERO,
        y: Fe::ZERO,
    };
    let mut out = [zero; 16];
    for ((o, b), p) in out.iter_mut().zip(before.iter()).zip(pts.iter()).rev() {
        let zi = inv.mul(b); // 1/Z(i)
        inv = inv.mul(&p.z); // 1/(Z0·…·Z(i−1))
        let zi2 = zi.sqr();
        *o = Affine {
            x: p.x.mul(&zi2),
            y: p.y.mul(&zi2.mul(&zi)),
        };
    }
    let mut lo = [zero; 8];
    let mut hi = [zero; 8];
    for (d, s) in lo.iter_mut().chain(hi.iter_mut()).zip(out) {
        *d = s;
    }
    Some(Prepared { lo, hi })
}

/// acc + d·T[|d|/2] (negated for d < 0) for an affine table; `None` if the digit were out
/// of the table (cannot happen: |d| < 2^(w−1) for the table's window w).
fn add_digit(acc: &Jacobian, d: i8, table: &[Affine]) -> Option<Jacobian> {
    let p = table.get(usize::from(d.unsigned_abs() >> 1))?;
    Some(if d > 0 {
        acc.add_affine(p)
    } else {
        acc.add_affine(&p.neg())
    })
}

/// u1·G + u2·Q, interleaved wNAF over 256 bits. `None` only if a recoding invariant failed
/// (cannot happen; it makes the signature fail rather than panic).
fn lincomb(u1: &Sc, u2: &Sc, q_table: &[Cached; 8]) -> Option<Jacobian> {
    let n1 = wnaf(&u1.0, G_WINDOW)?;
    let n2 = wnaf(&u2.0, Q_WINDOW)?;
    let top = n1
        .iter()
        .zip(n2.iter())
        .rposition(|(a, b)| *a != 0 || *b != 0)?;
    let mut acc = Jacobian::IDENTITY;
    for (&d1, &d2) in n1.iter().zip(n2.iter()).take(top + 1).rev() {
        acc = acc.double();
        if d1 != 0 {
            acc = add_digit(&acc, d1, &G_ODD)?;
        }
        if d2 != 0 {
            let p = q_table.get(usize::from(d2.unsigned_abs() >> 1))?;
            acc = acc.add_cached(p, d2 < 0);
        }
    }
    Some(acc)
}

/// The low and high 128-bit halves of a scalar.
fn halves(k: &Sc) -> ([u32; 8], [u32; 8]) {
    let [a0, a1, a2, a3, a4, a5, a6, a7] = k.0;
    ([a0, a1, a2, a3, 0, 0, 0, 0], [a4, a5, a6, a7, 0, 0, 0, 0])
}

/// u1·G + u2·Q with prepared tables: u = u_lo + u_hi·2^128, so the four half-scalars
/// (on G, 2^128·G, Q, 2^128·Q) share one chain of ≤ 129 doublings.
fn lincomb_prepared(u1: &Sc, u2: &Sc, p: &Prepared) -> Option<Jacobian> {
    let (g_lo, g_hi) = halves(u1);
    let (q_lo, q_hi) = halves(u2);
    let nafs = [
        wnaf(&g_lo, G_WINDOW)?,
        wnaf(&g_hi, G_WINDOW)?,
        wnaf(&q_lo, Q_WINDOW)?,
        wnaf(&q_hi, Q_WINDOW)?,
    ];
    let tables: [&[Affine]; 4] = [&G_ODD, &G128_ODD, &p.lo, &p.hi];
    let top = nafs
        .iter()
        .filter_map(|n| n.iter().rposition(|d| *d != 0))
        .max()?;
    let mut acc = Jacobian::IDENTITY;
    for i in (0..=top).rev() {
        acc = acc.double();
        for (n, t) in nafs.iter().zip(tables) {
            match n.get(i) {
                Some(&d) if d != 0 => acc = add_digit(&acc, d, t)?,
                _ => {}
            }
        }
    }
    Some(acc)
}

fn split_sig(sig: &[u8; 64]) -> ([u8; 32], [u8; 32]) {
    let mut r = [0u8; 32];
    let mut s = [0u8; 32];
    let (a, b) = sig.split_at(32);
    r.copy_from_slice(a);
    s.copy_from_slice(b);
    (r, s)
}

/// x(R) mod n == r, projectively: x(R) = X/Z² ∈ [0, p) and r < n, so x(R) mod n = r iff
/// X ≡ r·Z² or (when r + n < p) X ≡ (r + n)·Z² (mod p). The identity never matches.
fn x_matches(big_r: &Jacobian, r: &Sc) -> bool {
    if big_r.is_identity() {
        return false;
    }
    let zz = big_r.z.sqr();
    // X (class C) − r·Z² (class M): |V| < T + 2^229 < 3p, as `is_zero` needs.
    let Some(rf) = Fe::from_u32_limbs(&r.0) else {
        return false;
    };
    if big_r.x.sub(&rf.mul(&zz)).is_zero() {
        return true;
    }
    if !field32::lt(&r.0, &P_MINUS_N) {
        return false;
    }
    let Some(rn) = Fe::from_u32_limbs(&field32::add(&r.0, &scalar::N)) else {
        return false;
    };
    big_r.x.sub(&rn.mul(&zz)).is_zero()
}

/// Width-`w` NAF of a 256-bit integer (little-endian limbs): digit i is 0 or odd with
/// |d| < 2^(w−1), Σ dᵢ·2^i = k, and any w consecutive digits hold at most one nonzero.
/// `w` ≤ 8 so digits fit i8. Returns `None` if the final carry is not zero (impossible for
/// k < 2^256: bit 256 is zero and ends every window with carry 0).
fn wnaf(k: &[u32; 8], w: u32) -> Option<[i8; NAF_LEN]> {
    let mut out = [0i8; NAF_LEN];
    let limb = |j: usize| k.get(j).map_or(0u64, |&x| u64::from(x));
    // `cnt` (≤ 8) bits of k starting at bit `i` (bits ≥ 256 read as zero).
    let bits = |i: usize, cnt: u32| -> i32 {
        let v = (limb(i / 32) | (limb(i / 32 + 1) << 32)) >> (i % 32);
        (v & ((1u64 << cnt) - 1)) as i32
    };
    let mut carry = 0i32;
    let mut i = 0usize;
    while i < NAF_LEN {
        if bits(i, 1) == carry {
            i += 1;
            continue;
        }
        let now = w.min((NAF_LEN - i) as u32);
        let mut word = bits(i, now) + carry;
        carry = (word >> (w - 1)) & 1;
        word -= carry << w;
        *out.get_mut(i)? = word as i8;
        i += now as usize;
    }
    if carry != 0 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests;
