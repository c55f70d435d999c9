#!/usr/bin/env python3
"""Re-derives the limb bounds of the field arithmetic in crates/jose-verify by interval
analysis of the source itself, and checks every bound the code's comments document.

    python3 scripts/limb_bounds.py    # prints the table; exit status 1 on any violation,
                                      # 2 if the code no longer matches what it analyses

Python 3 standard library only. The script reads the Rust sources, parses the straight-line
field code with a small Rust-subset parser and evaluates it over intervals of exact integers.

- P-256 (`p256/field.rs`, `p256/point.rs`): every intermediate value of the column sums,
  Montgomery reduction and weak reduction is bounded and checked against its type (i64
  columns); the outputs against the documented output bounds. The script checks p, R mod p,
  R² mod p, b·R, 3·R and the zero forms; the 81-term product and 45-term square columns; the
  nine reduction rounds (the shifts must add up to p); the weak fold (it must add up to
  2^256 mod p); the bounds in the module docs and in the debug assertions.
- Ed25519 (`ed25519/field.rs`, `ed25519/point.rs`, `ed25519/mod.rs`): the field is
  fiat-crypto's verified 32-bit code (a dependency, correct by construction for inputs within
  its bounds), so what is checked is that our code only feeds fiat's functions inputs within
  fiat's documented bounds: the pinned version, and (when Cargo has its source here) the
  tight / loose bounds, the 2p of sub and opp, and the signatures it documents; which of our
  functions calls which fiat function; that limbs are made outside fiat only as zeroed
  out-parameters, the curve constants (values checked, canonical hence tight) and a masked
  swap; then the point formulas and the decoding, evaluated over per-limb intervals: every
  fiat operation's operands within the class it demands, every stored coordinate within its
  type's documented class.

The point formulas of both curves are evaluated over the documented bound classes: every
product, reduction and zero test is fed inputs within its precondition, and every point
coordinate stored satisfies the class the next formula assumes (an inductive check of the
whole contract). Loops that are not straight-line code (the P-256 `carry`, the `to_bytes`
normalisation) are modelled here, and their source text is checked to be what the model
assumes.
"""

import math
import os
import re
import sys
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "crates" / "jose-verify" / "src"
ED_FIELD = SRC / "ed25519" / "field.rs"
ED_POINT = SRC / "ed25519" / "point.rs"
ED_MOD = SRC / "ed25519" / "mod.rs"
P_FIELD = SRC / "p256" / "field.rs"
P_POINT = SRC / "p256" / "point.rs"
P_MOD = SRC / "p256" / "mod.rs"

I64 = (-(1 << 63), (1 << 63) - 1)

ROWS = []  # (section, item, bound found, limit, ok)
FAILURES = []


class AnalysisError(Exception):
    """The source is not what the analysis assumes: the script must be updated."""


def record(section, item, found, limit, ok):
    ROWS.append((section, item, found, limit, ok))
    if not ok:
        FAILURES.append(f"{section}: {item}: {found} (limit {limit})")


def log2(x):
    x = abs(x)
    if x == 0:
        return "0"
    return f"2^{math.log2(x):.3f}"


def require(cond, what):
    if not cond:
        raise AnalysisError(what)


# ------------------------------------------------------------------------------------------
# A Rust-subset tokenizer and parser
# ------------------------------------------------------------------------------------------

TOKEN = re.compile(
    r"""(?P<ws>\s+)
    |(?P<str>"(?:[^"\\]|\\.)*")
    |(?P<num>0x[0-9A-Fa-f_]+|\d[\d_]*(?:\.\d+)?(?![A-Za-z_]\w*\())(?P<suf>(?:i|u)(?:8|16|32|64|128|size)|f64)?
    |(?P<id>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<op><<=|>>=|\+=|-=|\*=|&=|\|=|\^=|::|<<|>>|==|!=|<=|>=|&&|\|\||=>|->|\.\.=|\.\.
        |[-+*/%&|^!~<>=()\[\]{},.;:#?@'$])""",
    re.VERBOSE,
)


def strip_comments(src):
    out = []
    for line in src.split("\n"):
        i = line.find("//")
        out.append(line if i < 0 else line[:i])
    return "\n".join(out)


def tokenize(src):
    src = strip_comments(src)
    toks = []
    pos = 0
    while pos < len(src):
        m = TOKEN.match(src, pos)
        if not m:
            raise AnalysisError(f"cannot tokenize at {src[pos:pos + 30]!r}")
        pos = m.end()
        if m.group("ws"):
            continue
        if m.group("str"):
            toks.append(("str", m.group("str")))
            continue
        if m.group("num"):
            text = m.group("num").replace("_", "")
            if "." in text:
                toks.append(("float", text))
            else:
                toks.append(("num", int(text, 0)))
        elif m.group("id"):
            toks.append(("id", m.group("id")))
        else:
            toks.append(("op", m.group("op")))
    toks.append(("eof", None))
    return toks


class Parser:
    def __init__(self, toks):
        self.t = toks
        self.i = 0

    def peek(self, k=0):
        return self.t[min(self.i + k, len(self.t) - 1)]

    def next(self):
        tok = self.t[self.i]
        self.i += 1
        return tok

    def at(self, kind, val=None, k=0):
        tok = self.peek(k)
        return tok[0] == kind and (val is None or tok[1] == val)

    def at_op(self, *ops):
        return self.peek()[0] == "op" and self.peek()[1] in ops

    def eat_op(self, op):
        if self.at_op(op):
            self.i += 1
            return True
        return False

    def expect_op(self, op):
        if not self.eat_op(op):
            raise AnalysisError(f"expected {op!r}, found {self.peek()} near {self.context()}")

    def expect_id(self, name=None):
        tok = self.next()
        if tok[0] != "id" or (name is not None and tok[1] != name):
            raise AnalysisError(f"expected identifier {name or ''}, found {tok}")
        return tok[1]

    def context(self):
        return " ".join(str(t[1]) for t in self.t[max(0, self.i - 8):self.i + 8])

    # -- types and patterns ---------------------------------------------------------------

    def skip_type(self):
        depth = 0
        while True:
            if depth == 0 and self.at_op("=", ";", ",", ")", "{", "else"):
                return
            if self.at("id", "else") and depth == 0:
                return
            tok = self.next()
            if tok[0] == "op" and tok[1] in ("<", "[", "("):
                depth += 1
            elif tok[0] == "op" and tok[1] in (">", "]", ")"):
                depth -= 1
            elif tok[0] == "op" and tok[1] == ">>":
                depth -= 2
            elif tok[0] == "eof":
                raise AnalysisError("end of input in a type")

    def pattern(self):
        if self.eat_op("&"):
            return self.pattern()
        if self.eat_op("["):
            items = []
            while not self.eat_op("]"):
                items.append(self.pattern())
                self.eat_op(",")
            return ("parr", items)
        if self.eat_op("("):
            items = []
            while not self.eat_op(")"):
                items.append(self.pattern())
                self.eat_op(",")
            return ("ptup", items)
        name = self.expect_id()
        if name == "mut":
            name = self.expect_id()
        if name in ("Some", "Ok") and self.at_op("("):
            self.expect_op("(")
            inner = self.pattern()
            self.expect_op(")")
            return inner
        return ("pvar", name)

    # -- statements -----------------------------------------------------------------------

    def block(self):
        self.expect_op("{")
        stmts = []
        while not self.eat_op("}"):
            stmts.append(self.statement())
        return ("block", stmts)

    def statement(self):
        attrs = []
        while self.at_op("#"):
            self.next()
            self.expect_op("[")
            depth, text = 1, []
            while depth:
                tok = self.next()
                if tok[1] == "[":
                    depth += 1
                elif tok[1] == "]":
                    depth -= 1
                if depth:
                    text.append(str(tok[1]))
            attrs.append("".join(text))
        st = self.statement_inner()
        if any(a.startswith("cfg(") for a in attrs):
            return ("skip", attrs, st)
        return st

    def statement_inner(self):
        if self.at("id", "let"):
            self.next()
            pat = self.pattern()
            if self.eat_op(":"):
                self.skip_type()
            value = None
            if self.eat_op("="):
                value = self.expr()
            els = None
            if self.at("id", "else"):
                self.next()
                els = self.block()
            self.expect_op(";")
            return ("let", pat, value, els)
        if self.at("id", "return"):
            self.next()
            value = None if self.at_op(";") else self.expr()
            self.expect_op(";")
            return ("return", value)
        if self.at("id", "for"):
            self.next()
            pat = self.pattern()
            self.expect_id("in")
            it = self.expr(no_struct=True)
            body = self.block()
            return ("for", pat, it, body)
        if self.at("id", "while"):
            self.next()
            cond = self.expr(no_struct=True)
            body = self.block()
            return ("while", cond, body)
        if self.at("id", "if") or self.at_op("{"):
            e = self.expr()
            if self.eat_op(";"):
                return ("expr", e)
            if self.at_op("}"):
                return ("tail", e)
            return ("expr", e)
        e = self.expr()
        for op in ("=", "+=", "-=", "*=", "|=", "&=", "^="):
            if self.eat_op(op):
                rhs = self.expr()
                self.expect_op(";")
                return ("assign", op, e, rhs)
        if self.eat_op(";"):
            return ("expr", e)
        if self.at_op("}"):
            return ("tail", e)
        raise AnalysisError(f"unexpected {self.peek()} near {self.context()}")

    # -- expressions ----------------------------------------------------------------------

    def expr(self, no_struct=False):
        e = self.binary(0, no_struct)
        if self.at_op("..", "..="):
            self.next()
            return ("range", e, self.binary(0, no_struct))
        return e

    LEVELS = [
        ("||",),
        ("&&",),
        ("==", "!=", "<", ">", "<=", ">="),
        ("|",),
        ("^",),
        ("&",),
        ("<<", ">>"),
        ("+", "-"),
        ("*", "/", "%"),
    ]

    def binary(self, level, no_struct):
        if level == len(self.LEVELS):
            return self.cast(no_struct)
        lhs = self.binary(level + 1, no_struct)
        while self.at_op(*self.LEVELS[level]):
            op = self.next()[1]
            rhs = self.binary(level + 1, no_struct)
            lhs = ("bin", op, lhs, rhs)
        return lhs

    def cast(self, no_struct):
        e = self.unary(no_struct)
        while self.at("id", "as"):
            self.next()
            ty = self.expect_id()
            e = ("cast", ty, e)
        return e

    def unary(self, no_struct):
        if self.eat_op("-"):
            return ("neg", self.unary(no_struct))
        if self.eat_op("!"):
            return ("not", self.unary(no_struct))
        if self.eat_op("&"):
            if self.at("id", "mut"):
                self.next()
            return ("ref", self.unary(no_struct))
        if self.eat_op("*"):
            return ("deref", self.unary(no_struct))
        return self.postfix(no_struct)

    def args(self, close=")"):
        items = []
        while not self.eat_op(close):
            items.append(self.expr())
            if not self.eat_op(","):
                self.expect_op(close)
                break
        return items

    def postfix(self, no_struct):
        e = self.primary(no_struct)
        while True:
            if self.eat_op("."):
                if self.at("num"):
                    e = ("field", e, str(self.next()[1]))
                    continue
                name = self.expect_id()
                if self.eat_op("::"):
                    self.expect_op("<")
                    self.skip_type()
                    self.expect_op(">")
                if self.eat_op("("):
                    e = ("method", e, name, self.args())
                else:
                    e = ("field", e, name)
            elif self.eat_op("["):
                idx = self.expr()
                self.expect_op("]")
                e = ("index", e, idx)
            elif self.eat_op("?"):
                e = ("try", e)
            else:
                return e

    def primary(self, no_struct):
        tok = self.peek()
        if tok[0] == "num":
            self.next()
            return ("num", tok[1])
        if tok[0] in ("float", "str"):
            self.next()
            return ("float", tok[1])
        if self.eat_op("("):
            if self.eat_op(")"):
                return ("tuple", [])
            first = self.expr()
            if self.eat_op(")"):
                return first
            items = [first]
            while self.eat_op(","):
                if self.at_op(")"):
                    break
                items.append(self.expr())
            self.expect_op(")")
            return ("tuple", items)
        if self.eat_op("["):
            if self.eat_op("]"):
                return ("array", [])
            first = self.expr()
            if self.eat_op(";"):
                count = self.expr()
                self.expect_op("]")
                return ("repeat", first, count)
            items = [first]
            while self.eat_op(","):
                if self.at_op("]"):
                    break
                items.append(self.expr())
            self.expect_op("]")
            return ("array", items)
        if self.at_op("|"):
            self.next()
            params = []
            while not self.eat_op("|"):
                params.append(self.pattern())
                self.eat_op(",")
            return ("closure", params, self.expr())
        if self.at_op("{"):
            return self.block()
        if tok[0] == "id" and tok[1] == "if":
            self.next()
            if self.at("id", "let"):
                self.next()
                pat = self.pattern()
                self.expect_op("=")
                cond = ("iflet", pat, self.expr(no_struct=True))
            else:
                cond = self.expr(no_struct=True)
            then = self.block()
            els = None
            if self.at("id", "else"):
                self.next()
                els = self.primary(False) if self.at("id", "if") else self.block()
            return ("if", cond, then, els)
        if tok[0] == "id":
            path = [self.expect_id()]
            while self.at_op("::") and self.peek(1)[0] == "id":
                self.next()
                path.append(self.expect_id())
            name = "::".join(path)
            if self.at_op("!"):
                # a macro call: keep its tokens unparsed
                self.next()
                opener = self.next()[1]
                closer = {"(": ")", "[": "]", "{": "}"}[opener]
                depth = 1
                while depth:
                    t = self.next()
                    if t[1] == opener:
                        depth += 1
                    elif t[1] == closer:
                        depth -= 1
                return ("macro", name)
            if self.eat_op("("):
                return ("call", name, self.args())
            if not no_struct and self.at_op("{") and name[:1].isupper():
                return self.struct_lit(name)
            return ("path", name)
        raise AnalysisError(f"unexpected {tok} near {self.context()}")

    def struct_lit(self, name):
        self.expect_op("{")
        fields = {}
        while not self.eat_op("}"):
            f = self.expect_id()
            if self.eat_op(":"):
                fields[f] = self.expr()
            else:
                fields[f] = ("path", f)
            if not self.eat_op(","):
                self.expect_op("}")
                break
        return ("struct", name, fields)


