#!/usr/bin/env python3
"""Generator of crates/jose-verify/src/ed25519/field/generated.rs: the straight-line
multiplication and squaring of GF(2^255 - 19) in radix 2^25.5 (ten limbs of alternately 26
and 25 bits, the ref10 representation) and the curve constants.

    scripts/gen-fe25519.py > crates/jose-verify/src/ed25519/field/generated.rs

The output is the committed file byte for byte, already in rustfmt's layout; the test
`ed25519_field_matches_its_generator` (crates/jose-verify/tests/generated.rs) runs this
script and compares. Before printing, the coefficient rule (x19 where the limb indices wrap
past 10, x2 where both are odd) is checked against exact integer arithmetic.
"""
import random
import sys

p = 2**255 - 19
OFF = [0, 26, 51, 77, 102, 128, 153, 179, 204, 230]
W = [26, 25] * 5
MAX_WIDTH = 100  # rustfmt's max_width
OUT = "crates/jose-verify/src/ed25519/field/generated.rs"


def mul_terms():
    # h_k = sum_i f_i g_j, j = (k - i) mod 10, x19 if i+j >= 10, x2 if i, j both odd
    out = []
    for k in range(10):
        terms = []
        for i in range(10):
            j = (k - i) % 10
            two = i % 2 == 1 and j % 2 == 1
            wrap = i + j >= 10
            f = f"f{i}_2" if two else f"f{i}"
            g = f"g{j}_19" if wrap else f"g{j}"
            terms.append(f"{f} * {g}")
        out.append(terms)
    return out


def sq_terms():
    out = []
    for k in range(10):
        coef = {}
        for i in range(10):
            j = (k - i) % 10
            if j < i:
                continue
            c = 1
            if i % 2 == 1 and j % 2 == 1:
                c *= 2
            if i + j >= 10:
                c *= 19
            if i != j:
                c *= 2
            coef[(i, j)] = c
        out.append(coef)
    return out


def check():
    """The coefficient rule against exact integer arithmetic (random limbs, fixed seed)."""
    rng = random.Random(25519)

    def val(limbs):
        return sum(x << OFF[i] for i, x in enumerate(limbs)) % p

    for _ in range(200):
        f = [rng.randrange(-(2**25), 2**25) for _ in range(10)]
        g = [rng.randrange(-(2**25), 2**25) for _ in range(10)]
        h = []
        for k in range(10):
            s = 0
            for i in range(10):
                j = (k - i) % 10
                c = (2 if (i % 2 and j % 2) else 1) * (19 if i + j >= 10 else 1)
                s += c * f[i] * g[j]
            h.append(s)
        assert val(h) == val(f) * val(g) % p
        hs = []
        for coef in sq_terms():
            hs.append(sum(c * f[i] * f[j] for (i, j), c in coef.items()))
        assert val(hs) == val(f) ** 2 % p


def chain(indent, head, terms, tail):
    """`head t0 + t1 + ... tail` as rustfmt lays out a binary chain: on one line if it fits,
    else one operand per line, continuation lines indented one level more."""
    one = " " * indent + head + " + ".join(terms) + tail
    if len(one) <= MAX_WIDTH:
        return [one]
    lines = [" " * indent + head + terms[0]]
    lines += [" " * (indent + 4) + "+ " + t for t in terms[1:]]
    lines[-1] += tail
    return lines


def array(indent, head, items, tail):
    """`head[items]tail` as rustfmt lays out an array of short items: on one line if it
    fits, else items packed greedily into lines one level deeper (a packed line, trailing
    comma included, stays below MAX_WIDTH: rustfmt keeps one column spare there)."""
    one = " " * indent + head + "[" + ", ".join(items) + "]" + tail
    if len(one) <= MAX_WIDTH:
        return [one]
    assert all(len(x) <= 10 for x in items)  # rustfmt's short-item threshold: mixed layout
    lines = [" " * indent + head + "["]
    pad = " " * (indent + 4)
    cur = []
    for x in items:
        if cur and len(pad + ", ".join(cur + [x]) + ",") >= MAX_WIDTH:
            lines.append(pad + ", ".join(cur) + ",")
            cur = []
        cur.append(x)
    lines.append(pad + ", ".join(cur) + ",")
    lines.append(" " * indent + "]" + tail)
    return lines


