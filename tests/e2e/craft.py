"""Hand-made JWS for negative cases, signed with `cryptography` (a third party, not our code)."""
import json
import time
import uuid

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from harness import b64u


class PyKey:
    def __init__(self, alg="EdDSA"):
        self.alg = alg
        if alg == "EdDSA":
            self.sk = ed25519.Ed25519PrivateKey.generate()
            x = self.sk.public_key().public_bytes_raw()
            self.jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64u(x)}
        elif alg == "ES256":
            self.sk = ec.generate_private_key(ec.SECP256R1())
            n = self.sk.public_key().public_numbers()
            self.jwk = {"kty": "EC", "crv": "P-256", "x": b64u(n.x.to_bytes(32, "big")), "y": b64u(n.y.to_bytes(32, "big"))}
        elif alg == "RS256":
            self.sk = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            n = self.sk.public_key().public_numbers()
            self.jwk = {"kty": "RSA", "n": b64u(n.n.to_bytes((n.n.bit_length() + 7) // 8, "big")), "e": b64u(n.e.to_bytes(3, "big"))}
        else:
            raise ValueError(alg)

    def sign(self, data, alg=None):
        alg = alg or self.alg
        if alg == "EdDSA":
            return self.sk.sign(data)
        if alg == "ES256":
            r, s = decode_dss_signature(self.sk.sign(data, ec.ECDSA(hashes.SHA256())))
            return r.to_bytes(32, "big") + s.to_bytes(32, "big")
        if alg == "RS256":
            return self.sk.sign(data, padding.PKCS1v15(), hashes.SHA256())
        raise ValueError(alg)


def jws(header, claims, key, alg=None, raw_header=None, raw_claims=None, signature=None):
    h = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":"))
    c = raw_claims if raw_claims is not None else json.dumps(claims, separators=(",", ":"))
    signing_input = (b64u(h.encode()) + "." + b64u(c.encode())).encode()
    sig = signature if signature is not None else key.sign(signing_input, alg)
    return signing_input.decode() + "." + b64u(sig)


def proof(key, htm, htu, header_extra=None, claims_extra=None, drop=(), **kw):
    header = {"typ": "dpop+jwt", "alg": key.alg, "jwk": key.jwk}
    claims = {"jti": uuid.uuid4().hex, "htm": htm, "htu": htu, "iat": int(time.time())}
    header.update(header_extra or {})
    claims.update(claims_extra or {})
    for d in drop:
        header.pop(d, None)
        claims.pop(d, None)
    return jws(header, claims, key, **kw)
