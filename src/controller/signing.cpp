#include "controller/signing.h"

#include <spdlog/spdlog.h>

namespace edgecert::controller {
namespace {

// The first certificate of a PEM bundle, DER-encoded: compares ca.crt values written by
// different tools (line lengths, trailing text) by what they are.
std::string first_der(std::string_view pem) {
    auto c = acme::Certificate::from_pem(pem);
    if (!c) {
        ossl::clear_errors();
        return {};
    }
    return c->to_der();
}

std::string join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
    return out;
}

}  // namespace

Result<pki::CaKeyPair> load_ca(const CaMaterial& m, SystemTime now) {
    auto missing = [&](const std::string& what) {
        return Error(ErrorCode::NotFound,
                     "Error getting keypair for CA issuer: " + m.where + " " + what);
    };
    if (!m.exists) return missing("not found");
    if (!m.tls_crt || m.tls_crt->empty()) return missing("has no tls.crt");
    if (!m.tls_key || m.tls_key->empty()) return missing("has no tls.key");
    auto ca = pki::CaKeyPair::create(*m.tls_crt, *m.tls_key, m.ca_crt, now);
    if (!ca)
        return Error(ErrorCode::InvalidConfig,
                     "Invalid signing key pair: " + m.where + ": " + ca.error().message);
    return ca;
}

std::chrono::milliseconds ca_retry_delay(int attempts) {
    using std::chrono::seconds;
    seconds d{2};
    for (int i = 1; i < attempts && d < seconds(300); ++i) d *= 2;
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::min(d, seconds(300)));
}

const char* ca_reason(const Error& e) {
    return e.code == ErrorCode::NotFound ? kReasonGetKeyPair : kReasonInvalidKeyPair;
}

void check_signed(Evaluation& ev, const CertificateSpec& spec,
                  const store::StoredCertificate& stored, const Signer& signer) {
    if (ev.reason != IssueReason::None || !ev.leaf) return;
    const acme::Certificate& leaf = *ev.leaf;
    auto key = acme::PrivateKey::from_pem(stored.key_pem.reveal());
    if (!key) return;  // evaluate() parsed it already
    if (auto diff = pki::differences(spec.signing_template(), leaf, *key); !diff.empty()) {
        ev.reason = IssueReason::RequestChanged;
        ev.detail = "Issuing certificate as the stored certificate does not match " + join(diff);
        return;
    }
    const std::string have_ca = first_der(stored.ca_pem);
    if (signer.type == IssuerType::SelfSigned) {
        if (!pki::signed_by(leaf, leaf) || have_ca != leaf.to_der()) {
            ev.reason = IssueReason::IncorrectIssuer;
            ev.detail =
                "Issuing certificate as the stored one is not self-signed with its own key (the "
                "issuer is "
                "selfSigned)";
        }
        return;
    }
    if (!signer.ca) return;  // the CA cannot be read now: keep serving what is stored
    if (!pki::signed_by(leaf, signer.ca->cert())) {
        ev.reason = IssueReason::IncorrectIssuer;
        ev.detail =
            "Issuing certificate as the stored one was not signed by the issuer's current CA key";
    } else if (have_ca != first_der(signer.ca->ca_pem())) {
        ev.reason = IssueReason::IncorrectIssuer;
        ev.detail =
            "Issuing certificate as its ca.crt is not the issuer's current CA certificate (the CA "
            "was renewed)";
    }
}

Result<IssueResult> issue_signed(store::CertificateStore& store, const IssueRequest& req,
                                 const Signer& signer, Clock& clock) {
    const CertificateSpec& spec = *req.spec;
    if (signer.type == IssuerType::Ca && !signer.ca)
        return Error(ErrorCode::InvalidConfig, "the ca issuer has no usable key pair");
    EC_TRY_ASSIGN(acme::PrivateKey key, key_for_issuance(spec, req.current));
    auto issued = pki::issue(spec.signing_template(), key, signer.ca, clock.now());
    if (!issued) return issued.error();
    store::StoredCertificate sc{
        .cert_pem = issued->chain_pem, .key_pem = key.to_pem(), .ca_pem = issued->ca_pem};
    EC_TRY(store.save_certificate(spec.ref, sc, secret_meta(spec)));
    // An ACME order left from before the issuer changed can never be used now.
    if (auto pending = store.load_pending(spec.ref); pending && *pending) {
        if (auto st = store.clear_pending(spec.ref); !st)
            spdlog::warn("certificate {}: could not drop an old ACME order: {}", spec.ref.key(),
                         st.error().message);
    }
    IssueResult out;
    out.obtained.chain = issued->chain;
    out.obtained.chain_pem = issued->chain_pem;
    out.clamped_from = issued->clamped_from;
    return out;
}

std::string clamp_note(const IssueResult& r) {
    if (!r.clamped_from || r.obtained.chain.empty()) return {};
    return " (notAfter clamped to the CA certificate's notAfter; spec.duration asked for " +
           rfc3339(*r.clamped_from) + ")";
}

}  // namespace edgecert::controller