class Source:
    """A Rust file: its functions by (impl type, name), parsed on demand."""

    def __init__(self, path):
        self.path = path
        self.text = path.read_text()
        self.toks = tokenize(self.text)
        self.fns = {}
        self.consts = {}
        self.scan()

    def scan(self):
        toks = self.toks
        i, depth, impl_stack = 0, 0, []
        pending_impl = None
        pending_attrs = []
        while toks[i][0] != "eof":
            kind, val = toks[i]
            if kind == "op" and val == "#" and toks[i + 1][1] == "[":
                j, d, text = i + 2, 1, []
                while d:
                    if toks[j][1] == "[":
                        d += 1
                    elif toks[j][1] == "]":
                        d -= 1
                    if d:
                        text.append(str(toks[j][1]))
                    j += 1
                pending_attrs.append("".join(text))
                i = j
                continue
            if kind == "id" and val == "impl":
                j, names = i + 1, []
                while toks[j][1] != "{":
                    if toks[j][0] == "id":
                        names.append(toks[j][1])
                    j += 1
                pending_impl = names[-1]
                i = j
                continue
            if kind == "id" and val == "mod" and toks[i + 1][0] == "id" and toks[i + 2][1] == "{":
                pending_impl = f"mod {toks[i + 1][1]}"
                i += 2
                continue
            if kind == "id" and val == "fn":
                name = toks[i + 1][1]
                j = i + 2
                while toks[j][1] != "(":
                    j += 1
                params_start = j
                d = 0
                while True:
                    if toks[j][1] == "(":
                        d += 1
                    elif toks[j][1] == ")":
                        d -= 1
                        if d == 0:
                            break
                    j += 1
                params = self.params(params_start + 1, j)
                j += 1
                d = 0
                while d or toks[j][1] not in ("{", ";"):
                    if toks[j][1] in ("[", "(", "<"):
                        d += 1
                    elif toks[j][1] in ("]", ")", ">"):
                        d -= 1
                    elif toks[j][1] == ">>":
                        d -= 2
                    j += 1
                if toks[j][1] == "{":
                    body_start, d = j, 0
                    while True:
                        if toks[j][1] == "{":
                            d += 1
                        elif toks[j][1] == "}":
                            d -= 1
                            if d == 0:
                                break
                        j += 1
                    owner = impl_stack[-1] if impl_stack else None
                    key = (owner, name)
                    cfg_test = any(a == "cfg(test)" for a in pending_attrs)
                    if key in self.fns and not cfg_test:
                        raise AnalysisError(f"{self.path.name}: two functions {key}")
                    if not cfg_test:
                        self.fns[key] = (params, body_start, j + 1)
                    i = j + 1
                    pending_attrs = []
                    continue
            if kind == "id" and val == "const" and toks[i + 1][0] == "id":
                name = toks[i + 1][1]
                j = i + 2
                while toks[j][1] != "=":
                    j += 1
                start, d = j + 1, 0
                while not (toks[j][1] == ";" and d == 0):
                    if toks[j][1] in ("(", "[", "{"):
                        d += 1
                    elif toks[j][1] in (")", "]", "}"):
                        d -= 1
                    j += 1
                self.consts[name] = (start, j)
                i = j + 1
                pending_attrs = []
                continue
            if kind == "op" and val == "{":
                depth += 1
                impl_stack.append(pending_impl if pending_impl else (impl_stack[-1] if impl_stack else None))
                pending_impl = None
            elif kind == "op" and val == "}":
                depth -= 1
                impl_stack.pop()
            if kind == "op" and val in (";", "}"):
                pending_attrs = []
            i += 1

    def params(self, start, end):
        names, toks, i = [], self.toks, start
        while i < end:
            if toks[i][0] == "id" and toks[i][1] == "self":
                names.append("self")
            elif toks[i][0] == "id" and toks[i + 1][1] == ":" and toks[i][1] != "mut":
                names.append(toks[i][1])
                d = 0
                while i < end and not (toks[i][1] == "," and d == 0):
                    if toks[i][1] in ("<", "[", "("):
                        d += 1
                    elif toks[i][1] in (">", "]", ")"):
                        d -= 1
                    elif toks[i][1] == ">>":
                        d -= 2
                    i += 1
            i += 1
        return names

    def body(self, owner, name):
        if (owner, name) not in self.fns:
            raise AnalysisError(f"{self.path.name}: no function {owner}::{name}")
        params, start, end = self.fns[(owner, name)]
        p = Parser(self.toks[start:end] + [("eof", None)])
        return params, p.block()

    def const_expr(self, name):
        if name not in self.consts:
            raise AnalysisError(f"{self.path.name}: no const {name}")
        start, end = self.consts[name]
        return Parser(self.toks[start:end] + [("eof", None)]).expr()

    def const_ints(self, name):
        """An integer constant, or an array (of arrays) of them, or Fe([...])."""

        def ev(e):
            kind = e[0]
            if kind == "num":
                return e[1]
            if kind == "neg":
                return -ev(e[1])
            if kind == "array":
                return [ev(x) for x in e[1]]
            if kind == "call" and e[1] in ("Fe", "Tight"):
                return ev(e[2][0])
            if kind == "tuple":
                return [ev(x) for x in e[1]]
            if kind == "bin":
                a, b = ev(e[2]), ev(e[3])
                return {"<<": a << b, "-": a - b, "+": a + b, "*": a * b}[e[1]]
            raise AnalysisError(f"{self.path.name}: const {name}: not an integer constant")

        return ev(self.const_expr(name))

    def says(self, snippet):
        """The comments and code, comment markers and layout aside, contain `snippet`."""
        norm = lambda t: re.sub(r"\s+", " ", re.sub(r"//[/!]?", " ", t)).strip()
        return norm(snippet) in norm(self.text)

    def contains(self, snippet):
        """The code (comments and layout aside) contains `snippet`."""
        norm = lambda s: re.sub(r"\s+", "", strip_comments(s))
        return norm(snippet) in norm(self.text)


