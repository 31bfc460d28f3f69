#include "shim.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <tuple>
#include <utility>

#include "edgecert/base/http.h"
#include "edgecert/acme/types.h"
#include "controller/fallback.h"
#include "edgecert/k8s/models.h"

namespace edgecert::controller {
namespace {

constexpr std::string_view kGatewayGroup = "gateway.networking.k8s.io";

std::string quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

// The source object, whichever kind it is: everything the common path needs.
struct Source {
    std::string kind, api_version, name, namespace_, uid;
    std::map<std::string, std::string> annotations;
};

// One host wanted in one Secret, with where it came from (for Skipped).
struct HostWant {
    std::string host;
    std::string what;
    // Ingress tls[].hosts may hold an IP address (an RFC 8738 identifier); a Gateway listener's
    // hostname may not (Gateway API: "IP addresses are not allowed").
    bool ip_allowed = true;
};

// Secret (namespace, name) → the hosts wanted in it, in input order.
using Wants = std::map<std::pair<std::string, std::string>, std::vector<HostWant>>;

std::optional<std::string> label_reason(std::string_view label) {
    if (label.empty()) return "empty label";
    if (label.size() > 63) return "label longer than 63 characters";
    for (char c : label)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return "character " + quote(std::string(1, c)) + " not allowed";
    if (label.front() == '-' || label.back() == '-') return "label starts or ends with '-'";
    return std::nullopt;
}

// Shared by Ingress and Gateway: issuer selection, host validation, merge, object building.
ShimResult build(const Source& src, const Wants& wants, std::vector<Skipped> skipped,
                 const ShimOptions& opts) {
    ShimResult r;
    r.skipped = std::move(skipped);
    IssuerSelection sel = select_issuer(src.annotations, opts);
    r.notes = std::move(sel.notes);
    if (sel.bad_config) {
        r.bad_config = std::move(sel.bad_config);
        return r;
    }
    if (!sel.issuer) return r;  // not annotated: not ours
    // Fallback issuers (an edgecert extension, whichever annotation chose the primary).
    std::vector<IssuerRef> fallbacks;
    if (auto it = src.annotations.find(std::string(kAnnFallbackIssuers));
        it != src.annotations.end()) {
        auto f = parse_fallback_annotation(it->second);
        if (f) {
            for (const auto& x : *f)
                if (x.name == sel.issuer->name && x.kind == sel.issuer->kind)
                    f = Error(ErrorCode::InvalidConfig,
                              "annotation " + std::string(kAnnFallbackIssuers) +
                                  " names the primary issuer " + describe(x) + " again");
        }
        if (!f) {
            r.bad_config = f.error().message;
            return r;
        }
        fallbacks = std::move(*f);
    }
    r.managed = true;
    r.issuer = sel.issuer;

    for (const auto& [key, hosts] : wants) {
        const auto& [ns, secret] = key;
        std::set<std::string> names, addresses;
        for (const HostWant& h : hosts) {
            std::string n = ascii_lower(h.host);
            // An IP address in tls[].hosts (Ingress validation allows one there, not in rules)
            // becomes an RFC 8738 identifier in spec.ipAddresses, as cert-manager's ingress-shim
            // does; an IPv4-mapped one is refused like in a Certificate.
            if (acme::is_ip_literal(n)) {
                if (!h.ip_allowed) {
                    r.skipped.push_back({h.what + " " + quote(h.host),
                                         "an IP address: a Gateway listener hostname must be a "
                                         "DNS name"});
                    continue;
                }
                auto ip = acme::canonical_ip(n);
                if (!ip) {
                    r.skipped.push_back({h.what + " " + quote(h.host), ip.error().message});
                    continue;
                }
                addresses.insert(std::move(*ip));
                continue;
            }
            auto why = invalid_dns_name_reason(n);
            if (!why && acme::has_numeric_last_label(n))
                why = "numeric last label (a mistyped IP address?)";
            if (why) {
                r.skipped.push_back({h.what + " " + quote(h.host), "invalid DNS name: " + *why});
                continue;
            }
            names.insert(std::move(n));
        }
        if (names.empty() && addresses.empty()) {
            r.skipped.push_back({"secret " + ns + "/" + secret, "no valid host names"});
            continue;
        }
        DesiredCertificate c;
        c.name = secret;
        c.namespace_ = ns;
        c.secret_name = secret;
        c.dns_names.assign(names.begin(), names.end());
        c.ip_addresses.assign(addresses.begin(), addresses.end());
        c.issuer_ref = *sel.issuer;
        if (ns == src.namespace_) {
            c.owner_reference = k8s::OwnerReference{src.api_version, src.kind, src.name, src.uid,
                                                    /*controller=*/true,
                                                    /*block_owner_deletion=*/true};
        }
        json obj = {{"apiVersion", kCertificateApiVersion}, {"kind", "Certificate"}};
        k8s::meta::set_name(obj, c.name);
        k8s::meta::set_namespace(obj, c.namespace_);
        k8s::meta::set_label(obj, kLabelSourceKind, src.kind);
        k8s::meta::set_label(obj, kLabelSourceUid, src.uid);
        k8s::meta::set_annotation(obj, kAnnSourceNamespace, src.namespace_);
        k8s::meta::set_annotation(obj, kAnnSourceName, src.name);
        if (c.owner_reference) k8s::meta::set_owner_references(obj, {*c.owner_reference});
        obj["spec"] = {
            {"secretName", c.secret_name},
            {"issuerRef",
             {{"name", c.issuer_ref.name},
              {"kind", c.issuer_ref.kind},
              {"group", c.issuer_ref.group}}},
        };
        // Each list only when it has entries: the CRD wants at least one item in either.
        if (!c.dns_names.empty()) obj["spec"]["dnsNames"] = c.dns_names;
        if (!c.ip_addresses.empty()) obj["spec"]["ipAddresses"] = c.ip_addresses;
        if (!fallbacks.empty()) {
            // The annotation goes on the Certificate too: it marks the list as the shim's, to be
            // removed with the annotation (a list written by hand is left alone).
            k8s::meta::set_annotation(obj, kAnnFallbackIssuers,
                                      src.annotations.at(std::string(kAnnFallbackIssuers)));
            json refs = json::array();
            for (const auto& f : fallbacks) refs.push_back(to_json(f));
            obj["spec"]["fallbackIssuerRefs"] = std::move(refs);
        }
        c.object = std::move(obj);
        r.certificates.push_back(std::move(c));
    }
    return r;  // `wants` is a std::map: certificates come out sorted by (namespace, name)
}

}  // namespace

std::optional<std::string> invalid_dns_name_reason(std::string_view name) {
    if (name.empty()) return "empty";
    if (name.size() > 253) return "longer than 253 characters";
    std::string_view rest = name;
    if (rest.substr(0, 2) == "*.") rest.remove_prefix(2);
    if (rest.empty()) return "wildcard without a domain";
    if (rest.back() == '.') return "trailing dot";
    size_t start = 0;
    while (true) {
        size_t dot = rest.find('.', start);
        std::string_view label = rest.substr(start, dot == std::string_view::npos
                                                        ? std::string_view::npos
                                                        : dot - start);
        if (label == "*") return "wildcard only allowed as the whole leftmost label";
        if (auto why = label_reason(label)) return why;
        if (dot == std::string_view::npos) break;
        start = dot + 1;
    }
    return std::nullopt;
}

std::optional<std::string> invalid_object_name_reason(std::string_view name) {
    if (name.substr(0, 2) == "*.") return "not a valid object name: '*' not allowed";
    if (auto why = invalid_dns_name_reason(name)) return "not a valid object name: " + *why;
    return std::nullopt;
}

IssuerSelection select_issuer(const std::map<std::string, std::string>& ann,
                              const ShimOptions& opts) {
    IssuerSelection sel;
    auto get = [&](std::string_view k) -> const std::string* {
        auto it = ann.find(std::string(k));
        return it == ann.end() ? nullptr : &it->second;
    };
    // One group of (issuer, cluster-issuer) annotations. Returns true when the group decided.
    auto group = [&](std::string_view issuer_key, std::string_view cluster_key) {
        const std::string* iss = get(issuer_key);
        const std::string* cl = get(cluster_key);
        if (!iss && !cl) return false;
        if (iss && cl) {
            sel.bad_config = "both " + std::string(issuer_key) + " and " +
                             std::string(cluster_key) + " are set; set only one";
        } else if ((iss ? *iss : *cl).empty()) {
            sel.bad_config = "annotation " + std::string(iss ? issuer_key : cluster_key) +
                             " is empty; it must name an " +
                             (iss ? "Issuer" : "ClusterIssuer");
        } else if (auto why = invalid_object_name_reason(iss ? *iss : *cl)) {
            sel.bad_config = "annotation " + std::string(iss ? issuer_key : cluster_key) + " " +
                             quote(iss ? *iss : *cl) + " is " + *why;
        } else {
            sel.issuer = IssuerRef{iss ? *iss : *cl, iss ? "Issuer" : "ClusterIssuer",
                                   std::string(kGroup)};
        }
        return true;
    };
    // cert-manager.io/issuer-kind and -group (cert-manager's external-issuer selectors) refine
    // cert-manager.io/issuer. A translated manifest may carry kind ClusterIssuer or group
    // cert-manager.io; anything else names an issuer edgecert cannot be: BadConfig, not a
    // silently different issuer. With cluster-issuer they are an error, as in cert-manager.
    auto cm_kind_group = [&] {
        const std::string* kind = get(kAnnCmIssuerKind);
        const std::string* grp = get(kAnnCmIssuerGroup);
        if (!kind && !grp) return;
        if (get(kAnnCmClusterIssuer)) {
            sel.issuer.reset();
            sel.bad_config = std::string(kAnnCmIssuerKind) + " / " +
                             std::string(kAnnCmIssuerGroup) + " cannot be combined with " +
                             std::string(kAnnCmClusterIssuer);
            return;
        }
        if (grp && !grp->empty() && *grp != "cert-manager.io" && *grp != kGroup) {
            sel.issuer.reset();
            sel.bad_config = "issuer group " + quote(*grp) + " (" +
                             std::string(kAnnCmIssuerGroup) +
                             ") is not supported: edgecert issues with its own Issuers only";
            return;
        }
        if (kind && *kind != "Issuer" && *kind != "ClusterIssuer") {
            sel.issuer.reset();
            sel.bad_config = "issuer kind " + quote(*kind) + " (" +
                             std::string(kAnnCmIssuerKind) +
                             ") is not supported: use Issuer or ClusterIssuer";
            return;
        }
        if (kind && sel.issuer) sel.issuer->kind = *kind;
    };
    if (group(kAnnIssuer, kAnnClusterIssuer)) {
        for (auto k : {kAnnCmIssuer, kAnnCmClusterIssuer})
            if (get(k))
                sel.notes.push_back("annotation " + std::string(k) +
                                    " ignored: edgecert.io annotations take precedence");
        return sel;
    }
    if (group(kAnnCmIssuer, kAnnCmClusterIssuer)) {
        if (!sel.bad_config) cm_kind_group();
        return sel;
    }
    if (const std::string* acme = get(kAnnTlsAcme); acme && *acme == "true") {
        if (opts.default_issuer && !opts.default_issuer->name.empty())
            sel.issuer = *opts.default_issuer;
        else
            sel.bad_config = std::string(kAnnTlsAcme) +
                             " is \"true\" but the controller has no default issuer configured";
    }
    return sel;
}

ShimResult desired_for_ingress(const json& ingress, const ShimOptions& opts) {
    auto in = k8s::Ingress::from_json(ingress);
    if (!in) {
        ShimResult r;
        r.bad_config = "unreadable Ingress: " + in.error().message;
        return r;
    }
    Source src{"Ingress", "networking.k8s.io/v1", in->name, in->namespace_, in->uid,
               in->annotations};
    Wants wants;
    std::vector<Skipped> skipped;
    for (size_t i = 0; i < in->tls.size(); ++i) {
        const auto& t = in->tls[i];
        std::string what = "spec.tls[" + std::to_string(i) + "]";
        if (t.secret_name.empty()) {
            skipped.push_back({what, "no secretName"});
            continue;
        }
        if (auto why = invalid_object_name_reason(t.secret_name)) {
            skipped.push_back({what, "secretName " + quote(t.secret_name) + " " + *why});
            continue;
        }
        if (t.hosts.empty()) {
            skipped.push_back({what, "no hosts"});
            continue;
        }
        auto& w = wants[{in->namespace_, t.secret_name}];
        for (size_t j = 0; j < t.hosts.size(); ++j)
            w.push_back({t.hosts[j], what + ".hosts[" + std::to_string(j) + "]"});
    }
    return build(src, wants, std::move(skipped), opts);
}

ShimResult desired_for_gateway(const json& gateway, const std::vector<json>& reference_grants,
                               const ShimOptions& opts) {
    auto gw = k8s::Gateway::from_json(gateway);
    if (!gw) {
        ShimResult r;
        r.bad_config = "unreadable Gateway: " + gw.error().message;
        return r;
    }
    std::vector<k8s::ReferenceGrant> grants;
    for (const json& j : reference_grants)
        if (auto g = k8s::ReferenceGrant::from_json(j)) grants.push_back(std::move(*g));
    auto granted = [&](const std::string& ns, const std::string& secret) {
        for (const auto& g : grants)
            if (g.namespace_ == ns &&
                g.permits(kGatewayGroup, "Gateway", gw->namespace_, "", "Secret", secret))
                return true;
        return false;
    };

    Source src{"Gateway", std::string(kGatewayGroup) + "/v1", gw->name, gw->namespace_, gw->uid,
               gw->annotations};
    Wants wants;
    std::vector<Skipped> skipped;
    for (const auto& l : gw->listeners) {
        std::string what = "listener " + l.name;
        if (l.protocol != "HTTPS" && l.protocol != "TLS") {
            skipped.push_back({what, "protocol " + l.protocol + " does not terminate TLS"});
            continue;
        }
        if (!l.has_tls) {
            skipped.push_back({what, "no tls configuration"});
            continue;
        }
        if (l.tls_mode != "Terminate") {
            skipped.push_back({what, "tls mode " + l.tls_mode + " (only Terminate is managed)"});
            continue;
        }
        if (!l.hostname || l.hostname->empty()) {
            skipped.push_back({what, "no hostname"});
            continue;
        }
        if (l.certificate_refs.empty()) {
            skipped.push_back({what, "no certificateRefs"});
            continue;
        }
        for (size_t k = 0; k < l.certificate_refs.size(); ++k) {
            const auto& ref = l.certificate_refs[k];
            std::string rwhat = what + " certificateRefs[" + std::to_string(k) + "]";
            if (!(ref.group.empty() || ref.group == "core") || ref.kind != "Secret") {
                skipped.push_back({rwhat, "refers to " + ref.kind + " in group " +
                                              quote(ref.group) + ", not a core Secret"});
                continue;
            }
            if (auto why = invalid_object_name_reason(ref.name)) {
                skipped.push_back({rwhat, "Secret name " + quote(ref.name) + " " + *why});
                continue;
            }
            std::string ns = ref.namespace_.value_or(gw->namespace_);
            if (ns.empty()) ns = gw->namespace_;
            if (!opts.namespaces.empty() &&
                std::find(opts.namespaces.begin(), opts.namespaces.end(), ns) ==
                    opts.namespaces.end()) {
                skipped.push_back(
                    {rwhat, "Secret " + ns + "/" + ref.name + " is in namespace " + ns +
                                ", which this controller does not manage (--namespaces)"});
                continue;
            }
            if (ns != gw->namespace_ && !granted(ns, ref.name)) {
                skipped.push_back({rwhat, "Secret " + ns + "/" + ref.name +
                                              " is in another namespace and no ReferenceGrant "
                                              "there allows this Gateway to use it"});
                continue;
            }
            wants[{ns, ref.name}].push_back({*l.hostname, what + " hostname", false});
        }
    }
    return build(src, wants, std::move(skipped), opts);
}

ShimResult desired_certificates(const json& source, const std::vector<json>& reference_grants,
                                const ShimOptions& opts) {
    std::string kind = source.is_object() && source.contains("kind") && source["kind"].is_string()
                           ? source["kind"].get<std::string>()
                           : "";
    if (kind == "Ingress") return desired_for_ingress(source, opts);
    if (kind == "Gateway") return desired_for_gateway(source, reference_grants, opts);
    ShimResult r;
    r.bad_config = "the shim handles Ingress and Gateway, not " + quote(kind);
    return r;
}

std::vector<std::string> certificates_to_delete(std::string_view source_uid,
                                                const std::vector<json>& existing,
                                                const ShimResult& result) {
    std::vector<std::string> out;
    if (!result.managed || result.bad_config || source_uid.empty()) return out;
    std::set<std::string> wanted;
    for (const auto& c : result.certificates) wanted.insert(k8s::meta::key(c.namespace_, c.name));
    for (const json& e : existing) {
        // Only what the shim made for this very source: hand-written Certificates and ones
        // made for another Ingress/Gateway are never touched.
        if (k8s::meta::label(e, kLabelSourceUid) != std::string(source_uid)) continue;
        std::string key = k8s::meta::key(e);
        if (!wanted.count(key)) out.push_back(std::move(key));
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

}  // namespace edgecert::controller
