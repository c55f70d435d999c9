#!/usr/bin/env python3
# Generator of the straight-line multiplication/squaring bodies and the constants in
# src/jose/ed25519_fast/field.rs: `scripts/gen-fe25519.py mul|sq|consts` prints Rust. It checks
# its coefficient rule against exact integers before printing.
# Generates the straight-line radix-2^25.5 multiplication and squaring for GF(2^255-19).
p = 2**255 - 19
OFF = [0, 26, 51, 77, 102, 128, 153, 179, 204, 230]
W = [26, 25] * 5

def mul_terms():
    # h_k = sum_i f_i g_j, j = (k - i) mod 10, x19 if i+j >= 10, x2 if i, j both odd
    out = []
    for k in range(10):
        terms = []
        for i in range(10):
            j = (k - i) % 10
            two = (i % 2 == 1 and j % 2 == 1)
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
    # verify the coefficient rule against exact integer arithmetic
    import random
    for _ in range(200):
        f = [random.randrange(-2**25, 2**25) for _ in range(10)]
        g = [random.randrange(-2**25, 2**25) for _ in range(10)]
        val = lambda l: sum(x << OFF[i] for i, x in enumerate(l)) % p
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
        for k, coef in enumerate(sq_terms()):
            hs.append(sum(c * f[i] * f[j] for (i, j), c in coef.items()))
        assert val(hs) == val(f) ** 2 % p
check()

def emit_mul():
    L = []
    L.append("let [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9] = self.0.map(i64::from);")
    L.append("let [g0, g1, g2, g3, g4, g5, g6, g7, g8, g9] = rhs.0.map(i64::from);")
    for j in range(1, 10):
        L.append(f"let g{j}_19 = 19 * g{j};")
    for i in (1, 3, 5, 7, 9):
        L.append(f"let f{i}_2 = 2 * f{i};")
    for k, terms in enumerate(mul_terms()):
        L.append(f"let h{k} = " + "\n    + ".join(terms) + ";")
    L.append("Fe::carry_wide([h0, h1, h2, h3, h4, h5, h6, h7, h8, h9])")
    return "\n".join(L)

def emit_sq():
    L = []
    L.append("let [f0, f1, f2, f3, f4, f5, f6, f7, f8, f9] = self.0.map(i64::from);")
    need = set()
    for coef in sq_terms():
        for (i, j), c in coef.items():
            need.add(c)
    # premultiplied forms: fX_c
    exprs = []
    for k, coef in enumerate(sq_terms()):
        terms = []
        for (i, j), c in sorted(coef.items()):
            if c == 1:
                terms.append(f"f{i} * f{j}")
            else:
                terms.append(f"{c} * f{i} * f{j}" if False else f"f{i} * (f{j} * {c})")
        exprs.append(f"let h{k} = " + "\n    + ".join(terms) + ";")
    L += exprs
    L.append("Fe::carry_wide([h0, h1, h2, h3, h4, h5, h6, h7, h8, h9])")
    return "\n".join(L)

def limbs(x):
    x %= p
    return [(x >> OFF[i]) & ((1 << W[i]) - 1) for i in range(10)]

def fe_const(name, x, doc):
    return f"/// {doc}\npub const {name}: Fe = Fe([{', '.join(hex(v) for v in limbs(x))}]);"

d = (-121665 * pow(121666, p - 2, p)) % p
sqrtm1 = pow(2, (p - 1) // 4, p)
assert sqrtm1 * sqrtm1 % p == p - 1
by = 4 * pow(5, p - 2, p) % p
# x from y: x^2 = (y^2 - 1) / (d y^2 + 1)
u = (by * by - 1) % p; v = (d * by * by + 1) % p
x2 = u * pow(v, p - 2, p) % p
bx = pow(x2, (p + 3) // 8, p)
if bx * bx % p != x2: bx = bx * sqrtm1 % p
assert bx * bx % p == x2
if bx & 1: bx = p - bx  # the base point has even x (sign bit 0)
import sys
which = sys.argv[1]
if which == "mul": print(emit_mul())
elif which == "sq": print(emit_sq())
elif which == "consts":
    print(fe_const("D", d, "d = −121665/121666, the curve constant."))
    print(fe_const("D2", 2 * d % p, "2·d."))
    print(fe_const("SQRT_M1", sqrtm1, "√−1 = 2^((p−1)/4)."))
    print(fe_const("BASE_X", bx, "x of the base point B (even)."))
    print(fe_const("BASE_Y", by, "y of the base point B = 4/5."))
