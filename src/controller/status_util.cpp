#include "controller/status_util.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "edgecert/base/encoding.h"
#include "edgecert/k8s/object.h"

namespace edgecert::controller {

using json = nlohmann::json;
namespace meta = k8s::meta;

std::optional<std::string> secret_data(const json& secret, const char* key) {
    if (!secret.contains("data") || !secret["data"].is_object()) return std::nullopt;
    auto it = secret["data"].find(key);
    if (it == secret["data"].end() || !it->is_string()) return std::nullopt;
    return enc::base64_decode(it->get<std::string>());
}

void set_condition(json& status, const std::string& type, const std::string& st,
                   const std::string& reason, const std::string& message, SystemTime now,
                   int64_t generation) {
    if (!status.contains("conditions") || !status["conditions"].is_array())
        status["conditions"] = json::array();
    json& conds = status["conditions"];
    for (auto& c : conds) {
        if (c.value("type", "") != type) continue;
        if (c.value("status", "") != st) c["lastTransitionTime"] = k8s::format_time(now);
        c["status"] = st;
        c["reason"] = reason;
        c["message"] = message;
        c["observedGeneration"] = generation;
        return;
    }
    conds.push_back({{"type", type},
                     {"status", st},
                     {"reason", reason},
                     {"message", message},
                     {"lastTransitionTime", k8s::format_time(now)},
                     {"observedGeneration", generation}});
}

void remove_condition(json& status, const std::string& type) {
    if (!status.contains("conditions") || !status["conditions"].is_array()) return;
    json& conds = status["conditions"];
    conds.erase(std::remove_if(conds.begin(), conds.end(),
                               [&](const json& c) { return c.value("type", "") == type; }),
                conds.end());
}

const json* find_condition(const json& status, const std::string& type) {
    if (!status.contains("conditions") || !status["conditions"].is_array()) return nullptr;
    for (const auto& c : status["conditions"])
        if (c.value("type", "") == type) return &c;
    return nullptr;
}

void write_status(ControllerContext& ctx, const k8s::ResourceType& rt, const json& obj,
                  const json& status) {
    json current = obj.value("status", json::object());
    if (status == current) return;  // stable writes: nothing to say
    json patch = json::object();
    for (auto it = status.begin(); it != status.end(); ++it) {
        auto c = current.find(it.key());
        if (c == current.end() || *c != it.value()) patch[it.key()] = it.value();
    }
    for (auto it = current.begin(); it != current.end(); ++it)
        if (!status.contains(it.key())) patch[it.key()] = nullptr;
    k8s::PatchOptions po{.field_manager = ctx.field_manager, .subresource = "status"};
    auto r = ctx.client.patch(rt, meta::namespace_(obj), meta::name(obj), k8s::PatchType::Merge,
                              json{{"status", patch}}, po);
    if (!r && r.error().code != ErrorCode::NotFound)
        spdlog::warn("{} {}: status update failed: {}", rt.kind, meta::key(obj), r.error().message);
}

}  // namespace edgecert::controller
