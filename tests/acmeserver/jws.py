"""JWS / JWK handling for the in-repo ACME test server.

Implements the server side of RFC 8555 §6.2 (flattened JWS, protected header with alg/nonce/url and
exactly one of jwk/kid), RFC 7515/7518 signature verification (ES256/ES384/ES512 with raw r||s,
RS256, EdDSA/Ed25519 per RFC 8037), RFC 7638 thumbprints and the HMAC check of an External Account
Binding (RFC 8555 §7.3.4). Errors are raised as Problem so the HTTP layer can turn them into
RFC 8555 §6.7 problem documents.
"""
import base64
import hashlib
import hmac
import json
import re

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

ACME_ERR = "urn:ietf:params:acme:error:"

# alg -> (kty, crv or None, hash, raw EC coordinate size)
SUPPORTED_ALGS = {
    "ES256": ("EC", "P-256", hashes.SHA256(), 32),
    "ES384": ("EC", "P-384", hashes.SHA384(), 48),
    "ES512": ("EC", "P-521", hashes.SHA512(), 66),
    "RS256": ("RSA", None, hashes.SHA256(), 0),
    "EdDSA": ("OKP", "Ed25519", None, 0),
}
_CURVES = {"P-256": ec.SECP256R1(), "P-384": ec.SECP384R1(), "P-521": ec.SECP521R1()}
_B64URL = re.compile(r"^[A-Za-z0-9_-]*$")


class Problem(Exception):
    """An RFC 8555 §6.7 problem; `kind` is the short ACME error name or a full type URI."""

    def __init__(self, kind, detail, status=400, subproblems=None, headers=None, extra=None):
        super().__init__(detail)
        self.type = kind if ":" in kind else ACME_ERR + kind
        self.detail = detail
        self.status = status
        self.subproblems = subproblems
        self.headers = headers or {}
        self.extra = extra or {}

    def document(self):
        doc = {"type": self.type, "detail": self.detail, "status": self.status}
        if self.subproblems:
            doc["subproblems"] = self.subproblems
        doc.update(self.extra)
        return doc


