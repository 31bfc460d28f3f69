#include "controller/source_controller.h"

#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "controller/fallback.h"
#include "controller/resources.h"

namespace edgecert::controller {

namespace {

using k8s::ObjectPtr;
namespace meta = k8s::meta;

const k8s::ResourceType* source_type(std::string_view kind) {
    if (kind == "Ingress") return &k8s::resources::Ingress;
    if (kind == "Gateway") return &k8s::resources::Gateway;
    return nullptr;
}

// The spec fields the shim decides; one it leaves out (ipAddresses when no host is an address,
// dnsNames when every host is) is removed. Everything else in a Certificate's spec (a user's
// renewBefore, privateKey...) is left as it is.
constexpr const char* kManagedSpecFields[] = {"secretName", "dnsNames", "ipAddresses", "issuerRef"};

// For logs: a Certificate's DNS names then its addresses.
std::string names_of(const DesiredCertificate& c) {
    std::string out;
    for (const auto* list : {&c.dns_names, &c.ip_addresses})
        for (const auto& n : *list) out += (out.empty() ? "" : ",") + n;
    return out;
}

bool same_refs(const std::vector<k8s::OwnerReference>& a,
               const std::vector<k8s::OwnerReference>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        if (a[i].api_version != b[i].api_version || a[i].kind != b[i].kind ||
            a[i].name != b[i].name || a[i].uid != b[i].uid || a[i].controller != b[i].controller ||
            a[i].block_owner_deletion != b[i].block_owner_deletion)
            return false;
    }
    return true;
}

// Does this Certificate say it was made by the shim for source (kind, ns, name)? A uid
// mismatch still counts: a source deleted and recreated under the same name adopts them.
bool made_for(const json& cert, std::string_view kind, std::string_view ns,
              std::string_view name) {
    return meta::label(cert, kLabelSourceKind) == std::string(kind) &&
           meta::annotation(cert, kAnnSourceNamespace) == std::string(ns) &&
           meta::annotation(cert, kAnnSourceName) == std::string(name);
}

std::string describe_owner(const json& cert) {
    auto kind = meta::label(cert, kLabelSourceKind);
    if (!kind) return "not made by edgecert from an Ingress or Gateway";
    return "made for " + *kind + " " + meta::annotation(cert, kAnnSourceNamespace).value_or("") +
           "/" + meta::annotation(cert, kAnnSourceName).value_or("");
}

}  // namespace

SourceController::SourceController(ControllerContext& ctx, Runner::Options opts)
    : ctx_(ctx),
      runner_(
          [&] {
              if (opts.name.empty()) opts.name = "shim";
              return opts;
          }(),
          ctx.clock, ctx.metrics, [this](const std::string& key) { return reconcile(key); }) {}

std::string SourceController::source_key(std::string_view kind, const json& obj) {
    return std::string(kind) + "/" + meta::namespace_(obj) + "/" + meta::name(obj);
}

std::optional<SourceController::Key> SourceController::parse_key(const std::string& key) {
    size_t a = key.find('/');
    if (a == std::string::npos) return std::nullopt;
    size_t b = key.find('/', a + 1);
    if (b == std::string::npos) return std::nullopt;
    Key k{key.substr(0, a), key.substr(a + 1, b - a - 1), key.substr(b + 1)};
    if (!source_type(k.kind) || k.ns.empty() || k.name.empty()) return std::nullopt;
    return k;
}

void SourceController::register_handlers() {
    auto source_handlers = [this](std::string kind) {
        return k8s::EventHandlers{
            [this, kind](const ObjectPtr& o) { runner_.enqueue(source_key(kind, *o)); },
            [this, kind](const ObjectPtr& old, const ObjectPtr& o) {
                // A relist replays unchanged objects: nothing to do for those.
                if (meta::resource_version(*old) == meta::resource_version(*o)) return;
                runner_.enqueue(source_key(kind, *o));
            },
            [this, kind](const ObjectPtr& o, bool) { runner_.enqueue(source_key(kind, *o)); }};
    };
    if (auto* inf = ctx_.informers.ingresses) inf->add_handlers(source_handlers("Ingress"));
    if (auto* inf = ctx_.informers.gateways) inf->add_handlers(source_handlers("Gateway"));
    if (auto* inf = ctx_.informers.certificates) {
        inf->add_handlers(k8s::EventHandlers{
            [this](const ObjectPtr& o) { enqueue_for_certificate(*o); },
            [this](const ObjectPtr& old, const ObjectPtr& o) {
                if (meta::resource_version(*old) == meta::resource_version(*o)) return;
                enqueue_for_certificate(*old);
                enqueue_for_certificate(*o);
            },
            [this](const ObjectPtr& o, bool) { enqueue_for_certificate(*o); }});
    }
    if (auto* inf = ctx_.informers.referencegrants; inf && ctx_.informers.gateways) {
        inf->add_handlers(k8s::EventHandlers{
            [this](const ObjectPtr& o) { enqueue_for_grant(*o); },
            [this](const ObjectPtr& old, const ObjectPtr& o) {
                if (meta::resource_version(*old) == meta::resource_version(*o)) return;
                enqueue_for_grant(*old);
                enqueue_for_grant(*o);
            },
            [this](const ObjectPtr& o, bool) { enqueue_for_grant(*o); }});
    }
}