def limbs(x):
    x %= p
    return [(x >> OFF[i]) & ((1 << W[i]) - 1) for i in range(10)]


def fe_const(name, x, doc):
    return [f"/// {doc}"] + array(0, f"pub const {name}: Fe = Fe(", [hex(v) for v in limbs(x)], ");")


def emit_mul():
    L = [
        "    /// self · rhs (reduced).",
        "    #[inline]",
        "    pub fn mul(&self, rhs: &Fe) -> Fe {",
        "        let [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9] = self.0.map(i64::from);",
        "        let [g0, g1, g2, g3, g4, g5, g6, g7, g8, g9] = rhs.0.map(i64::from);",
    ]
    L += [f"        let g{j}_19 = 19 * g{j};" for j in range(1, 10)]
    L += [f"        let f{i}_2 = 2 * f{i};" for i in (1, 3, 5, 7, 9)]
    for k, terms in enumerate(mul_terms()):
        L += chain(8, f"let h{k} = ", terms, ";")
    L += [
        "        Fe::carry_wide([h0, h1, h2, h3, h4, h5, h6, h7, h8, h9])",
        "    }",
    ]
    return L


def emit_square_columns():
    L = [
        "    /// The column sums of self² before the carry chain (`square`, `square2`).",
        "    #[inline(always)]",
        "    pub(super) fn square_columns(&self) -> [i64; 10] {",
        "        let [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9] = self.0.map(i64::from);",
    ]
    for k, coef in enumerate(sq_terms()):
        terms = [
            f"f{i} * f{j}" if c == 1 else f"f{i} * (f{j} * {c})"
            for (i, j), c in sorted(coef.items())
        ]
        L += chain(8, f"let h{k} = ", terms, ";")
    L += ["        [h0, h1, h2, h3, h4, h5, h6, h7, h8, h9]", "    }"]
    return L


def constants():
    d = (-121665 * pow(121666, p - 2, p)) % p
    sqrtm1 = pow(2, (p - 1) // 4, p)
    assert sqrtm1 * sqrtm1 % p == p - 1
    by = 4 * pow(5, p - 2, p) % p
    # x from y: x^2 = (y^2 - 1) / (d y^2 + 1)
    u = (by * by - 1) % p
    v = (d * by * by + 1) % p
    x2 = u * pow(v, p - 2, p) % p
    bx = pow(x2, (p + 3) // 8, p)
    if bx * bx % p != x2:
        bx = bx * sqrtm1 % p
    assert bx * bx % p == x2
    if bx & 1:
        bx = p - bx  # the base point has even x (sign bit 0)
    L = []
    L += fe_const("D", d, "d = −121665/121666, the curve constant.")
    L += fe_const("D2", 2 * d % p, "2·d.")
    L += fe_const("SQRT_M1", sqrtm1, "√−1 = 2^((p−1)/4).")
    L += fe_const("BASE_X", bx, "x of the base point B (even).")
    L += fe_const("BASE_Y", by, "y of the base point B = 4/5.")
    return L


def main():
    check()
    L = [
        "// @generated by scripts/gen-fe25519.py — do not edit by hand",
        "//! The generated part of the GF(2^255 − 19) arithmetic: the straight-line multiplication",
        "//! and squaring columns (ten limbs of alternately 26 and 25 bits; ×19 where the limb",
        "//! indices wrap past 10, ×2 where both are odd) and the curve constants. The limb bounds",
        "//! they rely on are in `field.rs`; the generator checks its coefficient rule against exact",
        "//! integers, and the unit tests check the results against big integers.",
        "",
        "use super::Fe;",
        "",
    ]
    L += constants()
    L += ["", "impl Fe {"]
    L += emit_mul()
    L += [""]
    L += emit_square_columns()
    L += ["}"]
    sys.stdout.write("\n".join(L) + "\n")


if __name__ == "__main__":
    main()
