"""In-memory CA for the ACME test server: one root + intermediate chain ("Fake Root X1") plus N
alternate chains ("Fake Alt Root N") whose intermediates share the issuing key and subject, so one
leaf verifies under every chain (as with cross-signed roots behind RFC 8555 §7.4.2 rel="alternate").
Also CSR checks (RFC 8555 §7.4 finalize) and the RFC 9773 §4.1 certID."""
import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from jws import Problem, b64u_decode, b64u_encode

INTERMEDIATE_CN = "Fake Intermediate X1"


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def serial_der_bytes(serial):
    """Content octets of the DER INTEGER for a positive serial (leading 0x00 when the top bit is set)."""
    return serial.to_bytes((serial.bit_length() + 8) // 8, "big")


def cert_id_of(cert):
    """RFC 9773 §4.1: base64url(AKI keyIdentifier) "." base64url(serial DER content octets)."""
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    return b64u_encode(aki) + "." + b64u_encode(serial_der_bytes(cert.serial_number))


def parse_cert_id(cert_id):
    """Splits and decodes a certID; raises Problem(malformed) when it is not two base64url parts."""
    if not isinstance(cert_id, str) or cert_id.count(".") != 1:
        raise Problem("malformed", f"certID {cert_id!r} is not of the form keyIdentifier.serial")
    aki, serial = cert_id.split(".")
    aki_raw, serial_raw = b64u_decode(aki, "certID keyIdentifier"), b64u_decode(serial, "certID serial")
    if not aki_raw or not serial_raw:
        raise Problem("malformed", f"certID {cert_id!r} has an empty part")
    return aki_raw, serial_raw


def _ca_cert(subject_cn, key, issuer_cn, issuer_key, days, path_len):
    now = utcnow()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
         .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]))
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(hours=1))
         .not_valid_after(now + datetime.timedelta(days=days))
         .add_extension(x509.BasicConstraints(ca=True, path_length=path_len), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                      data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                      crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
         .add_extension(ski, critical=False))
    if issuer_key is not key:
        b = b.add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                            critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


class Chain:
    def __init__(self, root_cn, root_key, root, intermediate):
        self.root_cn, self.root_key, self.root, self.intermediate = root_cn, root_key, root, intermediate


class CA:
    def __init__(self, alternate_roots=0):
        self.issuer_key = ec.generate_private_key(ec.SECP256R1())
        self.chains = []
        for n in range(alternate_roots + 1):
            cn = "Fake Root X1" if n == 0 else f"Fake Alt Root {n}"
            root_key = ec.generate_private_key(ec.SECP256R1())
            root = _ca_cert(cn, root_key, cn, root_key, 3650, 1)
            inter = _ca_cert(INTERMEDIATE_CN, self.issuer_key, cn, root_key, 1825, 0)
            self.chains.append(Chain(cn, root_key, root, inter))

    def issue(self, csr_pub, names, validity_seconds):
        """Signs a leaf for `names` (first one is the CN when it fits) valid for validity_seconds."""
        now = utcnow()
        cn = names[0] if len(names[0]) <= 64 else None
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
        rsa_key = isinstance(csr_pub, rsa.RSAPublicKey)
        b = (x509.CertificateBuilder()
             .subject_name(subject)
             .issuer_name(self.chains[0].intermediate.subject)
             .public_key(csr_pub)
             .serial_number(x509.random_serial_number())
             .not_valid_before(now)
             .not_valid_after(now + datetime.timedelta(seconds=validity_seconds))
             .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=not cn)
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                          key_encipherment=rsa_key, data_encipherment=False, key_agreement=False,
                                          key_cert_sign=False, crl_sign=False, encipher_only=False,
                                          decipher_only=False), critical=True)
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                            critical=False)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(csr_pub), critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.issuer_key.public_key()),
                            critical=False))
        return b.sign(self.issuer_key, hashes.SHA256())

    def chain_pem(self, leaf, n):
        return pem(leaf) + pem(self.chains[n].intermediate)


def check_csr(der, identifiers, account_thumb, thumb_of_key):
    """RFC 8555 §7.4: the CSR must be validly self-signed and request exactly the order's identifiers.
    Returns (public key, ordered names). Raises Problem(badCSR / badPublicKey)."""
    try:
        csr = x509.load_der_x509_csr(der)
    except ValueError as e:
        raise Problem("badCSR", f"CSR is not valid DER PKCS#10: {e}")
    if not csr.is_signature_valid:
        raise Problem("badCSR", "CSR signature does not verify")
    pub = csr.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        if pub.key_size < 2048:
            raise Problem("badPublicKey", f"RSA key of {pub.key_size} bits is too small")
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        if pub.curve.name not in ("secp256r1", "secp384r1"):
            raise Problem("badPublicKey", f"EC curve {pub.curve.name} is not accepted")
    elif not isinstance(pub, ed25519.Ed25519PublicKey):
        raise Problem("badPublicKey", f"key type {type(pub).__name__} is not accepted")
    if thumb_of_key(pub) == account_thumb:
        raise Problem("badCSR", "CSR public key must not be the account key")
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [n.lower() for n in san.get_values_for_type(x509.DNSName)]
        others = len(list(san)) - len(names)
    except x509.ExtensionNotFound:
        names, others = [], 0
    cns = [a.value.lower() for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if others:
        raise Problem("badCSR", "CSR contains non-DNS subjectAltNames")
    wanted = sorted(identifiers)
    if sorted(set(names)) != wanted:
        raise Problem("badCSR", f"CSR names {sorted(set(names))} do not match the order identifiers {wanted}")
    for cn in cns:
        if cn not in wanted:
            raise Problem("badCSR", f"CSR common name {cn!r} is not an order identifier")
    ordered = ([cns[0]] if cns else []) + [n for n in wanted if not cns or n != cns[0]]
    return pub, ordered
