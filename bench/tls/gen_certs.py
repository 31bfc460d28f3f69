#!/usr/bin/python3
"""gen_certs.py N DIR [ec|rsa]: N self-signed certificates, one folder each (DIR/cN/tls.crt, tls.key),
names cN.bench.test, for the load-time / replace-time / memory benchmarks."""
import datetime
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

n, out = int(sys.argv[1]), sys.argv[2]
kind = sys.argv[3] if len(sys.argv) > 3 else "ec"
now = datetime.datetime.now(datetime.timezone.utc)
# One key for all (key generation is not what is measured; parsing and validation are).
key = ec.generate_private_key(ec.SECP256R1()) if kind == "ec" else rsa.generate_private_key(65537, 2048)
key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
for i in range(n):
    name = f"c{i}.bench.test"
    subj = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subj).issuer_name(subj).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), False).sign(key, hashes.SHA256()))
    d = os.path.join(out, f"c{i}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "tls.key"), "wb") as f:
        f.write(key_pem)
    with open(os.path.join(d, "tls.crt"), "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
