// The issuer side of CertificateController: resolving a Certificate's Issuer/ClusterIssuer, the
// ACME account of an acme issuer, the CA key pair of a ca issuer, and Issuer status.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "controller/certificate_controller.h"
#include "controller/resources.h"
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

}  // namespace

Result<CertificateController::Resolved> CertificateController::resolve_issuer_object(
    const std::string& kind, const json& obj) {
    Resolved r;
    r.issuer = obj;
    r.kind = kind;
    if (kind == "ClusterIssuer") {
        r.issuer_key = "ClusterIssuer/" + meta::name(obj);
        r.secret_namespace = ctx_.cluster_resource_namespace;
    } else {
        r.issuer_key = "Issuer/" + meta::namespace_(obj) + "/" + meta::name(obj);
        r.secret_namespace = meta::namespace_(obj);
    }
    auto a = parse_issuer_spec(obj.value("spec", json::object()));
    if (!a) {
        Error e = a.error();
        e.context(kind + " " + meta::name(obj));
        return e;
    }
    r.spec = std::move(*a);
    return r;
}

Result<CertificateController::Resolved> CertificateController::resolve_issuer(
    const CertificateSpec& spec) {
    return resolve_ref(spec.issuer_ref(), spec.ref.namespace_);
}

Result<CertificateController::Resolved> CertificateController::resolve_ref(const IssuerRef& ref,
                                                                           const std::string& ns) {
    k8s::ObjectPtr obj;
    if (ref.kind == "ClusterIssuer") {
        if (!ctx_.informers.clusterissuers && !ctx_.cluster_issuers_unavailable.empty())
            return Error(ErrorCode::InvalidConfig,
                         "ClusterIssuer " + ref.name +
                             " cannot be used: " + ctx_.cluster_issuers_unavailable);
        if (ctx_.informers.clusterissuers)
            obj = ctx_.informers.clusterissuers->store().get(ref.name);
    } else {
        if (ctx_.informers.issuers) obj = ctx_.informers.issuers->store().get(ns, ref.name);
    }
    if (!obj) return Error(ErrorCode::NotFound, ref.kind + " " + ref.name + " not found");
    return resolve_issuer_object(ref.kind, *obj);
}

Result<pki::CaKeyPair> CertificateController::ca_for(const Resolved& r) {
    const std::string& ns = r.secret_namespace;
    const std::string& name = r.spec.ca_secret_name;
    CaMaterial m{.where = "Secret " + ns + "/" + name,
                 .exists = false,
                 .tls_crt = {},
                 .tls_key = {},
                 .ca_crt = {}};
    // A CA bootstrapped by a Certificate is in the cache of edgecert's own Secrets; any other is
    // read from the API (Secrets are not cached cluster-wide).
    k8s::ObjectPtr cached =
        ctx_.informers.secrets ? ctx_.informers.secrets->store().get(ns, name) : nullptr;
    json secret;
    if (cached) {
        secret = *cached;
    } else {
        auto s = ctx_.client.get(k8s::resources::Secret, ns, name);
        if (!s && s.error().code != ErrorCode::NotFound) return s.error();  // API trouble: retried
        if (s) secret = std::move(*s);
    }
    if (!secret.is_null()) {
        m.exists = true;
        m.tls_crt = secret_data(secret, "tls.crt");
        if (auto k = secret_data(secret, "tls.key")) m.tls_key = SecretBytes(std::move(*k));
        m.ca_crt = secret_data(secret, "ca.crt").value_or("");
    }
    return load_ca(m, ctx_.clock.now());
}

void CertificateController::enqueue_certificates_of(const std::string& kind, const std::string& ns,
                                                    const std::string& name) {
    for (const auto& c : ctx_.informers.certificates->store().list()) {
        if (kind == "Issuer" && meta::namespace_(*c) != ns) continue;
        // spec.issuerRef or an entry of spec.fallbackIssuerRefs names it.
        const json spec = c->value("spec", json::object());
        json refs = spec.value("fallbackIssuerRefs", json::array());
        if (!refs.is_array()) refs = json::array();
        refs.push_back(spec.value("issuerRef", json::object()));
        const bool names_it = std::any_of(refs.begin(), refs.end(), [&](const json& ir) {
            return ir.is_object() && ir.value("name", "") == name &&
                   ir.value("kind", "Issuer") == kind;
        });
        if (names_it) runner_->enqueue(meta::key(*c));
    }
}

void CertificateController::on_ca_secret(const json& secret) {
    // A ca issuer's key pair changed (a bootstrapped CA was issued or renewed): its status, and
    // every certificate it signed (their ca.crt / signature may be stale now: check_signed()).
    const std::string ns = meta::namespace_(secret), name = meta::name(secret);
    auto visit = [&](k8s::Informer* inf, const std::string& kind) {
        if (!inf) return;
        for (const auto& iss : inf->store().list()) {
            const json& ca = iss->value("spec", json::object()).value("ca", json::object());
            if (!ca.is_object() || ca.value("secretName", "") != name) continue;
            const bool cluster = kind == "ClusterIssuer";
            if ((cluster ? ctx_.cluster_resource_namespace : meta::namespace_(*iss)) != ns)
                continue;
            issuer_runner_->enqueue(cluster ? "ClusterIssuer/" + meta::name(*iss)
                                            : "Issuer/" + meta::namespace_(*iss) + "/" +
                                                  meta::name(*iss));
            enqueue_certificates_of(kind, meta::namespace_(*iss), meta::name(*iss));
        }
    };
    visit(ctx_.informers.issuers, "Issuer");
    visit(ctx_.informers.clusterissuers, "ClusterIssuer");
}

