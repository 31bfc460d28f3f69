#include "tls/alpn_challenge.h"

#include <openssl/rand.h>
#include <openssl/sha.h>

#include "edgecert/base/ip.h"

namespace edgecert::tls {

Result<std::shared_ptr<const ChallengeCert>> build_alpn_challenge_cert(const std::string& domain,
                                                                       const std::string& key_authorization) {
    auto out = std::make_shared<ChallengeCert>();
    out->key_authorization = key_authorization;
    out->key.reset(EVP_EC_gen("P-256"));
    if (!out->key) return ossl::error("tls-alpn-01: key generation");
    out->cert.reset(X509_new());
    X509* x = out->cert.get();
    X509_set_version(x, X509_VERSION_3);
    unsigned char serial[16];
    RAND_bytes(serial, sizeof serial);
    serial[0] &= 0x7f;
    ossl::UniquePtr<BIGNUM> bn(BN_bin2bn(serial, sizeof serial, nullptr));
    BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(x));
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 7 * 24 * 3600);
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(domain.c_str()), -1,
                               -1, 0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, out->key.get());

    // subjectAltName: exactly the identifier being validated (RFC 8737 §3): dNSName = domain,
    // or for an IP identifier one iPAddress with its octets (RFC 8738 §6).
    ossl::UniquePtr<GENERAL_NAMES> gens(GENERAL_NAMES_new());
    GENERAL_NAME* gn = GENERAL_NAME_new();
    ASN1_STRING* san = nullptr;
    int type = GEN_DNS;
    if (auto ip = IpAddress::parse(domain)) {
        type = GEN_IPADD;
        san = ASN1_OCTET_STRING_new();
        if (san) ASN1_OCTET_STRING_set(san, ip->data(), static_cast<int>(ip->size()));
    } else {
        san = ASN1_IA5STRING_new();
        if (san) ASN1_STRING_set(san, domain.data(), static_cast<int>(domain.size()));
    }
    if (!gens || !gn || !san) {
        GENERAL_NAME_free(gn);
        ASN1_STRING_free(san);
        return ossl::error("tls-alpn-01: subjectAltName");
    }
    GENERAL_NAME_set0_value(gn, type, san);
    sk_GENERAL_NAME_push(gens.get(), gn);
    if (X509_add1_ext_i2d(x, NID_subject_alt_name, gens.get(), 0, X509V3_ADD_DEFAULT) != 1)
        return ossl::error("tls-alpn-01: subjectAltName");

    // acmeIdentifier: extnValue = DER(OCTET STRING (SIZE(32)) SHA-256(key authorization)).
    unsigned char der[2 + SHA256_DIGEST_LENGTH] = {0x04, SHA256_DIGEST_LENGTH};
    SHA256(reinterpret_cast<const unsigned char*>(key_authorization.data()), key_authorization.size(), der + 2);
    ossl::UniquePtr<ASN1_OBJECT> oid(OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1));
    ossl::UniquePtr<ASN1_OCTET_STRING> value(ASN1_OCTET_STRING_new());
    ASN1_OCTET_STRING_set(value.get(), der, sizeof der);
    ossl::UniquePtr<X509_EXTENSION> ext(X509_EXTENSION_create_by_OBJ(nullptr, oid.get(), 1, value.get()));
    if (!ext || X509_add_ext(x, ext.get(), -1) != 1) return ossl::error("tls-alpn-01: acmeIdentifier");

    if (X509_sign(x, out->key.get(), EVP_sha256()) <= 0) return ossl::error("tls-alpn-01: signing");
    return std::shared_ptr<const ChallengeCert>(std::move(out));
}

Result<std::shared_ptr<const ChallengeCert>> ChallengeCertCache::get(const std::string& domain,
                                                                     const std::string& key_authorization) {
    {
        std::lock_guard l(mu_);
        auto it = certs_.find(domain);
        if (it != certs_.end() && it->second->key_authorization == key_authorization) return it->second;
    }
    EC_TRY_ASSIGN(auto c, build_alpn_challenge_cert(domain, key_authorization));
    std::lock_guard l(mu_);
    if (certs_.size() > 1024) certs_.clear();  // bound: challenges are short-lived
    certs_[domain] = c;
    return c;
}

}  // namespace edgecert::tls
