#include "edgecert/k8s/object.h"

#include <cstdio>
#include <ctime>

namespace edgecert::k8s {

namespace {
const json* metadata(const json& obj) {
    if (!obj.is_object()) return nullptr;
    auto it = obj.find("metadata");
    if (it == obj.end() || !it->is_object()) return nullptr;
    return &*it;
}
std::string meta_string(const json& obj, const char* field) {
    const json* m = metadata(obj);
    if (!m) return {};
    auto it = m->find(field);
    if (it == m->end() || !it->is_string()) return {};
    return it->get<std::string>();
}
std::map<std::string, std::string> meta_map(const json& obj, const char* field) {
    std::map<std::string, std::string> out;
    const json* m = metadata(obj);
    if (!m) return out;
    auto it = m->find(field);
    if (it == m->end() || !it->is_object()) return out;
    for (auto& [k, v] : it->items())
        if (v.is_string()) out.emplace(k, v.get<std::string>());
    return out;
}
std::optional<std::string> meta_map_entry(const json& obj, const char* field,
                                          std::string_view key) {
    const json* m = metadata(obj);
    if (!m) return std::nullopt;
    auto it = m->find(field);
    if (it == m->end() || !it->is_object()) return std::nullopt;
    auto v = it->find(std::string(key));
    if (v == it->end() || !v->is_string()) return std::nullopt;
    return v->get<std::string>();
}
json& mutable_metadata(json& obj) {
    if (!obj.is_object()) obj = json::object();
    json& m = obj["metadata"];
    if (!m.is_object()) m = json::object();
    return m;
}
}  // namespace

namespace meta {
std::string name(const json& obj) {
    return meta_string(obj, "name");
}
std::string namespace_(const json& obj) {
    return meta_string(obj, "namespace");
}
std::string uid(const json& obj) {
    return meta_string(obj, "uid");
}
std::string resource_version(const json& obj) {
    return meta_string(obj, "resourceVersion");
}
std::string generate_name(const json& obj) {
    return meta_string(obj, "generateName");
}
std::string deletion_timestamp(const json& obj) {
    return meta_string(obj, "deletionTimestamp");
}
std::map<std::string, std::string> labels(const json& obj) {
    return meta_map(obj, "labels");
}
std::map<std::string, std::string> annotations(const json& obj) {
    return meta_map(obj, "annotations");
}
std::optional<std::string> label(const json& obj, std::string_view key) {
    return meta_map_entry(obj, "labels", key);
}
std::optional<std::string> annotation(const json& obj, std::string_view key) {
    return meta_map_entry(obj, "annotations", key);
}
std::vector<std::string> finalizers(const json& obj) {
    std::vector<std::string> out;
    const json* m = metadata(obj);
    if (!m) return out;
    auto it = m->find("finalizers");
    if (it == m->end() || !it->is_array()) return out;
    for (auto& v : *it)
        if (v.is_string()) out.push_back(v.get<std::string>());
    return out;
}
std::vector<OwnerReference> owner_references(const json& obj) {
    std::vector<OwnerReference> out;
    const json* m = metadata(obj);
    if (!m) return out;
    auto it = m->find("ownerReferences");
    if (it == m->end() || !it->is_array()) return out;
    for (auto& r : *it) {
        if (!r.is_object()) continue;
        OwnerReference o;
        auto s = [&](const char* f) {
            auto v = r.find(f);
            return v != r.end() && v->is_string() ? v->get<std::string>() : std::string();
        };
        auto b = [&](const char* f) {
            auto v = r.find(f);
            return v != r.end() && v->is_boolean() && v->get<bool>();
        };
        o.api_version = s("apiVersion");
        o.kind = s("kind");
        o.name = s("name");
        o.uid = s("uid");
        o.controller = b("controller");
        o.block_owner_deletion = b("blockOwnerDeletion");
        out.push_back(std::move(o));
    }
    return out;
}
bool is_deleting(const json& obj) {
    return !deletion_timestamp(obj).empty();
}

void set_name(json& obj, std::string_view v) {
    mutable_metadata(obj)["name"] = v;
}
void set_namespace(json& obj, std::string_view v) {
    mutable_metadata(obj)["namespace"] = v;
}
void set_resource_version(json& obj, std::string_view v) {
    mutable_metadata(obj)["resourceVersion"] = v;
}
void set_label(json& obj, std::string_view key, std::string_view value) {
    json& l = mutable_metadata(obj)["labels"];
    if (!l.is_object()) l = json::object();
    l[std::string(key)] = value;
}
void set_annotation(json& obj, std::string_view key, std::string_view value) {
    json& a = mutable_metadata(obj)["annotations"];
    if (!a.is_object()) a = json::object();
    a[std::string(key)] = value;
}
void set_owner_references(json& obj, const std::vector<OwnerReference>& refs) {
    json arr = json::array();
    for (auto& r : refs) {
        json o = {
            {"apiVersion", r.api_version}, {"kind", r.kind}, {"name", r.name}, {"uid", r.uid}};
        if (r.controller) o["controller"] = true;
        if (r.block_owner_deletion) o["blockOwnerDeletion"] = true;
        arr.push_back(std::move(o));
    }
    mutable_metadata(obj)["ownerReferences"] = std::move(arr);
}

void strip_managed_fields(json& obj) {
    if (!obj.is_object()) return;
    auto it = obj.find("metadata");
    if (it != obj.end() && it->is_object()) it->erase("managedFields");
}

std::string key(std::string_view ns, std::string_view name) {
    if (ns.empty()) return std::string(name);
    std::string k(ns);
    k += '/';
    k += name;
    return k;
}
std::string key(const json& obj) {
    return key(namespace_(obj), name(obj));
}
}  // namespace meta

std::string format_time(SystemTime t) {
    return rfc3339(t);
}

std::string format_micro_time(SystemTime t) {
    auto secs = std::chrono::floor<std::chrono::seconds>(t);
    auto micros = std::chrono::duration_cast<std::chrono::microseconds>(t - secs).count();
    std::time_t tt = std::chrono::system_clock::to_time_t(secs);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[48];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    char out[96];  // sized so -O2's format-truncation analysis sees no possible truncation
    std::snprintf(out, sizeof out, "%s.%06lldZ", buf, static_cast<long long>(micros % 1000000));
    return out;
}

Result<SystemTime> parse_time(std::string_view s) {
    auto bad = [&] {
        return Error(ErrorCode::InvalidConfig, "bad RFC 3339 time: " + std::string(s));
    };
    std::string str(s);
    std::tm tm{};
    const char* p = strptime(str.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p) return bad();
    long long frac_us = 0;
    if (*p == '.') {
        ++p;
        int digits = 0;
        while (*p >= '0' && *p <= '9') {
            if (digits < 6) frac_us = frac_us * 10 + (*p - '0');
            ++digits;
            ++p;
        }
        if (digits == 0) return bad();
        for (int i = digits; i < 6; ++i) frac_us *= 10;
    }
    long offset_s = 0;
    if (*p == 'Z' || *p == 'z') {
        ++p;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        // Exactly hh:mm (RFC 3339 time-numoffset). sscanf("%2d:%2d") also took "+1:2", and the
        // 6 bytes skipped below then ran past the end of the string (ASan: heap-buffer-overflow).
        // Each test stops at the terminating NUL, so nothing past it is read.
        auto digit = [](char c) { return c >= '0' && c <= '9'; };
        if (!digit(p[1]) || !digit(p[2]) || p[3] != ':' || !digit(p[4]) || !digit(p[5])) return bad();
        int hh = (p[1] - '0') * 10 + (p[2] - '0'), mm = (p[4] - '0') * 10 + (p[5] - '0');
        offset_s = sign * (hh * 3600L + mm * 60L);
        p += 6;
    } else {
        return bad();
    }
    if (*p != '\0') return bad();
    // Saturates outside what SystemTime holds (years 1678..2262) instead of overflowing.
    SystemTime t = system_time_from_unix(static_cast<int64_t>(timegm(&tm)) - offset_s);
    if (t == kSystemTimeMin || t == kSystemTimeMax) return t;
    return t + std::chrono::microseconds(frac_us);
}

}  // namespace edgecert::k8s
