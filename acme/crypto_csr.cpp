// Building X.509 objects: the finalize CSR (RFC 8555 §7.4, RFC 2986), the tls-alpn-01 challenge
// certificate (RFC 8737 §3) and plain self-signed certificates.
#include <openssl/rand.h>

#include <cstring>

#include "edgecert/acme/crypto.h"
#include "edgecert/acme/types.h"
#include "edgecert/base/encoding.h"
#include "edgecert/base/ip.h"

namespace edgecert::acme {
namespace {

// The CSR and the challenge/test certificates sign SHA-256 (or pure Ed25519) whatever the curve:
// every ACME CA accepts it, and it is what they have always sent.
const EVP_MD* csr_md(const PrivateKey& key) {
    return key.type() == KeyType::Ed25519 ? nullptr : EVP_sha256();
}

constexpr size_t kMaxCommonName = 64;  // RFC 5280 ub-common-name

// An IP literal (RFC 8738 identifiers) becomes an iPAddress SAN with its 4 or 16 octets;
// anything else a dNSName. Strict literals only (base/ip.h): "1.2.3" is not 1.2.0.3 here.
ossl::UniquePtr<ASN1_OCTET_STRING> parse_ip(const std::string& s) {
    auto addr = IpAddress::parse(s);
    if (!addr) return nullptr;
    ossl::UniquePtr<ASN1_OCTET_STRING> ip(ASN1_OCTET_STRING_new());
    if (ip && ASN1_OCTET_STRING_set(ip.get(), addr->data(), static_cast<int>(addr->size())) != 1)
        ip.reset();
    return ip;
}

}  // namespace

Result<ossl::UniquePtr<X509_EXTENSION>> make_san_extension(const std::vector<std::string>& names,
                                                           bool critical) {
    if (names.empty()) return Error(ErrorCode::InvalidConfig, "no identifiers for the certificate");
    ossl::UniquePtr<GENERAL_NAMES> gens(GENERAL_NAMES_new());
    if (!gens) return ossl::error("building subjectAltName");
    for (const auto& n : names) {
        if (n.empty() || n.find('\0') != std::string::npos) {
            return Error(ErrorCode::InvalidConfig, "empty or malformed identifier");
        }
        ossl::UniquePtr<GENERAL_NAME> gn(GENERAL_NAME_new());
        if (!gn) return ossl::error("building subjectAltName");
        if (auto ip = parse_ip(n)) {
            GENERAL_NAME_set0_value(gn.get(), GEN_IPADD, ip.release());
        } else {
            ASN1_IA5STRING* s = ASN1_IA5STRING_new();
            if (!s || ASN1_STRING_set(s, n.data(), static_cast<int>(n.size())) != 1) {
                ASN1_IA5STRING_free(s);
                return ossl::error("building subjectAltName");
            }
            GENERAL_NAME_set0_value(gn.get(), GEN_DNS, s);
        }
        if (sk_GENERAL_NAME_push(gens.get(), gn.get()) <= 0) return ossl::error("building subjectAltName");
        gn.release();  // owned by the stack now
    }
    X509_EXTENSION* ext = X509V3_EXT_i2d(NID_subject_alt_name, critical ? 1 : 0, gens.get());
    if (!ext) return ossl::error("encoding subjectAltName");
    return ossl::UniquePtr<X509_EXTENSION>(ext);
}

Status set_random_serial(X509* x) {
    unsigned char serial[16];
    if (RAND_bytes(serial, sizeof serial) != 1) return ossl::error("generating serial");
    serial[0] = static_cast<unsigned char>((serial[0] & 0x7f) | 0x01);  // positive, full length
    ossl::UniquePtr<BIGNUM> bn(BN_bin2bn(serial, sizeof serial, nullptr));
    if (!bn || !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(x)))
        return ossl::error("setting serial");
    return ok_status();
}

