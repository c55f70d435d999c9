//! Ed25519 keys A = a·B + T and signature points R = r·B + T' whose torsion component T, T'
//! (a point of order 2, 4 or 8) is not the identity: points of mixed order, which are *not*
//! small order, so the strict rules let them through to the cofactorless equation
//! [s]B − [k]A = R. With s = r + k·a that equation reads r·B − k·T = r·B + T', i.e. it holds
//! exactly when T' + k·T is the identity: the verdict depends on k modulo the order of T, so a
//! verifier that computes [k]A only up to a multiple of ℓ (or drops the torsion anywhere in
//! its tables) gets it wrong.
//!
//! Every case is checked on every verification path of `Ed25519VerifyingKey` (a fresh key's
//! one-shot wNAF, the comb a key earns at its second successful use, the hot comb it earns
//! after 64 successful uses, and the same tables built by `prepare` / `make_hot`), against
//! the verdict computed with the group law (`expected`) and against ed25519-dalek's
//! `verify_strict`.
//!
//! A separate test binary: hot combs are a per-process budget of 8, and the tests here must
//! get theirs (the other binaries' tests would compete for it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use curve25519_dalek::constants::EIGHT_TORSION;
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use ed25519_dalek::VerifyingKey;
use jose_verify::ed25519::Ed25519VerifyingKey;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha512};
use std::sync::Mutex;

/// Serialises the tests that need hot combs (at most one key holds one at a time).
static HOT_BUDGET: Mutex<()> = Mutex::new(());

/// Successful verifications that earn the hot comb (`HOT_USES` in `src/ed25519/mod.rs`).
const HOT_USES: usize = 64;

fn random_scalar() -> Scalar {
    let mut wide = [0u8; 64];
    OsRng.fill_bytes(&mut wide);
    Scalar::from_bytes_mod_order_wide(&wide)
}

/// The order of EIGHT_TORSION[i] (EIGHT_TORSION[i] = i·T₁, T₁ of order 8).
fn torsion_order(i: usize) -> usize {
    match i % 8 {
        0 => 1,
        4 => 2,
        2 | 6 => 4,
        _ => 8,
    }
}

/// A key of mixed order: A = a·B + T_t.
struct MixedKey {
    a: Scalar,
    t: usize,
    bytes: [u8; 32],
}

/// One signature under a [`MixedKey`], with the verdict the group law gives.
#[derive(Clone)]
struct Case {
    msg: Vec<u8>,
    sig: [u8; 64],
    expected: bool,
    what: String,
}

impl MixedKey {
    fn new(t: usize) -> MixedKey {
        let a = random_scalar();
        let point = EdwardsPoint::mul_base(&a) + EIGHT_TORSION[t];
        assert!(!point.is_small_order(), "a·B + T is not small order");
        assert_eq!(point.is_torsion_free(), t == 0);
        MixedKey {
            a,
            t,
            bytes: point.compress().to_bytes(),
        }
    }

