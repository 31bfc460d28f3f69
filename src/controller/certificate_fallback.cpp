// CertificateController: the issuer-fallback half (certificate_controller.h, fallback.h) —
// resolving spec.fallbackIssuerRefs, and who signed the stored certificate.
#include "controller/certificate_controller.h"
#include "controller/resources.h"
#include "edgecert/k8s/object.h"

namespace edgecert::controller {

namespace meta = k8s::meta;

Result<std::vector<CertificateController::Resolved>> CertificateController::resolve_fallbacks(
    const CertificateSpec& spec) {
    std::vector<Resolved> out;
    for (size_t i = 0; i < spec.fallback_issuers.size(); ++i) {
        const IssuerRef& ref = spec.fallback_issuers[i];
        const std::string where = "spec.fallbackIssuerRefs[" + std::to_string(i) + "]";
        auto r = resolve_ref(ref, spec.ref.namespace_);
        if (!r) {
            // Unlike a missing primary (IssuerNotFound, waited for as cert-manager does), a
            // missing fallback is reported at once: nobody would notice it before the outage
            // it is there for.
            Error e = r.error().with_context(where);
            e.code = ErrorCode::InvalidConfig;
            return e;
        }
        // Fallback is for CA outages: a selfSigned or ca issuer has no CA to fail over to, and
        // would hand clients a certificate they do not trust in place of a public one.
        if (r->spec.type != IssuerType::Acme)
            return Error(ErrorCode::InvalidConfig,
                         where + ": " + describe(ref) + " is a " +
                             std::string(to_string(r->spec.type)) +
                             " issuer; only ACME issuers can be fallbacks");
        if (auto t = challenge_types_for(r->spec.acme, spec.labels, spec.dns_names,
                                         spec.ip_addresses);
            !t)
            return t.error().with_context(where + " (" + describe(ref) + ")");
        out.push_back(std::move(*r));
    }
    return out;
}

std::optional<IssuerRef> CertificateController::signer_of(const CertificateSpec& spec) const {
    if (!ctx_.informers.secrets) return std::nullopt;
    auto s = ctx_.informers.secrets->store().get(spec.ref.namespace_, spec.ref.secret_name);
    if (!s) return std::nullopt;
    auto name = meta::annotation(*s, "edgecert.io/issuer-name");
    auto kind = meta::annotation(*s, "edgecert.io/issuer-kind");
    if (!name || name->empty()) return std::nullopt;
    return IssuerRef{*name, kind && !kind->empty() ? *kind : "Issuer", std::string(kGroup)};
}

}  // namespace edgecert::controller