const EVP_MD* signature_digest(const PrivateKey& key) {
    switch (key.type()) {
        case KeyType::Ed25519:
            return nullptr;
        case KeyType::EcP384:
            return EVP_sha384();
        default:
            return EVP_sha256();
    }
}

namespace {

// Subject: CN = first identifier when it is a DNS name that fits, else empty (RFC 8555 §7.4
// leaves the CN optional; Let's Encrypt copies it only if it fits).
Result<ossl::UniquePtr<X509_NAME>> subject_for(const std::vector<std::string>& names) {
    ossl::UniquePtr<X509_NAME> name(X509_NAME_new());
    if (!name) return ossl::error("building subject");
    if (!names.empty() && names[0].size() <= kMaxCommonName && !parse_ip(names[0])) {
        if (X509_NAME_add_entry_by_NID(name.get(), NID_commonName, MBSTRING_UTF8,
                                       reinterpret_cast<const unsigned char*>(names[0].data()),
                                       static_cast<int>(names[0].size()), -1, 0) != 1) {
            return ossl::error("building subject");
        }
    }
    return name;
}

void der_length(std::string& out, size_t n) {
    if (n < 0x80) {
        out += static_cast<char>(n);
    } else if (n < 0x100) {
        out += '\x81';
        out += static_cast<char>(n);
    } else {
        out += '\x82';
        out += static_cast<char>(n >> 8);
        out += static_cast<char>(n & 0xff);
    }
}

// DER INTEGER from unsigned big-endian octets.
std::string der_uint(std::string_view be) {
    while (be.size() > 1 && be[0] == '\0') be.remove_prefix(1);
    bool pad = !be.empty() && (static_cast<unsigned char>(be[0]) & 0x80);
    std::string out = "\x02";
    der_length(out, be.size() + (pad ? 1 : 0));
    if (pad) out += '\0';
    out += be;
    return out;
}

std::string jwk_bytes_or_empty(const nlohmann::json& jwk, const char* member) {
    return enc::base64url_decode(jwk.value(member, "")).value_or("");
}

// Fills a SubjectPublicKeyInfo from the key's (cached) public JWK. X509_REQ_set_pubkey would do
// the same through OpenSSL 3.0's encoder and then decode the result again, which is three
// quarters of the cost of a CSR; the CSR object is only serialized, never asked for its key.
Status set_spki(X509_PUBKEY* pub, const PrivateKey& key) {
    nlohmann::json jwk = key.public_jwk();
    std::string bits;
    int alg_nid;
    int ptype;
    void* pval = nullptr;
    switch (key.type()) {
        case KeyType::EcP256:
        case KeyType::EcP384:
            alg_nid = NID_X9_62_id_ecPublicKey;
            ptype = V_ASN1_OBJECT;
            pval = OBJ_nid2obj(key.type() == KeyType::EcP256 ? NID_X9_62_prime256v1 : NID_secp384r1);
            bits = "\x04" + jwk_bytes_or_empty(jwk, "x") + jwk_bytes_or_empty(jwk, "y");  // SEC1 uncompressed point
            break;
        case KeyType::Ed25519:
            alg_nid = NID_ED25519;
            ptype = V_ASN1_UNDEF;  // RFC 8410 §3: parameters absent
            bits = jwk_bytes_or_empty(jwk, "x");
            break;
        default: {
            alg_nid = NID_rsaEncryption;
            ptype = V_ASN1_NULL;
            std::string body = der_uint(jwk_bytes_or_empty(jwk, "n")) + der_uint(jwk_bytes_or_empty(jwk, "e"));
            bits = "\x30";  // RSAPublicKey ::= SEQUENCE { modulus, publicExponent } (RFC 8017 A.1.1)
            der_length(bits, body.size());
            bits += body;
        }
    }
    auto* penc = static_cast<unsigned char*>(OPENSSL_malloc(bits.size()));
    if (!penc) return ossl::error("building CSR public key");
    std::memcpy(penc, bits.data(), bits.size());
    if (X509_PUBKEY_set0_param(pub, OBJ_nid2obj(alg_nid), ptype, pval, penc, static_cast<int>(bits.size())) != 1) {
        OPENSSL_free(penc);
        return ossl::error("building CSR public key");
    }
    return ok_status();
}

Status add_ext(X509* x, X509_EXTENSION* ext) {
    if (X509_add_ext(x, ext, -1) != 1) return ossl::error("adding certificate extension");
    return ok_status();
}

// A v3 certificate signed by its own key. `extra` extensions are added after the SAN.
Result<Certificate> build_self_signed(const PrivateKey& key, const std::vector<std::string>& names,
                                      SystemTime not_before, SystemTime not_after,
                                      const std::vector<X509_EXTENSION*>& extra) {
    EC_TRY_ASSIGN(auto san, make_san_extension(names));
    EC_TRY_ASSIGN(auto subject, subject_for(names));
    ossl::UniquePtr<X509> x(X509_new());
    if (!x || X509_set_version(x.get(), X509_VERSION_3) != 1) return ossl::error("building certificate");

    EC_TRY(set_random_serial(x.get()));
    if (X509_set_subject_name(x.get(), subject.get()) != 1 || X509_set_issuer_name(x.get(), subject.get()) != 1 ||
        !ASN1_TIME_set(X509_getm_notBefore(x.get()), std::chrono::system_clock::to_time_t(not_before)) ||
        !ASN1_TIME_set(X509_getm_notAfter(x.get()), std::chrono::system_clock::to_time_t(not_after)) ||
        X509_set_pubkey(x.get(), key.get()) != 1) {
        return ossl::error("building certificate");
    }
    EC_TRY(add_ext(x.get(), san.get()));
    for (X509_EXTENSION* e : extra) EC_TRY(add_ext(x.get(), e));
    if (X509_sign(x.get(), key.get(), csr_md(key)) <= 0) return ossl::error("signing certificate");
    return Certificate::adopt(std::move(x));
}

}  // namespace

