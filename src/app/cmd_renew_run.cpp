// `edgecert renew --config FILE NAME...` (or --store DIR): asks a running `edgecert run` to renew
// those certificates now. It leaves an empty file STORE/renew-requests/NAME (run_config.h), which
// run takes within a second: it renews at once (skipping a failure backoff, not a CA's
// Retry-After), serves the old certificate until the new one is stored, and logs
// "certificate NAME: renewed serial ...". Only who may write the store can ask.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "app/commands.h"
#include "app/flags.h"
#include "app/run_config.h"

namespace edgecert::app {

bool renew_targets_run(int argc, char** argv) { return has_any_flag(argc, argv, {"--config", "--store"}); }

int cmd_renew_run(int argc, char** argv) {
    Flags f("renew", "(--config FILE | --store DIR) NAME...",
            "Asks a running `edgecert run` to renew these certificates now (like `cmctl renew`): it\n"
            "leaves STORE/renew-requests/NAME, which run takes within a second. run renews at once\n"
            "(a failure backoff is skipped, a CA's Retry-After is not), serves the old certificate\n"
            "until the new one is stored, and logs 'certificate NAME: renewed serial ...'.\n"
            "Exit status: 0 asked, 1 could not write the request, 2 usage or an unknown name.");
    f.add("config", "FILE", "the config file of `edgecert run` (its store, and the names are checked)")
        .add("store", "DIR", "the store of `edgecert run` (names are checked by run, in its log)");
    auto usage = [](const std::string& msg) {
        std::fprintf(stderr, "edgecert renew: %s\n", msg.c_str());
        return 2;
    };
    if (auto st = f.parse(argc, argv); !st) return usage(st.error().message);
    if (f.help_requested()) {
        std::printf("%s", f.help_text().c_str());
        return 0;
    }
    if (f.has("config") == f.has("store")) return usage("give one of --config FILE and --store DIR");
    const auto& names = f.positional();
    if (names.empty()) return usage("name the certificates to renew (the 'name' of each in the config)");
    std::string root = f.get("store");
    if (f.has("config")) {
        auto cfg = load_run_config(f.get("config"));
        if (!cfg) return usage(cfg.error().message);
        root = cfg->store;
        for (const auto& n : names)
            if (!cfg->certificate(n)) return usage("'" + n + "' is not a certificate of " + f.get("config"));
    }
    for (const auto& n : names)
        if (n.empty() || n[0] == '.' || n.find('/') != std::string::npos)
            return usage("'" + n + "' is not a certificate name");
    struct stat sb {};
    errno = 0;
    if (::stat(root.c_str(), &sb) != 0 || !S_ISDIR(sb.st_mode)) {
        std::fprintf(stderr, "edgecert renew: store %s: %s\n", root.c_str(),
                     errno ? std::strerror(errno) : "not a directory");
        return 1;
    }
    const std::string dir = root + "/" + kRenewRequestsDir;
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
        std::fprintf(stderr, "edgecert renew: %s: %s\n", dir.c_str(), std::strerror(errno));
        return 1;
    }
    for (const auto& n : names) {
        const std::string path = dir + "/" + n;
        int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            std::fprintf(stderr, "edgecert renew: %s: %s\n", path.c_str(), std::strerror(errno));
            return 1;
        }
        ::close(fd);
        std::printf("Renewal of %s requested: edgecert run (store %s) takes it within a second\n", n.c_str(),
                    root.c_str());
    }
    return 0;
}

}  // namespace edgecert::app
