#include "platform/logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>

namespace edgecert::platform {

std::string json_escape(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 8);
    for (unsigned char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    return out;
}

namespace {
// %*: the message as a JSON string body, so any text a log line carries stays valid JSON.
class JsonMessageFlag final : public spdlog::custom_flag_formatter {
public:
    void format(const spdlog::details::log_msg& msg, const std::tm&,
                spdlog::memory_buf_t& dest) override {
        std::string e = json_escape(std::string_view(msg.payload.data(), msg.payload.size()));
        dest.append(e.data(), e.data() + e.size());
    }
    std::unique_ptr<custom_flag_formatter> clone() const override {
        return std::make_unique<JsonMessageFlag>();
    }
};
}  // namespace

Status setup_logging(LogFormat format, std::string_view level) {
    auto lvl = spdlog::level::from_str(std::string(level));
    if (lvl == spdlog::level::off && level != "off")
        return Error(ErrorCode::InvalidConfig, "unknown log level '" + std::string(level) +
                                                   "' (trace|debug|info|warn|error|off)");
    spdlog::drop("edgecert");
    auto logger = spdlog::stderr_color_mt("edgecert");
    if (format == LogFormat::Json) {
        auto f = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
        f->add_flag<JsonMessageFlag>('*').set_pattern(
            R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","msg":"%*"})");
        logger->set_formatter(std::move(f));
    } else {
        logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ %v");
    }
    logger->set_level(lvl);
    spdlog::set_default_logger(logger);
    return {};
}

}  // namespace edgecert::platform
