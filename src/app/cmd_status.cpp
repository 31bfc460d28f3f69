// `edgecert status`: every certificate at a glance (docs/status.md). From a cluster (kubeconfig,
// like kubectl: --namespace / -A) or from an `edgecert run` store (--store DIR, or --config FILE
// of `edgecert run`), optionally compared with what terminators serve (--terminator URL of their
// admin port). A table in a terminal (colour unless NO_COLOR), `-o wide`, `-o json` for scripts;
// the exit status says the worst problem found (status_model.h), so it works as a cron check.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "app/clients.h"
#include "app/commands.h"
#include "app/flags.h"
#include "app/run_config.h"
#include "app/status_model.h"
#include "app/status_sources.h"
#include "app/status_table.h"
#include "edgecert/base/clock.h"
#include "edgecert/k8s/client.h"
#include "edgecert/k8s/config.h"
#include "platform/curl_http.h"
#include "platform/files.h"

namespace edgecert::app {
namespace {

Result<std::vector<status::ServedEntry>> ask_terminator(HttpClient& http, const std::string& base,
                                                        std::chrono::milliseconds timeout) {
    HttpRequest req;
    req.url = base + "/certificates";
    req.timeout = timeout;
    EC_TRY_ASSIGN(auto resp, http.send(req));
    if (resp.status != 200)
        return Error(ErrorCode::Permanent,
                     "GET " + req.url + ": HTTP " + std::to_string(resp.status) +
                         (resp.status == 404 ? " (not an edgecert admin port?)" : ""));
    return status::parse_served(resp.body);
}

}  // namespace

int cmd_status(int argc, char** argv) {
    Flags f("status",
            "[--kubeconfig FILE [-n NS | -A] | --store DIR | --config FILE] [--terminator URL]... "
            "[-o FMT]",
            "Lists every certificate with its names, issuer, notAfter, next renewal, Ready and "
            "last failure;\n"
            "with --terminator, also the serial each terminator serves (stored vs served). Exit "
            "status: 0 all\n"
            "fine, 3 not Ready or failing, 4 served differs from stored, 5 renewal overdue, 6 "
            "expired (the worst\n"
            "wins); 1 could not read, 2 usage. See docs/status.md.");
    f.add("kubeconfig", "FILE",
          "read Certificates from this cluster (default: $KUBECONFIG or ~/.kube/config)")
        .add("context", "NAME", "kubeconfig context (default: current-context)")
        .add("namespace", "NS", "namespace (-n; default: the context's namespace, else 'default')")
        .add_bool("all-namespaces", "every namespace (-A)")
        .add("store", "DIR", "read the store of `edgecert run` (certs/<name>/)")
        .add("config", "FILE", "the config file of `edgecert run`: its store and its certificates")
        .add("terminator", "URL",
             "admin endpoint of a terminator (http://HOST:9402) to compare with; repeatable")
        .add("output", "FORMAT", "table, wide or json (-o)", "table")
        .add("color", "auto|always|never",
             "colour in the table (auto: when stdout is a terminal and NO_COLOR is unset)", "auto")
        .add("timeout", "DURATION", "per request to the API server or a terminator", "10s");
    std::vector<std::string> args = expand_kubectl_flags(argc, argv, {{'n', "namespace"}, {'o', "output"}});
    std::vector<char*> ptrs;
    for (auto& a : args) ptrs.push_back(a.data());
    auto usage = [](const std::string& msg) {
        std::fprintf(stderr, "edgecert status: %s\n", msg.c_str());
        return status::kExitUsage;
    };
    if (auto st = f.parse(static_cast<int>(ptrs.size()), ptrs.data()); !st)
        return usage(st.error().message);
    if (f.help_requested()) {
        std::printf("%s", f.help_text().c_str());
        return 0;
    }
    if (!f.positional().empty())
        return usage("unexpected argument '" + f.positional().front() + "'");
    const std::string output = f.get("output");
    if (output != "table" && output != "wide" && output != "json")
        return usage("--output must be table, wide or json");
    const std::string colour = f.get("color");
    if (colour != "auto" && colour != "always" && colour != "never")
        return usage("--color must be auto, always or never");
    auto timeout = f.get_duration("timeout", false);
    if (!timeout) return usage(timeout.error().message);
    const int sources = int(f.has("store")) + int(f.has("config")) + int(f.has("kubeconfig"));
    if (sources > 1) return usage("give one of --kubeconfig, --store and --config");
    if (f.has("all-namespaces") && f.has("namespace"))
        return usage("--namespace and --all-namespaces exclude each other");
    auto fail = [](const Error& e) {
        std::fprintf(stderr, "edgecert status: %s\n", e.message.c_str());
        return e.code == ErrorCode::InvalidConfig ? status::kExitUsage : status::kExitError;
    };

    RealClock& clock = RealClock::instance();
    Result<status::Report> report = Error(ErrorCode::InvalidConfig, "no source");
    if (f.has("store") || f.has("config")) {
        if (f.has("namespace") || f.has("all-namespaces") || f.has("context"))
            return usage("--namespace, --all-namespaces and --context apply to --kubeconfig only");
        std::string root = f.get("store");
        std::optional<RunConfig> run_cfg;
        std::optional<std::map<std::string, std::string>> names;
        if (f.has("config")) {
            auto cfg = load_run_config(f.get("config"));
            if (!cfg) return fail(cfg.error());
            run_cfg = std::move(*cfg);
            root = run_cfg->store;
            names.emplace();
            for (const auto& c : run_cfg->certificates) (*names)[c.ref.name] = c.ref.secret_name;
        }
        report = status::collect_store(root, names, clock.now());
        if (report && run_cfg) {
            // What the config says, for certificates the store knows nothing about yet.
            for (auto& row : report->certificates)
                if (const auto* spec = run_cfg->certificate(row.name)) {
                    if (row.dns_names.empty()) row.dns_names = spec->dns_names;
                    if (row.issuer_name.empty()) row.issuer_name = spec->issuer_name;
                }
        }
    } else {
        std::string path = f.has("kubeconfig") ? f.get("kubeconfig") : default_kubeconfig();
        if (path.empty())
            return usage(
                "no source: give --kubeconfig FILE (or set KUBECONFIG), --store DIR or --config "
                "FILE");
        auto kube = connect_kube(path, f.get("context"), *timeout, clock);
        if (!kube) return fail(kube.error());
        status::K8sScope scope;
        scope.all_namespaces = f.has("all-namespaces") && f.get_bool("all-namespaces");
        scope.namespace_ = f.has("namespace") ? f.get("namespace") : kube->cfg.namespace_;
        if (scope.namespace_.empty()) scope.namespace_ = "default";
        report = status::collect_kubernetes(*kube->client, scope, clock.now());
    }
    if (!report) return fail(report.error());

    if (f.has("terminator")) {
        platform::CurlOptions co;
        co.connect_timeout =
            std::min<std::chrono::milliseconds>(*timeout, std::chrono::milliseconds(5000));
        auto http = platform::CurlHttpClient::create(std::move(co));
        if (!http) return fail(http.error());
        for (std::string url : f.get_all("terminator")) {
            while (!url.empty() && url.back() == '/') url.pop_back();
            if (url.find("://") == std::string::npos) url = "http://" + url;
            status::attach_served(*report, url, ask_terminator(**http, url, *timeout));
        }
    }
    status::evaluate(*report);
    if (output == "json") {
        std::printf("%s\n", status::to_json(*report).dump(2).c_str());
    } else {
        status::TableOptions to;
        to.wide = output == "wide";
        to.colour = colour == "always" ||
                    (colour == "auto" &&
                     status::colour_wanted(isatty(STDOUT_FILENO) == 1, std::getenv("NO_COLOR"),
                                           std::getenv("TERM")));
        std::fputs(status::render_table(*report, to).c_str(), stdout);
    }
    std::fflush(stdout);
    return status::exit_code(*report);
}

}  // namespace edgecert::app
