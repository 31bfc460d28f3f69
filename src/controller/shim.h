#pragma once
// The certificate shim: an annotated Ingress (networking.k8s.io/v1) or Gateway
// (gateway.networking.k8s.io/v1) → the Certificates it asks for. Pure and I/O-free: the
// controller reads the objects, calls desired_certificates(), applies what comes back, and
// deletes what certificates_to_delete() names. Rules follow cert-manager's ingress-shim and
// gateway-shim (DESIGN.md "Kubernetes surface"; research/acme-anchors.md §1c).
//
// Issuer selection, in this order (first group that has any of its annotations wins):
//   1. edgecert.io/issuer | edgecert.io/cluster-issuer
//   2. cert-manager.io/issuer | cert-manager.io/cluster-issuer
//   3. kubernetes.io/tls-acme: "true" → ShimOptions::default_issuer
// edgecert.io/* wins over cert-manager.io/* as a whole group (a half-migrated object that still
// carries the old cert-manager.io annotation next to a new edgecert.io one uses the new one; the
// shadowed annotation is reported in ShimResult::notes). Within a group, issuer AND cluster-issuer
// → BadConfig; an empty value or one that is not a valid object name → BadConfig; tls-acme
// "true" without a configured default issuer → BadConfig. cert-manager.io/issuer-kind
// (Issuer|ClusterIssuer) refines cert-manager.io/issuer; cert-manager.io/issuer-group may be
// empty, cert-manager.io or edgecert.io; other values (external issuers) → BadConfig. No annotation
// at all (or tls-acme other than "true") → no Certificates, no error. edgecert.io/fallback-issuers:
// "ClusterIssuer/zerossl,Issuer/internal-acme" (fallback.h) adds spec.fallbackIssuerRefs to every
// Certificate of the object, whichever annotation chose the primary; a malformed list → BadConfig.
//
// Certificate name = Secret name (cert-manager does the same), so two sources naming the same
// Secret converge on one Certificate; the controller's ownership check arbitrates.
#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "edgecert/k8s/object.h"

