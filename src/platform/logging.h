#pragma once
// Process-wide logging setup. Components log through spdlog directly; this only chooses the sink
// format: human text for terminals, one JSON object per line for production log pipelines.
#include <string_view>

#include "edgecert/base/result.h"

namespace edgecert::platform {

enum class LogFormat { Text, Json };

// level: trace|debug|info|warn|error|off. Logs go to stderr so stdout stays for command output.
Status setup_logging(LogFormat format, std::string_view level);

// Escapes a string for inclusion in a JSON string literal (no surrounding quotes).
std::string json_escape(std::string_view s);

}  // namespace edgecert::platform