    /// The signature s = r + k·a with R = r·B + T_tr, and whether it verifies:
    /// [s]B − [k]A = r·B − k·T_t equals R exactly when T_tr + k·T_t is the identity.
    fn sign(&self, msg: &[u8], tr: usize) -> Case {
        let r = random_scalar();
        let big_r = EdwardsPoint::mul_base(&r) + EIGHT_TORSION[tr];
        assert!(!big_r.is_small_order());
        let r_bytes = big_r.compress().to_bytes();
        let mut h = Sha512::new();
        h.update(r_bytes);
        h.update(self.bytes);
        h.update(msg);
        let mut wide = [0u8; 64];
        wide.copy_from_slice(&h.finalize());
        let k = Scalar::from_bytes_mod_order_wide(&wide);
        let s = r + k * self.a;
        let expected = (EIGHT_TORSION[tr] + EIGHT_TORSION[self.t] * k).is_identity();
        // the same through k mod 8: k·T_t only depends on k modulo the order of T_t
        let k_mod = usize::from(k.to_bytes()[0] % 8) % torsion_order(self.t);
        let t_k = (self.t * k_mod) % 8;
        assert_eq!(
            expected,
            (tr + t_k).is_multiple_of(8),
            "group law vs k mod 8"
        );
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&r_bytes);
        sig[32..].copy_from_slice(s.as_bytes());
        Case {
            msg: msg.to_vec(),
            sig,
            expected,
            what: format!("A = aB + T{}, R = rB + T{tr}, k mod 8 = {}", self.t, k_mod),
        }
    }

    /// For each torsion T' of R, one accepted signature (when T' is in the group generated
    /// by the key's T) and one refused signature, plus bit flips of the accepted ones.
    fn cases(&self) -> Vec<Case> {
        let mut out = Vec::new();
        for tr in 0..8 {
            let (mut valid, mut invalid) = (None, None);
            for attempt in 0..200u32 {
                let msg = format!("torsion {} {tr} {attempt}", self.t).into_bytes();
                let c = self.sign(&msg, tr);
                if c.expected && valid.is_none() {
                    valid = Some(c);
                } else if !c.expected && invalid.is_none() {
                    invalid = Some(c);
                }
                if valid.is_some() && invalid.is_some() {
                    break;
                }
            }
            // T' + k·T = 0 is reachable iff T' lies in the subgroup generated by T
            let reachable = tr % (8 / torsion_order(self.t)) == 0;
            assert_eq!(
                valid.is_some(),
                reachable,
                "T{} with R torsion T{tr}",
                self.t
            );
            // refused cases exist unless both torsions are trivial
            assert_eq!(invalid.is_some(), self.t != 0 || tr != 0);
            if let Some(v) = valid {
                for bit in [0usize, 200, 255, 256, 300, 511] {
                    let mut bad = v.clone();
                    bad.sig[bit / 8] ^= 1 << (bit % 8);
                    bad.expected = false;
                    bad.what = format!("{} with bit {bit} flipped", v.what);
                    out.push(bad);
                }
                let mut other = v.clone();
                other.msg.push(b'!');
                other.expected = false;
                other.what = format!("{}, other message", v.what);
                out.push(other);
                out.push(v);
            }
            out.extend(invalid);
        }
        out
    }
}

/// ed25519-dalek's strict verdict.
fn dalek(key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    let Ok(vk) = VerifyingKey::from_bytes(key) else {
        return false;
    };
    vk.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(sig))
        .is_ok()
}

/// Our verdict must be the expected one, and dalek's.
fn check(path: &str, ours: bool, key: &[u8; 32], c: &Case) {
    assert_eq!(
        dalek(key, &c.msg, &c.sig),
        c.expected,
        "dalek, {}: key {} sig {}",
        c.what,
        hex::encode(key),
        hex::encode(c.sig)
    );
    assert_eq!(
        ours,
        c.expected,
        "{path}, {}: key {} sig {}",
        c.what,
        hex::encode(key),
        hex::encode(c.sig)
    );
}

/// Path counts: how many cases each path checked, and how many it accepted.
#[derive(Default, Debug)]
struct Tally {
    one_shot: (usize, usize),
    earned_comb: (usize, usize),
    prepare: (usize, usize),
    earned_hot: (usize, usize),
    make_hot: (usize, usize),
}

fn count(slot: &mut (usize, usize), ok: bool) {
    slot.0 += 1;
    slot.1 += usize::from(ok);
}

/// Every case of `key` on every path.
fn all_paths(key: &MixedKey, tally: &mut Tally) {
    let cases = key.cases();
    let valid = cases
        .iter()
        .find(|c| c.expected)
        .expect("every key has an accepted signature (T' = 0, k ≡ 0)")
        .clone();

    // 1. one-shot: a fresh key object per case (its first verification takes the wNAF path
    //    and builds nothing)
    for c in &cases {
        let k = Ed25519VerifyingKey::from_bytes(&key.bytes).unwrap();
        let ours = k.verify(&c.msg, &c.sig);
        assert!(
            !k.is_prepared() && !k.is_hot(),
            "a first use builds no table"
        );
        check("one-shot", ours, &key.bytes, c);
        count(&mut tally.one_shot, ours);
    }

    // 2. the comb earned by reuse: the verification after a successful one builds it
    let k = Ed25519VerifyingKey::from_bytes(&key.bytes).unwrap();
    assert!(k.verify(&valid.msg, &valid.sig));
    assert!(!k.is_prepared());
    assert!(k.verify(&valid.msg, &valid.sig));
    assert!(k.is_prepared(), "reuse earns the comb");
    for c in &cases {
        let ours = k.verify(&c.msg, &c.sig);
        assert!(!k.is_hot());
        check("earned comb", ours, &key.bytes, c);
        count(&mut tally.earned_comb, ours);
    }

    // 3. the comb built by `prepare` before any use
    let k = Ed25519VerifyingKey::from_bytes(&key.bytes).unwrap();
    k.prepare();
    assert!(k.is_prepared());
    for c in &cases {
        let ours = k.verify(&c.msg, &c.sig);
        check("prepared", ours, &key.bytes, c);
        count(&mut tally.prepare, ours);
    }

    let _budget = HOT_BUDGET.lock().unwrap_or_else(|e| e.into_inner());
    // 4. the hot comb earned by 64 successful verifications (the 65th builds it)
    let k = Ed25519VerifyingKey::from_bytes(&key.bytes).unwrap();
    for _ in 0..HOT_USES {
        assert!(k.verify(&valid.msg, &valid.sig));
    }
    assert!(
        !k.is_hot(),
        "64 uses earn the hot comb at the next verification"
    );
    assert!(k.verify(&valid.msg, &valid.sig));
    assert!(
        k.is_hot(),
        "the budget has a free slot: this test holds the lock"
    );
    for c in &cases {
        let ours = k.verify(&c.msg, &c.sig);
        check("earned hot comb", ours, &key.bytes, c);
        count(&mut tally.earned_hot, ours);
    }
    drop(k);

    // 5. the hot comb built by `make_hot`
    let k = Ed25519VerifyingKey::from_bytes(&key.bytes).unwrap();
    assert!(k.make_hot());
    for c in &cases {
        let ours = k.verify(&c.msg, &c.sig);
        check("make_hot", ours, &key.bytes, c);
        count(&mut tally.make_hot, ours);
    }
}