Result<std::string> make_csr_der(const PrivateKey& key, const std::vector<std::string>& dns_names,
                                 const std::vector<std::string>& ip_addresses) {
    // RFC 8738: an address is its own identifier type, never a DNS name; SANs list the DNS names
    // first (the first one is the CN), then the addresses.
    std::vector<std::string> names;
    for (const auto& n : dns_names) {
        if (is_ip_literal(n))
            return Error(
                ErrorCode::InvalidConfig,
                "'" + n + "' is an IP address, not a DNS name: it belongs in an iPAddress SAN");
        names.push_back(n);
    }
    for (const auto& ip : ip_addresses) {
        EC_TRY_ASSIGN(std::string canonical, canonical_ip(ip));  // says why one is refused
        names.push_back(std::move(canonical));
    }
    EC_TRY_ASSIGN(auto san, make_san_extension(names));
    EC_TRY_ASSIGN(auto subject, subject_for(names));
    ossl::UniquePtr<X509_REQ> req(X509_REQ_new());
    if (!req || X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) != 1 ||
        X509_REQ_set_subject_name(req.get(), subject.get()) != 1) {
        return ossl::error("building CSR");
    }
    EC_TRY(set_spki(X509_REQ_get_X509_PUBKEY(req.get()), key));
    // The SANs travel as a PKCS#9 extensionRequest attribute (RFC 2985 §5.4.2).
    STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
    if (!exts || sk_X509_EXTENSION_push(exts, san.get()) <= 0) {
        sk_X509_EXTENSION_free(exts);
        return ossl::error("building CSR");
    }
    int added = X509_REQ_add_extensions(req.get(), exts);
    sk_X509_EXTENSION_free(exts);  // does not free san: it is still owned by its UniquePtr
    if (added != 1) return ossl::error("building CSR extensions");
    if (X509_REQ_sign(req.get(), key.get(), csr_md(key)) <= 0) return ossl::error("signing CSR");
    unsigned char* der = nullptr;
    int len = i2d_X509_REQ(req.get(), &der);
    if (len <= 0) return ossl::error("encoding CSR");
    std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
    OPENSSL_free(der);
    return out;
}

