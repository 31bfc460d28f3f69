#pragma once
// `--config FILE` for the long-running commands (terminator, controller): a YAML mapping whose
// keys are the command's flags, in camelCase (certDir) or as spelled on the command line
// (cert-dir). Lists become comma-separated values (alpn: [h2, http/1.1]); booleans are
// true/false. The command line overrides the file, so a deployment can ship one file and tweak
// one flag. An unknown key is an error naming it (a typo must not be silently ignored).
#include <optional>
#include <string>

#include "app/flags.h"

namespace edgecert::app {

Status apply_flag_file(Flags& f, const std::string& path);

// parse() + --config (when the command has it) + --help, the way every long-running command
// starts. Returns the exit code when the command must stop here (2: usage error, 0: help shown).
std::optional<int> parse_command_line(Flags& f, int argc, char** argv, const char* command);

}  // namespace edgecert::app