void SourceController::enqueue_for_certificate(const json& cert) {
    auto kind = meta::label(cert, kLabelSourceKind);
    auto ns = meta::annotation(cert, kAnnSourceNamespace);
    auto name = meta::annotation(cert, kAnnSourceName);
    if (!kind || !ns || !name || !source_type(*kind)) return;
    if (*kind == "Gateway" && !ctx_.informers.gateways) return;
    runner_.enqueue(*kind + "/" + *ns + "/" + *name);
}

void SourceController::enqueue_for_grant(const json& grant) {
    auto g = k8s::ReferenceGrant::from_json(grant);
    if (!g || !ctx_.informers.gateways) return;
    std::set<std::string> namespaces;
    for (const auto& f : g->from)
        if (f.group == "gateway.networking.k8s.io" && f.kind == "Gateway")
            namespaces.insert(f.namespace_);
    for (const auto& ns : namespaces)
        for (const auto& gw : ctx_.informers.gateways->store().list_namespace(ns))
            runner_.enqueue(source_key("Gateway", *gw));
}

Result<Requeue> SourceController::reconcile(const std::string& key) {
    auto k = parse_key(key);
    if (!k) return Error(ErrorCode::InvalidConfig, "not a source key: " + key);
    const k8s::ResourceType& rt = *source_type(k->kind);
    k8s::Informer* inf =
        k->kind == "Ingress" ? ctx_.informers.ingresses : ctx_.informers.gateways;
    if (!inf) return Error(ErrorCode::InvalidConfig, k->kind + " is not watched");

    ObjectPtr cached = inf->store().get(k->ns, k->name);
    if (!cached) {
        forget_warnings(key);
        EC_TRY(reconcile_gone(*k));
        return Requeue::done();
    }
    // List items of built-in kinds carry no TypeMeta; the shim dispatches on kind.
    json source = *cached;
    source["kind"] = k->kind;
    source["apiVersion"] = rt.api_version();
    std::string uid = meta::uid(source);

    std::vector<json> grants;
    if (k->kind == "Gateway" && ctx_.informers.referencegrants)
        for (const auto& g : ctx_.informers.referencegrants->store().list()) grants.push_back(*g);

    ShimResult want = desired_certificates(source, grants, ctx_.shim);
    std::vector<std::pair<std::string, std::string>> warnings;
    // Debug only: every reconcile (also those our own writes trigger) would repeat them.
    for (const auto& n : want.notes) spdlog::debug("shim: {}: {}", key, n);

    if (want.bad_config) {
        warnings.push_back({"BadConfig", *want.bad_config});
        warn_new(key, source, rt, warnings);
        // InvalidConfig: the runner does not retry; the next edit of the source enqueues it.
        return Error(ErrorCode::InvalidConfig, key + ": " + *want.bad_config);
    }
    if (!want.managed) {
        // Not annotated (any more). Like cert-manager, existing Certificates stay: removing an
        // annotation must not take certificates out of service.
        warn_new(key, source, rt, warnings);
        return Requeue::done();
    }
    for (const auto& s : want.skipped) {
        // A plain HTTP/TCP/UDP listener next to the HTTPS ones is normal, not a problem to
        // report (cert-manager's gateway-shim ignores them too); everything else is.
        if (s.reason.rfind("protocol ", 0) == 0) continue;
        warnings.push_back({"Skipped", s.what + ": " + s.reason});
    }

    for (const auto& c : want.certificates) {
        std::string conflict;
        EC_TRY_ASSIGN(bool applied, apply_certificate(source, rt, c, conflict));
        if (!applied) warnings.push_back({"Skipped", conflict});
    }

    // Certificates this source made before (by uid label; and by name annotations, which also
    // covers ones made for an earlier incarnation of a recreated source).
    std::vector<json> existing;
    std::set<std::string> seen;
    if (auto* certs = ctx_.informers.certificates) {
        for (const auto& c : certs->store().list_label(kLabelSourceUid, uid))
            if (seen.insert(meta::key(*c)).second) existing.push_back(*c);
        for (const auto& c : certs->store().list_label(kLabelSourceKind, k->kind)) {
            if (!made_for(*c, k->kind, k->ns, k->name) || !seen.insert(meta::key(*c)).second)
                continue;
            json adopted = *c;  // count it as ours for certificates_to_delete
            meta::set_label(adopted, kLabelSourceUid, uid);
            existing.push_back(std::move(adopted));
        }
    }
    for (const auto& ckey : certificates_to_delete(uid, existing, want)) {
        size_t slash = ckey.find('/');
        std::string ns = ckey.substr(0, slash), name = ckey.substr(slash + 1);
        // Already being deleted (a finalizer, e.g. revoke-on-delete, holds it): asking again
        // would only repeat the Event.
        if (auto* certs = ctx_.informers.certificates)
            if (auto c = certs->store().get(ns, name); c && meta::is_deleting(*c)) continue;
        auto st = ctx_.client.remove(resources::Certificate, ns, name);
        if (!st) {
            // NotFound: a stale cache still listed one we already deleted.
            if (st.error().code == ErrorCode::NotFound) continue;
            return st.error();
        }
        spdlog::info("shim: {}: deleted Certificate {}", key, ckey);
        ctx_.events.record(source, rt, "Normal", "DeleteCertificate",
                           "Deleted Certificate " + ckey + ": no longer wanted");
    }
    warn_new(key, source, rt, warnings);
    return Requeue::done();
}

