#pragma once
// Internal helpers for decoding ACME JSON. Decoders throw (nlohmann::json::exception or
// WireError) and the public parse_* functions catch at the boundary and return a Transient
// Error, so nothing throws past acme/.
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>

#include "edgecert/acme/types.h"

namespace edgecert::acme::wire {

using json = nlohmann::json;

struct WireError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Required string member.
inline std::string req_str(const json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end()) throw WireError(std::string("missing \"") + key + "\"");
    if (!it->is_string()) throw WireError(std::string("\"") + key + "\" is not a string");
    return it->get<std::string>();
}

// Optional string member ("" when absent or null).
inline std::string opt_str(const json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return {};
    if (!it->is_string()) throw WireError(std::string("\"") + key + "\" is not a string");
    return it->get<std::string>();
}

inline bool opt_bool(const json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return false;
    if (!it->is_boolean()) throw WireError(std::string("\"") + key + "\" is not a boolean");
    return it->get<bool>();
}

inline std::optional<SystemTime> opt_time(const json& j, const char* key) {
    std::string s = opt_str(j, key);
    if (s.empty()) return std::nullopt;
    auto t = parse_rfc3339(s);
    if (!t) throw WireError(std::string("\"") + key + "\" is not an RFC 3339 timestamp");
    return t;
}

inline std::vector<std::string> opt_str_array(const json& j, const char* key) {
    std::vector<std::string> out;
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return out;
    if (!it->is_array()) throw WireError(std::string("\"") + key + "\" is not an array");
    for (const auto& v : *it) {
        if (!v.is_string()) throw WireError(std::string("\"") + key + "\" holds a non-string");
        out.push_back(v.get<std::string>());
    }
    return out;
}

Identifier decode_identifier(const json& j);
Problem decode_problem(const json& j);
Challenge decode_challenge(const json& j);
std::optional<Problem> opt_problem(const json& j, const char* key);

}  // namespace edgecert::acme::wire
