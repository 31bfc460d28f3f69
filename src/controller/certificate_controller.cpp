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

    register_metrics();
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

namespace {
// `edgecert renew NAME` (cmctl renew's convention): Issuing=True with reason ManuallyTriggered.
bool manually_triggered(const json& cert) {
    auto st = cert.find("status");
    if (st == cert.end()) return false;
    const json* c = find_condition(*st, "Issuing");
    return c && c->value("status", "") == "True" && c->value("reason", "") == kManuallyTriggered;
}
}  // namespace

void CertificateController::register_handlers() {
    auto& inf = ctx_.informers;
    k8s::EventHandlers certs;
    certs.on_add = [this](const k8s::ObjectPtr& o) { runner_->enqueue(meta::key(*o)); };
    certs.on_update = [this](const k8s::ObjectPtr& old_obj, const k8s::ObjectPtr& o) {
        // Our own status writes come back as updates: only spec/metadata changes matter, and a
        // manual renewal asked for in the status.
        const json& a = *old_obj;
        const json& b = *o;
        if (manually_triggered(b) && !manually_triggered(a)) {
            runner_->enqueue(meta::key(b));
            return;
        }
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
    // failure_backoff() with the 1 h base scaled to --failure-backoff-base; none without attempts.
    seconds d{0};
    if (attempts > 0) {
        d = opts_.failure_backoff_base;
        for (int i = 1; i < attempts && d < kBackoffCap; ++i) d *= 2;
        d = std::min(d, seconds(kBackoffCap.count() * opts_.failure_backoff_base.count() / kBackoffBase.count()));
    }
    // A CA's Retry-After holds whatever the count (even for a manual renewal).
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
            // The CA that signed it (a fallback, perhaps) is the one that can revoke it.
            auto r =
                resolve_ref(signer_of(*spec).value_or(spec->issuer_ref()), spec->ref.namespace_);
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
    if (!types) types = types.error().with_context(spec->issuer_kind + " " + spec->issuer_name);
    // The issuer chain (fallback.h): the primary, then spec.fallbackIssuerRefs, all usable now.
    const std::vector<IssuerRef> chain = spec->issuer_chain();
    const bool has_fallbacks = chain.size() > 1;
    if (types && has_fallbacks && !acme_issuer)
        types = Error(ErrorCode::InvalidConfig,
                      "spec.fallbackIssuerRefs: " + describe(chain[0]) + " is a " +
                          std::string(to_string(resolved->spec.type)) +
                          " issuer; only ACME issuers fall back (a certificate signed here has no "
                          "CA that can fail)");
    std::vector<Resolved> issuers;
    issuers.push_back(std::move(*resolved));
    auto fallbacks =
        types ? resolve_fallbacks(*spec) : Result<std::vector<Resolved>>(types.error());
    if (!fallbacks) {
        const Error& e = fallbacks.error();
        set_condition(status, "Ready", "False", "BadConfig", e.message, now, gen);
        patch_status(cert, status);
        event(cert, "Warning", "BadConfig", e.message);
        set_metrics(key, st);
        return e;  // InvalidConfig: the issuer's appearance or a spec change enqueues it again
    }
    for (auto& r : *fallbacks) issuers.push_back(std::move(r));
    // Who signed the stored certificate: ARI is asked of that CA, and `replaces` sent only to it.
    const std::optional<IssuerRef> signer_ref = signer_of(*spec);
    // Not recorded (a Secret from before this was recorded): taken to be the primary's.
    size_t signer_idx = 0;
    bool signer_listed = !signer_ref;
    for (size_t i = 0; signer_ref && i < chain.size(); ++i) {
        if (chain[i].name == signer_ref->name && chain[i].kind == signer_ref->kind) {
            signer_idx = i;
            signer_listed = true;
        }
    }

    // A ca issuer's key pair: needed to check the stored certificate and to sign a new one. When
    // it is unusable a valid stored certificate keeps being served; only issuance waits for it.
    std::optional<Result<pki::CaKeyPair>> ca;
    if (issuers[0].spec.type == IssuerType::Ca) ca = ca_for(issuers[0]);
    const Signer signer{.type = issuers[0].spec.type, .ca = ca && *ca ? &**ca : nullptr};

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

    // One ACME client per issuer of the chain, made when first needed; a failure is remembered
    // for this pass (with where it came from) rather than retried.
    std::vector<std::shared_ptr<acme::Client>> clients(issuers.size());
    std::vector<std::optional<std::pair<Error, FailureOrigin>>> client_errors(issuers.size());
    auto get_client = [&](size_t i) -> bool {
        if (clients[i]) return true;
        if (client_errors[i]) return false;
        FailureOrigin origin = FailureOrigin::Local;
        auto c = client_for(issuers[i], &origin);
        if (!c) {
            client_errors[i] = std::pair{c.error(), origin};
            return false;
        }
        clients[i] = *c;
        return true;
    };
    auto evaluate_now = [&](const std::optional<store::StoredCertificate>& s) {
        std::optional<acme::RenewalInfo> ari;
        if (s && acme_issuer) {
            auto leaf = acme::Certificate::from_pem(s->cert_pem);
            if (leaf && get_client(signer_idx)) ari = ari_for(key, *clients[signer_idx], *leaf);
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

    // A manual renewal: a new certificate now, whatever the schedule says (the old one is served
    // meanwhile). Consumed when the issuance ends: success removes Issuing, failure sets it False.
    const bool manual = manually_triggered(cert);
    if (manual) apply_manual_renewal(ev);

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

    // Issuer fallback state: what each issuer of this run did (fallback.h).
    FallbackState fb = fallback_state_from_json(status.value("issuerFailures", json()));
    auto put_fallback_state = [&] {
        if (fb.issuers.empty() || !has_fallbacks)
            status.erase("issuerFailures");
        else
            status["issuerFailures"] = to_json(fb);
    };

    if (ev.reason == IssueReason::None) {
        describe_ready(ev);
        // Up to date: nothing is failing and no order is in flight.
        status.erase("failedIssuanceAttempts");
        status.erase("lastFailureTime");
        status.erase("activeIssuerRef");
        if (signer_ref) status["issuerRef"] = to_json(*signer_ref);
        prune(fb, chain, now);
        put_fallback_state();
        st.active = signer_ref.value_or(chain[0]);
        st.active_fallback =
            signer_ref && !(signer_ref->name == chain[0].name && signer_ref->kind == chain[0].kind);
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
    const bool serving = ev.leaf && ev.leaf->not_after() > now && keeps_serving(ev.reason);
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
    // The chain entry an order in flight belongs to (it is finished with that issuer).
    auto pending_issuer =
        [&](const std::optional<store::PendingOrder>& p) -> std::optional<size_t> {
        if (!p) return std::nullopt;
        std::vector<std::string> servers;
        for (const auto& r : issuers) servers.push_back(r.spec.acme.server);
        return pinned_issuer(chain, servers, *p);
    };
    // Which issuer this attempt uses. Without fallbacks: the primary after cert-manager's backoff.
    // With them: each issuer's own backoff, and an order in flight pins its issuer (fallback.h).
    IssuerChoice choice{0, now, false};
    if (has_fallbacks) {
        if (attempts == 0) prune(fb, chain, now);  // a new run: only backoffs still running count
        auto pending = store_.load_pending(spec->ref);
        if (!pending) return pending.error();
        choice = choose_issuer(chain, fb, pending_issuer(*pending), now);
    } else if (attempts > 0 && status.contains("lastFailureTime") &&
               status["lastFailureTime"].is_string()) {
        // A manual renewal skips the failure backoff ("fixed it, try now"), not a CA's Retry-After
        // (backoff() with no attempts counted is just that).
        if (auto lf = k8s::parse_time(status["lastFailureTime"].get<std::string>()))
            choice.not_before = *lf + backoff(manual ? 0 : attempts, last_err);
    }
    const size_t idx = choice.index;
    const Resolved& active = issuers[idx];
    st.active = chain[idx];
    st.active_fallback = idx > 0;
    if (has_fallbacks) status["activeIssuerRef"] = to_json(chain[idx]);
    put_fallback_state();
    if (now < choice.not_before) {
        patch_status(cert, status);
        set_metrics(key, st);
        return Requeue::in(duration_cast<milliseconds>(choice.not_before - now) +
                           milliseconds(200));
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

    // With a fallback issuer the Issuing reason says so, and why the primary was left.
    std::string issuing_reason(to_string(ev.reason)), issuing_msg = ev.detail;
    if (idx > 0) {
        const IssuerFailures* left = fb.find(chain[0]);
        issuing_reason = "IssuerFallback";
        issuing_msg =
            "Issuing with " + describe(chain[idx]) + " (fallback for " + describe(chain[0]) +
            (left && !left->last_reason.empty() ? ", " + left->last_reason : std::string()) +
            (choice.pinned ? "; resuming its order" : "") + "): " + ev.detail;
    }
    set_condition(status, "Issuing", "True", issuing_reason, issuing_msg, now, gen);
    if (!serving)
        set_condition(status, "Ready", "False", std::string(to_string(ev.reason)), ev.detail, now, gen);
    patch_status(cert, status);
    set_metrics(key, st);
    event(cert, "Normal", "Issuing", issuing_msg);

    FailureOrigin origin = FailureOrigin::Local;
    Result<IssueResult> res = Error();
    if (!acme_issuer) {
        res =
            issue_signed(store_, IssueRequest{.spec = &*spec, .issuer = nullptr, .current = stored},
                         signer, ctx_.clock);
    } else if (!get_client(idx)) {
        res = client_errors[idx]->first;
        origin = client_errors[idx]->second;
    } else {
        auto active_types =
            idx == 0 ? types
                     : challenge_types_for(active.spec.acme, spec->labels, spec->dns_names,
                                           spec->ip_addresses);
        ChallengeOwner owner{.namespace_ = spec->ref.namespace_,
                             .certificate_name = spec->ref.name,
                             .certificate_uid = meta::uid(cert),
                             .issuer_name = chain[idx].name,
                             .issuer_kind = chain[idx].kind};
        ChallengePublisher publisher(ctx_, owner, *active_types, opts_.challenge_present_timeout,
                                     &stopping_);
        IssueRequest req{.spec = &*spec,
                         .issuer = &active.spec.acme,
                         .current = stored,
                         .current_from_issuer = signer_listed && signer_idx == idx,
                         .issuer_ref = chain[idx],
                         .origin = &origin};
        acme::Client& client = *clients[idx];
        if (*active_types == std::vector<std::string>{"dns-01"}) {
            // The selected solver is dns01: the controller itself updates DNS (RFC 2136 or a
            // webhook); the TSIG secret comes from tsigSecretSecretRef in the issuer's namespace.
            auto read = [&](const Dns01Config& c) -> Result<SecretBytes> {
                const std::string where = active.secret_namespace + "/" + c.tsig_secret_name;
                auto s = ctx_.client.get(k8s::resources::Secret, active.secret_namespace,
                                         c.tsig_secret_name);
                if (!s) {
                    Error e = s.error().with_context("TSIG Secret " + where);
                    if (e.code == ErrorCode::NotFound) e.code = ErrorCode::InvalidConfig;
                    return e;
                }
                const std::string k = c.tsig_secret_key.empty() ? "secret" : c.tsig_secret_key;
                auto v = secret_data(*s, k.c_str());
                if (!v)
                    return Error(ErrorCode::InvalidConfig,
                                 "TSIG Secret " + where + " has no key '" + k + "'");
                return SecretBytes(std::move(*v));
            };
            auto so = select_solver(active.spec.acme, spec->labels, spec->dns_names,
                                    spec->ip_addresses);
            auto dns = so && *so ? make_owned_dns_solver(
                                       (*so)->dns01, read,
                                       [&] { return http_factory_(AcmeIssuerSpec{}); }, ctx_.clock)
                                 : Result<OwnedDnsSolver>(so ? Error(ErrorCode::InvalidConfig,
                                                                     "no dns01 solver selected")
                                                             : so.error());
            res = dns ? issue(client, *dns->solver, store_, req, ctx_.clock)
                      : Result<IssueResult>(dns.error());
        } else {
            res = issue(client, publisher, store_, req, ctx_.clock);
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
        std::string reason = rl ? "RateLimited" : "Failed";
        std::string next_with;
        std::optional<FailureOutcome> fo;
        if (has_fallbacks) {
            const FailureClass fc = classify_failure(e, origin);
            auto pending = store_.load_pending(spec->ref);  // still in flight after this failure?
            fo = record_failure(
                fb, chain, idx, e, fc, spec->fallback_policy.with_defaults(opts_.fallback), done_at,
                [this](int n, const Error& err) { return backoff(n, err); },
                pending ? pending_issuer(*pending) : std::optional<size_t>(idx));
            wait = std::chrono::ceil<seconds>(
                std::max(fo->next.not_before - done_at, std::chrono::nanoseconds(0)));
            status["activeIssuerRef"] = to_json(chain[fo->next.index]);
            put_fallback_state();
            if (fo->next.index != idx) next_with = " with " + describe(chain[fo->next.index]);
            if (fo->fell_back) reason = "IssuerFallback";
        }
        const std::string msg =
            e.message + "; next attempt" + next_with + " at " + fmt_time(done_at + wait);
        set_condition(status, "Issuing", "False", reason, msg, done_at, gen);
        if (!serving) set_condition(status, "Ready", "False", rl ? "RateLimited" : "Failed", e.message, done_at, gen);
        patch_status(base, status);
        event(cert, "Warning", rl ? "RateLimited" : "Failed", msg);
        if (fo && fo->fell_back) {
            const IssuerRef& to = chain[fo->next.index];
            const std::string fmsg = describe(chain[idx]) + " " + fo->why + " (" +
                                     classify_failure(e, origin).reason + "); falling back to " +
                                     describe(to);
            event(cert, "Warning", "FallbackIssuer", fmsg);
            count_fallback(key, chain[idx], to, classify_failure(e, origin).reason);
            spdlog::warn("certificate {}: {}", key, fmsg);
        }
        spdlog::warn("certificate {}: {}", key, msg);
        {
            std::lock_guard lk(mu_);
            last_error_[key] = e;
            if (fo) {
                state_[key].active = chain[fo->next.index];
                state_[key].active_fallback = fo->next.index > 0;
            }
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
    status.erase("activeIssuerRef");
    status["issuerRef"] = to_json(chain[idx]);
    record_success(fb, chain, idx, done_at);
    put_fallback_state();
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
    const bool renewed = ev.reason == IssueReason::Renewing || ev.reason == IssueReason::Expired ||
                         ev.reason == IssueReason::ManuallyTriggered;
    const size_t n_names = spec->dns_names.size() + spec->ip_addresses.size();
    const std::string names =
        n_names == 0 ? "CN " + spec->subject.common_name : std::to_string(n_names) + " name(s)";
    const std::string msg =
        std::string(renewed ? "Renewed" : "Issued") + " certificate serial " + leaf.serial_hex() +
        " for " + names + ", notAfter " + fmt_time(leaf.not_after()) +
        (res->resumed ? " (resumed order)" : "") + clamp_note(*res) +
        (idx > 0 ? " by " + describe(chain[idx]) + " (fallback for " + describe(chain[0]) + ")"
                 : "");
    event(cert, "Normal", renewed ? "Renewed" : "Issued", msg);
    spdlog::info("certificate {}: {}", key, msg);
    CertState ok{.issuer_name = spec->issuer_name,
                 .issuer_kind = spec->issuer_kind,
                 .secret = spec->ref.namespace_ + "/" + spec->ref.secret_name,
                 .active = chain[idx],
                 .active_fallback = idx > 0,
                 .not_after = epoch(leaf.not_after()),
                 .renewal = rd ? epoch(rd->renewal_time) : 0,
                 .ready = true};
    set_metrics(key, ok);
    // Look again soon: the next pass reads the stored result and schedules the renewal (with ARI).
    return Requeue::in(milliseconds(1000));
}

}  // namespace edgecert::controller