// Issuer status (cert-manager's reasons): registering the account when the Issuer appears makes
// `kubectl get issuers` show READY before any Certificate needs it, and surfaces a bad server,
// caBundle or EAB at once; a ca issuer's key pair is checked the same way.
Result<Requeue> CertificateController::reconcile_issuer(const std::string& key) {
    auto slash = key.find('/');
    const std::string kind = key.substr(0, slash);
    const std::string rest = key.substr(slash + 1);
    k8s::Informer* inf = kind == "Issuer" ? ctx_.informers.issuers : ctx_.informers.clusterissuers;
    if (!inf) return Requeue::done();
    auto obj = inf->store().get(rest);
    if (!obj) {
        accounts_.forget(key);
        std::lock_guard lk(mu_);
        issuer_failures_.erase(key);
        return Requeue::done();
    }
    const k8s::ResourceType& rt = kind == "Issuer" ? resources::Issuer : resources::ClusterIssuer;
    const SystemTime now = ctx_.clock.now();
    const int64_t gen = obj->value("metadata", json::object()).value("generation", int64_t(0));
    json status = obj->value("status", json::object());
    const json* before = find_condition(status, "Ready");
    const bool was_ready = before && before->value("status", "") == "True";
    auto write = [&]() { write_status(ctx_, rt, *obj, status); };
    // The Warning Event only when the condition says something new: a polled, still-broken issuer
    // must not repeat it.
    auto fail = [&](const std::string& reason, const std::string& msg) {
        const bool same = before && before->value("status", "") == "False" &&
                          before->value("reason", "") == reason &&
                          before->value("message", "") == msg;
        set_condition(status, "Ready", "False", reason, msg, now, gen);
        write();
        if (!same) ctx_.events.record(*obj, rt, "Warning", reason, msg);
    };
    auto ready = [&](const std::string& reason, const std::string& msg) {
        set_condition(status, "Ready", "True", reason, msg, now, gen);
        write();
        {
            std::lock_guard lk(mu_);
            issuer_failures_.erase(key);
        }
        // Certificates that waited for this issuer go now.
        if (!was_ready) enqueue_certificates_of(kind, meta::namespace_(*obj), meta::name(*obj));
    };
    auto r = resolve_issuer_object(kind, *obj);
    if (!r) {
        fail("BadConfig", r.error().message);
        return r.error();
    }
    if (r->spec.type == IssuerType::SelfSigned) {
        ready(kReasonSelfSignedReady, "Certificates are signed with their own private key");
        return Requeue::done();
    }
    if (r->spec.type == IssuerType::Ca) {
        auto ca = ca_for(*r);
        if (!ca) {
            fail(ca_reason(ca.error()), ca.error().message);
            int n;
            {
                std::lock_guard lk(mu_);
                n = ++issuer_failures_[key];
            }
            return Requeue::in(ca_retry_delay(n));
        }
        ready(kReasonKeyPairVerified, kMessageKeyPairVerified);
        // Looked at again when the CA certificate expires (status goes False then), or sooner.
        auto wait = std::clamp<std::chrono::nanoseconds>(ca->cert().not_after() - now, seconds(1),
                                                         opts_.max_requeue);
        return Requeue::in(duration_cast<milliseconds>(wait) + milliseconds(500));
    }
    auto c = client_for(*r);
    if (!c) {
        fail("ErrRegisterACMEAccount", "Failed to register ACME account: " + c.error().message);
        return c.error();  // InvalidConfig waits for a change; a CA outage is retried with backoff
    }
    status["acme"] = {{"uri", (*c)->account_url()}, {"lastRegisteredEmail", r->spec.acme.email}};
    ready("ACMEAccountRegistered", "The ACME account was registered with the ACME server");
    return Requeue::done();
}

Result<std::shared_ptr<acme::Client>> CertificateController::client_for(const Resolved& r,
                                                                        FailureOrigin* origin) {
    if (origin) *origin = FailureOrigin::Local;
    if (r.spec.type != IssuerType::Acme)
        return Error(ErrorCode::InvalidConfig,
                     r.kind + " " + meta::name(r.issuer) + " is not an ACME issuer");
    AccountRequest req;
    req.issuer_key = r.issuer_key;
    req.spec = &r.spec.acme;
    const AcmeIssuerSpec& acme = r.spec.acme;
    std::string secret = acme.private_key_secret_name;
    if (secret.empty()) secret = meta::name(r.issuer) + "-account-key";
    req.account_key_id = r.secret_namespace + "/" + secret + ":" + acme.private_key_secret_key;
    if (!acme.eab_secret_name.empty()) {
        auto s = ctx_.client.get(k8s::resources::Secret, r.secret_namespace, acme.eab_secret_name);
        if (!s) {
            Error e = s.error();
            e.context("externalAccountBinding Secret " + r.secret_namespace + "/" +
                      acme.eab_secret_name);
            if (e.code == ErrorCode::NotFound) e.code = ErrorCode::InvalidConfig;
            return e;
        }
        auto v = secret_data(*s, acme.eab_secret_key.c_str());
        std::optional<std::string> raw;
        if (v) {
            std::string t = *v;
            while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' '))
                t.pop_back();
            raw = enc::base64url_decode(
                t);  // cert-manager's convention: the HMAC key base64url-encoded
        }
        if (!raw)
            return Error(ErrorCode::InvalidConfig,
                         "externalAccountBinding Secret " + acme.eab_secret_name +
                             " has no base64url HMAC key under '" + acme.eab_secret_key + "'");
        req.eab_hmac = SecretBytes(std::move(*raw));
    }
    return accounts_.client_for(req, origin);
}

}  // namespace edgecert::controller