/// Keys with each of the seven non-trivial torsion components (and a torsion-free control
/// key), each against signatures whose R carries each of the eight torsion components.
#[test]
fn mixed_order_keys_and_r_on_every_path() {
    let mut tally = Tally::default();
    let mut accepted_per_key = [0usize; 8];
    for (t, accepted) in accepted_per_key.iter_mut().enumerate() {
        let key = MixedKey::new(t);
        let before = tally.one_shot.1;
        all_paths(&key, &mut tally);
        *accepted = tally.one_shot.1 - before;
    }
    println!("{tally:?}");
    // every path saw the same cases and accepted the same number of them
    let n = tally.one_shot;
    for (name, t) in [
        ("earned comb", tally.earned_comb),
        ("prepare", tally.prepare),
        ("earned hot", tally.earned_hot),
        ("make_hot", tally.make_hot),
    ] {
        assert_eq!(t, n, "{name}");
    }
    // one accepted signature per reachable T' (the multiples of T: ord(T) of them)
    let want: Vec<usize> = (0..8).map(torsion_order).collect();
    assert_eq!(accepted_per_key.to_vec(), want);
    // per key: ord(T) accepted cases, each with 7 refused variants, and 7 or 8 refused ones
    let accepted: usize = want.iter().sum();
    assert_eq!(n, (8 * accepted + 8 * 8 - 1, accepted), "cases, accepted");
}

/// A mixed-order key whose signatures have torsion-free R: accepted exactly when k is a
/// multiple of the order of T — about 1 in 8 for an order-8 T. Many signatures, so that
/// every k mod 8 class meets every path (the one-shot wNAF and both combs read k's low bits
/// differently).
#[test]
fn k_mod_8_decides_on_every_path() {
    let _budget = HOT_BUDGET.lock().unwrap_or_else(|e| e.into_inner());
    for t in [1usize, 2, 4, 7] {
        let key = MixedKey::new(t);
        let cases: Vec<Case> = (0..96)
            .map(|i| key.sign(format!("k mod 8 {t} {i}").as_bytes(), 0))
            .collect();
        let accepted = cases.iter().filter(|c| c.expected).count();
        assert!(
            accepted > 0 && accepted < cases.len(),
            "T{t}: {accepted} of {} accepted",
            cases.len()
        );
        let prepared = Ed25519VerifyingKey::from_bytes(&key.bytes).unwrap();
        prepared.prepare();
        let hot = Ed25519VerifyingKey::from_bytes(&key.bytes).unwrap();
        assert!(hot.make_hot());
        for c in &cases {
            let fresh = Ed25519VerifyingKey::from_bytes(&key.bytes).unwrap();
            check("one-shot", fresh.verify(&c.msg, &c.sig), &key.bytes, c);
            check("prepared", prepared.verify(&c.msg, &c.sig), &key.bytes, c);
            check("hot", hot.verify(&c.msg, &c.sig), &key.bytes, c);
        }
        assert!(prepared.is_prepared() && !prepared.is_hot() && hot.is_hot());
    }
}
