#pragma once
// `--config FILE` for the long-running commands (terminator, controller): a YAML mapping whose
// keys are the command's flags, in camelCase (certDir) or as spelled on the command line
// (cert-dir). Lists become comma-separated values (alpn: [h2, http/1.1]); booleans are
// true/false. The command line overrides the file, so a deployment can ship one file and tweak
// one flag. An unknown key is an error naming it (a typo must not be silently ignored).
#include <string>

#include "app/flags.h"

namespace edgecert::app {

Status apply_flag_file(Flags& f, const std::string& path);

}  // namespace edgecert::app
