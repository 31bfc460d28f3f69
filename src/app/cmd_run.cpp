// `edgecert run --config FILE`: the embedded default. One process, a local directory as the
// store: the certificate controller (issuance, renewal with ARI, backoff) and the terminator
// (serving STORE/certs, hot-swapped by inotify) together, challenges answered in-process.
//
//   config (run_config.h) ──► Runner over certificate names ──► issue() ──► DirStore
//                                   │ present/cleanup                         │ inotify
//                                   ▼                                         ▼
//                      MemoryChallengeSource ◄── TerminatorRuntime (TLS, :80, admin /metrics)
//
// The controller and the terminator share nothing but the directory and the challenge map, the
// same seam the Kubernetes deployment has (Secrets and Challenge objects), so `run` exercises the
// production paths rather than a shortcut.
#include <dirent.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>

#include "app/clients.h"
#include "app/commands.h"
#include "app/flags.h"
#include "app/run_config.h"
#include "app/status_page.h"
#include "app/status_sources.h"
#include "app/terminator_runtime.h"
#include "controller/accounts.h"
#include "controller/issuance.h"
#include "controller/renewal.h"
#include "controller/runner.h"
#include "controller/signing.h"
#include "edgecert/acme/order.h"
#include "edgecert/base/clock.h"
#include "edgecert/base/metrics.h"
#include "platform/curl_http.h"
#include "platform/files.h"
#include "platform/signals.h"
#include "store/dir_store.h"

namespace edgecert::app {
namespace {

using controller::CertificateSpec;
using std::chrono::milliseconds;
using std::chrono::seconds;


double unix_seconds(SystemTime t) {
    return double(std::chrono::duration_cast<seconds>(t.time_since_epoch()).count());
}

// Publishes challenge answers where the in-process terminator serves them: visible to the very
// next request, so present() needs no propagation wait.
class InProcessSolver final : public acme::ChallengeSolver {
  public:
    InProcessSolver(tls::MemoryChallengeSource& mem, std::vector<std::string> types)
        : mem_(mem), types_(std::move(types)) {}
    std::vector<std::string> supported_types() const override { return types_; }
    Status present(const std::string& domain, const acme::Challenge& ch, const std::string& ka) override {
        if (ch.type == acme::kHttp01) mem_.set_http01(ch.token, ka);
        else if (ch.type == acme::kTlsAlpn01) mem_.set_tls_alpn01(domain, ka);
        else return Error(ErrorCode::InvalidConfig, "challenge type " + ch.type + " is not answered in-process");
        return {};
    }
    void cleanup(const std::string& domain, const acme::Challenge& ch) noexcept override {
        if (ch.type == acme::kHttp01) mem_.remove_http01(ch.token);
        else if (ch.type == acme::kTlsAlpn01) mem_.remove_tls_alpn01(domain);
    }

  private:
    tls::MemoryChallengeSource& mem_;
    std::vector<std::string> types_;
};

// What the controller remembers about one certificate between reconciles. The backoff lives in
// memory only (a restart starts it over, which for a single machine is the expected behaviour);
// what it says about the certificate (`view`) is also written to STORE/certs/<secretName>/
// status.json whenever it changes, for `edgecert status --store` after the fact.
struct CertState {
    status::RunCertStatus view;  // Ready, last failure; failures/renewal/next attempt at publish
    int failures = 0;
    std::optional<SystemTime> next_retry;
    std::optional<SystemTime> ca_not_before;  // a rate limit's Retry-After: even `edgecert renew` waits
    std::optional<SystemTime> renewal_time;  // kept inside one ARI window (no dice per pass)
    std::string ari_serial;                  // the leaf `ari` belongs to
    std::optional<acme::RenewalInfo> ari;
    std::optional<SystemTime> ari_next_try;  // after an ARI error
    int ca_waits = 0;                        // looks at an unusable ca issuer key pair
    std::string ca_problem;                  // the last one said (logged once, not per look)
    // Issuer fallback (controller/fallback.h): each issuer's failures in this run, and the issuer
    // that signed the stored certificate ("" = not known yet: read from certificate.json).
    controller::FallbackState fallback;
    std::string issued_by;
    std::string active_issuer;  // the series edgecert_certificate_active_issuer is 1 for
};

// The retry delay after the n-th failure in a row (the same rule for every issuer).
seconds run_backoff(int n, const Error& e) {
    if (e.code == ErrorCode::RateLimited) {
        // The CA said when: waiting for it is exactly right, and retrying sooner only burns
        // more of the limit. Without a Retry-After, cert-manager's backoff (1 h doubling).
        return e.retry_after ? std::max(*e.retry_after, seconds(1))
                             : controller::failure_backoff(n, e);
    }
    if (e.retryable()) {
        // CA unreachable, 5xx, cancelled poll: a pending order is kept and resumed, so a short
        // exponential backoff (10 s doubling, at most the cert-manager step) is safe.
        auto k = std::clamp(n, 1, 7);
        seconds wait = std::min(seconds(10) * (1 << (k - 1)), controller::failure_backoff(n, e));
        if (e.retry_after && *e.retry_after > wait) wait = *e.retry_after;  // 503 + Retry-After
        return wait;
    }
    // The order failed (validation, CSR, policy): cert-manager's backoff, 1 h doubling.
    return controller::failure_backoff(n, e);
}

// What a failed attempt knows about the issuer chain (fallbacks configured).
struct FallbackAttempt {
    const std::vector<controller::IssuerRef>& chain;
    size_t index;
    const controller::FailureOrigin* origin;  // where the attempt failed (issue() sets it)
    // The chain entry whose order is in flight now (read after the failure).
    std::function<std::optional<size_t>()> pinned;
};

// Who an ACME attempt is for: the issuer of the chain it uses, whether the certificate in
// service is that CA's own (only then is its ARI certID sent as `replaces`), and where a
// failure is recorded (our side or the CA's).
struct AcmeAttempt {
    controller::IssuerRef issuer;
    bool current_from_issuer = true;
    controller::FailureOrigin* origin = nullptr;
};

class RunController {
  public:
    RunController(std::shared_ptr<const RunConfig> cfg, store::DirStore& store, tls::MemoryChallengeSource& mem,
                  Clock& clock, metrics::Registry& reg, const std::atomic<bool>& cancel)
        : cfg_(std::move(cfg)), store_(store), mem_(mem), clock_(clock), reg_(reg), cancel_(cancel),
          accounts_(store, http_factory, clock, client_options()), rng_(std::random_device{}()) {}

