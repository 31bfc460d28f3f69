#include "controller/certificate_controller.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "controller/challenge_publisher.h"
#include "controller/resources.h"
#include "controller/shim.h"
#include "controller/signing.h"
#include "controller/status_util.h"
#include "edgecert/base/encoding.h"
#include "edgecert/k8s/object.h"

namespace edgecert::controller {
namespace {

namespace meta = k8s::meta;
using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::seconds;

double epoch(SystemTime t) { return double(std::chrono::duration_cast<seconds>(t.time_since_epoch()).count()); }

std::string fmt_time(SystemTime t) { return k8s::format_time(t); }

}  // namespace

CertificateController::CertificateController(ControllerContext& ctx, AccountManager::HttpFactory http,
                                             CertificateControllerOptions opts)
    : ctx_(ctx), opts_(opts), http_factory_(http), store_(ctx.client, ctx.field_manager),
      accounts_(store_, std::move(http), ctx.clock, [this] {
          acme::ClientOptions o;
          o.cancel = &stopping_;
          o.on_request = [this](const acme::RequestEvent& e) {
              ctx_.metrics
                  .counter("edgecert_acme_requests_total", "ACME requests by resource and HTTP status.",
                           {{"resource", std::string(e.resource)}, {"status", std::to_string(e.status)}})
                  ->inc();
          };
          return o;
      }()) {
    Runner::Options ro;
    ro.name = "certificate";
    ro.workers = std::max(1, opts_.workers);
    runner_ = std::make_unique<Runner>(ro, ctx.clock, ctx.metrics, [this](const std::string& k) { return reconcile(k); });
    Runner::Options io;
    io.name = "issuer";
    io.workers = 1;
    issuer_runner_ = std::make_unique<Runner>(io, ctx.clock, ctx.metrics,
                                              [this](const std::string& k) { return reconcile_issuer(k); });

    using S = metrics::Registry::Sample;
    auto labels = [](const std::string& key, const CertState& s) {
        auto slash = key.find('/');
        return metrics::Labels{{"issuer_kind", s.issuer_kind},
                               {"issuer_name", s.issuer_name},
                               {"name", key.substr(slash + 1)},
                               {"namespace", key.substr(0, slash)},
                               {"secret", s.secret}};
    };
    collectors_.emplace_back(ctx.metrics, "edgecert_certificate_expiration_timestamp_seconds",
                             "notAfter of the certificate in each Certificate's Secret (Unix time).", "gauge",
                             [this, labels](std::vector<S>& out) {
                                 std::lock_guard lk(mu_);
                                 for (auto& [k, s] : state_)
                                     if (s.not_after > 0) out.push_back({labels(k, s), s.not_after});
                             });
    collectors_.emplace_back(ctx.metrics, "edgecert_certificate_renewal_timestamp_seconds",
                             "When each certificate is due for renewal (Unix time).", "gauge",
                             [this, labels](std::vector<S>& out) {
                                 std::lock_guard lk(mu_);
                                 for (auto& [k, s] : state_)
                                     if (s.renewal > 0) out.push_back({labels(k, s), s.renewal});
                             });
    collectors_.emplace_back(ctx.metrics, "edgecert_certificate_ready_status",
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
    collectors_.emplace_back(ctx.metrics, "edgecert_certificate_renewal_overdue",
                             "1 when a certificate is past its renewal time by more than an hour and not renewed.",
                             "gauge", [this, labels](std::vector<S>& out) {
                                 std::lock_guard lk(mu_);
                                 for (auto& [k, s] : state_) out.push_back({labels(k, s), s.overdue ? 1.0 : 0.0});
                             });
}

CertificateController::~CertificateController() { stop(); }

void CertificateController::start() {
    issuer_runner_->start();
    runner_->start();
}

void CertificateController::stop() {
    stopping_ = true;
    runner_->stop();
    issuer_runner_->stop();
}

void CertificateController::register_handlers() {
    auto& inf = ctx_.informers;
    k8s::EventHandlers certs;
    certs.on_add = [this](const k8s::ObjectPtr& o) { runner_->enqueue(meta::key(*o)); };
    certs.on_update = [this](const k8s::ObjectPtr& old_obj, const k8s::ObjectPtr& o) {
        // Our own status writes come back as updates: only spec/metadata changes matter.
        const json& a = *old_obj;
        const json& b = *o;
        if (a.value("spec", json()) == b.value("spec", json()) &&
            meta::annotations(a) == meta::annotations(b) && meta::finalizers(a) == meta::finalizers(b) &&
            meta::deletion_timestamp(a) == meta::deletion_timestamp(b))
            return;
        runner_->enqueue(meta::key(b));
    };
    certs.on_delete = [this](const k8s::ObjectPtr& o, bool) { runner_->enqueue(meta::key(*o)); };
    inf.certificates->add_handlers(certs);

    if (inf.secrets) {
        auto by_secret = [this](const json& s) {
            auto n = meta::annotation(s, "edgecert.io/certificate-name");
            if (n && !n->empty()) runner_->enqueue(meta::key(meta::namespace_(s), *n));
            on_ca_secret(s);  // it may be the key pair of a ca issuer (a bootstrapped CA)
        };
        auto fire = [by_secret](const k8s::ObjectPtr& o) { by_secret(*o); };
        inf.secrets->add_handlers(k8s::upsert_delete_handlers(fire, fire));
    }
    auto issuer_handler = [this](const std::string& kind) {
        auto fire = [this, kind](const json& iss) {
            const std::string ns = meta::namespace_(iss), name = meta::name(iss);
            enqueue_certificates_of(kind, ns, name);
            accounts_.forget(kind == "Issuer" ? "Issuer/" + ns + "/" + name : "ClusterIssuer/" + name);
            issuer_runner_->enqueue(kind == "Issuer" ? "Issuer/" + ns + "/" + name : "ClusterIssuer/" + name);
        };
        k8s::EventHandlers h;
        h.on_add = [fire](const k8s::ObjectPtr& o) { fire(*o); };
        h.on_update = [fire](const k8s::ObjectPtr& a, const k8s::ObjectPtr& b) {
            // Not our own status writes; an annotation change is how a user asks for a fresh look.
            if (a->value("spec", json()) != b->value("spec", json()) ||
                meta::annotations(*a) != meta::annotations(*b))
                fire(*b);
        };
        h.on_delete = [fire](const k8s::ObjectPtr& o, bool) { fire(*o); };
        return h;
    };
    if (inf.issuers) inf.issuers->add_handlers(issuer_handler("Issuer"));
    if (inf.clusterissuers) inf.clusterissuers->add_handlers(issuer_handler("ClusterIssuer"));
}

void CertificateController::event(const json& cert, std::string_view type, std::string_view reason,
                                  const std::string& msg) {
    ctx_.events.record(cert, resources::Certificate, type, reason, msg);
    // The Ingress/Gateway this Certificate came from, so `kubectl describe ingress` tells the story.
    auto kind = meta::label(cert, std::string(kLabelSourceKind));
    auto ns = meta::annotation(cert, std::string(kAnnSourceNamespace));
    auto name = meta::annotation(cert, std::string(kAnnSourceName));
    if (!kind || !ns || !name) return;
    k8s::Informer* inf = *kind == "Ingress" ? ctx_.informers.ingresses
                         : *kind == "Gateway" ? ctx_.informers.gateways : nullptr;
    if (!inf) return;
    auto src = inf->store().get(*ns, *name);
    if (!src) return;
    const k8s::ResourceType& rt = *kind == "Ingress" ? k8s::resources::Ingress : k8s::resources::Gateway;
    ctx_.events.record(*src, rt, type, reason, "Certificate " + meta::name(cert) + ": " + msg);
}

void CertificateController::patch_status(const json& cert, json status) {
    write_status(ctx_, resources::Certificate, cert, status);
}

void CertificateController::set_metrics(const std::string& key, const CertState& st) {
    std::lock_guard lk(mu_);
    CertState& s = state_[key];
    auto ari = std::move(s.ari);
    auto serial = std::move(s.ari_serial);
    s = st;
    if (!s.ari) {
        s.ari = std::move(ari);
        s.ari_serial = std::move(serial);
    }
}

std::chrono::seconds CertificateController::backoff(int attempts, const std::optional<Error>& err) const {
    if (attempts <= 0) return seconds(0);
    // failure_backoff() with the 1 h base scaled to --failure-backoff-base.
    seconds d = opts_.failure_backoff_base;
    for (int i = 1; i < attempts && d < kBackoffCap; ++i) d *= 2;
    d = std::min(d, seconds(kBackoffCap.count() * opts_.failure_backoff_base.count() / kBackoffBase.count()));
    if (err && err->code == ErrorCode::RateLimited && err->retry_after && *err->retry_after > d) d = *err->retry_after;
    return d;
}

std::optional<acme::RenewalInfo> CertificateController::ari_for(const std::string& key, acme::Client& client,
                                                                 const acme::Certificate& leaf) {
    auto dir = client.directory();
    if (!dir || dir->renewal_info.empty()) return std::nullopt;
    const SystemTime now = ctx_.clock.now();
    {
        std::lock_guard lk(mu_);
        auto& s = state_[key];
        if (s.ari && s.ari_serial == leaf.serial_hex() && now < s.ari->next_poll) return s.ari;
    }
    auto ri = client.renewal_info(leaf);
    std::lock_guard lk(mu_);
    auto& s = state_[key];
    if (!ri) {
        spdlog::warn("certificate {}: renewalInfo failed ({}); using the lifetime rule", key, ri.error().message);
        return s.ari_serial == leaf.serial_hex() ? s.ari : std::nullopt;
    }
    s.ari = *ri;
    s.ari_serial = leaf.serial_hex();
    return s.ari;
}

Result<Requeue> CertificateController::handle_deletion(const json& cert, const std::string& key) {
    auto fins = meta::finalizers(cert);
    if (std::find(fins.begin(), fins.end(), kRevokeFinalizer) == fins.end()) return Requeue::done();
    auto spec = parse_certificate_spec(cert);
    if (spec && meta::annotation(cert, kAnnRevokeOnDelete).value_or("") == "true") {
        auto stored = store_.load_certificate(spec->ref);
        std::optional<acme::Certificate> leaf;
        if (stored && *stored) {
            if (auto c = acme::Certificate::from_pem((*stored)->cert_pem)) leaf = std::move(*c);
        }
        if (leaf && leaf->not_after() > ctx_.clock.now()) {
            auto r = resolve_issuer(*spec);
            if (!r && r.error().code == ErrorCode::NotFound) {
                // Nobody can revoke it any more; holding the delete forever would help no one.
                event(cert, "Warning", "Failed", "not revoked: " + r.error().message);
                r = Error(ErrorCode::Permanent, "skip");
            }
            if (!r && r.error().message != "skip") return r.error();
            if (r && r->spec.type != IssuerType::Acme) {
                // Signed here: there is no CA to tell, and no CRL or OCSP is published.
                spdlog::info(
                    "certificate {}: serial {} was signed by a {} issuer: nothing to revoke", key,
                    leaf->serial_hex(), to_string(r->spec.type));
            } else if (r) {
                EC_TRY_ASSIGN(auto client, client_for(*r));
                auto st = client->revoke(*leaf, acme::RevocationReason::CessationOfOperation);
                if (!st && st.error().type.find("alreadyRevoked") == std::string::npos) {
                    event(cert, "Warning", "Failed", "revocation failed: " + st.error().message);
                    return st.error();
                }
                event(cert, "Normal", "Revoked",
                      "Revoked certificate serial " + leaf->serial_hex() + " on delete");
            }
        }
    }
    fins.erase(std::remove(fins.begin(), fins.end(), kRevokeFinalizer), fins.end());
    auto r = ctx_.client.patch(resources::Certificate, meta::namespace_(cert), meta::name(cert), k8s::PatchType::Merge,
                               json{{"metadata", {{"finalizers", fins}, {"resourceVersion", meta::resource_version(cert)}}}},
                               k8s::PatchOptions{.field_manager = ctx_.field_manager});
    if (!r && r.error().code != ErrorCode::NotFound) return r.error();
    std::lock_guard lk(mu_);
    state_.erase(key);
    return Requeue::done();
}

Result<Requeue> CertificateController::reconcile(const std::string& key) {
    auto obj = ctx_.informers.certificates->store().get(key);
    if (!obj) {
        std::lock_guard lk(mu_);
        state_.erase(key);
        last_error_.erase(key);
        return Requeue::done();
    }
    const json cert = *obj;
    if (meta::is_deleting(cert)) return handle_deletion(cert, key);
    const SystemTime now = ctx_.clock.now();
    const int64_t gen = cert.value("metadata", json::object()).value("generation", int64_t(0));
    json status = cert.value("status", json::object());

    // revoke-on-delete needs a finalizer so the delete waits for the revocation.
    if (meta::annotation(cert, kAnnRevokeOnDelete).value_or("") == "true") {
        auto fins = meta::finalizers(cert);
        if (std::find(fins.begin(), fins.end(), kRevokeFinalizer) == fins.end()) {
            fins.push_back(kRevokeFinalizer);
            auto r = ctx_.client.patch(resources::Certificate, meta::namespace_(cert), meta::name(cert),
                                       k8s::PatchType::Merge,
                                       json{{"metadata", {{"finalizers", fins}, {"resourceVersion", meta::resource_version(cert)}}}},
                                       k8s::PatchOptions{.field_manager = ctx_.field_manager});
            if (!r) return r.error();
            return Requeue::done();  // the update enqueues us again
        }
    }

    auto spec = parse_certificate_spec(cert);
    if (!spec) {
        set_condition(status, "Ready", "False", "BadConfig", spec.error().message, now, gen);
        patch_status(cert, status);
        event(cert, "Warning", "BadConfig", spec.error().message);
        return spec.error();  // InvalidConfig: waits for the next change
    }
    CertState st{.issuer_name = spec->issuer_name,
                 .issuer_kind = spec->issuer_kind,
                 .secret = spec->ref.namespace_ + "/" + spec->ref.secret_name};

    auto resolved = resolve_issuer(*spec);
    if (!resolved) {
        const bool missing = resolved.error().code == ErrorCode::NotFound;
        set_condition(status, "Ready", "False", missing ? "IssuerNotFound" : "BadConfig", resolved.error().message, now, gen);
        patch_status(cert, status);
        if (!missing) event(cert, "Warning", "BadConfig", resolved.error().message);
        set_metrics(key, st);
        return missing ? Result<Requeue>(Requeue::done()) : Result<Requeue>(resolved.error());
    }

    const bool acme_issuer = resolved->spec.type == IssuerType::Acme;
    Result<std::vector<std::string>> types = std::vector<std::string>{};  // challenge types (ACME)
    if (auto fits = check_certificate_for_issuer(*spec, resolved->spec); !fits)
        types = fits.error();
    else if (acme_issuer)
        types = challenge_types_for(resolved->spec.acme, spec->labels, spec->dns_names,
                                    spec->ip_addresses);
    if (!types) {
        Error e = types.error();
        e.context(spec->issuer_kind + " " + spec->issuer_name);
        set_condition(status, "Ready", "False", "BadConfig", e.message, now, gen);
        patch_status(cert, status);
        event(cert, "Warning", "BadConfig", e.message);
        set_metrics(key, st);
        return e;
    }

    // A ca issuer's key pair: needed to check the stored certificate and to sign a new one. When
    // it is unusable a valid stored certificate keeps being served; only issuance waits for it.
    std::optional<Result<pki::CaKeyPair>> ca;
    if (resolved->spec.type == IssuerType::Ca) ca = ca_for(*resolved);
    const Signer signer{.type = resolved->spec.type, .ca = ca && *ca ? &**ca : nullptr};

    // What is stored: the cache first; a fresh read before acting on "must issue" (the cache may
    // not have seen our own latest write yet).
    std::optional<store::StoredCertificate> stored;
    if (ctx_.informers.secrets) {
        if (auto s = ctx_.informers.secrets->store().get(spec->ref.namespace_, spec->ref.secret_name)) {
            store::StoredCertificate sc;
            sc.cert_pem = secret_data(*s, "tls.crt").value_or("");
            if (auto k = secret_data(*s, "tls.key")) sc.key_pem = SecretBytes(std::move(*k));
            sc.ca_pem = secret_data(*s, "ca.crt").value_or("");
            stored = std::move(sc);
        }
    }
    std::optional<SystemTime> prev_renewal;
    if (status.contains("renewalTime") && status["renewalTime"].is_string())
        if (auto t = k8s::parse_time(status["renewalTime"].get<std::string>())) prev_renewal = *t;

    std::shared_ptr<acme::Client> client;
    std::optional<Error> client_error;
    auto get_client = [&]() -> bool {
        if (client) return true;
        auto c = client_for(*resolved);
        if (!c) {
            client_error = c.error();
            return false;
        }
        client = *c;
        return true;
    };
    auto evaluate_now = [&](const std::optional<store::StoredCertificate>& s) {
        std::optional<acme::RenewalInfo> ari;
        if (s && acme_issuer) {
            auto leaf = acme::Certificate::from_pem(s->cert_pem);
            if (leaf && get_client()) ari = ari_for(key, *client, *leaf);
        }
        Evaluation e;
        {
            std::lock_guard lk(mu_);
            e = evaluate(*spec, s, ari, prev_renewal, rng_, now);
        }
        if (s && !acme_issuer) check_signed(e, *spec, *s, signer);
        return e;
    };
    Evaluation ev = evaluate_now(stored);
    if (ev.reason != IssueReason::None) {
        const bool in_cache = stored.has_value();
        auto fresh = store_.load_certificate(spec->ref);
        if (!fresh) return fresh.error();
        stored = std::move(*fresh);
        ev = evaluate_now(stored);
        if (ev.reason == IssueReason::None && !in_cache) {
            // A good certificate in a Secret we do not manage yet (migration from cert-manager).
            if (auto st = store_.adopt(spec->ref, secret_meta(*spec)); !st) {
                set_condition(status, "Ready", "False", "BadConfig", st.error().message, now, gen);
                patch_status(cert, status);
                event(cert, "Warning", "BadConfig", st.error().message);
                return st.error();
            }
        }
    }

    auto describe_ready = [&](const Evaluation& e) {
        status["notBefore"] = fmt_time(e.leaf->not_before());
        status["notAfter"] = fmt_time(e.leaf->not_after());
        status["renewalTime"] = fmt_time(e.renewal->renewal_time);
        st.not_after = epoch(e.leaf->not_after());
        st.renewal = epoch(e.renewal->renewal_time);
        std::lock_guard lk(mu_);
        auto it = state_.find(key);
        if (it != state_.end() && it->second.ari && it->second.ari_serial == e.leaf->serial_hex()) {
            status["ari"] = {{"suggestedWindow",
                              {{"start", fmt_time(it->second.ari->suggested_window.start)},
                               {"end", fmt_time(it->second.ari->suggested_window.end)}}},
                             {"nextCheck", fmt_time(it->second.ari->next_poll)}};
            if (!it->second.ari->explanation_url.empty())
                status["ari"]["explanationURL"] = it->second.ari->explanation_url;
        }
    };

    // Said while a leaf's lifetime is the CA certificate's (its notAfter was clamped to it).
    auto ready_message = [&](const acme::Certificate& leaf) {
        std::string m = "Certificate is up to date and has not expired";
        if (signer.ca && leaf.not_after() == signer.ca->cert().not_after())
            m += " (its notAfter is the CA certificate's notAfter: renew the CA to issue longer)";
        return m;
    };

    if (ev.reason == IssueReason::None) {
        describe_ready(ev);
        // Up to date: nothing is failing and no order is in flight.
        status.erase("failedIssuanceAttempts");
        status.erase("lastFailureTime");
        set_condition(status, "Ready", "True", "Ready", ready_message(*ev.leaf), now, gen);
        remove_condition(status, "Issuing");
        remove_condition(status, "RenewalOverdue");
        st.ready = true;
        patch_status(cert, status);
        set_metrics(key, st);
        auto wait = ev.renewal->renewal_time - now;
        {
            std::lock_guard lk(mu_);
            auto it = state_.find(key);
            if (it != state_.end() && it->second.ari) wait = std::min(wait, it->second.ari->next_poll - now);
        }
        wait = std::clamp<std::chrono::nanoseconds>(wait, seconds(1), opts_.max_requeue);
        return Requeue::in(duration_cast<milliseconds>(wait) + milliseconds(500));
    }

    // Issuance is due. A stored certificate that is still valid keeps Ready=True meanwhile.
    const bool serving =
        ev.leaf && ev.leaf->not_after() > now &&
        (ev.reason == IssueReason::Renewing || ev.reason == IssueReason::RequestChanged ||
         ev.reason == IssueReason::IncorrectIssuer);
    st.ready = serving;
    if (ev.leaf && ev.renewal) {
        describe_ready(ev);
        st.overdue = is_overdue(ev.renewal->renewal_time, now);
    }
    if (st.overdue)
        set_condition(status, "RenewalOverdue", "True", "RenewalOverdue",
                      "renewal was due at " + fmt_time(ev.renewal->renewal_time) + " and has not succeeded", now, gen);

    // Back off after failures (the pending order, if any, is resumed when the wait is over).
    const int attempts = status.value("failedIssuanceAttempts", 0);
    std::optional<Error> last_err;
    {
        std::lock_guard lk(mu_);
        if (auto it = last_error_.find(key); it != last_error_.end()) last_err = it->second;
    }
    if (attempts > 0 && status.contains("lastFailureTime") && status["lastFailureTime"].is_string()) {
        if (auto lf = k8s::parse_time(status["lastFailureTime"].get<std::string>())) {
            SystemTime next = *lf + backoff(attempts, last_err);
            if (now < next) {
                patch_status(cert, status);
                set_metrics(key, st);
                return Requeue::in(duration_cast<milliseconds>(next - now) + milliseconds(200));
            }
        }
    }

    // A ca issuer without a usable key pair: say so and wait. Its Issuer is polled and enqueues
    // this Certificate the moment it is Ready again (certificate_issuers.cpp), so no retry here.
    if (ca && !*ca) {
        const std::string msg =
            spec->issuer_kind + " " + spec->issuer_name + " is not ready: " + ca->error().message;
        set_condition(status, "Issuing", "False", "IssuerNotReady", msg, now, gen);
        if (!serving) set_condition(status, "Ready", "False", "IssuerNotReady", msg, now, gen);
        const json* was = find_condition(cert.value("status", json::object()), "Issuing");
        const bool said = was && was->value("message", "") == msg;
        patch_status(cert, status);
        set_metrics(key, st);
        if (!said) event(cert, "Warning", "BadConfig", msg);
        return Requeue::done();
    }

    set_condition(status, "Issuing", "True", std::string(to_string(ev.reason)), ev.detail, now, gen);
    if (!serving)
        set_condition(status, "Ready", "False", std::string(to_string(ev.reason)), ev.detail, now, gen);
    patch_status(cert, status);
    set_metrics(key, st);
    event(cert, "Normal", "Issuing", ev.detail);

    Result<IssueResult> res = client_error ? Result<IssueResult>(*client_error) : Result<IssueResult>(Error());
    if (!acme_issuer) {
        res =
            issue_signed(store_, IssueRequest{.spec = &*spec, .issuer = nullptr, .current = stored},
                         signer, ctx_.clock);
    } else if (!client_error) {
        if (!get_client()) {
            res = *client_error;
        } else {
            ChallengeOwner owner{.namespace_ = spec->ref.namespace_,
                                 .certificate_name = spec->ref.name,
                                 .certificate_uid = meta::uid(cert),
                                 .issuer_name = spec->issuer_name,
                                 .issuer_kind = spec->issuer_kind};
            ChallengePublisher publisher(ctx_, owner, *types, opts_.challenge_present_timeout, &stopping_);
            IssueRequest req{.spec = &*spec, .issuer = &resolved->spec.acme, .current = stored};
            if (*types == std::vector<std::string>{"dns-01"}) {
                // The selected solver is dns01: the controller itself updates DNS (RFC 2136 or a
                // webhook); the TSIG secret comes from tsigSecretSecretRef in the issuer's namespace.
                auto read = [&](const Dns01Config& c) -> Result<SecretBytes> {
                    const std::string where = resolved->secret_namespace + "/" + c.tsig_secret_name;
                    auto s = ctx_.client.get(k8s::resources::Secret, resolved->secret_namespace, c.tsig_secret_name);
                    if (!s) {
                        Error e = s.error().with_context("TSIG Secret " + where);
                        if (e.code == ErrorCode::NotFound) e.code = ErrorCode::InvalidConfig;
                        return e;
                    }
                    const std::string k = c.tsig_secret_key.empty() ? "secret" : c.tsig_secret_key;
                    auto v = secret_data(*s, k.c_str());
                    if (!v) return Error(ErrorCode::InvalidConfig, "TSIG Secret " + where + " has no key '" + k + "'");
                    return SecretBytes(std::move(*v));
                };
                auto so = select_solver(resolved->spec.acme, spec->labels, spec->dns_names,
                                        spec->ip_addresses);
                auto dns = so && *so ? make_owned_dns_solver((*so)->dns01, read,
                                                      [&] { return http_factory_(AcmeIssuerSpec{}); }, ctx_.clock)
                              : Result<OwnedDnsSolver>(so ? Error(ErrorCode::InvalidConfig, "no dns01 solver selected")
                                                          : so.error());
                res = dns ? issue(*client, *dns->solver, store_, req, ctx_.clock) : Result<IssueResult>(dns.error());
            } else {
                res = issue(*client, publisher, store_, req, ctx_.clock);
            }
        }
    }
    if (stopping_) return Requeue::done();  // shutting down: the pending order is resumed by the next leader

    // Re-read the status: the store patched status.order meanwhile.
    json base = cert;  // what patch_status diffs against: the object as the API has it now
    if (auto fresh = ctx_.client.get(resources::Certificate, spec->ref.namespace_, spec->ref.name)) {
        base = std::move(*fresh);
        status = base.value("status", json::object());
    }
    const SystemTime done_at = ctx_.clock.now();
    if (!res) {
        const Error& e = res.error();
        const bool rl = e.code == ErrorCode::RateLimited;
        status["failedIssuanceAttempts"] = attempts + 1;
        status["lastFailureTime"] = fmt_time(done_at);
        auto wait = backoff(attempts + 1, e);
        const std::string msg = e.message + "; next attempt at " + fmt_time(done_at + wait);
        set_condition(status, "Issuing", "False", rl ? "RateLimited" : "Failed", msg, done_at, gen);
        if (!serving) set_condition(status, "Ready", "False", rl ? "RateLimited" : "Failed", e.message, done_at, gen);
        patch_status(base, status);
        event(cert, "Warning", rl ? "RateLimited" : "Failed", msg);
        spdlog::warn("certificate {}: {}", key, msg);
        {
            std::lock_guard lk(mu_);
            last_error_[key] = e;
        }
        return Requeue::in(duration_cast<milliseconds>(wait) + milliseconds(200));
    }
    {
        std::lock_guard lk(mu_);
        last_error_.erase(key);
    }
    // Challenges left behind by an attempt that died mid-way (a resumed order that was already
    // valid never presents again, so nothing else would delete them).
    if (ctx_.informers.challenges) {
        for (const auto& ch : ctx_.informers.challenges->store().list_label("edgecert.io/certificate-name", spec->ref.name)) {
            if (meta::namespace_(*ch) != spec->ref.namespace_) continue;
            auto st = ctx_.client.remove(resources::Challenge, spec->ref.namespace_, meta::name(*ch));
            if (!st && st.error().code != ErrorCode::NotFound)
                spdlog::warn("certificate {}: could not delete stale Challenge {}: {}", key, meta::name(*ch),
                             st.error().message);
        }
    }
    const acme::Certificate& leaf = res->obtained.chain.front();
    status.erase("failedIssuanceAttempts");
    status.erase("lastFailureTime");
    status.erase("order");
    status["revision"] = status.value("revision", 0) + 1;
    status["notBefore"] = fmt_time(leaf.not_before());
    status["notAfter"] = fmt_time(leaf.not_after());
    std::mt19937_64 rng(std::hash<std::string>{}(leaf.serial_hex()));
    auto rd = renewal_time(leaf.not_before(), leaf.not_after(), spec->renewal, std::nullopt, rng, done_at);
    if (rd) status["renewalTime"] = fmt_time(rd->renewal_time);
    status.erase("ari");
    remove_condition(status, "Issuing");
    remove_condition(status, "RenewalOverdue");
    set_condition(status, "Ready", "True", "Ready", ready_message(leaf), done_at, gen);
    patch_status(base, status);
    const bool renewed = ev.reason == IssueReason::Renewing || ev.reason == IssueReason::Expired;
    const size_t n_names = spec->dns_names.size() + spec->ip_addresses.size();
    const std::string names =
        n_names == 0 ? "CN " + spec->subject.common_name : std::to_string(n_names) + " name(s)";
    const std::string msg = std::string(renewed ? "Renewed" : "Issued") + " certificate serial " +
                            leaf.serial_hex() + " for " + names + ", notAfter " +
                            fmt_time(leaf.not_after()) + (res->resumed ? " (resumed order)" : "") +
                            clamp_note(*res);
    event(cert, "Normal", renewed ? "Renewed" : "Issued", msg);
    spdlog::info("certificate {}: {}", key, msg);
    CertState ok{.issuer_name = spec->issuer_name,
                 .issuer_kind = spec->issuer_kind,
                 .secret = spec->ref.namespace_ + "/" + spec->ref.secret_name,
                 .not_after = epoch(leaf.not_after()),
                 .renewal = rd ? epoch(rd->renewal_time) : 0,
                 .ready = true};
    set_metrics(key, ok);
    // Look again soon: the next pass reads the stored result and schedules the renewal (with ARI).
    return Requeue::in(milliseconds(1000));
}

}  // namespace edgecert::controller
