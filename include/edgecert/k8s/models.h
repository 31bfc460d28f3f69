#pragma once
// Small typed views of the objects edgecert reads and writes. Each from_json() is
// non-throwing and tolerant of absent optional fields; unknown fields are ignored. Objects stay
// nlohmann::json everywhere else (the client is generic).
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "edgecert/base/result.h"
#include "edgecert/base/secret.h"
#include "edgecert/k8s/object.h"
#include "edgecert/k8s/resource.h"

namespace edgecert::k8s {

// core/v1 ObjectReference (Event.involvedObject).
struct ObjectReference {
    std::string kind, namespace_, name, uid, api_version, resource_version, field_path;
    // From an object as read from the API; kind/apiVersion fall back to `rt` because list items
    // of built-in types carry no TypeMeta.
    static ObjectReference from_object(const json& obj, const ResourceType& rt);
    static ObjectReference from_json(const json& j);
    json to_json() const;
};

// core/v1 Secret. Values are decoded from base64; all of them are SecretBytes (tls.key is key
// material; treating every value the same keeps it from leaking by accident).
struct Secret {
    std::string name, namespace_, type;
    std::map<std::string, std::string> labels, annotations;
    std::map<std::string, SecretBytes> data;
    std::string resource_version;

    static constexpr const char* kTlsType = "kubernetes.io/tls";
    static Result<Secret> from_json(const json& j);
    json to_json() const;  // data base64-encoded
    // Non-secret values (tls.crt, ca.crt) as text; nullopt when absent.
    std::optional<std::string> text(const std::string& key) const;
    SecretBytes tls_key() const;
};

// core/v1 Event (https://kubernetes.io/docs/reference/kubernetes-api/cluster-resources/event-v1/).
struct Event {
    std::string name, namespace_;
    ObjectReference involved_object;
    std::string reason, message, type;  // type: Normal | Warning
    std::string source_component, source_host;
    std::optional<SystemTime> first_timestamp, last_timestamp;
    int count = 0;
    std::string resource_version;

    static Result<Event> from_json(const json& j);
    json to_json() const;
};

// coordination.k8s.io/v1 LeaseSpec.
struct LeaseSpec {
    std::string holder_identity;
    std::optional<int> lease_duration_seconds;
    std::optional<SystemTime> acquire_time, renew_time;  // MicroTime
    int lease_transitions = 0;

    static LeaseSpec from_json(const json& spec);
    json to_json() const;
    bool operator==(const LeaseSpec& o) const;
};

// networking.k8s.io/v1 Ingress: what certificate management needs.
struct IngressTLS {
    std::vector<std::string> hosts;
    std::string secret_name;
};
struct Ingress {
    std::string name, namespace_, uid;
    std::optional<std::string> ingress_class_name;
    std::map<std::string, std::string> labels, annotations;
    std::vector<IngressTLS> tls;
    std::vector<std::string> rule_hosts;

    static Result<Ingress> from_json(const json& j);
};

// gateway.networking.k8s.io/v1 Gateway listeners (apis/v1/gateway_types.go).
struct SecretObjectReference {
    std::string group;  // "" = core
    std::string kind = "Secret";
    std::string name;
    std::optional<std::string> namespace_;  // absent: the Gateway's namespace
};
struct GatewayListener {
    std::string name;
    std::optional<std::string> hostname;
    std::string protocol;  // HTTP | HTTPS | TLS | TCP | UDP | custom
    int port = 0;
    bool has_tls = false;
    std::string tls_mode;  // Terminate (default when tls is set) | Passthrough
    std::vector<SecretObjectReference> certificate_refs;
};
struct Gateway {
    std::string name, namespace_, uid, gateway_class_name;
    std::map<std::string, std::string> labels, annotations;
    std::vector<GatewayListener> listeners;

    static Result<Gateway> from_json(const json& j);
};

// gateway.networking.k8s.io ReferenceGrant: lives in the target's namespace.
struct ReferenceGrant {
    struct From {
        std::string group, kind, namespace_;
    };
    struct To {
        std::string group, kind;
        std::optional<std::string> name;
    };
    std::string name, namespace_;
    std::vector<From> from;
    std::vector<To> to;

    static Result<ReferenceGrant> from_json(const json& j);
    // Does this grant let (from_group, from_kind) in from_ns refer to the named target in the
    // grant's own namespace?
    bool permits(std::string_view from_group, std::string_view from_kind, std::string_view from_ns,
                 std::string_view to_group, std::string_view to_kind,
                 std::string_view to_name) const;
};

}  // namespace edgecert::k8s