    void set_config(std::shared_ptr<const RunConfig> cfg) {
        std::lock_guard lk(mu_);
        cfg_ = std::move(cfg);
    }
    std::shared_ptr<const RunConfig> config() const {
        std::lock_guard lk(mu_);
        return cfg_;
    }

    Result<controller::Requeue> reconcile(const std::string& name);
    // `edgecert renew --config FILE NAME`: renew now (skipping a failure backoff, not a CA's
    // Retry-After); used once, when the attempt starts. The caller enqueues `name`.
    void request_renewal(const std::string& name) {
        std::lock_guard lk(mu_);
        manual_.insert(name);
    }
    // Called after a certificate is stored (the runner enqueues what a ca issuer signs with it).
    std::function<void(const std::string& secret_name)> on_stored;

    // The status page's data: every configured certificate, what is stored, what this process
    // knows about it, and what `served` (the built-in terminator, may be null) has on the wire.
    status::Report report(const TerminatorRuntime* served) const;

  private:
    std::set<std::string> manual_;  // renewals asked for by name (mu_)
    static Result<std::unique_ptr<HttpClient>> http_factory(const controller::AcmeIssuerSpec& spec) {
        return acme_http_client(spec);
    }
    acme::ClientOptions client_options() {
        acme::ClientOptions o;
        o.cancel = &cancel_;
        o.on_request = [this](const acme::RequestEvent& ev) {
            reg_.counter("edgecert_acme_requests_total", "ACME requests by resource and HTTP status (0: transport error).",
                         {{"resource", std::string(ev.resource)}, {"status", std::to_string(ev.status)}})
                ->inc();
        };
        return o;
    }
    metrics::Labels labels(const CertificateSpec& s) const {
        // secret: the folder, which is also the name the terminator's served-certificate series
        // carries (the stale-certificate alert joins the two on it).
        return {{"name", s.ref.name},
                {"issuer_name", s.issuer_name},
                {"issuer_kind", "Issuer"},
                {"secret", s.ref.secret_name}};
    }
    void set_ready(const CertificateSpec& s, const char* condition) {
        for (const char* c : {"True", "False", "Unknown"}) {
            auto l = labels(s);
            l.emplace_back("condition", c);
            reg_.gauge("edgecert_certificate_ready_status", "The Ready condition of each certificate (1: current).", l)
                ->set(std::string(c) == condition ? 1 : 0);
        }
    }
    void set_times(const CertificateSpec& s, const acme::Certificate& leaf, SystemTime renewal) {
        reg_.gauge("edgecert_certificate_expiration_timestamp_seconds", "notAfter of the stored certificate.",
                   labels(s))
            ->set(unix_seconds(leaf.not_after()));
        reg_.gauge("edgecert_certificate_renewal_timestamp_seconds", "When the certificate will be renewed.", labels(s))
            ->set(unix_seconds(renewal));
    }
    // ARI (RFC 9773) for the stored leaf, polled again at the CA's next_poll; errors fall back
    // to the lifetime rule and are retried a few minutes later.
    void refresh_ari(const CertificateSpec& spec, const RunIssuer& iss, const acme::Certificate& leaf, CertState& st);
    // The key pair of a ca issuer: a certificate folder of the store, or files.
    Result<pki::CaKeyPair> ca_for(const RunIssuer& iss);
    // ACME: account, solver (in-process, or dns-01), order.
    Result<controller::IssueResult> issue_acme(const CertificateSpec& spec, const RunIssuer& iss,
                                               std::optional<store::StoredCertificate> current,
                                               const AcmeAttempt& attempt);
    // `in_service`: a valid certificate is still stored (a failed renewal keeps Ready True).
    // `fa`: the issuer chain when the certificate has fallbacks (the next issuer is chosen here).
    Result<controller::Requeue> failed(const CertificateSpec& spec, CertState& st, const Error& e,
                                       bool in_service, const FallbackAttempt* fa = nullptr);
    void set_active_issuer(const CertificateSpec& s, CertState& st, const std::string& issuer);
    // The issuer named in STORE/certs/<secretName>/certificate.json ("" when unknown).
    std::string stored_issuer(const CertificateSpec& s) const;
    static void set_view(CertState& st, const char* ready, std::string reason,
                         std::string message) {
        st.view.ready = ready;
        st.view.reason = std::move(reason);
        st.view.message = std::move(message);
    }
    // Up to date: Ready, and a success clears the last failure (as the controller's status does).
    static void mark_ready(CertState& st) {
        set_view(st, "True", "Ready", "Certificate is up to date and has not expired");
        st.view.last_failure_time.reset();
        st.view.failure_reason.clear();
        st.view.failure_message.clear();
    }
    // Stores `st` as the state of `spec` and rewrites its status.json when what it says changed.
    void publish(const CertificateSpec& spec, CertState st);