Result<bool> SourceController::apply_certificate(const json& source, const k8s::ResourceType& rt,
                                                 const DesiredCertificate& want,
                                                 std::string& conflict) {
    const std::string kind = source["kind"].get<std::string>();
    const std::string ns = meta::namespace_(source), name = meta::name(source);
    const std::string ckey = meta::key(want.namespace_, want.name);

    ObjectPtr cached;
    if (auto* certs = ctx_.informers.certificates)
        cached = certs->store().get(want.namespace_, want.name);
    json existing;
    if (cached) {
        existing = *cached;
    } else {
        k8s::WriteOptions wo;
        wo.field_manager = ctx_.field_manager;
        auto created = ctx_.client.create(resources::Certificate, want.namespace_, want.object, wo);
        if (created) {
            spdlog::info("shim: {} {}/{}: created Certificate {} for {}", kind, ns, name, ckey,
                         names_of(want));
            ctx_.events.record(source, rt, "Normal", "CreateCertificate",
                               "Created Certificate " + ckey);
            return true;
        }
        if (created.error().code != ErrorCode::AlreadyExists) return created.error();
        // The cache has not seen it yet (or someone else just made it): decide on a fresh read.
        EC_TRY_ASSIGN(existing, ctx_.client.get(resources::Certificate, want.namespace_, want.name));
    }

    // Being deleted (its source let go of it earlier, a finalizer still holds it): once it is
    // gone, the Certificate's DELETED event enqueues this source again and it is recreated.
    if (meta::is_deleting(existing)) return true;
    if (!made_for(existing, kind, ns, name)) {
        conflict = "Certificate " + ckey + " exists and is " + describe_owner(existing) +
                   "; leaving it alone";
        return false;
    }

    json updated = existing;
    if (!updated.contains("spec") || !updated["spec"].is_object()) updated["spec"] = json::object();
    for (const char* f : kManagedSpecFields) {
        if (want.object["spec"].contains(f))
            updated["spec"][f] = want.object["spec"][f];
        else
            updated["spec"].erase(f);
    }
    for (const auto& [lk, lv] : meta::labels(want.object)) meta::set_label(updated, lk, lv);
    for (const auto& [ak, av] : meta::annotations(want.object)) meta::set_annotation(updated, ak, av);
    // spec.fallbackIssuerRefs follows the edgecert.io/fallback-issuers annotation, and goes with
    // it when the shim had set it (the same annotation on the Certificate says so); a list
    // written by hand on a Certificate without the annotation is the user's.
    const std::string fb_key(kAnnFallbackIssuers);
    if (want.object["spec"].contains("fallbackIssuerRefs")) {
        updated["spec"]["fallbackIssuerRefs"] = want.object["spec"]["fallbackIssuerRefs"];
    } else if (meta::annotation(existing, fb_key)) {
        updated["spec"].erase("fallbackIssuerRefs");
        updated["metadata"]["annotations"].erase(fb_key);
    }
    auto fallbacks_of = [](const json& o) {
        return o.contains("spec") && o["spec"].is_object()
                   ? o["spec"].value("fallbackIssuerRefs", json())
                   : json();
    };
    // Owner references: ours replace any earlier controller reference (a recreated source);
    // references others added (not controllers) stay.
    std::vector<k8s::OwnerReference> refs;
    for (const auto& r : meta::owner_references(existing))
        if (!r.controller) refs.push_back(r);
    if (want.owner_reference) refs.push_back(*want.owner_reference);

    bool same = true;
    const bool has_spec = existing.contains("spec") && existing["spec"].is_object();
    for (const char* f : kManagedSpecFields) {
        const bool had = has_spec && existing["spec"].contains(f);
        same = same && had == updated["spec"].contains(f) &&
               (!had || existing["spec"][f] == updated["spec"][f]);
    }
    same = same && fallbacks_of(existing) == fallbacks_of(updated) &&
           meta::labels(existing) == meta::labels(updated) &&
           meta::annotations(existing) == meta::annotations(updated) &&
           same_refs(meta::owner_references(existing), refs);
    if (same) return true;  // idempotent: no PUT for an unchanged Certificate

    if (refs.empty()) {
        if (updated.contains("metadata")) updated["metadata"].erase("ownerReferences");
    } else {
        meta::set_owner_references(updated, refs);
    }
    updated.erase("status");  // the main endpoint ignores it; never look like we write it
    k8s::WriteOptions wo;
    wo.field_manager = ctx_.field_manager;
    // Conditional on the resourceVersion read: a stale cache loses with 409 and is retried.
    auto r = ctx_.client.update(resources::Certificate, updated, wo);
    if (!r) return r.error();
    spdlog::info("shim: {} {}/{}: updated Certificate {} ({})", kind, ns, name, ckey,
                 names_of(want));
    ctx_.events.record(source, rt, "Normal", "UpdateCertificate", "Updated Certificate " + ckey);
    return true;
}

