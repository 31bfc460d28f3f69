#include "app/commands.h"

#include <cstdio>
#include <cstring>
#include <string>

#include "edgecert/base/version.h"
#include "platform/logging.h"
#include "platform/signals.h"

namespace edgecert::app {
namespace {

struct Command {
    const char* name;
    int (*fn)(int, char**);
    const char* summary;
};

// Keep in the order `edgecert --help` should list them.
const Command kCommands[] = {
    {"issue", cmd_issue, "obtain a certificate from an ACME CA (standalone responder)"},
    {"renew", cmd_renew, "renew a certificate when ARI or its lifetime says so"},
    {"revoke", cmd_revoke, "revoke a certificate"},
    {"controller", cmd_controller, "Kubernetes controller: annotated Ingress/Gateway -> Certificates"},
    {"terminator", cmd_terminator, "serve HTTPS from certificates, hot-reloading them"},
    {"run", cmd_run, "embedded default: issue, renew and serve the certificates of a config file"},
    {"status", cmd_status,
     "every certificate at a glance: expiry, renewal, failures, stored vs served"},
    {"version", cmd_version, "print the version"},
};

void usage(FILE* out) {
    std::fprintf(out,
                 "edgecert %s: certificate automation (ACME) and a hot-reloading TLS edge\n\n"
                 "Usage: edgecert <command> [flags]    (edgecert <command> --help for its flags)\n\n"
                 "Commands:\n",
                 kVersion);
    for (const auto& c : kCommands) std::fprintf(out, "  %-12s %s\n", c.name, c.summary);
    std::fprintf(out,
                 "\nEnvironment: EDGECERT_LOG_LEVEL (trace|debug|info|warn|error, default info),\n"
                 "             EDGECERT_LOG_FORMAT (text|json, default text). Logs go to stderr.\n");
}

}  // namespace

int cmd_version(int, char**) {
    std::printf("edgecert %s\n", kVersion);
    return 0;
}

int dispatch(int argc, char** argv) {
    if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
        !std::strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!std::strcmp(argv[1], "--version")) return cmd_version(0, nullptr);
    platform::ignore_sigpipe();
    const char* lvl = std::getenv("EDGECERT_LOG_LEVEL");
    const char* fmt = std::getenv("EDGECERT_LOG_FORMAT");
    auto st = platform::setup_logging(
        fmt && std::string(fmt) == "json" ? platform::LogFormat::Json : platform::LogFormat::Text,
        lvl ? lvl : "info");
    if (!st) {
        std::fprintf(stderr, "edgecert: %s\n", st.error().message.c_str());
        return 2;
    }
    for (const auto& c : kCommands)
        if (!std::strcmp(argv[1], c.name)) return c.fn(argc - 2, argv + 2);
    std::fprintf(stderr, "edgecert: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}

}  // namespace edgecert::app
