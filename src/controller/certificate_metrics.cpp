// CertificateController: its metrics (docs/metrics.md) — scrape-time collectors over the state
// each reconcile leaves in state_, and the issuer-fallback counter.
#include "controller/certificate_controller.h"

namespace edgecert::controller {

void CertificateController::register_metrics() {
    using S = metrics::Registry::Sample;
    auto labels = [](const std::string& key, const CertState& s) {
        auto slash = key.find('/');
        return metrics::Labels{{"issuer_kind", s.issuer_kind},
                               {"issuer_name", s.issuer_name},
                               {"name", key.substr(slash + 1)},
                               {"namespace", key.substr(0, slash)},
                               {"secret", s.secret}};
    };
    collectors_.emplace_back(
        ctx_.metrics, "edgecert_certificate_expiration_timestamp_seconds",
        "notAfter of the certificate in each Certificate's Secret (Unix time).", "gauge",
        [this, labels](std::vector<S>& out) {
            std::lock_guard lk(mu_);
            for (auto& [k, s] : state_)
                if (s.not_after > 0) out.push_back({labels(k, s), s.not_after});
        });
    collectors_.emplace_back(ctx_.metrics, "edgecert_certificate_renewal_timestamp_seconds",
                             "When each certificate is due for renewal (Unix time).", "gauge",
                             [this, labels](std::vector<S>& out) {
                                 std::lock_guard lk(mu_);
                                 for (auto& [k, s] : state_)
                                     if (s.renewal > 0) out.push_back({labels(k, s), s.renewal});
                             });
    collectors_.emplace_back(
        ctx_.metrics, "edgecert_certificate_ready_status",
        "Ready condition of each Certificate (1 for the current condition value).", "gauge",
        [this, labels](std::vector<S>& out) {
            std::lock_guard lk(mu_);
            for (auto& [k, s] : state_)
                for (const char* c : {"True", "False"}) {
                    auto l = labels(k, s);
                    l.insert(l.begin(), {"condition", c});
                    out.push_back({l, (s.ready == (c[0] == 'T')) ? 1.0 : 0.0});
                }
        });
    collectors_.emplace_back(
        ctx_.metrics, "edgecert_certificate_renewal_overdue",
        "1 when a certificate is past its renewal time by more than an hour and not renewed.",
        "gauge", [this, labels](std::vector<S>& out) {
            std::lock_guard lk(mu_);
            for (auto& [k, s] : state_) out.push_back({labels(k, s), s.overdue ? 1.0 : 0.0});
        });
    collectors_.emplace_back(
        ctx_.metrics, "edgecert_certificate_active_issuer",
        "1 for the issuer a certificate relies on: the one being tried while issuing, else the one "
        "that "
        "signed the stored certificate; fallback=\"true\" when it is not spec.issuerRef.",
        "gauge", [this](std::vector<S>& out) {
            std::lock_guard lk(mu_);
            for (auto& [k, s] : state_) {
                if (!s.active) continue;
                auto slash = k.find('/');
                out.push_back({metrics::Labels{{"fallback", s.active_fallback ? "true" : "false"},
                                               {"issuer_kind", s.active->kind},
                                               {"issuer_name", s.active->name},
                                               {"name", k.substr(slash + 1)},
                                               {"namespace", k.substr(0, slash)},
                                               {"secret", s.secret}},
                               1.0});
            }
        });
}

void CertificateController::count_fallback(const std::string& key, const IssuerRef& from,
                                           const IssuerRef& to, const std::string& reason) {
    auto slash = key.find('/');
    ctx_.metrics
        .counter(
            "edgecert_certificate_issuer_fallbacks_total",
            "Times a certificate's issuance left an issuer for the next one in its fallback list.",
            {{"namespace", key.substr(0, slash)},
             {"name", key.substr(slash + 1)},
             {"from_issuer_kind", from.kind},
             {"from_issuer_name", from.name},
             {"to_issuer_kind", to.kind},
             {"to_issuer_name", to.name},
             {"reason", reason}})
        ->inc();
}

}  // namespace edgecert::controller
