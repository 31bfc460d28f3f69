// Building and signing certificates (RFC 5280 profile), and checking the key pair a `ca` issuer
// signs with.
#include <openssl/sha.h>

#include "pki/pki_internal.h"

namespace edgecert::pki {
namespace {

using std::chrono::seconds;

Error bad(std::string msg) {
    return Error(ErrorCode::InvalidConfig, std::move(msg));
}

SystemTime whole_seconds(SystemTime t) {
    return std::chrono::time_point_cast<seconds>(t);
}

bool self_issued(const acme::Certificate& c) {
    return c.self_signed() && signed_by(c, c);
}

// RFC 5280 §4.2.1.2 method (1): SHA-1 of the subjectPublicKey BIT STRING.
Result<ossl::UniquePtr<ASN1_STRING>> key_id(X509* x) {
    unsigned char md[SHA_DIGEST_LENGTH];
    unsigned int len = 0;
    ossl::UniquePtr<ASN1_STRING> id(ASN1_OCTET_STRING_new());
    if (!id || X509_pubkey_digest(x, EVP_sha1(), md, &len) != 1 ||
        ASN1_OCTET_STRING_set(id.get(), md, static_cast<int>(len)) != 1)
        return ossl::error("computing the subject key identifier");
    return id;
}

Status add_key_ids(X509* x, const acme::Certificate* issuer) {
    EC_TRY_ASSIGN(auto ski, key_id(x));
    if (X509_add1_ext_i2d(x, NID_subject_key_identifier, ski.get(), 0, X509V3_ADD_DEFAULT) != 1)
        return ossl::error("adding subjectKeyIdentifier");
    // RFC 5280 §4.2.1.1: the issuer's own key identifier. A CA certificate without one (rare:
    // hand-made with old tools) leaves it out, as Go's x509 does; path building then goes by name.
    const ASN1_OCTET_STRING* issuer_id =
        issuer ? X509_get0_subject_key_id(issuer->get()) : ski.get();
    if (!issuer_id) return {};
    ossl::UniquePtr<AUTHORITY_KEYID> akid(AUTHORITY_KEYID_new());
    if (!akid || !(akid->keyid = ASN1_OCTET_STRING_dup(issuer_id)))
        return ossl::error("building authorityKeyIdentifier");
    if (X509_add1_ext_i2d(x, NID_authority_key_identifier, akid.get(), 0, X509V3_ADD_DEFAULT) != 1)
        return ossl::error("adding authorityKeyIdentifier");
    return {};
}

Status add_basic_constraints(X509* x, bool ca) {
    ossl::UniquePtr<BASIC_CONSTRAINTS> bc(BASIC_CONSTRAINTS_new());
    if (!bc) return ossl::error("building basicConstraints");
    bc->ca = ca ? 0xFF : 0;
    // Critical, as Go (and so cert-manager) writes it; RFC 5280 §4.2.1.9 requires it for CAs.
    if (X509_add1_ext_i2d(x, NID_basic_constraints, bc.get(), 1, X509V3_ADD_DEFAULT) != 1)
        return ossl::error("adding basicConstraints");
    return {};
}

Status set_time(ASN1_TIME* field, SystemTime t) {
    if (!ASN1_TIME_set(field, std::chrono::system_clock::to_time_t(t)))
        return ossl::error("setting validity");
    return {};
}

}  // namespace

bool signed_by(const acme::Certificate& cert, const acme::Certificate& issuer) {
    EVP_PKEY* pub = X509_get0_pubkey(issuer.get());
    bool ok = pub && X509_verify(cert.get(), pub) == 1;
    ossl::clear_errors();
    return ok;
}

Result<CaKeyPair> CaKeyPair::create(std::string_view tls_crt, const SecretBytes& tls_key,
                                    std::string_view ca_crt, SystemTime now) {
    auto chain = acme::parse_pem_chain(tls_crt);
    if (!chain) return bad("no PEM certificate in tls.crt");
    auto key = acme::PrivateKey::from_pem(tls_key.reveal());
    if (!key) return bad("tls.key: " + key.error().message);
    const acme::Certificate& c = chain->front();
    if (!c.matches_key(*key))
        return bad("the private key (tls.key) does not match the CA certificate (tls.crt)");
    if (!is_ca(c)) return bad("the certificate is not a CA (its basicConstraints lack CA:TRUE)");
    // keyUsage, when present, must allow signing certificates (RFC 5280 §4.2.1.3).
    const uint32_t ku = X509_get_key_usage(c.get());
    if (ku != UINT32_MAX && !(ku & KU_KEY_CERT_SIGN))
        return bad("the certificate may not sign certificates (its keyUsage lacks keyCertSign)");
    if (now < c.not_before())
        return bad("the CA certificate is not valid before " + rfc3339(c.not_before()));
    if (now >= c.not_after()) return bad("the CA certificate expired at " + rfc3339(c.not_after()));

    CaKeyPair out(std::move(*chain), std::move(*key));
    for (const auto& x : out.chain_)
        if (!self_issued(x)) out.intermediates_.push_back(x);
    const acme::Certificate& top = out.chain_.back();
    if (self_issued(top)) {
        out.ca_pem_ = top.to_pem();
    } else if (auto roots = acme::parse_pem_chain(ca_crt); roots && !ca_crt.empty()) {
        out.ca_pem_ = acme::chain_to_pem(*roots);
    } else {
        out.ca_pem_ = top.to_pem();  // an intermediate with nothing above it: the best we know
    }
    return out;
}

Result<Issued> issue(const CertificateTemplate& t, const acme::PrivateKey& key, const CaKeyPair* ca,
                     SystemTime now) {
    if (t.subject.common_name.empty() && t.dns_names.empty())
        return bad("a certificate needs spec.commonName or spec.dnsNames");
    if (t.duration <= seconds(0)) return bad("spec.duration must be positive");
    EC_TRY_ASSIGN(auto subject, build_name(t.subject));

    ossl::UniquePtr<X509> x(X509_new());
    if (!x || X509_set_version(x.get(), X509_VERSION_3) != 1)
        return ossl::error("building certificate");
    EC_TRY(acme::set_random_serial(x.get()));

    const SystemTime not_before = whole_seconds(now);
    SystemTime not_after = not_before + t.duration;
    std::optional<SystemTime> clamped_from;
    if (ca && ca->cert().not_after() < not_after) {
        // A certificate cannot usefully outlive the CA that vouches for it.
        clamped_from = not_after;
        not_after = ca->cert().not_after();
    }
    X509_NAME* issuer_name = ca ? X509_get_subject_name(ca->cert().get()) : subject.get();
    if (X509_set_subject_name(x.get(), subject.get()) != 1 ||
        X509_set_issuer_name(x.get(), issuer_name) != 1 || X509_set_pubkey(x.get(), key.get()) != 1)
        return ossl::error("building certificate");
    EC_TRY(set_time(X509_getm_notBefore(x.get()), not_before));
    EC_TRY(set_time(X509_getm_notAfter(x.get()), not_after));

    EC_TRY(add_basic_constraints(x.get(), t.is_ca));
    EC_TRY(add_usage_extensions(x.get(), usage_bits(t, key)));
    EC_TRY(add_key_ids(x.get(), ca ? &ca->cert() : nullptr));
    if (!t.dns_names.empty()) {
        // RFC 5280 §4.2.1.6: critical when the subject is empty (cert-manager's dnsNames-only
        // leaves).
        EC_TRY_ASSIGN(auto san, acme::make_san_extension(t.dns_names, t.subject.empty()));
        if (X509_add_ext(x.get(), san.get(), -1) != 1) return ossl::error("adding subjectAltName");
    }
    const acme::PrivateKey& signer = ca ? ca->key() : key;
    if (X509_sign(x.get(), signer.get(), acme::signature_digest(signer)) <= 0)
        return ossl::error("signing certificate");

    Issued out{.cert = acme::Certificate::adopt(std::move(x)),
               .chain = {},
               .chain_pem = {},
               .ca_pem = {},
               .clamped_from = clamped_from};
    out.chain.push_back(out.cert);
    if (ca) {
        for (const auto& c : ca->intermediates()) out.chain.push_back(c);
        out.ca_pem = ca->ca_pem();
    } else {
        out.ca_pem = out.cert.to_pem();  // cert-manager's selfSigned: ca.crt is the certificate
    }
    out.chain_pem = acme::chain_to_pem(out.chain);
    return out;
}

}  // namespace edgecert::pki