Status SourceController::reconcile_gone(const Key& k) {
    // The fake API server has no garbage collector, and cross-namespace Certificates carry no
    // owner reference at all: delete what this source made ourselves (harmless when the
    // collector got there first).
    auto* certs = ctx_.informers.certificates;
    if (!certs) return ok_status();
    for (const auto& c : certs->store().list_label(kLabelSourceKind, k.kind)) {
        if (!made_for(*c, k.kind, k.ns, k.name) || meta::is_deleting(*c)) continue;
        // A source recreated meanwhile would be in the cache; it is not, so every incarnation's
        // Certificates go. The uid precondition protects a Certificate replaced under our feet.
        k8s::DeleteOptions d;
        d.precondition_uid = meta::uid(*c);
        auto st = ctx_.client.remove(resources::Certificate, meta::namespace_(*c), meta::name(*c), d);
        if (!st && st.error().code != ErrorCode::NotFound && st.error().code != ErrorCode::Conflict)
            return st.error();
        spdlog::info("shim: {} {}/{} is gone: deleted Certificate {}", k.kind, k.ns, k.name,
                     meta::key(*c));
    }
    return ok_status();
}

void SourceController::warn_new(const std::string& key, const json& source,
                                const k8s::ResourceType& rt,
                                const std::vector<std::pair<std::string, std::string>>& warnings) {
    std::set<std::pair<std::string, std::string>> now(warnings.begin(), warnings.end());
    std::vector<std::pair<std::string, std::string>> fresh;
    {
        std::lock_guard l(warn_mu_);
        auto& before = warned_[key];
        for (const auto& w : now)
            if (!before.count(w)) fresh.push_back(w);
        before = std::move(now);
        if (before.empty()) warned_.erase(key);
    }
    for (const auto& [reason, message] : fresh) {
        spdlog::warn("shim: {}: {}: {}", key, reason, message);
        ctx_.events.record(source, rt, "Warning", reason, message);
    }
}

void SourceController::forget_warnings(const std::string& key) {
    std::lock_guard l(warn_mu_);
    warned_.erase(key);
}

}  // namespace edgecert::controller
