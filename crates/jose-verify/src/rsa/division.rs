//! The one long division of RSA: `R² mod n`, computed once per key so that a signature
//! can enter the Montgomery domain with one Montgomery multiply.

/// `R² mod n` with `R = 2^(32k)`, `k = n.len()`: the remainder of `2^(64k)` by `n`, by one
/// long division (Knuth, TAOCP vol. 2, 4.3.1, algorithm D).
pub(super) fn r_squared_mod(n: &[u32]) -> Option<Vec<u32>> {
    let k = n.len();
    let used = k - n.iter().rev().take_while(|x| **x == 0).count();
    let mut u = vec![0u32; 2 * k + 1];
    *u.last_mut()? = 1;
    let mut r = rem(&u, n.get(..used)?)?;
    r.resize(k, 0);
    Some(r)
}

/// `u mod v` for little-endian limbs; `v` has at least two limbs and a non-zero top limb.
fn rem(u: &[u32], v: &[u32]) -> Option<Vec<u32>> {
    let n = v.len();
    let m = u.len();
    if n < 2 || m < n {
        return None;
    }
    let vtop = *v.last()?;
    if vtop == 0 {
        return None;
    }
    let s = vtop.leading_zeros();
    let shl = |hi: u32, lo: u32| -> u32 {
        if s == 0 {
            hi
        } else {
            (hi << s) | (lo >> (32 - s))
        }
    };
    // Normalized divisor and dividend (one extra limb).
    let mut vn = Vec::with_capacity(n);
    let mut prev = 0u32;
    for x in v {
        vn.push(shl(*x, prev));
        prev = *x;
    }
    let mut un = Vec::with_capacity(m + 1);
    prev = 0;
    for x in u {
        un.push(shl(*x, prev));
        prev = *x;
    }
    un.push(shl(0, prev));

    let b: u64 = 1 << 32;
    let v1 = u64::from(*vn.last()?);
    let v2 = u64::from(*vn.get(n - 2)?);
    for j in (0..=m - n).rev() {
        let num = (u64::from(*un.get(j + n)?) << 32) | u64::from(*un.get(j + n - 1)?);
        let mut qhat = num / v1;
        let mut rhat = num % v1;
        let u2 = u64::from(*un.get(j + n - 2)?);
        while qhat >= b || qhat * v2 > (rhat << 32) + u2 {
            qhat -= 1;
            rhat += v1;
            if rhat >= b {
                break;
            }
        }
        // un[j..=j+n] -= qhat·vn
        let win = un.get_mut(j..=j + n)?;
        let (lo, hi) = win.split_at_mut_checked(n)?;
        let mut borrow = 0u64;
        let mut carry = 0u64;
        for (uj, vj) in lo.iter_mut().zip(&vn) {
            let p = qhat * u64::from(*vj) + carry;
            carry = p >> 32;
            let d = u64::from(*uj)
                .wrapping_sub(p & 0xffff_ffff)
                .wrapping_sub(borrow);
            *uj = d as u32;
            borrow = (d >> 32) & 1;
        }
        let top = hi.first_mut()?;
        let d = u64::from(*top).wrapping_sub(carry).wrapping_sub(borrow);
        *top = d as u32;
        if (d >> 32) != 0 {
            // qhat was one too large: add vn back.
            #[cfg(test)]
            add_back::note();
            let mut c = 0u64;
            for (uj, vj) in lo.iter_mut().zip(&vn) {
                let s = u64::from(*uj) + u64::from(*vj) + c;
                *uj = s as u32;
                c = s >> 32;
            }
            *top = top.wrapping_add(c as u32);
        }
    }
    // Remainder: un[..n] >> s
    let mut r = Vec::with_capacity(n);
    for i in 0..n {
        let lo = *un.get(i)?;
        let hi = *un.get(i + 1)?;
        r.push(if s == 0 {
            lo
        } else {
            (lo >> s) | (hi << (32 - s))
        });
    }
    Some(r)
}

/// Test-only count (per thread) of the add-back step (Knuth's D6): it runs for about one
/// random divisor in 2^31 per quotient digit, so the tests build moduli that take it and
/// read this count to show that they did.
#[cfg(test)]
pub(super) mod add_back {
    use std::cell::Cell;

    thread_local! {
        static COUNT: Cell<u64> = const { Cell::new(0) };
    }

    pub fn note() {
        COUNT.with(|c| c.set(c.get() + 1));
    }

    /// Add-backs since the last call (this thread).
    pub fn take() -> u64 {
        COUNT.with(|c| c.replace(0))
    }
}