# ------------------------------------------------------------------------------------------
# Integer intervals and the straight-line evaluator of the field code
# ------------------------------------------------------------------------------------------


class Iv:
    """[lo, hi] of exact integers; `origin` marks a rounding carry c = (h + 2^(s−1)) >> s."""

    __slots__ = ("lo", "hi", "origin")

    def __init__(self, lo, hi=None, origin=None):
        self.lo = lo
        self.hi = lo if hi is None else hi
        self.origin = origin
        assert self.lo <= self.hi

    def __repr__(self):
        return f"[{self.lo}, {self.hi}]"

    def mag(self):
        return max(abs(self.lo), abs(self.hi))

    def __add__(self, o):
        return Iv(self.lo + o.lo, self.hi + o.hi)

    def __sub__(self, o):
        return Iv(self.lo - o.hi, self.hi - o.lo)

    def __mul__(self, o):
        c = [self.lo * o.lo, self.lo * o.hi, self.hi * o.lo, self.hi * o.hi]
        return Iv(min(c), max(c))

    def __neg__(self):
        return Iv(-self.hi, -self.lo)

    def shl(self, k):
        return Iv(self.lo << k, self.hi << k)

    def shr(self, k):
        return Iv(self.lo >> k, self.hi >> k)

    def mask(self, m):
        require(m & (m + 1) == 0, "masks are 2^k − 1")
        k = m.bit_length()
        if self.lo >> k == self.hi >> k:
            return Iv(self.lo & m, self.hi & m)
        return Iv(0, m)

    def hull(self, o):
        return Iv(min(self.lo, o.lo), max(self.hi, o.hi))

    def within(self, lo, hi):
        return lo <= self.lo and self.hi <= hi


class Straight:
    """Evaluates straight-line integer code over intervals, bounding every intermediate value
    (each must fit `ty`) and recording the largest magnitude reached."""

    def __init__(self, name, env, consts=None, ty=I64):
        self.name = name
        self.env = dict(env)
        self.consts = consts or {}
        self.ty = ty
        self.max_mag = 0
        self.versions = {}

    def check(self, v, what):
        self.max_mag = max(self.max_mag, v.mag())
        if not v.within(*self.ty):
            raise OverflowError(f"{self.name}: {what} = {v} overflows")
        return v

    def ev(self, e):
        kind = e[0]
        if kind == "num":
            return Iv(e[1])
        if kind == "path":
            if e[1] in self.env:
                return self.env[e[1]]
            if e[1] in self.consts:
                c = self.consts[e[1]]
                return c if isinstance(c, Iv) else Iv(c)
            raise AnalysisError(f"{self.name}: unknown name {e[1]}")
        if kind == "index":
            base = e[1]
            require(base[0] == "path" and base[1] in self.consts, f"{self.name}: index of {base}")
            idx = self.ev(e[2])
            require(idx.lo == idx.hi, "constant index")
            return Iv(self.consts[base[1]][idx.lo])
        if kind == "neg":
            return self.check(-self.ev(e[1]), "negation")
        if kind == "bin":
            op = e[1]
            a = self.ev(e[2])
            if op in ("<<", ">>"):
                k = self.ev(e[3])
                require(k.lo == k.hi and 0 <= k.lo < 64, f"{self.name}: shift by a constant")
                return self.check(a.shl(k.lo) if op == "<<" else a.shr(k.lo), f"{op} {k.lo}")
            b = self.ev(e[3])
            if op == "+":
                return self.check(a + b, "sum")
            if op == "-":
                return self.check(a - b, "difference")
            if op == "*":
                return self.check(a * b, "product")
            if op == "&":
                require(b.lo == b.hi, "mask by a constant")
                return a.mask(b.lo)
            raise AnalysisError(f"{self.name}: operator {op}")
        raise AnalysisError(f"{self.name}: cannot evaluate {kind}")

    def rounding_carry(self, e):
        """(h, s) when e is (h + (1 << (s − 1))) >> s for a variable h."""
        if e[0] == "bin" and e[1] == ">>" and e[3][0] == "num":
            s = e[3][1]
            inner = e[2]
            if inner[0] == "bin" and inner[1] == "+" and inner[2][0] == "path":
                half = inner[3]
                if half[0] == "bin" and half[1] == "<<" and half[2] == ("num", 1) and half[3] == ("num", s - 1):
                    return inner[2][1], s
        return None

    def assign(self, name, value):
        self.env[name] = value
        self.versions[name] = self.versions.get(name, 0) + 1

    def run(self, stmts):
        for st in stmts:
            kind = st[0]
            if kind == "skip":
                continue
            if kind == "let":
                pat, value = st[1], st[2]
                if value is None:
                    continue
                if pat[0] == "pvar":
                    v = self.ev(value)
                    rc = self.rounding_carry(value)
                    if rc:
                        v.origin = (rc[0], self.versions.get(rc[0], 0), rc[1])
                    self.assign(pat[1], v)
                elif pat[0] == "parr" and value[0] == "array":
                    for p, x in zip(pat[1], value[1]):
                        self.assign(p[1], self.ev(x))
                else:
                    raise AnalysisError(f"{self.name}: let {pat}")
            elif kind == "assign":
                op, lhs, rhs = st[1], st[2], st[3]
                require(lhs[0] == "path", f"{self.name}: assignment target {lhs}")
                name = lhs[1]
                if op == "=":
                    v = self.ev(rhs)
                    rc = self.rounding_carry(rhs)
                    if rc:
                        v = Iv(v.lo, v.hi, (rc[0], self.versions.get(rc[0], 0), rc[1]))
                    self.assign(name, v)
                    continue
                cur = self.env[name]
                # h −= c << s right after c = (h + 2^(s−1)) >> s: h − round(h / 2^s)·2^s
                if op == "-=" and rhs[0] == "bin" and rhs[1] == "<<" and rhs[2][0] == "path":
                    c = self.env.get(rhs[2][1])
                    s = self.ev(rhs[3]).lo
                    if c is not None and c.origin == (name, self.versions.get(name, 0), s):
                        self.assign(name, self.round_remainder(cur, s))
                        continue
                r = self.ev(rhs)
                v = cur + r if op == "+=" else cur - r if op == "-=" else None
                require(v is not None, f"{self.name}: {op}")
                self.assign(name, self.check(v, f"{name} {op} …"))
            elif kind in ("expr", "tail"):
                continue
            else:
                raise AnalysisError(f"{self.name}: statement {kind}")

    @staticmethod
    def round_remainder(h, s):
        half = 1 << (s - 1)
        c_lo, c_hi = (h.lo + half) >> s, (h.hi + half) >> s
        if c_lo == c_hi:
            return Iv(h.lo - (c_lo << s), h.hi - (c_lo << s))
        return Iv(-half, half - 1)


def fn_stmts(src, owner, name):
    params, body = src.body(owner, name)
    return params, body[1]


# ------------------------------------------------------------------------------------------
# Ed25519: GF(2^255 − 19) on fiat-crypto's verified curve25519_32 code
# ------------------------------------------------------------------------------------------

ED_P = 2**255 - 19
FIAT_VERSION = "0.2.9"
ED_WIDTHS = [26 - i % 2 for i in range(10)]
ED_OFFS = [math.ceil(25.5 * i) for i in range(10)]
# fiat's documented bounds (inclusive) of its two field-element types, and the 2p ("balance")
# that its sub and opp add so that nothing goes below zero
FIAT_TIGHT = [1 << w for w in ED_WIDTHS]
FIAT_LOOSE = [3 << w for w in ED_WIDTHS]
FIAT_BALANCE = [0x7FFFFDA] + [0x3FFFFFE if i % 2 else 0x7FFFFFE for i in range(1, 10)]
# the fiat functions our field.rs calls: (arguments' classes, result class)
FIAT_SIGS = {
    "carry_mul": (["tight_out", "loose", "loose"]),
    "carry_square": (["tight_out", "loose"]),
    "carry": (["tight_out", "loose"]),
    "add": (["loose_out", "tight", "tight"]),
    "sub": (["loose_out", "tight", "tight"]),
    "opp": (["loose_out", "tight"]),
    "relax": (["loose_out", "tight"]),
    "to_bytes": (["bytes_out", "tight"]),
    "from_bytes": (["tight_out", "bytes"]),
}
# which of our functions wraps which fiat function (every other function calls none)
ED_WRAPPERS = {
    (None, "mul_loose"): "carry_mul",
    (None, "square_loose"): "carry_square",
    ("FeLoose", "carry"): "carry",
    ("Fe", "add"): "add",
    ("Fe", "sub"): "sub",
    ("Fe", "neg"): "opp",
    ("Fe", "loose"): "relax",
    ("Fe", "to_bytes"): "to_bytes",
    ("Fe", "from_bytes"): "from_bytes",
}


def fiat_source():
    """curve25519_32.rs of the pinned fiat-crypto, if Cargo has it on this machine."""
    homes = [Path(os.environ["CARGO_HOME"])] if os.environ.get("CARGO_HOME") else []
    homes.append(Path.home() / ".cargo")
    for home in homes:
        for p in sorted((home / "registry" / "src").glob(f"*/fiat-crypto-{FIAT_VERSION}/src/curve25519_32.rs")):
            return p
    return None


