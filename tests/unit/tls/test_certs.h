#pragma once
// In-process test certificates (no files, no openssl CLI): self-signed or CA-signed leaves with
// chosen SANs, key type and validity.
#include <openssl/pem.h>

#include <string>
#include <vector>

#include "edgecert/base/ossl.h"
#include "edgecert/base/secret.h"

namespace edgecert::tls::testing {

struct TestCert {
    std::string cert_pem;  // leaf (+ chain if signed by a CA)
    SecretBytes key_pem;
    ossl::UniquePtr<X509> cert;
    ossl::UniquePtr<EVP_PKEY> key;
};

inline ossl::UniquePtr<EVP_PKEY> make_key(bool rsa, const char* curve = "P-256") {
    return ossl::UniquePtr<EVP_PKEY>(rsa ? EVP_RSA_gen(2048) : EVP_EC_gen(curve));
}

inline std::string to_pem(X509* x) {
    ossl::UniquePtr<BIO> b(BIO_new(BIO_s_mem()));
    PEM_write_bio_X509(b.get(), x);
    return ossl::bio_to_string(b.get());
}

inline SecretBytes key_to_pem(EVP_PKEY* k) {
    ossl::UniquePtr<BIO> b(BIO_new(BIO_s_mem()));
    PEM_write_bio_PrivateKey(b.get(), k, nullptr, nullptr, 0, nullptr, nullptr);
    return SecretBytes(ossl::bio_to_string(b.get()));
}

// not_before/not_after: seconds relative to `now` (unix time).
inline TestCert make_cert(const std::vector<std::string>& sans, bool rsa, long serial, time_t now,
                          long not_before = -3600, long not_after = 30 * 86400, const TestCert* ca = nullptr,
                          const char* curve = "P-256") {
    TestCert t;
    t.key = make_key(rsa, curve);
    t.cert.reset(X509_new());
    X509* x = t.cert.get();
    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    X509_time_adj_ex(X509_getm_notBefore(x), 0, not_before, &now);
    X509_time_adj_ex(X509_getm_notAfter(x), 0, not_after, &now);
    X509_NAME* n = X509_get_subject_name(x);
    std::string cn = sans.empty() ? "test" : sans[0];
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(x, ca ? X509_get_subject_name(ca->cert.get()) : n);
    X509_set_pubkey(x, t.key.get());
    if (!sans.empty()) {
        std::string v;
        for (const auto& s : sans) {  // IP literals become iPAddress SANs
            bool ip = s.find_first_not_of("0123456789.") == std::string::npos ||
                      s.find(':') != std::string::npos;
            v += (v.empty() ? "" : ",") + std::string(ip ? "IP:" : "DNS:") + s;
        }
        X509V3_CTX ctx;
        X509V3_set_ctx(&ctx, ca ? ca->cert.get() : x, x, nullptr, nullptr, 0);
        ossl::UniquePtr<X509_EXTENSION> ext(X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, v.c_str()));
        X509_add_ext(x, ext.get(), -1);
    }
    X509_sign(x, ca ? ca->key.get() : t.key.get(), EVP_sha256());
    t.cert_pem = to_pem(x);
    if (ca) t.cert_pem += to_pem(ca->cert.get());
    t.key_pem = key_to_pem(t.key.get());
    return t;
}

}  // namespace edgecert::tls::testing
