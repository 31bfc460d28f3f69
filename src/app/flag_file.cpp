#include "app/flag_file.h"

#include <nlohmann/json.hpp>

#include <cstdio>

#include "app/run_config.h"
#include "platform/files.h"

namespace edgecert::app {
namespace {

std::string kebab(const std::string& key) {
    std::string out;
    for (char c : key) {
        if (c >= 'A' && c <= 'Z') {
            out += '-';
            out += static_cast<char>(c - 'A' + 'a');
        } else {
            out += c;
        }
    }
    return out;
}

Result<std::string> scalar(const std::string& key, const nlohmann::json& v) {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_boolean()) return std::string(v.get<bool>() ? "true" : "false");
    if (v.is_number_integer()) return std::to_string(v.get<long long>());
    if (v.is_number()) return v.dump();
    return Error(ErrorCode::InvalidConfig, key + ": expected a value, not " + std::string(v.type_name()));
}

}  // namespace

Status apply_flag_file(Flags& f, const std::string& path) {
    auto text = platform::read_file(path, 1 << 20);
    if (!text) {
        Error e = text.error();
        e.context("--config " + path);
        return e;
    }
    auto doc = yaml_to_json(*text);
    if (!doc) {
        Error e = doc.error();
        e.context("--config " + path);
        return e;
    }
    if (doc->is_null()) return {};
    if (!doc->is_object()) return Error(ErrorCode::InvalidConfig, "--config " + path + ": expected a mapping of settings");
    for (auto it = doc->begin(); it != doc->end(); ++it) {
        const std::string name = kebab(it.key());
        if (name == "config" || !f.knows(name))
            return Error(ErrorCode::InvalidConfig, "--config " + path + ": unknown setting '" + it.key() + "'");
        std::string value;
        if (it.value().is_array()) {
            for (const auto& x : it.value()) {
                auto s = scalar(it.key(), x);
                if (!s) return Error(ErrorCode::InvalidConfig, "--config " + path + ": " + s.error().message);
                value += (value.empty() ? "" : ",") + *s;
            }
        } else {
            auto s = scalar(it.key(), it.value());
            if (!s) return Error(ErrorCode::InvalidConfig, "--config " + path + ": " + s.error().message);
            value = *s;
        }
        if (f.is_bool(name) && value != "true" && value != "false")
            return Error(ErrorCode::InvalidConfig, "--config " + path + ": " + it.key() + " must be true or false");
        EC_TRY(f.set_from_file(name, value));
    }
    return {};
}

std::optional<int> parse_command_line(Flags& f, int argc, char** argv, const char* command) {
    Status st = f.parse(argc, argv);
    if (st && f.knows("config") && f.has("config") && !f.help_requested()) st = apply_flag_file(f, f.get("config"));
    if (!st) {
        std::fprintf(stderr, "edgecert %s: %s\n", command, st.error().message.c_str());
        return 2;
    }
    if (f.help_requested()) {
        std::printf("%s", f.help_text().c_str());
        return 0;
    }
    return std::nullopt;
}

}  // namespace edgecert::app