def ed25519_fiat():
    """The pinned crate, and (when its source is here) the bounds and signatures it
    documents: the classes this analysis assumes are fiat's own."""
    sec = "ed25519 fiat-crypto"
    toml = (ROOT / "crates" / "jose-verify" / "Cargo.toml").read_text()
    pinned = re.search(r'^fiat-crypto = \{ version = "=([0-9.]+)"', toml, re.M)
    require(pinned is not None, "jose-verify/Cargo.toml pins fiat-crypto (version = \"=x.y.z\")")
    record(sec, "jose-verify pins fiat-crypto", pinned.group(1), f"= {FIAT_VERSION}", pinned.group(1) == FIAT_VERSION)
    src = fiat_source()
    if src is None:
        record(sec, f"fiat-crypto {FIAT_VERSION} source (not in the Cargo registry here: bounds as documented)",
               "not checked", "", True)
        return
    text = src.read_text()

    def bounds(ty):
        m = re.search(r"/\*\* The type fiat_25519_" + ty + r"_field_element .*?\*/\s*/\*\* Bounds: \[(.*?)\] \*/", text, re.S)
        require(m is not None, f"fiat {ty} bounds")
        pairs = re.findall(r"\[0x0 ~> (0x[0-9a-f]+)\]", m.group(1))
        return [int(x, 16) for x in pairs]

    for ty, want in (("tight", FIAT_TIGHT), ("loose", FIAT_LOOSE)):
        got = bounds(ty)
        record(sec, f"{ty} bounds documented by fiat = the script's", ", ".join(hex(x) for x in got[:2]) + ", …",
               "= " + ", ".join(hex(x) for x in want[:2]) + ", …", got == want)
    bal = re.search(r"balance = \[(.*?)\]", text)
    got = [int(x, 16) for x in re.findall(r"0x[0-9a-f]+", bal.group(1))] if bal else []
    record(sec, "balance (2p) of sub / opp", "2p" if sum(b << o for b, o in zip(got, ED_OFFS)) == 2 * ED_P else "?",
           "= 2p", got == FIAT_BALANCE)
    for i, b in enumerate(FIAT_BALANCE):
        ok = f"((0x{b:x} + (arg1[{i}])) - (arg2[{i}]))" in text and f"(0x{b:x} - (arg1[{i}]))" in text
        require(ok, f"fiat sub/opp limb {i}: balance + a − b / balance − a")
    types = {"tight_out": "&mut fiat_25519_tight_field_element", "loose_out": "&mut fiat_25519_loose_field_element",
             "bytes_out": "&mut [u8; 32]", "tight": "&fiat_25519_tight_field_element",
             "loose": "&fiat_25519_loose_field_element", "bytes": "&[u8; 32]"}
    for name, args in FIAT_SIGS.items():
        params = ", ".join(f"{'out1' if k == 0 else f'arg{k}'}: {types[a]}" for k, a in enumerate(args))
        sig = f"pub fn fiat_25519_{name}({params})"
        record(sec, f"fiat_25519_{name}: ({', '.join(args[1:])}) → {args[0][:-4]}", "as assumed" if sig in text else "differs",
               "", sig in text)
    fb = "arg1: [[0x0 ~> 0xff], " in text and "[0x0 ~> 0xff], [0x0 ~> 0x7f]]" in text
    record(sec, "fiat_25519_from_bytes: last byte ≤ 0x7f (its input bound)", "documented" if fb else "?", "", fb)


