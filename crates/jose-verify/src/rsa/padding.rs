//! The encoded-message checks of RSA signature verification with SHA-256, applied to the
//! output of RSAVP1: EMSA-PKCS1-v1_5 (compared whole, RFC 8017 §9.2) and EMSA-PSS with
//! MGF1-SHA-256 (RFC 8017 §9.1.2). Both are strict: one encoding is accepted, no other.

use sha2::{Digest, Sha256};

const HASH_LEN: usize = 32;

/// `DigestInfo` DER prefix for SHA-256 (RFC 8017 §9.2 note 1), with the NULL parameter.
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// Whether `em` (RSAVP1's output, as long as the modulus) is exactly the EMSA-PKCS1-v1_5
/// encoding of `digest`: `00 01 FF… 00 || DigestInfo(SHA-256, with NULL) || H`. Every octet
/// is checked and no length is read from the message, so lax-parsing forgeries have no room.
pub(super) fn pkcs1v15_sha256_matches(em: &[u8], digest: &[u8; 32]) -> bool {
    let t_len = SHA256_DIGEST_INFO.len() + HASH_LEN;
    // 00 01 PS 00 T, PS at least 8 octets of FF
    let Some(ps_end) = em.len().checked_sub(t_len + 1) else {
        return false;
    };
    if ps_end < 2 + 8 {
        return false;
    }
    let (Some(head), Some(ps), Some(tail)) = (em.get(..2), em.get(2..ps_end), em.get(ps_end..))
    else {
        return false;
    };
    let Some((sep, t)) = tail.split_first() else {
        return false;
    };
    let Some((info, h)) = t.split_at_checked(SHA256_DIGEST_INFO.len()) else {
        return false;
    };
    head == [0x00, 0x01]
        && ps.iter().all(|b| *b == 0xff)
        && *sep == 0
        && info == SHA256_DIGEST_INFO
        && h == digest
}

/// Whether `m` (RSAVP1's output, as long as the modulus of `mod_bits` bits) is a valid
/// EMSA-PSS encoding of `digest` with exactly `salt_len` octets of salt. `m` is unmasked in
/// place.
pub(super) fn pss_sha256_matches(
    m: &mut [u8],
    mod_bits: usize,
    digest: &[u8; 32],
    salt_len: usize,
) -> bool {
    // I2OSP(m, emLen) with emBits = modBits - 1: when emBits is a multiple of 8 the
    // encoded message is one octet shorter than the modulus and that octet must be zero.
    let em_bits = mod_bits - 1;
    let em_len = em_bits.div_ceil(8);
    let Some(extra) = m.len().checked_sub(em_len) else {
        return false;
    };
    let Some((lead, em)) = m.split_at_mut_checked(extra) else {
        return false;
    };
    if lead.iter().any(|b| *b != 0) {
        return false;
    }
    emsa_pss_verify(digest, em, em_bits, salt_len)
}

/// EMSA-PSS-VERIFY (RFC 8017 §9.1.2) with SHA-256 and MGF1-SHA-256, steps 3–14. `em` is the
/// encoded message of `emLen = ceil(em_bits / 8)` octets; it is unmasked in place.
fn emsa_pss_verify(m_hash: &[u8; 32], em: &mut [u8], em_bits: usize, s_len: usize) -> bool {
    let em_len = em.len();
    // 3.
    if em_len < HASH_LEN + s_len + 2 {
        return false;
    }
    // 4.
    let Some((last, rest)) = em.split_last_mut() else {
        return false;
    };
    if *last != 0xbc {
        return false;
    }
    // 5.
    let db_len = em_len - HASH_LEN - 1;
    let Some((db, h)) = rest.split_at_mut_checked(db_len) else {
        return false;
    };
    // 6. The leftmost 8·emLen − emBits bits of maskedDB must be zero.
    let unused = 8 * em_len - em_bits;
    let top_mask: u8 = 0xffu8.checked_shr(unused as u32).unwrap_or(0);
    let Some(first) = db.first_mut() else {
        return false;
    };
    if *first & !top_mask != 0 {
        return false;
    }
    // 7–8. DB = maskedDB ⊕ MGF1(H, emLen − hLen − 1)
    let mut counter = 0u32;
    for chunk in db.chunks_mut(HASH_LEN) {
        let mask = Sha256::new()
            .chain_update(&*h)
            .chain_update(counter.to_be_bytes())
            .finalize();
        for (d, m) in chunk.iter_mut().zip(mask.iter()) {
            *d ^= m;
        }
        counter = counter.wrapping_add(1);
    }
    // 9.
    if let Some(first) = db.first_mut() {
        *first &= top_mask;
    }
    // 10. PS (zeros) || 0x01 || salt
    let Some(ps_len) = db_len.checked_sub(s_len + 1) else {
        return false;
    };
    let (Some(ps), Some(one), Some(salt)) =
        (db.get(..ps_len), db.get(ps_len), db.get(ps_len + 1..))
    else {
        return false;
    };
    if ps.iter().any(|b| *b != 0) || *one != 0x01 {
        return false;
    }
    // 11–14. H' = Hash(0x00·8 || mHash || salt) must equal H.
    let h2 = Sha256::new()
        .chain_update([0u8; 8])
        .chain_update(m_hash)
        .chain_update(salt)
        .finalize();
    h2.iter().eq(h.iter())
}
