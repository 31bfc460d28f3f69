#pragma once
// A tiny CA for the protocol tests: root → intermediate → leaf, with real signatures, AKI/SKI
// (so Certificate::ari_cert_id works) and chosen CNs (so preferred-chain selection can be tested
// on the issuer CN of the topmost certificate).
#include <gtest/gtest.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <string>
#include <vector>

#include "edgecert/acme/crypto.h"
#include "edgecert/acme/types.h"

namespace edgecert::acme::testpki {

struct Issued {
    Certificate cert;
    PrivateKey key;
};

inline void add_ext(X509* x, X509* issuer, int nid, const char* value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, x, nullptr, nullptr, 0);
    ossl::UniquePtr<X509_EXTENSION> ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
    ASSERT_TRUE(ext) << ossl::drain_errors();
    X509_add_ext(x, ext.get(), -1);
}

// Signs a certificate for `subject_key`. issuer == nullptr: self-signed (issuer_key must then be
// subject_key).
inline Certificate make_cert(const std::string& cn, const PrivateKey& subject_key,
                             const Certificate* issuer, const PrivateKey& issuer_key, bool ca,
                             const std::vector<std::string>& dns, long serial,
                             SystemTime not_before, SystemTime not_after) {
    ossl::UniquePtr<X509> x(X509_new());
    X509_set_version(x.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x.get()), serial);
    ASN1_TIME_set(X509_getm_notBefore(x.get()), std::chrono::system_clock::to_time_t(not_before));
    ASN1_TIME_set(X509_getm_notAfter(x.get()), std::chrono::system_clock::to_time_t(not_after));
    X509_set_pubkey(x.get(), subject_key.get());
    X509_NAME* name = X509_get_subject_name(x.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(x.get(), issuer ? X509_get_subject_name(issuer->get()) : name);
    X509* iss = issuer ? issuer->get() : x.get();
    add_ext(x.get(), iss, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
    add_ext(x.get(), iss, NID_subject_key_identifier, "hash");
    add_ext(x.get(), iss, NID_authority_key_identifier, "keyid:always");
    if (!dns.empty()) {
        std::string san;
        for (const auto& d : dns)  // IP literals become iPAddress SANs
            san += (san.empty() ? "" : ",") + std::string(is_ip_literal(d) ? "IP:" : "DNS:") + d;
        add_ext(x.get(), iss, NID_subject_alt_name, san.c_str());
    }
    EXPECT_GT(X509_sign(x.get(), issuer_key.get(), EVP_sha256()), 0) << ossl::drain_errors();
    return Certificate::adopt(std::move(x));
}

inline PrivateKey ec_key() {
    auto k = PrivateKey::generate(KeyType::EcP256);
    EXPECT_TRUE(k.ok());
    return std::move(k).value();
}

// Root "<root_cn>" → intermediate "<int_cn>" → leaf for `names` with `leaf_key`.
struct Hierarchy {
    PrivateKey root_key = ec_key();
    PrivateKey int_key = ec_key();
    Certificate root;
    Certificate intermediate;

    Hierarchy(const std::string& root_cn, const std::string& int_cn, SystemTime now)
        : root(make_cert(root_cn, root_key, nullptr, root_key, true, {}, 1,
                         now - std::chrono::hours(24), now + std::chrono::hours(24 * 3650))),
          intermediate(make_cert(int_cn, int_key, &root, root_key, true, {}, 2,
                                 now - std::chrono::hours(24),
                                 now + std::chrono::hours(24 * 1000))) {}

    Certificate leaf(const PrivateKey& leaf_key, const std::vector<std::string>& names,
                     SystemTime now, long serial = 0x1234abcd) const {
        return make_cert(names.front(), leaf_key, &intermediate, int_key, false, names, serial,
                         now - std::chrono::hours(1), now + std::chrono::hours(24 * 90));
    }
    // A cross-signed copy of this intermediate, issued by another root (for alternate chains).
    Certificate cross_signed_intermediate(const Certificate& other_root,
                                          const PrivateKey& other_root_key, SystemTime now) const {
        return make_cert(int_cn(), int_key, &other_root, other_root_key, true, {}, 3,
                         now - std::chrono::hours(24), now + std::chrono::hours(24 * 1000));
    }
    std::string int_cn() const { return intermediate.subject_cn(); }
};

}  // namespace edgecert::acme::testpki