namespace edgecert::controller {

using json = nlohmann::json;

inline constexpr std::string_view kGroup = "edgecert.io";
inline constexpr std::string_view kCertificateApiVersion = "edgecert.io/v1alpha1";

inline constexpr std::string_view kAnnIssuer = "edgecert.io/issuer";
inline constexpr std::string_view kAnnClusterIssuer = "edgecert.io/cluster-issuer";
inline constexpr std::string_view kAnnCmIssuer = "cert-manager.io/issuer";
inline constexpr std::string_view kAnnCmClusterIssuer = "cert-manager.io/cluster-issuer";
inline constexpr std::string_view kAnnCmIssuerKind = "cert-manager.io/issuer-kind";
inline constexpr std::string_view kAnnCmIssuerGroup = "cert-manager.io/issuer-group";
inline constexpr std::string_view kAnnTlsAcme = "kubernetes.io/tls-acme";

// Set on every shim-made Certificate. Labels carry what selectors need (kind, uid: always valid
// label values); annotations carry the source's namespace/name (names may exceed 63 chars).
inline constexpr std::string_view kLabelSourceKind = "edgecert.io/source-kind";
inline constexpr std::string_view kLabelSourceUid = "edgecert.io/source-uid";
inline constexpr std::string_view kAnnSourceNamespace = "edgecert.io/source-namespace";
inline constexpr std::string_view kAnnSourceName = "edgecert.io/source-name";

// Certificate spec.issuerRef (deploy/crds/certificates.edgecert.io.yaml).
struct IssuerRef {
    std::string name;
    std::string kind = "Issuer";  // Issuer | ClusterIssuer
    std::string group = std::string(kGroup);
    bool operator==(const IssuerRef&) const = default;
};

struct ShimOptions {
    // The issuer `kubernetes.io/tls-acme: "true"` maps to (controller flag); none → BadConfig.
    std::optional<IssuerRef> default_issuer;
    // --namespaces: the only namespaces the controller watches and writes (empty: all). A
    // Gateway's Secret in another namespace is skipped with a reason instead of written there.
    std::vector<std::string> namespaces;
};

struct DesiredCertificate {
    std::string name;  // = secret_name
    std::string namespace_;
    std::string secret_name;
    std::vector<std::string> dns_names;  // lower-case, sorted, deduplicated
    // IP addresses among the hosts (RFC 8738; canonical text, sorted, deduplicated): a
    // Certificate's spec.ipAddresses, as cert-manager's ingress-shim puts them.
    std::vector<std::string> ip_addresses;
    IssuerRef issuer_ref;
    // metadata.ownerReferences[0] (controller=true, blockOwnerDeletion=true). Absent when the
    // Certificate lives in another namespace than its source (a Gateway's cross-namespace Secret
    // allowed by a ReferenceGrant): owner references cannot cross namespaces — the garbage
    // collector would treat the owner as gone and delete the Certificate. Such Certificates are
    // found through the edgecert.io/source-uid label instead.
    std::optional<k8s::OwnerReference> owner_reference;
    json object;  // the Certificate, ready to apply
};

// A tls[] entry, listener, certificateRef or host the shim did not use, and why.
struct Skipped {
    std::string what;    // "spec.tls[1]", "listener https-a", "spec.tls[0].hosts[2] \"x_y\""
    std::string reason;
    bool operator==(const Skipped&) const = default;
};

struct ShimResult {
    // True when an issuer was selected (some issuer annotation present and valid). Only then do
    // `certificates` describe the full wanted set (see certificates_to_delete).
    bool managed = false;
    std::optional<IssuerRef> issuer;
    std::vector<DesiredCertificate> certificates;  // sorted by (namespace, name)
    std::vector<Skipped> skipped;
    std::optional<std::string> bad_config;  // message for a Warning Event, reason BadConfig
    std::vector<std::string> notes;         // informational (e.g. a shadowed annotation)
};

// The issuer the source's annotations select: issuer unset and bad_config unset = not
// annotated; bad_config set = the message for the BadConfig Warning Event.
struct IssuerSelection {
    std::optional<IssuerRef> issuer;
    std::optional<std::string> bad_config;
    std::vector<std::string> notes;
};
IssuerSelection select_issuer(const std::map<std::string, std::string>& annotations,
                              const ShimOptions& opts);

// RFC 1123 host name as a certificate DNS name: labels of [a-z0-9-] not starting or ending
// with '-', 1..63 chars, total ≤ 253; an optional leading "*." wildcard label. Expects
// lower-case input (the shim lower-cases first). Returns the reason it is invalid, or nullopt.
std::optional<std::string> invalid_dns_name_reason(std::string_view name);
// Kubernetes object name (DNS-1123 subdomain): what a Secret / Certificate name must be.
std::optional<std::string> invalid_object_name_reason(std::string_view name);

// Ingress (networking.k8s.io/v1): one Certificate per distinct spec.tls[].secretName; entries
// sharing a secretName are merged. Entries without secretName or hosts are skipped.
ShimResult desired_for_ingress(const json& ingress, const ShimOptions& opts);

// Gateway (gateway.networking.k8s.io/v1): one Certificate per referenced Secret; hosts from the
// HTTPS/TLS listeners in Terminate mode that reference it. `reference_grants` are the
// ReferenceGrants of the namespaces the Gateway points into (others are ignored: a grant only
// counts in the target Secret's namespace).
ShimResult desired_for_gateway(const json& gateway, const std::vector<json>& reference_grants,
                               const ShimOptions& opts);

// Dispatches on `kind` (Ingress | Gateway); anything else → bad_config.
ShimResult desired_certificates(const json& source, const std::vector<json>& reference_grants,
                                const ShimOptions& opts);

// Certificates to delete: the shim-made ones in `existing` (those carrying the
// edgecert.io/source-uid label of `source_uid`) that `result` no longer wants. Returns
// "namespace/name" keys. Deletes nothing unless `result.managed` and no bad_config: a typo in an
// annotation must not wipe the certificates in service, and (like cert-manager) removing the
// annotation leaves existing Certificates alone; deleting the source deletes them through the
// owner reference.
std::vector<std::string> certificates_to_delete(std::string_view source_uid,
                                                const std::vector<json>& existing,
                                                const ShimResult& result);

}  // namespace edgecert::controller