Result<ChallengeCert> make_tls_alpn01_cert(std::string_view domain, std::string_view key_authorization,
                                           const Clock& clock) {
    // A fresh key per challenge: the certificate only lives for the validation.
    EC_TRY_ASSIGN(PrivateKey key, PrivateKey::generate(KeyType::EcP256));

    // RFC 8737 §3: extnValue = DER of `Authorization ::= OCTET STRING (SIZE (32))` holding
    // SHA-256(key authorization). The extension's own OCTET STRING wraps that DER.
    std::string digest = sha256(key_authorization);
    ossl::UniquePtr<ASN1_OCTET_STRING> inner(ASN1_OCTET_STRING_new());
    if (!inner || ASN1_OCTET_STRING_set(inner.get(), reinterpret_cast<const unsigned char*>(digest.data()),
                                        static_cast<int>(digest.size())) != 1) {
        return ossl::error("building acmeIdentifier");
    }
    unsigned char* der = nullptr;
    int der_len = i2d_ASN1_OCTET_STRING(inner.get(), &der);
    if (der_len <= 0) return ossl::error("encoding acmeIdentifier");
    ossl::UniquePtr<ASN1_OCTET_STRING> value(ASN1_OCTET_STRING_new());
    bool set = value && ASN1_OCTET_STRING_set(value.get(), der, der_len) == 1;
    OPENSSL_free(der);
    if (!set) return ossl::error("building acmeIdentifier");
    ossl::UniquePtr<ASN1_OBJECT> oid(OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1));  // id-pe-acmeIdentifier
    if (!oid) return ossl::error("building acmeIdentifier");
    ossl::UniquePtr<X509_EXTENSION> ext(X509_EXTENSION_create_by_OBJ(nullptr, oid.get(), /*crit=*/1, value.get()));
    if (!ext) return ossl::error("building acmeIdentifier");

    // Validity is not checked by validators; a small backdate covers clock skew anyway.
    SystemTime now = clock.now();
    EC_TRY_ASSIGN(Certificate cert, build_self_signed(key, {std::string(domain)}, now - std::chrono::hours(1),
                                                      now + std::chrono::hours(24 * 7), {ext.get()}));
    return ChallengeCert{std::move(cert), std::move(key)};
}

Result<Certificate> make_self_signed(const PrivateKey& key, const std::vector<std::string>& dns_names,
                                     std::chrono::seconds validity, const Clock& clock) {
    if (validity.count() <= 0 || validity > std::chrono::hours(24 * 366 * 100)) {
        return Error(ErrorCode::InvalidConfig, "certificate validity must be positive and under 100 years");
    }
    SystemTime now = clock.now();
    // A TLS server leaf: not a CA, serverAuth only.
    ossl::UniquePtr<X509> probe(X509_new());  // context for X509V3_EXT_conf_nid
    std::vector<ossl::UniquePtr<X509_EXTENSION>> owned;
    const std::pair<int, const char*> confs[] = {
        {NID_basic_constraints, "critical,CA:FALSE"},
        {NID_key_usage, key.type() == KeyType::Rsa2048 || key.type() == KeyType::Rsa3072 ||
                                key.type() == KeyType::Rsa4096
                            ? "critical,digitalSignature,keyEncipherment"
                            : "critical,digitalSignature"},
        {NID_ext_key_usage, "serverAuth"},
    };
    for (auto [nid, value] : confs) {
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, probe.get(), probe.get(), nullptr, nullptr, 0);
        X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
        if (!e) return ossl::error("building certificate extension");
        owned.emplace_back(e);
    }
    std::vector<X509_EXTENSION*> extra;
    for (auto& e : owned) extra.push_back(e.get());
    return build_self_signed(key, dns_names, now - std::chrono::minutes(5), now + validity, extra);
}

}  // namespace edgecert::acme
