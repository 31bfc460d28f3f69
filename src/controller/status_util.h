#pragma once
// Status and Secret helpers shared by the Certificate and Issuer reconcilers
// (certificate_controller.cpp, certificate_issuers.cpp).
#include <nlohmann/json.hpp>

#include <optional>
#include <string>

#include "controller/context.h"
#include "edgecert/base/clock.h"

namespace edgecert::controller {

// A key of a Secret's data, base64-decoded.
std::optional<std::string> secret_data(const nlohmann::json& secret, const char* key);

// Sets one condition (type, status, reason, message), keeping lastTransitionTime when the status
// did not change (metav1.Condition semantics, and stable writes).
void set_condition(nlohmann::json& status, const std::string& type, const std::string& st,
                   const std::string& reason, const std::string& message, SystemTime now,
                   int64_t generation);
void remove_condition(nlohmann::json& status, const std::string& type);
// The condition of that type, or null.
const nlohmann::json* find_condition(const nlohmann::json& status, const std::string& type);

// Writes `status` over the object's status as a merge patch on the status subresource, only when
// it differs, and only with what changed: fields we dropped are sent as null, fields we did not
// touch are not sent — the cached object may be a write behind, and re-sending its stale fields
// (say, a failedIssuanceAttempts the last success removed) would undo that write. One writer for
// Certificates and Issuers alike.
void write_status(ControllerContext& ctx, const k8s::ResourceType& rt, const nlohmann::json& obj,
                  const nlohmann::json& status);

}  // namespace edgecert::controller
