#pragma once
// Objects are nlohmann::json; these are thin, non-throwing accessors for ObjectMeta
// (https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/object-meta/) and the
// RFC 3339 time formats the API uses (Time: seconds, MicroTime: 6 fraction digits).
#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "edgecert/base/clock.h"
#include "edgecert/base/result.h"

namespace edgecert::k8s {

using json = nlohmann::json;
// Cached objects are shared read-only between the store and its readers.
using ObjectPtr = std::shared_ptr<const json>;

// metadata.ownerReferences[] item.
struct OwnerReference {
    std::string api_version, kind, name, uid;
    bool controller = false;
    bool block_owner_deletion = false;
};

namespace meta {
// Each returns "" / empty when the field is absent or has the wrong JSON type.
std::string name(const json& obj);
std::string namespace_(const json& obj);
std::string uid(const json& obj);
std::string resource_version(const json& obj);
std::string generate_name(const json& obj);
std::string deletion_timestamp(const json& obj);
std::map<std::string, std::string> labels(const json& obj);
std::map<std::string, std::string> annotations(const json& obj);
std::optional<std::string> label(const json& obj, std::string_view key);
std::optional<std::string> annotation(const json& obj, std::string_view key);
std::vector<std::string> finalizers(const json& obj);
std::vector<OwnerReference> owner_references(const json& obj);
bool is_deleting(const json& obj);

// Setters create metadata{} as needed.
void set_name(json& obj, std::string_view v);
void set_namespace(json& obj, std::string_view v);
void set_resource_version(json& obj, std::string_view v);
void set_label(json& obj, std::string_view key, std::string_view value);
void set_annotation(json& obj, std::string_view key, std::string_view value);
void set_owner_references(json& obj, const std::vector<OwnerReference>& refs);

// Drops metadata.managedFields: server-side-apply bookkeeping that caches never read and that
// costs a third or more of a small object's memory (client-go informers do the same through
// SetTransform).
void strip_managed_fields(json& obj);

// Cache key: "namespace/name", or "name" for cluster-scoped objects (client-go
// MetaNamespaceKeyFunc).
std::string key(const json& obj);
std::string key(std::string_view ns, std::string_view name);
}  // namespace meta

// RFC 3339, UTC, seconds: "2026-01-01T00:00:00Z" (metav1.Time).
std::string format_time(SystemTime t);
// RFC 3339, UTC, microseconds: "2026-01-01T00:00:00.000000Z" (metav1.MicroTime, Lease times).
std::string format_micro_time(SystemTime t);
// Accepts both forms, any fraction length, "Z" or a numeric offset.
Result<SystemTime> parse_time(std::string_view s);

}  // namespace edgecert::k8s