    mutable std::mutex mu_;  // cfg_, states_, rng_
    std::shared_ptr<const RunConfig> cfg_;
    store::DirStore& store_;
    tls::MemoryChallengeSource& mem_;
    Clock& clock_;
    metrics::Registry& reg_;
    const std::atomic<bool>& cancel_;
    controller::AccountManager accounts_;
    std::map<std::string, CertState> states_;
    std::mt19937_64 rng_;
};

void RunController::publish(const CertificateSpec& spec, CertState st) {
    status::RunCertStatus& v = st.view;
    v.name = spec.ref.name;
    v.secret_name = spec.ref.secret_name;
    v.dns_names = spec.dns_names;  // the names it is for, addresses (RFC 8738) included
    v.dns_names.insert(v.dns_names.end(), spec.ip_addresses.begin(), spec.ip_addresses.end());
    v.issuer_name = st.issued_by.empty() ? spec.issuer_name : st.issued_by;
    v.failed_attempts = st.failures;
    v.renewal_time = st.renewal_time;
    v.next_attempt_time = st.next_retry;
    bool changed;
    {
        std::lock_guard lk(mu_);
        auto& slot = states_[spec.ref.name];
        changed = !(slot.view == v);
        slot = st;
    }
    if (!changed) return;
    // Not secret (0644) and rebuilt at the next change, so no fsync; the rename keeps it whole.
    if (auto w = store_.save_status(spec.ref, status::to_json(v).dump(2) + "\n"); !w)
        spdlog::warn("certificate {}: writing status.json: {}", spec.ref.key(), w.error().message);
}

status::Report RunController::report(const TerminatorRuntime* served) const {
    auto cfg = config();
    status::Report r;
    r.source_kind = "run";
    r.source = cfg->store;
    r.generated_at = clock_.now();
    for (const auto& c : cfg->certificates) {
        std::optional<status::RunCertStatus> view;
        {
            std::lock_guard lk(mu_);
            if (auto it = states_.find(c.ref.name);
                it != states_.end() && !it->second.view.name.empty())
                view = it->second.view;
        }
        auto pem = platform::read_file(store_.cert_dir(c.ref) + "/tls.crt");
        auto row = status::row_from_run(view ? &*view : nullptr, pem ? *pem : "", c.ref.name,
                                        c.ref.secret_name);
        if (row.dns_names.empty()) {
            row.dns_names = c.dns_names;
            row.dns_names.insert(row.dns_names.end(), c.ip_addresses.begin(), c.ip_addresses.end());
        }
        if (row.issuer_name.empty()) row.issuer_name = c.issuer_name;
        r.certificates.push_back(std::move(row));
    }
    if (served) status::attach_served(r, "built-in", served->served());
    return r;
}

controller::AccountRequest account_request(const RunIssuer& iss) {
    controller::AccountRequest r;
    r.issuer_key = "run/" + iss.name;
    r.spec = &iss.acme;
    r.account_key_id = iss.name;  // STORE/accounts/<issuer>/account.key
    r.eab_hmac = iss.eab_hmac;
    return r;
}

void RunController::refresh_ari(const CertificateSpec& spec, const RunIssuer& iss, const acme::Certificate& leaf,
                                CertState& st) {
    SystemTime now = clock_.now();
    bool fresh = st.ari && st.ari_serial == leaf.serial_hex() && now < st.ari->next_poll;
    if (fresh || (st.ari_next_try && now < *st.ari_next_try && st.ari_serial == leaf.serial_hex())) return;
    auto client = accounts_.client_for(account_request(iss));
    if (!client || !(*client)->supports_ari()) {
        st.ari.reset();
        st.ari_serial = leaf.serial_hex();
        st.ari_next_try = now + std::chrono::minutes(client ? 360 : 5);
        return;
    }
    auto ri = (*client)->renewal_info(leaf);
    st.ari_serial = leaf.serial_hex();
    if (!ri) {
        spdlog::warn("certificate {}: ARI: {} (using the lifetime rule)", spec.ref.key(), ri.error().message);
        st.ari.reset();
        st.ari_next_try = now + std::chrono::minutes(5);
        return;
    }
    st.ari = *ri;
    st.ari_next_try.reset();
    spdlog::info("certificate {}: ARI window {} .. {}, next poll {}", spec.ref.key(),
                 rfc3339(ri->suggested_window.start), rfc3339(ri->suggested_window.end), rfc3339(ri->next_poll));
}

Result<controller::Requeue> RunController::failed(const CertificateSpec& spec, CertState& st,
                                                  const Error& e, bool in_service,
                                                  const FallbackAttempt* fa) {
    if (cancel_.load()) return controller::Requeue::done();  // shutting down: not a failure
    if (!in_service) set_ready(spec, "False");
    const char* reason = e.code == ErrorCode::InvalidConfig ? "BadConfig"
                         : e.code == ErrorCode::RateLimited ? "RateLimited"
                                                            : "Failed";
    st.view.last_failure_time = clock_.now();
    st.view.failure_reason = reason;
    st.view.failure_message = e.message;
    if (!in_service) set_view(st, "False", reason, e.message);
    if (e.code == ErrorCode::InvalidConfig) {
        spdlog::error("certificate {}: {} (not retried until the config changes)", spec.ref.key(), e.message);
        return e;  // the Runner does not requeue InvalidConfig
    }
    SystemTime now = clock_.now();
    st.failures++;
    seconds wait = run_backoff(st.failures, e);
    std::string with;
    if (fa) {
        // Each issuer backs off on its own count; the chain decides who is next (fallback.h).
        using namespace controller;
        const FailureClass fc = classify_failure(e, *fa->origin);
        const FallbackPolicy defaults{};
        auto out = record_failure(st.fallback, fa->chain, fa->index, e, fc,
                                  spec.fallback_policy.with_defaults(defaults), now, run_backoff,
                                  fa->pinned ? fa->pinned() : std::nullopt);
        wait = std::chrono::ceil<seconds>(
            std::max(out.next.not_before - now, std::chrono::nanoseconds(0)));
        const IssuerRef& next = fa->chain[out.next.index];
        if (out.next.index != fa->index) with = " with issuer " + next.name;
        if (out.fell_back) {
            const IssuerRef& from = fa->chain[fa->index];
            spdlog::warn(
                "certificate {}: FallbackIssuer: issuer {} {} ({}); falling back to issuer {}",
                spec.ref.key(), from.name, out.why, fc.reason, next.name);
            reg_.counter("edgecert_certificate_issuer_fallbacks_total",
                         "Times a certificate's issuance left an issuer for the next one in its "
                         "fallback list.",
                         {{"name", spec.ref.name},
                          {"from_issuer_kind", "Issuer"},
                          {"from_issuer_name", from.name},
                          {"to_issuer_kind", "Issuer"},
                          {"to_issuer_name", next.name},
                          {"reason", fc.reason}})
                ->inc();
            st.view.failure_reason = "IssuerFallback";
            st.view.failure_message = "issuer " + from.name + " " + out.why + " (" + fc.reason +
                                      "): " + e.message + "; falling back to issuer " + next.name;
        }
        set_active_issuer(spec, st, next.name);
    }
    st.next_retry = now + wait;
    st.ca_not_before.reset();
    if (e.code == ErrorCode::RateLimited && e.retry_after) st.ca_not_before = now + *e.retry_after;
    if (e.code == ErrorCode::RateLimited) {
        spdlog::warn("certificate {}: rate limited by the CA, retrying{} at {} ({})",
                     spec.ref.key(), with, rfc3339(*st.next_retry), e.message);
    } else {
        spdlog::warn("certificate {}: issuance failed (attempt {}): {}; retrying{} at {}",
                     spec.ref.key(), st.failures, e.message, with, rfc3339(*st.next_retry));
        for (const auto& d : e.details) spdlog::warn("certificate {}:   {}", spec.ref.key(), d);
    }
    return controller::Requeue::in(std::chrono::duration_cast<milliseconds>(wait));
}

Result<pki::CaKeyPair> RunController::ca_for(const RunIssuer& iss) {
    if (!iss.ca_cert_file.empty()) return load_ca_files(iss, clock_.now());
    controller::CaMaterial m{.where = "store folder certs/" + iss.ca_secret_name,
                             .exists = false,
                             .tls_crt = {},
                             .tls_key = {},
                             .ca_crt = {}};
    EC_TRY_ASSIGN(
        auto sc, store_.load_certificate(store::CertificateRef{.secret_name = iss.ca_secret_name}));
    if (sc) {
        m.exists = true;
        if (!sc->cert_pem.empty()) m.tls_crt = sc->cert_pem;
        if (!sc->key_pem.empty()) m.tls_key = sc->key_pem;
        m.ca_crt = sc->ca_pem;
    }
    return controller::load_ca(m, clock_.now());
}

Result<controller::IssueResult> RunController::issue_acme(
    const CertificateSpec& spec, const RunIssuer& iss,
    std::optional<store::StoredCertificate> current, const AcmeAttempt& attempt) {
    EC_TRY_ASSIGN(auto client, accounts_.client_for(account_request(iss), attempt.origin));
    controller::IssueRequest req;
    req.spec = &spec;
    req.issuer = &iss.acme;
    req.current = std::move(current);
    req.current_from_issuer = attempt.current_from_issuer;
    req.issuer_ref = attempt.issuer;
    req.origin = attempt.origin;
    // The issuer's solver whose selector fits this certificate (cert-manager's precedence).
    EC_TRY_ASSIGN(auto types, controller::challenge_types_for(iss.acme, spec.labels, spec.dns_names,
                                                              spec.ip_addresses));
    InProcessSolver in_process(mem_, types);
    std::optional<controller::OwnedDnsSolver> dns;
    if (types == std::vector<std::string>{"dns-01"}) {
        // A dns01 solver: RFC 2136 (TSIG secret from rfc2136.tsigSecretFile) or a webhook.
        auto so =
            controller::select_solver(iss.acme, spec.labels, spec.dns_names, spec.ip_addresses);
        auto read = [](const controller::Dns01Config& c) -> Result<SecretBytes> {
            if (c.tsig_secret_file.empty())
                return Error(
                    ErrorCode::InvalidConfig,
                    "edgecert run reads the TSIG secret from dns01.rfc2136.tsigSecretFile");
            return platform::read_secret_file(c.tsig_secret_file, 16384);
        };
        auto d = so && *so ? controller::make_owned_dns_solver(
                                 (*so)->dns01, read,
                                 [] { return http_factory(controller::AcmeIssuerSpec{}); }, clock_)
                           : Result<controller::OwnedDnsSolver>(
                                 Error(ErrorCode::InvalidConfig, "no dns01 solver selected"));
        if (!d) return d.error();
        dns = std::move(*d);
    }
    acme::ChallengeSolver& solver =
        dns ? static_cast<acme::ChallengeSolver&>(*dns->solver) : in_process;
    return controller::issue(*client, solver, store_, req, clock_);
}

void RunController::set_active_issuer(const CertificateSpec& s, CertState& st,
                                      const std::string& issuer) {
    if (st.active_issuer == issuer) return;
    auto gauge = [&](const std::string& name) {
        return reg_.gauge("edgecert_certificate_active_issuer",
                          "1 for the issuer a certificate relies on: the one being tried while "
                          "issuing, else the one "
                          "that signed the stored certificate.",
                          {{"name", s.ref.name},
                           {"issuer_kind", "Issuer"},
                           {"issuer_name", name},
                           {"fallback", name == s.issuer_name ? "false" : "true"},
                           {"secret", s.ref.secret_name}});
    };
    if (!st.active_issuer.empty()) gauge(st.active_issuer)->set(0);
    gauge(issuer)->set(1);
    st.active_issuer = issuer;
}

std::string RunController::stored_issuer(const CertificateSpec& s) const {
    auto text = platform::read_file(store_.cert_dir(s.ref) + "/certificate.json", 1 << 16);
    if (!text) return "";
    auto j = nlohmann::json::parse(*text, nullptr, false);
    return j.is_object() ? j.value("issuer", "") : "";
}

Result<controller::Requeue> RunController::reconcile(const std::string& name) {
    auto cfg = config();
    const CertificateSpec* specp = cfg->certificate(name);
    if (!specp) return controller::Requeue::done();  // removed from the config
    const CertificateSpec& spec = *specp;
    CertState st;
    {
        std::lock_guard lk(mu_);
        st = states_[name];
    }
    auto save = [&] { publish(spec, st); };
    // The issuer chain: the primary, then the fallbacks (controller/fallback.h; only ACME issuers
    // have fallbacks, which load_run_config checks).
    const std::vector<controller::IssuerRef> chain = spec.issuer_chain();
    const bool has_fallbacks = chain.size() > 1;
    std::vector<const RunIssuer*> issuers;
    for (const auto& ref : chain) {
        issuers.push_back(cfg->issuer(ref.name));
        if (!issuers.back()) {
            // A SIGHUP with a config that lost the issuer (load_run_config refuses it at start).
            Error e(ErrorCode::InvalidConfig, "issuer " + ref.name + " is not configured");
            auto r = failed(spec, st, e, false);
            save();
            return r;
        }
    }
    if (st.issued_by.empty()) st.issued_by = stored_issuer(spec);
    // Who signed the stored certificate: ARI is asked of it (the primary when not recorded).
    size_t signer_idx = 0;
    bool signer_listed = st.issued_by.empty();
    for (size_t i = 0; i < chain.size(); ++i) {
        if (chain[i].name == st.issued_by) {
            signer_idx = i;
            signer_listed = true;
        }
    }
    const RunIssuer* iss = issuers[signer_idx];
    SystemTime now = clock_.now();
    bool manual = false;
    {
        std::lock_guard lk(mu_);
        manual = manual_.count(spec.ref.name) > 0;
    }
    if (st.next_retry && now < *st.next_retry) {
        if (!manual || (st.ca_not_before && now < *st.ca_not_before))
            return controller::Requeue::in(std::chrono::duration_cast<milliseconds>(
                (manual ? *st.ca_not_before : *st.next_retry) - now));
        spdlog::info("certificate {}: renewal requested: trying now instead of at {}", spec.ref.key(),
                     rfc3339(*st.next_retry));
        st.next_retry.reset();
    }

    EC_TRY_ASSIGN(auto stored, store_.load_certificate(spec.ref));
    const RunIssuer& primary = *issuers[0];
    const bool acme_issuer = primary.type == controller::IssuerType::Acme;
    std::optional<Result<pki::CaKeyPair>> ca;
    if (primary.type == controller::IssuerType::Ca) ca = ca_for(primary);
    const controller::Signer signer{.type = primary.type, .ca = ca && *ca ? &**ca : nullptr};
    auto eval = [&] {
        controller::Evaluation e;
        {
            std::lock_guard lk(mu_);
            e = controller::evaluate(spec, stored, st.ari, st.renewal_time, rng_, clock_.now());
        }
        if (stored && !acme_issuer) controller::check_signed(e, spec, *stored, signer);
        return e;
    };
    controller::Evaluation ev = eval();
    if (ev.reason == controller::IssueReason::None && ev.leaf && acme_issuer) {
        refresh_ari(spec, *iss, *ev.leaf, st);
        ev = eval();
    }
    if (manual) controller::apply_manual_renewal(ev);
    if (ev.reason == controller::IssueReason::None && ev.renewal) {
        if (st.renewal_time != ev.renewal->renewal_time)
            spdlog::info("certificate {}: serial {}, valid until {}, renewal at {} ({})", spec.ref.key(),
                         ev.leaf->serial_hex(), rfc3339(ev.leaf->not_after()),
                         rfc3339(ev.renewal->renewal_time), controller::to_string(ev.renewal->basis));
        if (ev.renewal->warning) spdlog::warn("certificate {}: {}", spec.ref.key(), *ev.renewal->warning);
        st.renewal_time = ev.renewal->renewal_time;
        st.failures = 0;
        st.next_retry.reset();
        controller::prune(st.fallback, chain, now);
        set_active_issuer(spec, st, st.issued_by.empty() ? spec.issuer_name : st.issued_by);
        mark_ready(st);
        set_ready(spec, "True");
        set_times(spec, *ev.leaf, ev.renewal->renewal_time);
        now = clock_.now();
        SystemTime next = ev.renewal->renewal_time;
        if (st.ari && st.ari->next_poll < next) next = st.ari->next_poll;
        if (st.ari_next_try && *st.ari_next_try < next) next = *st.ari_next_try;
        save();
        auto d = std::chrono::duration_cast<milliseconds>(next - now);
        return controller::Requeue::in(std::max(d, milliseconds(1000)));
    }

    // Issue (or resume the pending order).
    spdlog::info("certificate {}: {}", spec.ref.key(), ev.detail);
    const bool in_service =
        ev.leaf && ev.leaf->not_after() > clock_.now() && controller::keeps_serving(ev.reason);
    if (!in_service) {
        set_ready(spec, "False");
        set_view(st, "False", std::string(controller::to_string(ev.reason)), ev.detail);
        save();
    }
    if (ca && !*ca) {
        // Wait for the CA: its certificate in this file being issued enqueues us (on_stored), and a
        // CA made elsewhere is looked at again with a growing delay.
        if (st.ca_problem != ca->error().message)
            spdlog::error("certificate {}: issuer {} not ready: {}", spec.ref.key(), primary.name,
                          ca->error().message);
        st.ca_problem = ca->error().message;
        if (!in_service)
            set_view(st, "False", "IssuerNotReady",
                     "issuer " + primary.name + " is not ready: " + st.ca_problem);
        auto wait = controller::ca_retry_delay(++st.ca_waits);
        save();
        return controller::Requeue::in(wait);
    }
    st.ca_waits = 0;
    st.ca_problem.clear();
    // The issuer of this attempt: the primary, or after it kept failing a fallback; an order in
    // flight is finished with the issuer that placed it.
    size_t idx = 0;
    auto pending_issuer = [&]() -> Result<std::optional<size_t>> {
        EC_TRY_ASSIGN(auto pending, store_.load_pending(spec.ref));
        if (!pending) return std::optional<size_t>{};
        std::vector<std::string> servers;
        for (const RunIssuer* i : issuers) servers.push_back(i->acme.server);
        return controller::pinned_issuer(chain, servers, *pending);
    };
    if (has_fallbacks) {
        if (st.failures == 0) controller::prune(st.fallback, chain, now);  // a new run
        EC_TRY_ASSIGN(auto pinned, pending_issuer());
        auto choice = controller::choose_issuer(chain, st.fallback, pinned, now);
        set_active_issuer(spec, st, chain[choice.index].name);
        if (now < choice.not_before) {
            st.next_retry = choice.not_before;
            save();
            return controller::Requeue::in(
                std::chrono::duration_cast<milliseconds>(choice.not_before - now));
        }
        idx = choice.index;
        if (idx > 0)
            spdlog::warn("certificate {}: issuing with issuer {} (fallback for {}){}",
                         spec.ref.key(), chain[idx].name, chain[0].name,
                         choice.pinned ? ", resuming its order" : "");
    }
    iss = issuers[idx];
    controller::FailureOrigin origin = controller::FailureOrigin::Local;
    const FallbackAttempt attempt{chain, idx, &origin, [&]() -> std::optional<size_t> {
                                      auto p = pending_issuer();
                                      return p ? *p : std::optional<size_t>(idx);
                                  }};
    const FallbackAttempt* fa = has_fallbacks ? &attempt : nullptr;
    auto t0 = clock_.steady_now();
    if (manual) {  // this attempt is the one asked for, whatever its outcome
        std::lock_guard lk(mu_);
        manual_.erase(spec.ref.name);
    }
    std::optional<store::StoredCertificate> current;
    if (stored && ev.leaf) current = std::move(stored);
    const bool renewing = current.has_value();
    // selfSigned / ca issuers sign here (controller/signing.h).
    auto res =
        acme_issuer
            ? issue_acme(spec, *iss, std::move(current),
                         AcmeAttempt{.issuer = chain[idx],
                                     .current_from_issuer = signer_listed && signer_idx == idx,
                                     .origin = &origin})
            : controller::issue_signed(
                  store_, {.spec = &spec, .issuer = nullptr, .current = std::move(current)}, signer,
                  clock_);
    if (!res) {
        auto r = failed(spec, st, res.error(), in_service, fa);
        save();
        return r;
    }
    const acme::Certificate& leaf = res->obtained.chain.front();
    std::vector<std::string> names = spec.dns_names;
    names.insert(names.end(), spec.ip_addresses.begin(), spec.ip_addresses.end());
    spdlog::info(
        "certificate {}: {} serial {} for {} in {:.1f} s{}, valid until {}{}{}", spec.ref.key(),
        renewing ? "renewed" : "issued", leaf.serial_hex(),
        names.empty() ? "CN " + spec.subject.common_name : fmt::format("{}", fmt::join(names, ",")),
        std::chrono::duration<double>(clock_.steady_now() - t0).count(),
        res->resumed ? " (resumed order)" : "", rfc3339(leaf.not_after()),
        controller::clamp_note(*res),
        idx > 0 ? " by issuer " + chain[idx].name + " (fallback for " + chain[0].name + ")" : "");
    st.issued_by = chain[idx].name;
    controller::record_success(st.fallback, chain, idx, clock_.now());
    set_active_issuer(spec, st, chain[idx].name);
    st.failures = 0;
    st.next_retry.reset();
    st.renewal_time.reset();
    st.ari.reset();
    st.ari_next_try.reset();
    mark_ready(st);
    save();
    if (on_stored) on_stored(spec.ref.secret_name);
    // Evaluate the new certificate right away: schedules its renewal and sets the metrics.
    return controller::Requeue::in(milliseconds(1));
}

// Renewals asked for with `edgecert renew --config FILE NAME` (run_config.h): each request file is
// removed and its certificate enqueued to renew now; a name the config does not have is said and
// dropped.
void take_renew_requests(const std::string& store_root, const RunConfig& cfg, RunController& ctl,
                         controller::Runner& runner) {
    const std::string dir = store_root + "/" + kRenewRequestsDir;
    DIR* d = ::opendir(dir.c_str());
    if (!d) return;
    std::vector<std::string> names;
    while (const dirent* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (!n.empty() && n[0] != '.') names.push_back(std::move(n));
    }
    ::closedir(d);
    for (const auto& n : names) {
        ::unlink((dir + "/" + n).c_str());
        if (!cfg.certificate(n)) {
            spdlog::warn("run: a renewal was requested for '{}', which is not a certificate of the config; ignored", n);
            continue;
        }
        spdlog::info("certificate {}: renewal requested (edgecert renew)", n);
        ctl.request_renewal(n);
        runner.enqueue(n);
    }
}

}  // namespace

int cmd_run(int argc, char** argv) {
    Flags f("run", "--config FILE",
            "The embedded default: issues and renews the certificates declared in --config (ACME, same\n"
            "fields as the Issuer/Certificate CRDs), keeps them in a local directory and serves them\n"
            "with the built-in terminator, which also answers the CA's http-01/tls-alpn-01 challenges.\n"
            "SIGHUP reloads the config; SIGTERM drains and stops.");
    f.add("config", "FILE", "YAML config (see README: store, issuers, certificates, terminator)");
    if (auto st = f.parse(argc, argv); !st) {
        std::fprintf(stderr, "edgecert run: %s\n", st.error().message.c_str());
        return 2;
    }
    if (f.help_requested()) {
        std::printf("%s", f.help_text().c_str());
        return 0;
    }
    if (!f.has("config")) {
        std::fprintf(stderr, "edgecert run: --config FILE is required\n");
        return 2;
    }
    const std::string config_path = f.get("config");
    auto loaded = load_run_config(config_path);
    if (!loaded) {
        std::fprintf(stderr, "edgecert run: %s\n", loaded.error().message.c_str());
        return loaded.error().code == ErrorCode::InvalidConfig ? 2 : 1;
    }
    auto cfg = std::make_shared<const RunConfig>(std::move(*loaded));
    auto fail = [](const Error& e) {
        spdlog::error("run: {}", e.message);
        return e.code == ErrorCode::InvalidConfig ? 2 : 1;
    };

    // Blocked before any thread starts, so every thread inherits the mask.
    platform::SignalWaiter signals;
    RealClock& clock = RealClock::instance();
    auto& reg = metrics::Registry::global();

    auto store = store::DirStore::create(cfg->store);
    if (!store) return fail(store.error());
    spdlog::info("run: store {}, {} issuer(s), {} certificate(s)", cfg->store, cfg->issuers.size(),
                 cfg->certificates.size());

    tls::MemoryChallengeSource challenges;
    TerminatorRuntimeOptions to;
    const RunTerminator& t = cfg->terminator;
    to.server.listen = t.listen;
    to.server.http_listen = t.http_listen;
    to.server.upstream = t.upstream;
    to.server.workers = t.workers;
    to.server.proxy_protocol = t.proxy_protocol;
    to.server.upstream_protocol = t.upstream_protocol;
    to.server.h2_upstream = t.upstream_h2;
    to.server.ktls = t.ktls;
    to.server.http_mode = t.http_mode;
    to.server.drain_timeout = t.drain_timeout;
    to.tls.alpn = t.alpn;
    to.cert_dir = (*store)->certs_dir();
    to.default_cert = t.default_certificate;
    to.strict_sni = t.strict_sni;
    to.admin = t.admin;
    auto rt = TerminatorRuntime::create(to, clock, &challenges, reg);
    if (!rt) return fail(rt.error());
    if (auto st = (*rt)->start(); !st) return fail(st.error());

    std::atomic<bool> cancel{false};
    RunController ctl(cfg, **store, challenges, clock, reg, cancel);
    // The status page (GET /, /status, /status.json) on the terminator's admin port; the admin
    // server is stopped (with the runtime) before ctl goes out of scope.
    if (platform::AdminServer* admin = (*rt)->admin()) {
        TerminatorRuntime* runtime = rt->get();
        status::add_status_handlers(*admin, [&ctl, runtime] { return ctl.report(runtime); },
                                    {"edgecert run"});
    }
    controller::Runner::Options ro;
    ro.name = "certificate";
    ro.workers = static_cast<int>(std::clamp<size_t>(cfg->certificates.size(), 1, 4));
    // Errors the reconcile returns (store I/O) back off from 1 s to 5 min; issuance failures
    // schedule their own retry through Requeue.
    ro.queue.base_delay = milliseconds(1000);
    ro.queue.max_delay = milliseconds(300'000);
    controller::Runner runner(ro, clock, reg, [&ctl](const std::string& key) { return ctl.reconcile(key); });
    // A certificate stored in a folder a ca issuer signs with: what that issuer signs is looked at
    // now (the CA was just created or renewed; see controller/signing.h).
    ctl.on_stored = [&ctl, &runner](const std::string& secret_name) {
        auto now_cfg = ctl.config();
        for (const auto& c : now_cfg->certificates) {
            const RunIssuer* i = now_cfg->issuer(c.issuer_name);
            if (i && i->type == controller::IssuerType::Ca && i->ca_secret_name == secret_name)
                runner.enqueue(c.ref.name);
        }
    };
    for (const auto& c : cfg->certificates) runner.enqueue(c.ref.name);
    runner.start();

    int rc = 0;
    while (true) {
        auto ev = signals.wait(seconds(1));
        (*rt)->tick();
        take_renew_requests(cfg->store, *ctl.config(), ctl, runner);
        if (ev == platform::SignalWaiter::Event::Reload) {
            auto next = load_run_config(config_path);
            if (!next) {
                spdlog::error("run: SIGHUP: {}; keeping the running config", next.error().message);
                continue;
            }
            if (next->store != cfg->store || next->terminator.listen != t.listen ||
                next->terminator.http_listen != t.http_listen || next->terminator.upstream != t.upstream ||
                next->terminator.admin != t.admin)
                spdlog::warn("run: SIGHUP: store and terminator settings apply at the next start");
            auto fresh = std::make_shared<const RunConfig>(std::move(*next));
            ctl.set_config(fresh);
            spdlog::info("run: SIGHUP: config reloaded, {} certificate(s)", fresh->certificates.size());
            for (const auto& c : fresh->certificates) runner.enqueue(c.ref.name);
            (*rt)->reload();
        } else if (ev == platform::SignalWaiter::Event::Stop) {
            spdlog::info("run: {}: stopping (draining connections up to {} ms)", signals.last_name(),
                         t.drain_timeout.count());
            cancel.store(true);  // in-flight ACME waits return within a second; orders stay resumable
            runner.stop();
            if (!(*rt)->drain()) rc = 1;
            break;
        }
    }
    (*rt)->stop();
    spdlog::info("run: stopped");
    return rc;
}

}  // namespace edgecert::app