def b64u_encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_decode(text, what="value"):
    """Strict base64url without padding (RFC 7515 §2); anything else is malformed."""
    if not isinstance(text, str) or not _B64URL.match(text) or len(text) % 4 == 1:
        raise Problem("malformed", f"{what} is not unpadded base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int(text, what):
    raw = b64u_decode(text, what)
    if not raw:
        raise Problem("malformed", f"JWK member {what} is empty")
    return int.from_bytes(raw, "big")


def public_key_from_jwk(jwk):
    """Returns the cryptography public key for a JWK dict, or raises Problem (badPublicKey/malformed)."""
    if not isinstance(jwk, dict):
        raise Problem("malformed", "jwk is not a JSON object")
    if "d" in jwk or "p" in jwk:
        raise Problem("malformed", "jwk contains private key material")
    kty = jwk.get("kty")
    try:
        if kty == "EC":
            curve = _CURVES.get(jwk.get("crv"))
            if curve is None:
                raise Problem("badPublicKey", f"unsupported EC curve {jwk.get('crv')!r}")
            size = (curve.key_size + 7) // 8
            for member in ("x", "y"):
                # RFC 7518 §6.2.1.2: full-size octet strings. A client that drops leading zero bytes
                # (e.g. BN_bn2bin) fails here 1 time in 128, so reject it every time.
                if len(b64u_decode(jwk.get(member), member)) != size:
                    raise Problem("malformed", f"EC jwk member {member} must be exactly {size} octets")
            return ec.EllipticCurvePublicNumbers(_int(jwk.get("x"), "x"), _int(jwk.get("y"), "y"),
                                                 curve).public_key()
        if kty == "RSA":
            for member in ("n", "e"):
                raw = b64u_decode(jwk.get(member), member)
                if raw[:1] == b"\x00":  # RFC 7518 §6.3.1: minimum number of octets
                    raise Problem("malformed", f"RSA jwk member {member} has a leading zero octet")
            key = rsa.RSAPublicNumbers(_int(jwk.get("e"), "e"), _int(jwk.get("n"), "n")).public_key()
            if key.key_size < 2048:
                raise Problem("badPublicKey", f"RSA key of {key.key_size} bits is too small")
            return key
        if kty == "OKP":
            if jwk.get("crv") != "Ed25519":
                raise Problem("badPublicKey", f"unsupported OKP curve {jwk.get('crv')!r}")
            raw = b64u_decode(jwk.get("x"), "x")
            if len(raw) != 32:
                raise Problem("malformed", "Ed25519 x must be 32 bytes")
            return ed25519.Ed25519PublicKey.from_public_bytes(raw)
    except Problem:
        raise
    except (ValueError, TypeError) as e:
        raise Problem("badPublicKey", f"invalid {kty} jwk: {e}")
    raise Problem("badPublicKey", f"unsupported key type {kty!r}")


def jwk_from_public_key(key):
    """The canonical public JWK (RFC 7517/7518/8037) of a cryptography public key."""
    if isinstance(key, ec.EllipticCurvePublicKey):
        crv = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}[key.curve.name]
        size = (key.curve.key_size + 7) // 8
        nums = key.public_numbers()
        return {"kty": "EC", "crv": crv, "x": b64u_encode(nums.x.to_bytes(size, "big")),
                "y": b64u_encode(nums.y.to_bytes(size, "big"))}
    if isinstance(key, rsa.RSAPublicKey):
        nums = key.public_numbers()
        return {"kty": "RSA", "n": b64u_encode(nums.n.to_bytes((nums.n.bit_length() + 7) // 8, "big")),
                "e": b64u_encode(nums.e.to_bytes((nums.e.bit_length() + 7) // 8, "big"))}
    if isinstance(key, ed25519.Ed25519PublicKey):
        from cryptography.hazmat.primitives import serialization
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": b64u_encode(raw)}
    raise Problem("badPublicKey", f"unsupported key type {type(key).__name__}")


def thumbprint(jwk):
    """RFC 7638 JWK thumbprint (SHA-256), computed from the key itself so padding variants agree."""
    canon = jwk_from_public_key(public_key_from_jwk(jwk))
    members = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}
    ordered = {k: canon[k] for k in members[canon["kty"]]}
    data = json.dumps(ordered, separators=(",", ":"), sort_keys=True).encode()
    return b64u_encode(hashlib.sha256(data).digest())


def verify_signature(alg, key, signing_input, sig):
    """Verifies a JWS signature; raises Problem(malformed) on mismatch."""
    kty, crv, hash_alg, size = SUPPORTED_ALGS[alg]
    try:
        if kty == "EC":
            if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != _CURVES[crv].name:
                raise Problem("badSignatureAlgorithm", f"{alg} requires an EC {crv} key",
                              extra={"algorithms": sorted(SUPPORTED_ALGS)})
            if len(sig) != 2 * size:
                raise Problem("malformed", f"{alg} signature must be {2 * size} bytes (raw r||s)")
            der = encode_dss_signature(int.from_bytes(sig[:size], "big"), int.from_bytes(sig[size:], "big"))
            key.verify(der, signing_input, ec.ECDSA(hash_alg))
        elif kty == "RSA":
            if not isinstance(key, rsa.RSAPublicKey):
                raise Problem("badSignatureAlgorithm", "RS256 requires an RSA key",
                              extra={"algorithms": sorted(SUPPORTED_ALGS)})
            key.verify(sig, signing_input, padding.PKCS1v15(), hash_alg)
        else:
            if not isinstance(key, ed25519.Ed25519PublicKey):
                raise Problem("badSignatureAlgorithm", "EdDSA requires an Ed25519 key",
                              extra={"algorithms": sorted(SUPPORTED_ALGS)})
            key.verify(sig, signing_input)
    except InvalidSignature:
        raise Problem("malformed", "JWS verification error: signature does not match")


class ParsedJWS:
    """A flattened JWS whose structure has been checked (signature not yet verified)."""

    def __init__(self, body, what="JWS"):
        try:
            obj = json.loads(body) if isinstance(body, (bytes, str)) else body
        except (ValueError, UnicodeDecodeError):
            raise Problem("malformed", f"{what} body is not valid JSON")
        if not isinstance(obj, dict):
            raise Problem("malformed", f"{what} is not a JSON object")
        if "signatures" in obj:
            raise Problem("malformed", f"{what} must use the flattened JSON serialization (RFC 8555 §6.2)")
        if "header" in obj:
            raise Problem("malformed", f"{what} must not have an unprotected header (RFC 8555 §6.2)")
        for member in ("protected", "payload", "signature"):
            if not isinstance(obj.get(member), str):
                raise Problem("malformed", f"{what} is missing the {member!r} member")
        extra = set(obj) - {"protected", "payload", "signature"}
        if extra:
            raise Problem("malformed", f"{what} has unexpected members {sorted(extra)}")
        self.protected_b64 = obj["protected"]
        self.payload_b64 = obj["payload"]
        self.signature = b64u_decode(obj["signature"], "signature")
        try:
            self.protected = json.loads(b64u_decode(self.protected_b64, "protected header"))
        except (ValueError, UnicodeDecodeError):
            raise Problem("malformed", f"{what} protected header is not valid JSON")
        if not isinstance(self.protected, dict):
            raise Problem("malformed", f"{what} protected header is not a JSON object")
        if "crit" in self.protected:  # RFC 7515 §4.1.11: no extensions are understood here
            raise Problem("malformed", f"{what} protected header has a crit parameter this server does not support")
        self.payload_raw = b64u_decode(self.payload_b64, "payload")
        self.alg = self.protected.get("alg")
        self.jwk = self.protected.get("jwk")
        self.kid = self.protected.get("kid")
        self.nonce = self.protected.get("nonce")
        self.url = self.protected.get("url")

    @property
    def signing_input(self):
        return (self.protected_b64 + "." + self.payload_b64).encode("ascii")

    def is_post_as_get(self):
        return self.payload_b64 == ""

    def payload_json(self):
        """The payload as a JSON object; POST-as-GET (empty payload) is not accepted here."""
        if self.payload_b64 == "":
            raise Problem("malformed", "this resource requires a JSON payload, not POST-as-GET")
        try:
            obj = json.loads(self.payload_raw)
        except (ValueError, UnicodeDecodeError):
            raise Problem("malformed", "JWS payload is not valid JSON")
        if not isinstance(obj, dict):
            raise Problem("malformed", "JWS payload is not a JSON object")
        return obj

    def check_alg(self):
        if self.alg not in SUPPORTED_ALGS:
            raise Problem("badSignatureAlgorithm", f"JWS algorithm {self.alg!r} is not supported",
                          extra={"algorithms": sorted(SUPPORTED_ALGS)})

    def verify_with(self, key):
        self.check_alg()
        verify_signature(self.alg, key, self.signing_input, self.signature)


def verify_eab(eab, account_jwk, expected_url, keys):
    """RFC 8555 §7.3.4: the EAB JWS is MAC'd with a pre-shared key identified by its kid and carries
    the account JWK as payload. Returns the EAB kid."""
    inner = ParsedJWS(eab, "externalAccountBinding")
    hdr = inner.protected
    algs = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
    if hdr.get("alg") not in algs:
        raise Problem("malformed", f"externalAccountBinding alg {hdr.get('alg')!r} is not a MAC algorithm")
    if "nonce" in hdr:
        raise Problem("malformed", "externalAccountBinding must not contain a nonce")
    if hdr.get("url") != expected_url:
        raise Problem("unauthorized", "externalAccountBinding url does not match the newAccount url", 403)
    kid = hdr.get("kid")
    if not isinstance(kid, str) or kid not in keys:
        raise Problem("unauthorized", f"externalAccountBinding kid {kid!r} is unknown", 403)
    mac = hmac.new(keys[kid], inner.signing_input, algs[hdr["alg"]]).digest()
    if not hmac.compare_digest(mac, inner.signature):
        raise Problem("unauthorized", "externalAccountBinding MAC does not verify", 403)
    try:
        bound = json.loads(inner.payload_raw)
    except (ValueError, UnicodeDecodeError):
        raise Problem("malformed", "externalAccountBinding payload is not a JWK")
    if thumbprint(bound) != thumbprint(account_jwk):
        raise Problem("unauthorized", "externalAccountBinding payload is not the account key", 403)
    return kid