def ed25519_field():
    field = Source(ED_FIELD)
    sec = "ed25519 field"
    # the documented classes are fiat's
    require(field.says("[`Fe`] is *tight*: limbs in [0, 2^26] (even i) and [0, 2^25] (odd i)"), "tight bound in the docs")
    require(field.says("[`FeLoose`] is *loose*: limbs in [0, 3·2^26] / [0, 3·2^25]"), "loose bound in the docs")
    # the wrappers: the field's only fields are fiat's types, private to field.rs (nothing
    # else can make limbs), and each fiat function is called where the table says
    require(field.contains("pub struct Fe(Tight);") and field.contains("pub struct FeLoose(Loose);"),
            "Fe and FeLoose wrap fiat's tight / loose types in a private field")
    require(field.contains("fiat_25519_loose_field_element as Loose") and field.contains("fiat_25519_tight_field_element as Tight"),
            "Loose / Tight are fiat's types")
    calls = {}
    for key, (_, a, b) in field.fns.items():
        t = field.toks[a:b]
        for i in range(len(t) - 1):
            if t[i][0] == "id" and t[i][1].startswith("fiat_25519_") and t[i + 1] == ("op", "("):
                calls.setdefault(key, []).append(t[i][1][len("fiat_25519_"):])
    want = {k: [v] for k, v in ED_WRAPPERS.items()}
    got = {k: v for k, v in calls.items()}
    record(sec, "fiat functions called, and by which function", f"{sum(map(len, got.values()))} calls",
           "as listed", got == want)
    if got != want:
        FAILURES.append(f"{sec}: fiat calls {got}, expected {want}")
    # limbs made outside fiat: zeroed outputs, the constants, cswap's masked swap
    toks = field.toks
    made = []
    for i in range(len(toks) - 1):
        if toks[i][0] == "id" and toks[i][1] in ("Tight", "Loose") and toks[i + 1] == ("op", "("):
            zero = toks[i + 2:i + 7] == [("op", "["), ("num", 0), ("op", ";"), ("num", 10), ("op", "]")]
            made.append(zero)
    consts = [n for n in field.consts if n in ("D", "D2", "SQRT_M1", "BASE_X", "BASE_Y", "ONE")]
    record(sec, "limbs made outside fiat: zeroed out-parameters, ZERO, and the constants below",
           f"{sum(made)} zeroed, {len(made) - sum(made)} constants", "", len(made) - sum(made) == len(consts))
    for key, (_, a, b) in field.fns.items():
        t = field.toks[a:b]
        uses = any(x == ("id", "limbs_mut") for x in t)
        require(not uses or key in ((None, "cswap"),), f"field.rs: {key} uses limbs_mut (only cswap may)")
    for path in (ED_POINT, ED_MOD, SRC / "ed25519" / "scalar_mul.rs"):
        require(("id", "limbs_mut") not in Source(path).toks, f"{path.name} uses limbs_mut (only field.rs' cswap may)")
        for ty in ("Tight", "Loose", "fiat_25519_tight_field_element", "fiat_25519_loose_field_element"):
            require(("id", ty) not in Source(path).toks, f"{path.name} names fiat's {ty}")
    require(field.contains("let t = (*x ^ *y) & m; *x ^= t; *y ^= t;"), "cswap is a masked swap (each result one of its inputs)")
    record(sec, "cswap: a masked swap of two values of one type (the class is kept)", "parsed", "", True)
    require(field.contains("*top &= 0x7f; // fiat's input bound: the last byte ≤ 0x7f")
            and field.contains("fiat_25519_from_bytes(&mut out, &bytes);"), "from_bytes masks the top bit first")
    record(sec, "from_bytes: the last byte masked to ≤ 0x7f before fiat_25519_from_bytes", "parsed", "", True)

    def value(ls):
        return sum(x * (1 << o) for x, o in zip(ls, ED_OFFS))

    # the curve constants: values and limb ranges (canonical, hence tight)
    d = (-121665 * pow(121666, -1, ED_P)) % ED_P
    sqrt_m1 = pow(2, (ED_P - 1) // 4, ED_P)
    by = 4 * pow(5, -1, ED_P) % ED_P
    consts = {}
    for name, want_v in [("D", d), ("D2", 2 * d % ED_P), ("SQRT_M1", sqrt_m1), ("BASE_Y", by), ("BASE_X", None), ("ONE", 1)]:
        ls = field.const_ints(name)
        consts[name] = ls
        v = value(ls)
        ok = len(ls) == 10 and all(0 <= x < (1 << w) for x, w in zip(ls, ED_WIDTHS)) and v < ED_P
        if want_v is not None:
            ok = ok and v == want_v
        else:
            x = v
            y = by
            ok = ok and (-x * x + y * y - 1 - d * x * x * y * y) % ED_P == 0 and x % 2 == 0
        record(sec, f"constant {name}: value, canonical (tight) limbs", "ok" if ok else "wrong", "", ok)
    require(field.contains("pub const ZERO: Fe = Fe(Tight([0; 10]));"), "Fe::ZERO")
    consts["ZERO"] = [0] * 10
    return {"consts": consts}


# ------------------------------------------------------------------------------------------
# P-256: nine signed 29-bit limbs in i64, Montgomery R = 2^261
# ------------------------------------------------------------------------------------------

P256 = 2**256 - 2**224 + 2**192 + 2**96 - 1
B256 = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
R261 = 2**261
T_SQ = 2**515  # T = 2^257.5: V < T ⟺ V² < 2^515 (V ≥ 0)
T_FLOOR = math.isqrt(T_SQ)  # the largest integer below T
M29 = (1 << 29) - 1


def limbs29(v):
    return [(v >> (29 * i)) & M29 if i < 8 else v >> (29 * 8) for i in range(9)]


def val29(ls):
    return sum(x << (29 * i) for i, x in enumerate(ls))


def carry29(ls):
    """The `carry` of field.rs: limbs 0..7 into [0, 2^29), the top limb keeps the rest."""
    out, c = list(ls), 0
    for i in range(9):
        x = out[i] + c
        if i == 8:
            out[i] = x
        else:
            out[i] = x & M29
            c = x >> 29
    return out


def p256_field():
    field = Source(P_FIELD)
    sec = "p256 field"
    require(field.const_ints("M29") == M29, "M29 = 2^29 − 1")
    require(field.contains("""fn carry(a: &[i64; 9]) -> [i64; 9] { let mut out = *a; let mut c: i64 = 0;
        for (i, o) in out.iter_mut().enumerate() { let x = *o + c;
        if i == 8 { *o = x; } else { *o = x & M29; c = x >> 29; } } out }"""), "carry() is the modelled loop")

    # the constants
    checks = [
        ("P29", limbs29(P256)),
        ("ONE_M", limbs29(R261 % P256)),
        ("R2", limbs29(R261 * R261 % P256)),
        ("B_M", limbs29(B256 * R261 % P256)),
        ("THREE_M", limbs29(3 * R261 % P256)),
    ]
    for name, want in checks:
        got = field.const_ints(name)
        record(sec, f"constant {name}", "ok" if got == want else f"{got}", "", got == want)
    zf = field.const_ints("ZERO_FORMS")
    want = [carry29(limbs29(0)), carry29(limbs29(P256)), carry29(limbs29(2 * P256)),
            carry29([-x for x in limbs29(P256)]), carry29([-x for x in limbs29(2 * P256)])]
    record(sec, "ZERO_FORMS = normal forms of 0, p, 2p, −p, −2p", "ok" if zf == want else "wrong", "", zf == want)

    # the documented bounds and their assertions
    for snippet in [
        "need w(a)·w(b) ≤ 3.5 and v(a)·v(b) ≤ 3.3",
        "[`Fe::weak`] needs |V| ≤ 8T and returns limbs in (−0.09, 1.09)·2^29, the top limb in [0, 2^24), and V ∈ (−2^229, 2^256 + 2^229)",
        "[`Fe::is_zero`] needs |V| < 3p",
        "V = (ab + m·p)/R + p lies in [0, T) with limbs 0..7 in [0, 2^29)",
    ]:
        require(field.says(snippet), f"field.rs docs: {snippet!r}")
    for snippet in [
        'debug_assert!(w(a) * w(b) <= 3.5 * 2f64.powi(58), "mul limb bound");',
        "approx(a).abs() * approx(b).abs() <= 3.3 * t2,",
        "let t2 = 2f64.powi(515);",
        "approx(&self.0).abs() < 2.95 * 2f64.powi(256),",
        "approx(&self.0).abs() <= 8.0 * 2f64.powf(257.5),",
        "-9 << 29 < 100 * x && 100 * x < 109 << 29",
        "r.get(8).is_some_and(|t| (0..1 << 24).contains(t))",
    ]:
        require(field.contains(snippet), f"field.rs assertion: {snippet!r}")
    record(sec, "is_zero's assertion bound 2.95·2^256 < 3p", "2.95·2^256", "< 3p", 295 * 2**256 < 300 * P256)

    # the product: inputs with |a_i|·|b_j| ≤ 3.5·2^58 (any split of w(a)·w(b) ≤ 3.5)
    wprod = 35 * 2**58 // 10
    a_b = math.isqrt(wprod)
    inputs = [Iv(-a_b, a_b) for _ in range(9)]

    def product_columns(fname):
        _, stmts = fn_stmts(field, None, fname)
        ev = Straight(f"{fname} columns", {})
        for st in stmts:
            if st[0] != "let":
                continue
            pat, value = st[1], st[2]
            if pat[0] == "parr" and value[0] == "deref":
                for p in pat[1]:
                    ev.assign(p[1], inputs[int(p[1][1:])])
            elif pat[0] == "parr" and value[0] == "array":
                ev.run([st])
            else:
                ev.run([st])
        return [ev.env[f"t{k}"] for k in range(17)], ev.max_mag

    # the 81 products: every a_i·b_j exactly once, in column i + j
    _, mstmts = fn_stmts(field, None, "mont_mul")
    for st in mstmts:
        if st[0] == "let" and st[1][0] == "pvar" and st[1][1].startswith("t"):
            k = int(st[1][1][1:])
            terms = []

            def flat(e):
                if e[0] == "bin" and e[1] == "+":
                    flat(e[2])
                    flat(e[3])
                else:
                    terms.append(e)

            flat(st[2])
            pairs = sorted((int(t[2][1][1:]), int(t[3][1][1:])) for t in terms)
            require(pairs == [(i, k - i) for i in range(9) if 0 <= k - i < 9], f"mont_mul t{k}")
    record(sec, "mont_mul columns: a_i·b_j in column i + j (parsed)", "81 terms", "", True)

    # the reduction rounds: m·p added at limb r, with p = 2^256 − 2^224 + 2^192 + 2^96 − 1
    _, red = fn_stmts(field, None, "mont_reduce")
    rounds, cur = [], None
    for st in red:
        if st[0] == "let" and st[1] == ("pvar", "m"):
            v = st[2]
            require(v[0] == "bin" and v[1] == "&" and v[3] == ("path", "M29"), "m = t_r & M29")
            cur = {"r": int(v[2][1][1:]), "adds": []}
            rounds.append(cur)
        elif st[0] == "assign" and cur is not None:
            tgt = int(st[2][1][1:])
            rhs = st[3]
            if rhs[0] == "bin" and rhs[1] == ">>":
                require(rhs[2] == ("path", f"t{cur['r']}") and rhs[3] == ("num", 29) and tgt == cur["r"] + 1 and st[1] == "+=",
                        "t_{r+1} += t_r >> 29")
                cur["carry"] = True
            else:
                require(rhs[0] == "bin" and rhs[1] == "<<" and rhs[2] == ("path", "m"), "t_k ±= m << s")
                sign = 1 if st[1] == "+=" else -1
                cur["adds"].append(sign * (1 << (29 * (tgt - cur["r"]) + rhs[3][1])))
    require([r["r"] for r in rounds] == list(range(9)), "nine rounds on t0 … t8")
    for r in rounds:
        require(r.get("carry") and sum(r["adds"]) - 1 == P256, f"round {r['r']}: the shifts add up to p")
    record(sec, "mont_reduce: nine rounds, each adds m·p·2^(29r) (parsed shifts sum to p)", "ok", "", True)
    require(field.contains("carry(&[t9 + P29[0], t10 + P29[1], t11 + P29[2], t12 + P29[3], t13 + P29[4], t14 + P29[5], t15 + P29[6], t16 + P29[7], P29[8],])"),
            "mont_reduce ends with carry(columns 9..16 + p)")

    p29 = field.const_ints("P29")
    for fname in ("mont_mul", "mont_sqr"):
        cols, mag = product_columns(fname)
        colmax = max(c.mag() for c in cols)
        record(sec, f"{fname}, w(a)·w(b) ≤ 3.5: largest column", log2(colmax), "< 2^63", colmax < 2**63)
        env = {f"t{k}": c for k, c in enumerate(cols)}
        ev = Straight(f"{fname} reduction", env, consts={"M29": M29})
        require(red[0][0] == "let" and red[0][2] == ("path", "t"), "mont_reduce destructures t")
        ev.run([s for s in red[1:] if s[0] in ("let", "assign")])
        record(sec, f"{fname}: largest value in the reduction rounds", log2(max(ev.max_mag, mag)), "< 2^63",
               max(ev.max_mag, mag) < 2**63)
        top = [ev.env[f"t{k}"] + Iv(p29[k - 9]) for k in range(9, 17)] + [Iv(p29[8])]
        c = Iv(0)
        worst = 0
        for i in range(9):
            x = top[i] + c
            worst = max(worst, x.mag())
            c = x.shr(29)
        record(sec, f"{fname}: final carry chain", log2(worst), "< 2^63", worst < 2**63)

    # the value: V = (ab + m·p)/R + p with |ab| ≤ 3.3·T², 0 ≤ m < R
    ab = Fraction(33, 10) * T_SQ
    v_lo = P256 - ab / R261
    v_hi = (ab + (R261 - 1) * P256) / R261 + P256
    ok = v_lo >= 0 and v_hi * v_hi < T_SQ
    record(sec, "mul/sqr value: V ∈ [p − 3.3·T²/R, 2p + 3.3·T²/R)", f"[{float(v_lo / P256):.4f}p, {float(v_hi / P256):.4f}p]",
           "⊂ [0, T = 2.828p)", ok)

    # weak: |V| ≤ 8T; carry gives l8 = ⌊V / 2^232⌋, h = ⌊V / 2^256⌋ folded back
    _, wk = fn_stmts(field, "Fe", "weak")
    require(field.contains("let [l0, l1, l2, l3, l4, l5, l6, l7, l8] = carry(&self.0);"), "weak carries first")
    v8 = 8 * T_FLOOR  # |V| ≤ 8T (integers)
    env = {f"l{i}": Iv(0, M29) for i in range(8)}
    env["l8"] = Iv((-v8) >> 232, v8 >> 232)
    ev = Straight("weak", env, consts={"M29": M29})
    ev.run([s for s in wk if s[0] == "let" and s[1] == ("pvar", "h")])
    h = ev.env["h"]
    # the output limbs, from the parsed array
    arr = [s for s in wk if s[0] == "let" and s[1] == ("pvar", "r")]
    require(arr and arr[0][2][0] == "array", "weak builds `let r = [...]`")
    outs = [ev.ev(x) for x in arr[0][2][1]]
    # the fold must be 2^256 ≡ 2^224 − 2^192 − 2^96 + 1
    fold = 0
    for i, x in enumerate(arr[0][2][1]):
        if x[0] == "bin" and x[1] in ("+", "-") and x[2] == ("path", f"l{i}"):
            term = x[3]
            sign = 1 if x[1] == "+" else -1
            if term == ("path", "h"):
                fold += sign << (29 * i)
            else:
                require(term[0] == "bin" and term[1] == "<<" and term[2] == ("path", "h"), "h << s")
                fold += sign << (29 * i + term[3][1])
    require(fold == 2**224 - 2**192 - 2**96 + 1 and (2**256 - fold) % P256 == 0, "weak folds 2^256 ≡ 2^224 − 2^192 − 2^96 + 1")
    require(arr[0][2][1][8] == ("bin", "&", ("path", "l8"), ("bin", "-", ("bin", "<<", ("num", 1), ("num", 24)), ("num", 1))),
            "weak keeps l8 mod 2^24")
    lo_ok = all(100 * o.lo > -9 * 2**29 and 100 * o.hi < 109 * 2**29 for o in outs[:8])
    record(sec, "weak, |V| ≤ 8T: h = ⌊V/2^256⌋", f"{h}", "|h| ≤ 2^4.5", h.mag() <= 23)
    worst = max(Fraction(max(-o.lo, o.hi - M29, 0), 2**29) for o in outs[:8])
    record(sec, "weak: limbs 0..7 beyond [0, 2^29) by at most", f"{float(worst):.4f}·2^29", "< 0.09·2^29", lo_ok)
    record(sec, "weak: top limb", f"{outs[8]}", "⊂ [0, 2^24)", outs[8].within(0, (1 << 24) - 1))
    out_lo = h.lo * fold if h.lo < 0 else 0
    out_hi = 2**256 - 1 + max(h.hi, 0) * fold
    ok = -(2**229) < out_lo and out_hi < 2**256 + 2**229
    record(sec, "weak: V out", f"({log2(out_lo)} below 0, 2^256 + {log2(out_hi - 2**256)})", "(−2^229, 2^256 + 2^229)", ok)

    classes = {
        # class M (documented): limbs 0..7 in [0, 2^29), V ∈ [0, T)
        "M": PClass(0, M29, 0, T_FLOOR),
        # class W (documented): limbs (−0.09, 1.09)·2^29, V ∈ (−2^229, 2^256 + 2^229)
        "W": PClass(-(9 * 2**29 // 100), 109 * 2**29 // 100, -(2**229) + 1, 2**256 + 2**229 - 1),
    }
    classes["C"] = classes["M"].hull(classes["W"])
    return classes, field


# ------------------------------------------------------------------------------------------
# The point formulas over the bound classes
# ------------------------------------------------------------------------------------------


class PClass:
    """A P-256 field value: every limb in [llo, lhi], V in [vlo, vhi] (exact integers)."""

    def __init__(self, llo, lhi, vlo, vhi):
        self.llo, self.lhi, self.vlo, self.vhi = llo, lhi, vlo, vhi

    def hull(self, o):
        return PClass(min(self.llo, o.llo), max(self.lhi, o.lhi), min(self.vlo, o.vlo), max(self.vhi, o.vhi))

    def within(self, o):
        return o.llo <= self.llo and self.lhi <= o.lhi and o.vlo <= self.vlo and self.vhi <= o.vhi

    def w(self):
        return max(-self.llo, self.lhi)

    def v(self):
        return max(-self.vlo, self.vhi)

    def __repr__(self):
        return f"[w {self.w() / 2**29:.3f}, v {self.v() / 2**257.5:.3f}]"

    @staticmethod
    def const(ls):
        return PClass(min(ls), max(ls), val29(ls), val29(ls))


class EClass:
    """An Ed25519 field value: limb i in [lo_i, hi_i]."""

    def __init__(self, ivs):
        self.ivs = list(ivs)

    def hull(self, o):
        return EClass(a.hull(b) for a, b in zip(self.ivs, o.ivs))

    def within(self, o):
        return all(a.within(b.lo, b.hi) for a, b in zip(self.ivs, o.ivs))

    def __repr__(self):
        return "[" + ", ".join(f"{a.mag() / (1 << (25 - i % 2)):.2f}" for i, a in enumerate(self.ivs)) + "]"


class Struct:
    def __init__(self, ty, fields):
        self.ty = ty
        self.fields = fields

    def hull(self, o):
        require(self.ty == o.ty, f"join of {self.ty} and {o.ty}")
        return Struct(self.ty, {k: join(v, o.fields[k]) for k, v in self.fields.items()})


class Opaque:
    """A value the analysis does not track (booleans, integers, scalars)."""

    def hull(self, o):
        return self


def join(a, b):
    if a is None or isinstance(a, Opaque):
        return b if b is not None else a
    if b is None or isinstance(b, Opaque):
        return a
    if isinstance(a, list) or isinstance(b, list):
        return a
    return a.hull(b)


class Checks:
    """Records each precondition check of the point formulas: the worst case per site."""

    def __init__(self, section):
        self.section = section
        self.sites = {}

    def add(self, site, found, limit, ok, note=""):
        prev = self.sites.get(site)
        worse = prev is None or (prev[2] and not ok)
        if not worse and prev[2] == ok and found is not None and found > prev[0]:
            worse = True
        if worse:
            self.sites[site] = (found, limit, ok, note)

    def flush(self):
        for site, (found, limit, ok, note) in sorted(self.sites.items()):
            if found is None:
                record(self.section, site, note, "", ok)
            else:
                record(self.section, site, f"{found:.4f}{note}", f"≤ {limit}", ok)


class Interp:
    """Evaluates function bodies of a source over field-value classes: method calls on field
    values are the domain's operations (each checking its precondition), calls of the
    source's own functions are evaluated, struct literals are built (and checked against the
    declared class of their type's fields)."""

    def __init__(self, domain, sources, contracts, checks):
        self.domain = domain
        self.sources = sources
        self.contracts = contracts
        self.checks = checks
        self.depth = 0
        self.built = {}

    def report_built(self, describe):
        """The largest bound each stored coordinate is built with, against its contract."""
        for ty in sorted(self.built):
            for f, v in self.built[ty].items():
                c = self.contracts[ty][f]
                record(self.checks.section, f"built {ty}.{f} (contract {describe(c)})", describe(v), "", v.within(c))

    def find(self, owner, name):
        for s in self.sources:
            if (owner, name) in s.fns:
                return s
        raise AnalysisError(f"no function {owner}::{name}")

    def call(self, owner, name, args, site_prefix=None):
        src = self.find(owner, name)
        params, body = src.body(owner, name)
        require(len(params) == len(args), f"{owner}::{name}: {len(params)} parameters")
        env = dict(zip(params, args))
        self.depth += 1
        require(self.depth < 30, "recursion")
        frame = Frame(self, env, f"{owner}::{name}" if owner else name)
        result = frame.run_block(body)
        self.depth -= 1
        return result

    def check_struct(self, ty, fields, where):
        contract = self.contracts.get(ty)
        if contract is None:
            return
        for f, v in fields.items():
            if f in contract:
                self.built.setdefault(ty, {})[f] = join(self.built.get(ty, {}).get(f), v)
        bad = [f for f, v in fields.items() if f in contract and not v.within(contract[f])]
        names = ", ".join(f for f in fields if f in contract)
        self.checks.add(f"{where}: stores {ty} {{{names}}} within its contract", None, "", not bad,
                        f"{', '.join(bad)} outside" if bad else "yes")


class Frame:
    def __init__(self, interp, env, where):
        self.it = interp
        self.env = dict(env)
        self.where = where
        self.returns = []

    def run_block(self, block):
        tail = None
        for st in block[1]:
            tail = self.stmt(st)
        vals = self.returns + ([tail] if tail is not None else [])
        out = None
        for v in vals:
            if v is not None and not isinstance(v, Opaque):
                out = join(out, v)
            elif out is None:
                out = v
        return out

    def bind(self, pat, v):
        kind = pat[0]
        if kind == "pvar":
            self.env[pat[1]] = v
        elif kind in ("ptup", "parr"):
            items = v if isinstance(v, list) else [Opaque()] * len(pat[1])
            for p, x in zip(pat[1], items):
                self.bind(p, x)
        else:
            raise AnalysisError(f"{self.where}: pattern {pat}")

    def bind_opaque(self, pat):
        if pat[0] == "pvar":
            self.env[pat[1]] = Opaque()
        else:
            for p in pat[1]:
                self.bind_opaque(p)

    def stmt(self, st):
        kind = st[0]
        if kind == "skip":
            return None
        if kind == "let":
            if st[2] is not None:
                self.bind(st[1], self.ev(st[2]))
            else:
                self.bind(st[1], None)
            return None
        if kind == "assign":
            v = self.ev(st[3])
            if st[1] == "=" and st[2][0] == "path":
                self.env[st[2][1]] = join(self.env.get(st[2][1]), v) if self.in_loop else v
            elif st[1] == "=" and st[2][0] == "deref":
                pass
            return None
        if kind == "return":
            if st[1] is not None:
                self.returns.append(self.ev(st[1]))
            return None
        if kind == "expr":
            self.ev(st[1])
            return None
        if kind == "tail":
            return self.ev(st[1])
        if kind in ("for", "while"):
            if kind == "for":
                self.ev(st[2])
                self.bind_opaque(st[1])
            self.env.update(self.it.domain.loop_env(self.where, st))
            self.in_loop = True
            for _ in range(2):  # twice: values assigned in the loop reach its start
                body_frame_returns = self.returns
                for s in st[-1][1]:
                    self.stmt(s)
                self.returns = body_frame_returns
            self.in_loop = False
            return None
        raise AnalysisError(f"{self.where}: statement {kind}")

    in_loop = False

    def ev(self, e):
        kind = e[0]
        d = self.it.domain
        if kind in ("num", "float", "macro", "closure"):
            return Opaque()
        if kind in ("not", "neg"):
            self.ev(e[1])
            return Opaque()
        if kind == "cast":
            self.ev(e[2])
            return Opaque()
        if kind == "tuple":
            return [self.ev(x) for x in e[1]]
        if kind == "ref" or kind == "deref":
            return self.ev(e[1])
        if kind == "path":
            name = e[1]
            if name in self.env:
                return self.env[name]
            return d.path(name, self.where)
        if kind == "field":
            base = self.ev(e[1])
            if isinstance(base, Struct):
                require(e[2] in base.fields, f"{self.where}: {base.ty} has no field {e[2]}")
                return base.fields[e[2]]
            if isinstance(base, Opaque) or base is None:
                return Opaque()
            if e[2] == "0":
                return base  # Fe(…).0: the limbs
            raise AnalysisError(f"{self.where}: field {e[2]} of {base}")
        if kind == "bin":
            a, b = self.ev(e[2]), self.ev(e[3])
            return Opaque()
        if kind == "method":
            recv = self.ev(e[1])
            args = [self.ev(a) for a in e[3]]
            if isinstance(recv, Struct):
                return self.it.call(recv.ty, e[2], [recv] + args)
            if isinstance(recv, (PClass, EClass)):
                if e[2] in d.PRIMITIVE:
                    return d.method(recv, e[2], args, self.where, e)
                # a method of Fe written in field.rs: evaluate its body
                return self.it.call("Fe", e[2], [recv] + args)
            if isinstance(recv, list):
                return Opaque()
            return Opaque()
        if kind == "call":
            name = e[1]
            if name == "Fe":
                return d.call(self, name, None, e)
            args = [self.ev(a) for a in e[2]]
            return d.call(self, name, args, e)
        if kind == "struct":
            fields = {f: self.ev(x) for f, x in e[2].items()}
            self.it.check_struct(e[1], fields, self.where)
            return Struct(e[1], fields)
        if kind == "if":
            cond = e[1]
            if cond[0] == "iflet":
                self.bind(cond[1], self.ev(cond[2]))
            else:
                self.ev(cond)
            a = self.sub_block(e[2])
            b = self.sub_block(e[3]) if e[3] is not None else None
            return join(a, b) if not isinstance(a, Opaque) else (b if b is not None else a)
        if kind == "block":
            return self.sub_block(e)
        if kind == "array":
            return [self.ev(x) for x in e[1]]
        if kind == "index":
            self.ev(e[1])
            return Opaque()
        if kind in ("range", "repeat"):
            return Opaque()
        if kind == "try":
            return self.ev(e[1])
        raise AnalysisError(f"{self.where}: expression {kind}")

    def sub_block(self, block):
        if block[0] == "if":
            return self.ev(block)
        tail = None
        for st in block[1]:
            tail = self.stmt(st)
        return tail


class P256Domain:
    PRIMITIVE = {"add", "sub", "dbl", "neg", "mul_small", "mul", "sqr", "weak", "carried", "is_zero",
                 "to_u32_limbs", "to_be_bytes"}

    def __init__(self, classes, field, checks):
        self.c = classes
        self.field = field
        self.checks = checks
        self.consts = {n: PClass.const(field.const_ints(n)) for n in ("THREE_M", "B_M", "R2", "ONE_M")}

    def loop_env(self, where, st):
        return {}

    def path(self, name, where):
        if name == "Fe::ONE":
            return self.consts["ONE_M"]
        if name == "Fe::ZERO":
            return PClass(0, 0, 0, 0)
        if name == "Jacobian::IDENTITY":
            return Struct("Jacobian", {"x": self.consts["ONE_M"], "y": self.consts["ONE_M"], "z": PClass(0, 0, 0, 0)})
        if name in ("neg", "true", "false"):
            return Opaque()
        raise AnalysisError(f"{where}: unknown name {name}")

    def call(self, frame, name, args, e):
        if name == "Fe":
            arg = e[2][0]
            require(arg[0] == "path" and arg[1] in self.consts, f"{frame.where}: Fe({arg})")
            return self.consts[arg[1]]
        if "::" in name:
            owner, fname = name.split("::")
            return frame.it.call(owner, fname, args)
        if name == "Some":
            return args[0]
        raise AnalysisError(f"{frame.where}: call {name}")

    def method(self, a, name, args, where, e):
        C = self.c
        if name in ("add", "sub"):
            b = args[0]
            if name == "add":
                return PClass(a.llo + b.llo, a.lhi + b.lhi, a.vlo + b.vlo, a.vhi + b.vhi)
            return PClass(a.llo - b.lhi, a.lhi - b.llo, a.vlo - b.vhi, a.vhi - b.vlo)
        if name == "dbl":
            return PClass(2 * a.llo, 2 * a.lhi, 2 * a.vlo, 2 * a.vhi)
        if name == "neg":
            return PClass(-a.lhi, -a.llo, -a.vhi, -a.vlo)
        if name == "mul_small":
            k = e[3][0]
            require(k[0] == "num" and k[1] > 0, "mul_small by a positive constant")
            k = k[1]
            return PClass(k * a.llo, k * a.lhi, k * a.vlo, k * a.vhi)
        if name in ("mul", "sqr"):
            b = args[0] if name == "mul" else a
            wp = Fraction(a.w() * b.w(), 2**58)
            vp = Fraction(a.v() * b.v(), T_SQ)
            self.checks.add(f"{where}: product limb bound w(a)·w(b)", float(wp), "3.5", wp <= Fraction(35, 10))
            self.checks.add(f"{where}: product value bound v(a)·v(b)", float(vp), "3.3", vp <= Fraction(33, 10))
            return C["M"]
        if name == "weak":
            v = Fraction(a.v(), T_FLOOR)
            self.checks.add(f"{where}: weak input |V|/T", float(v), "8", a.v() <= 8 * T_FLOOR)
            return C["W"]
        if name == "carried":
            top_lo, top_hi = a.vlo >> 232, a.vhi >> 232
            return PClass(min(0, top_lo), max(M29, top_hi), a.vlo, a.vhi)
        if name == "is_zero":
            v = Fraction(a.v(), P256)
            self.checks.add(f"{where}: is_zero input |V|/p", float(v), "2.95·2^256/p < 3", a.v() < 295 * 2**256 // 100)
            return Opaque()
        if name in ("to_u32_limbs", "to_be_bytes"):
            return Opaque()
        raise AnalysisError(f"{where}: field method {name}")


def p256_points(classes, field):
    sec = "p256 point formulas"
    checks = Checks(sec)
    points = Source(P_POINT)
    C, M, W = classes["C"], classes["M"], classes["W"]
    # the classes the docs give every stored coordinate
    contracts = {
        "Jacobian": {"x": C, "y": C, "z": C},
        "Cached": {"x": C, "y": C, "z": C, "zz": M, "zzz": M},
        "Affine": {"x": C, "y": C},
    }
    require(points.says("Every coordinate X, Y, Z held in a point is of class C"), "point.rs: the class C contract")
    dom = P256Domain(classes, field, checks)
    it = Interp(dom, [points, field], contracts, checks)
    jac = Struct("Jacobian", {"x": C, "y": C, "z": C})
    affine_m = Struct("Affine", {"x": M, "y": M})
    affine_c = Struct("Affine", {"x": C, "y": C})
    # add_affine's q: "class M, or its y negated and weak"
    affine_q = Struct("Affine", {"x": M, "y": M.hull(W)})
    cached = Struct("Cached", {"x": C, "y": C, "z": C, "zz": M, "zzz": M})
    analysed = {
        ("Affine", "is_on_curve"): [affine_c],
        ("Affine", "neg"): [affine_m],
        ("Jacobian", "from_affine"): [affine_q],
        ("Jacobian", "is_identity"): [jac],
        ("Jacobian", "to_cached"): [jac],
        ("Jacobian", "double"): [jac],
        ("Jacobian", "add_affine"): [jac, affine_q],
        ("Jacobian", "add_cached"): [jac, cached, Opaque()],
    }
    for key in points.fns:
        require(key in analysed or key[1] in ("eq", "note", "take"), f"point.rs: {key} is not analysed: extend the script")
    for (owner, name), args in analysed.items():
        it.call(owner, name, args)
    # the field's own chains: invert (weak, then products of class M)
    it.call("Fe", "invert", [C])
    # mod.rs: x_matches and prepare, evaluated on their expressions (checked to be in the code)
    mod = Source(P_MOD)
    for snippet, env in [
        ("let zz = big_r.z.sqr();", None),
        ("big_r.x.sub(&rf.mul(&zz)).is_zero()", None),
        ("big_r.x.sub(&rn.mul(&zz)).is_zero()", None),
        ("acc = acc.mul(&p.z);", None),
        ("let zi = inv.mul(b);", None),
        ("inv = inv.mul(&p.z);", None),
        ("let zi2 = zi.sqr();", None),
        ("x: p.x.mul(&zi2),", None),
        ("y: p.y.mul(&zi2.mul(&zi)),", None),
        ("Some(Fe(from_u32(l)).mul(&Fe(R2)))", None),
        ("let mut v = Fe(self.0).mul(&Fe([1, 0, 0, 0, 0, 0, 0, 0, 0])).0;", None),
    ]:
        require(mod.contains(snippet) or field.contains(snippet), f"p256 mod.rs/field.rs: {snippet!r}")
    # their operands: big_r and p are Jacobian (class C); zz, rf, rn, acc, inv, b, zi, zi2 are
    # products (class M)
    dom.method(C, "sqr", [], "mod.rs x_matches / prepare", None)
    for (x, y) in [(C, M), (M, C), (M, M)]:
        dom.method(x, "mul", [y], "mod.rs x_matches / prepare", None)
    it.call("Fe", "invert", [M])
    dom.method(M, "is_zero", [], "mod.rs prepare", None)
    x_minus = dom.method(C, "sub", [M], "mod.rs x_matches", None)
    dom.method(x_minus, "is_zero", [], "mod.rs x_matches: X − r·Z²", None)
    # from_u32_limbs: canonical limbs [0, 2^29), V < p, times R²
    canon = PClass(0, M29, 0, P256 - 1)
    dom.method(canon, "mul", [dom.consts["R2"]], "field.rs from_u32_limbs", None)
    dom.method(C, "mul", [PClass(0, 1, 1, 1)], "field.rs to_u32_limbs", None)
    checks.flush()
    it.report_built(lambda c: f"w {c.w() / 2**29:.3f}, v {c.v() / 2**257.5:.3f}")


class EdDomain:
    """Ed25519 field values as per-limb intervals of fiat's unsigned limbs; each fiat
    operation checks that its operands are within the class fiat's signature demands."""

    PRIMITIVE = {"add", "sub", "neg", "mul", "square", "carry", "to_bytes", "map"}

    def __init__(self, facts, checks):
        self.f = facts
        self.checks = checks
        self.tight = EClass(Iv(0, b) for b in FIAT_TIGHT)
        self.loose = EClass(Iv(0, b) for b in FIAT_LOOSE)
        self.consts = {n: EClass(Iv(x) for x in ls) for n, ls in facts["consts"].items()}

    def loop_env(self, where, st):
        return self.f["loops"].get(where, {})

    def path(self, name, where):
        if name in ("Fe::ONE", "Fe::ZERO"):
            return self.consts[name[4:]]
        if name in self.consts:
            return self.consts[name]
        if name == "Ext::IDENTITY":
            o, z = self.consts["ONE"], self.consts["ZERO"]
            return Struct("Ext", {"x": z, "y": o, "z": o, "t": z})
        if name in ("negate", "true", "false", "None"):
            return Opaque()
        raise AnalysisError(f"{where}: unknown name {name}")

    def call(self, frame, name, args, e):
        if name == "cswap":
            # a masked swap of two values of one type: afterwards each is either of them
            require(len(e[2]) == 3 and all(a[0] == "ref" and a[1][0] == "path" for a in e[2][:2]),
                    f"{frame.where}: cswap(&mut a, &mut b, swap)")
            a, b = args[0], args[1]
            both = join(a, b)
            for x in e[2][:2]:
                frame.env[x[1][1]] = both
            self.checks.add(f"{frame.where}: cswap of two values of one class", None, "", True, "kept")
            return Opaque()
        if "::" in name:
            owner, fname = name.split("::")
            if owner == "Fe" and fname == "from_bytes":
                # fiat_25519_from_bytes of 255 bits: limbs < 2^26 / 2^25
                return EClass(Iv(0, (1 << w) - 1) for w in ED_WIDTHS)
            if owner in ("Vec",):
                return Opaque()
            return frame.it.call(owner, fname, args)
        if name in ("Some",):
            return args[0]
        if name == "vec":
            return Opaque()
        raise AnalysisError(f"{frame.where}: call {name}")

    def need(self, a, cls, what, where):
        bound = self.tight if cls == "tight" else self.loose
        worst = max(Fraction(x.hi, 1 << w) for x, w in zip(a.ivs, ED_WIDTHS))
        ok = a.within(bound)
        self.checks.add(f"{where}: {what} {cls}", float(worst), "1 (tight)" if cls == "tight" else "3 (loose)", ok)

    def method(self, a, name, args, where, e):
        if name in ("add", "sub"):
            b = args[0]
            self.need(a, "tight", f"{name} operand", where)
            self.need(b, "tight", f"{name} operand", where)
            if name == "add":
                r = EClass(x + y for x, y in zip(a.ivs, b.ivs))
            else:
                r = EClass(Iv(k) + x - y for k, x, y in zip(FIAT_BALANCE, a.ivs, b.ivs))
            self.need(r, "loose", f"{name} result", where)
            return r
        if name == "neg":
            self.need(a, "tight", "neg operand", where)
            r = EClass(Iv(k) - x for k, x in zip(FIAT_BALANCE, a.ivs))
            self.need(r, "loose", "neg result", where)
            return r
        if name in ("mul", "square"):
            self.need(a, "loose", f"{name} operand", where)
            if name == "mul":
                self.need(args[0], "loose", "mul operand", where)
            return self.tight
        if name == "carry":
            self.need(a, "loose", "carry input", where)
            return self.tight
        if name == "to_bytes":
            self.need(a, "tight", "to_bytes input", where)
            return Opaque()
        if name == "map":
            return Opaque()
        raise AnalysisError(f"{where}: field method {name}")


def ed25519_points(facts):
    sec = "ed25519 point formulas"
    checks = Checks(sec)
    points, field, mod = Source(ED_POINT), Source(ED_FIELD), Source(ED_MOD)
    dom = EdDomain(facts, checks)
    tight, loose = dom.tight, dom.loose
    contracts = {
        "Ext": {"x": tight, "y": tight, "z": tight, "t": tight},
        "Proj": {"x": tight, "y": tight, "z": tight},
        "Completed": {"x": loose, "y": loose, "z": loose, "t": loose},
        "Niels": {"ypx": tight, "ymx": tight, "xy2d": tight},
        "PNiels": {"ypx": loose, "ymx": loose, "z": tight, "t2d": tight},
    }
    require(points.says("every coordinate stored in [`Ext`], [`Proj`] and [`Niels`], and Z and 2d·T of a "
                        "[`PNiels`], is tight (a product, a square or a carried sum); the sums Y ± X of a "
                        "[`PNiels`] and the four coordinates of a [`Completed`] are loose"),
            "ed25519 point.rs: the stored-coordinate contract (tight, the loose sums excepted)")
    ext = Struct("Ext", dict(contracts["Ext"]))
    proj = Struct("Proj", dict(contracts["Proj"]))
    comp = Struct("Completed", dict(contracts["Completed"]))
    niels = Struct("Niels", dict(contracts["Niels"]))
    pniels = Struct("PNiels", dict(contracts["PNiels"]))
    facts["loops"] = {
        "batch_to_niels": {"p": ext, "b": tight, "o": Opaque(), "before": Opaque(), "out": Opaque()},
    }
    it = Interp(dom, [points, field, mod], contracts, checks)
    analysed = {
        ("Ext", "from_affine"): [tight, tight],
        ("Ext", "to_proj"): [ext],
        ("Ext", "to_pniels"): [ext],
        ("Ext", "add_niels"): [ext, niels, Opaque()],
        ("Ext", "add_pniels"): [ext, pniels],
        ("Ext", "sub_pniels"): [ext, pniels],
        ("Ext", "double"): [ext],
        ("Ext", "is_small_order"): [ext],
        ("Ext", "is_identity"): [ext],
        ("Ext", "equals_affine"): [ext, tight, tight],
        ("Proj", "double"): [proj],
        ("Completed", "to_ext"): [comp],
        ("Completed", "to_proj"): [comp],
        (None, "batch_to_niels"): [Opaque()],
    }
    for key in points.fns:
        require(key in analysed, f"ed25519 point.rs: {key} is not analysed: extend the script")
    for (owner, name), args in analysed.items():
        it.call(owner, name, args)
    # the decoding of points (mod.rs: from_bytes, sqrt_ratio, pow_p58); invert is reached
    # from batch_to_niels
    it.call(None, "decompress", [Opaque()])
    checks.flush()
    it.report_built(lambda c: "max " + f"{max(float(Fraction(x.hi, 1 << w)) for x, w in zip(c.ivs, ED_WIDTHS)):.4f}")


# ------------------------------------------------------------------------------------------


FIELD_OPS = {"mul", "sqr", "square", "square2", "add", "sub", "neg", "dbl", "mul_small", "weak", "carried",
             "carry", "invert", "sqrt", "pow2k", "pow_p58", "is_zero", "equals", "sqn"}


def guard_field_ops():
    """Field arithmetic only where the analysis looks: the functions of these files that call
    field-like methods must be exactly the ones listed (what each is, and where it is
    analysed, in the comments)."""
    expected = {
        P_MOD: {
            ("P256VerifyingKey", "verify_prehashed"),  # scalar (Sc) arithmetic, not the field
            (None, "prepare"),  # products of class M/C: the mod.rs rows above
            (None, "add_digit"),  # Affine::neg
            (None, "x_matches"),  # the mod.rs rows above
        },
        ED_MOD: {(None, "decompress")},  # analysed with the point formulas
        SRC / "ed25519" / "scalar_mul.rs": set(),  # point operations only
    }
    for path, allowed in expected.items():
        src = Source(path)
        found = set()
        for key, (_, a, b) in src.fns.items():
            t = src.toks[a:b]
            if any(t[i] == ("op", ".") and t[i + 1][0] == "id" and t[i + 1][1] in FIELD_OPS and t[i + 2] == ("op", "(")
                   for i in range(len(t) - 2)):
                found.add(key)
        ok = found == allowed
        names = ", ".join(sorted(k[1] for k in found)) or "none"
        record("coverage", f"{path.relative_to(SRC)}: functions with field-like arithmetic", names, "as analysed", ok)


def main():
    try:
        ed25519_fiat()
        facts = ed25519_field()
        classes, pfield = p256_field()
        p256_points(classes, pfield)
        ed25519_points(facts)
        guard_field_ops()
    except AnalysisError as e:
        print(f"limb_bounds: the analysis does not apply to the code as it is: {e}", file=sys.stderr)
        print("(update scripts/limb_bounds.py together with the code it analyses)", file=sys.stderr)
        return 2
    except OverflowError as e:
        # an intermediate value outside its integer type: the table so far, and the failure
        record("overflow", str(e), "overflows", "i64 / i32", False)
    w = [max(len(str(r[i])) for r in ROWS) for i in range(4)]
    w[1] = min(w[1], 92)
    for sec in dict.fromkeys(r[0] for r in ROWS):
        print(f"\n== {sec}")
        for s, item, found, limit, ok in ROWS:
            if s != sec:
                continue
            mark = "ok  " if ok else "FAIL"
            print(f"  {mark} {item:<{w[1]}}  {found!s:>24}  {limit}")
    print()
    if FAILURES:
        print(f"limb_bounds: {len(FAILURES)} violation(s):", file=sys.stderr)
        for f in FAILURES:
            print(f"  {f}", file=sys.stderr)
        return 1
    print(f"limb_bounds: {len(ROWS)} checks, all within bounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
