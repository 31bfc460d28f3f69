#include "edgecert/k8s/config.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "edgecert/base/encoding.h"
#include "edgecert/k8s/object.h"

extern char** environ;

namespace edgecert::k8s {

namespace {

Result<std::string> read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f)
        return Error(ErrorCode::InvalidConfig, "cannot read " + path + ": " + std::strerror(errno));
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

std::string trim(std::string s) {
    while (!s.empty() &&
           (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t'))
        s.pop_back();
    size_t i = 0;
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n')) ++i;
    return s.substr(i);
}

std::string resolve(const std::string& base_dir, const std::string& p) {
    if (p.empty() || p[0] == '/' || base_dir.empty()) return p;
    return base_dir + "/" + p;
}

Clock& clock_or_real(Clock* c) {
    return c ? *c : RealClock::instance();
}

}  // namespace

// ---- FileTokenSource ----

FileTokenSource::FileTokenSource(std::string path, Clock& clock, std::chrono::seconds refresh)
    : path_(std::move(path)), clock_(clock), refresh_(refresh) {}

Result<SecretBytes> FileTokenSource::token() {
    std::lock_guard l(mu_);
    auto now = clock_.steady_now();
    if (cached_ && !stale_ && now - read_at_ < refresh_) return *cached_;
    stale_ = false;
    auto r = read_file(path_);
    if (r.ok()) {
        std::string t = trim(std::move(*r));
        if (!t.empty()) {
            cached_ = SecretBytes(std::move(t));
            read_at_ = now;
            return *cached_;
        }
    }
    // Keep the last good token: a rotation in progress must not take the client down.
    if (cached_) {
        read_at_ = now;
        return *cached_;
    }
    return Error(ErrorCode::Unauthorized, "token file " + path_ + " is unreadable or empty");
}

void FileTokenSource::invalidate() {
    std::lock_guard l(mu_);
    stale_ = true;  // re-read on next use, still keep it as the fallback
}

// ---- exec plugins ----

Result<ExecCredential> parse_exec_credential(std::string_view out) {
    try {
        auto j = nlohmann::json::parse(out);
        if (!j.is_object() || j.value("kind", "") != "ExecCredential")
            return Error(ErrorCode::InvalidConfig, "exec plugin output is not an ExecCredential");
        auto st = j.find("status");
        if (st == j.end() || !st->is_object())
            return Error(ErrorCode::InvalidConfig, "exec plugin output has no status");
        ExecCredential c;
        if (st->contains("token") && (*st)["token"].is_string())
            c.token = SecretBytes((*st)["token"].get<std::string>());
        if (st->contains("clientCertificateData") && (*st)["clientCertificateData"].is_string())
            c.client_certificate_pem = (*st)["clientCertificateData"].get<std::string>();
        if (st->contains("clientKeyData") && (*st)["clientKeyData"].is_string())
            c.client_key_pem = SecretBytes((*st)["clientKeyData"].get<std::string>());
        if (st->contains("expirationTimestamp") && (*st)["expirationTimestamp"].is_string()) {
            auto t = parse_time((*st)["expirationTimestamp"].get<std::string>());
            if (!t.ok()) return t.error();
            c.expiration = *t;
        }
        if (c.token.empty() && c.client_certificate_pem.empty())
            return Error(ErrorCode::InvalidConfig,
                         "exec plugin returned neither token nor clientCertificateData");
        if (!c.client_certificate_pem.empty() && c.client_key_pem.empty())
            return Error(ErrorCode::InvalidConfig,
                         "exec plugin returned a certificate without a key");
        return c;
    } catch (const nlohmann::json::exception&) {
        return Error(ErrorCode::InvalidConfig, "exec plugin output is not JSON");
    }
}

Result<ExecCredential> run_exec_plugin(const ExecConfig& cfg) {
    if (cfg.command.empty()) return Error(ErrorCode::InvalidConfig, "exec plugin: no command");
    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0)
        return Error(ErrorCode::Transient,
                     std::string("exec plugin: pipe: ") + std::strerror(errno));

    // Build argv/envp before fork: only async-signal-safe calls in the child.
    std::vector<std::string> args{cfg.command};
    args.insert(args.end(), cfg.args.begin(), cfg.args.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> envs;
    for (char** e = environ; e && *e; ++e) envs.emplace_back(*e);
    for (auto& [k, v] : cfg.env) envs.push_back(k + "=" + v);
    nlohmann::json info = {{"apiVersion", cfg.api_version},
                           {"kind", "ExecCredential"},
                           {"spec", {{"interactive", false}}}};
    envs.push_back("KUBERNETES_EXEC_INFO=" + info.dump());
    std::vector<char*> envp;
    for (auto& e : envs) envp.push_back(e.data());
    envp.push_back(nullptr);

    pid_t pid = fork();
    if (pid < 0) {
        close(out[0]);
        close(out[1]);
        return Error(ErrorCode::Transient,
                     std::string("exec plugin: fork: ") + std::strerror(errno));
    }
    if (pid == 0) {
        dup2(out[1], 1);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        execvpe(argv[0], argv.data(), envp.data());
        _exit(127);
    }
    close(out[1]);
    std::string buf;
    auto deadline = std::chrono::steady_clock::now() + cfg.timeout;
    bool timed_out = false;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            timed_out = true;
            break;
        }
        pollfd p{out[0], POLLIN, 0};
        int pr = poll(&p, 1, static_cast<int>(left.count()));
        if (pr < 0 && errno == EINTR) continue;
        if (pr <= 0) {
            timed_out = pr == 0;
            break;
        }
        char tmp[4096];
        ssize_t n = read(out[0], tmp, sizeof tmp);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        buf.append(tmp, static_cast<size_t>(n));
        if (buf.size() > (1 << 20)) break;
    }
    close(out[0]);
    if (timed_out) kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (timed_out) return Error(ErrorCode::Transient, "exec plugin " + cfg.command + " timed out");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return Error(ErrorCode::Unauthorized,
                     "exec plugin " + cfg.command + " failed (status " +
                         std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")");
    return parse_exec_credential(buf);
}

Result<SecretBytes> ExecTokenSource::token() {
    std::lock_guard l(mu_);
    // Refresh a little before expiry so a request does not race the deadline.
    if (cached_ &&
        (!cached_->expiration || clock_.now() + std::chrono::seconds(10) < *cached_->expiration))
        return cached_->token;
    ++runs_;
    auto c = run_exec_plugin(cfg_);
    if (!c.ok()) {
        if (cached_ && cached_->expiration && clock_.now() < *cached_->expiration)
            return cached_->token;
        return c.error();
    }
    if (c->token.empty()) return Error(ErrorCode::Unauthorized, "exec plugin returned no token");
    cached_ = std::move(*c);
    return cached_->token;
}

void ExecTokenSource::invalidate() {
    std::lock_guard l(mu_);
    cached_.reset();
}

int ExecTokenSource::runs() const {
    std::lock_guard l(mu_);
    return runs_;
}

// ---- kubeconfig ----

namespace {

YAML::Node find_named(const YAML::Node& list, const std::string& name, const char* field) {
    if (!list || !list.IsSequence()) return YAML::Node();
    for (const auto& item : list) {
        if (item["name"] && item["name"].as<std::string>() == name) return item[field];
    }
    return YAML::Node();
}

std::string str(const YAML::Node& n, const char* field) {
    if (!n || !n.IsMap() || !n[field] || !n[field].IsScalar()) return {};
    return n[field].as<std::string>();
}

Result<std::string> data_or_file(const YAML::Node& n, const char* data_field,
                                 const char* file_field, const std::string& base_dir) {
    std::string data = str(n, data_field);
    if (!data.empty()) {
        auto d = enc::base64_decode(trim(data));
        if (!d) return Error(ErrorCode::InvalidConfig, std::string(data_field) + " is not base64");
        return *d;
    }
    std::string file = str(n, file_field);
    if (!file.empty()) return read_file(resolve(base_dir, file));
    return std::string();
}

}  // namespace

Result<Config> parse_kubeconfig(std::string_view yaml, const std::string& base_dir,
                                const KubeconfigOptions& opts) {
    Clock& clock = clock_or_real(opts.clock);
    try {
        YAML::Node root = YAML::Load(std::string(yaml));
        if (!root.IsMap()) return Error(ErrorCode::InvalidConfig, "kubeconfig is not a map");
        std::string ctx_name = opts.context.empty() ? str(root, "current-context") : opts.context;
        if (ctx_name.empty())
            return Error(ErrorCode::InvalidConfig, "kubeconfig: no current-context");
        YAML::Node ctx = find_named(root["contexts"], ctx_name, "context");
        if (!ctx)
            return Error(ErrorCode::InvalidConfig,
                         "kubeconfig: context " + ctx_name + " not found");
        std::string cluster_name = str(ctx, "cluster");
        std::string user_name = str(ctx, "user");
        YAML::Node cluster = find_named(root["clusters"], cluster_name, "cluster");
        if (!cluster)
            return Error(ErrorCode::InvalidConfig,
                         "kubeconfig: cluster " + cluster_name + " not found");

        Config c;
        c.server = str(cluster, "server");
        while (!c.server.empty() && c.server.back() == '/') c.server.pop_back();
        if (c.server.empty())
            return Error(ErrorCode::InvalidConfig, "kubeconfig: cluster has no server");
        if (!str(ctx, "namespace").empty()) c.namespace_ = str(ctx, "namespace");
        EC_TRY_ASSIGN(c.ca_pem, data_or_file(cluster, "certificate-authority-data",
                                             "certificate-authority", base_dir));
        c.ca_file = str(cluster, "certificate-authority");
        c.insecure_skip_tls_verify =
            cluster["insecure-skip-tls-verify"] && cluster["insecure-skip-tls-verify"].as<bool>();
        c.tls_server_name = str(cluster, "tls-server-name");

        YAML::Node user = find_named(root["users"], user_name, "user");
        if (user_name.empty() || !user) return c;  // anonymous

        EC_TRY_ASSIGN(c.client_certificate_pem, data_or_file(user, "client-certificate-data",
                                                             "client-certificate", base_dir));
        EC_TRY_ASSIGN(std::string key,
                      data_or_file(user, "client-key-data", "client-key", base_dir));
        c.client_key_pem = SecretBytes(std::move(key));
        if (!c.client_certificate_pem.empty() && c.client_key_pem.empty())
            return Error(ErrorCode::InvalidConfig, "kubeconfig: client certificate without a key");

        if (!str(user, "token").empty()) {
            c.token_source = std::make_shared<StaticTokenSource>(SecretBytes(str(user, "token")));
        } else if (!str(user, "tokenFile").empty()) {
            c.token_source =
                std::make_shared<FileTokenSource>(resolve(base_dir, str(user, "tokenFile")), clock);
        } else if (user["exec"] && user["exec"].IsMap()) {
            const YAML::Node& ex = user["exec"];
            ExecConfig e;
            if (!str(ex, "apiVersion").empty()) e.api_version = str(ex, "apiVersion");
            if (e.api_version != "client.authentication.k8s.io/v1" &&
                e.api_version != "client.authentication.k8s.io/v1beta1")
                return Error(ErrorCode::InvalidConfig,
                             "kubeconfig: unsupported exec apiVersion " + e.api_version);
            e.command = str(ex, "command");
            if (e.command.find('/') != std::string::npos) e.command = resolve(base_dir, e.command);
            if (ex["args"] && ex["args"].IsSequence())
                for (const auto& a : ex["args"]) e.args.push_back(a.as<std::string>());
            if (ex["env"] && ex["env"].IsSequence())
                for (const auto& kv : ex["env"])
                    e.env.emplace_back(str(kv, "name"), str(kv, "value"));
            if (!str(ex, "interactiveMode").empty())
                e.interactive_mode = str(ex, "interactiveMode");
            // A plugin may hand out a client certificate instead of a token; that one must be
            // known before the TLS client is built, so run it once now.
            auto cred = run_exec_plugin(e);
            if (!cred.ok()) return cred.error().with_context("kubeconfig exec plugin");
            if (!cred->client_certificate_pem.empty()) {
                c.client_certificate_pem = cred->client_certificate_pem;
                c.client_key_pem = cred->client_key_pem;
            }
            if (!cred->token.empty())
                c.token_source = std::make_shared<ExecTokenSource>(e, clock, std::move(*cred));
        } else if (user["auth-provider"]) {
            return Error(ErrorCode::InvalidConfig, "kubeconfig: auth-provider is not supported");
        }
        return c;
    } catch (const YAML::Exception& e) {
        return Error(ErrorCode::InvalidConfig, std::string("kubeconfig: ") + e.what());
    }
}

Result<Config> load_kubeconfig(const std::string& path, const KubeconfigOptions& opts) {
    EC_TRY_ASSIGN(std::string text, read_file(path));
    std::string dir;
    auto slash = path.rfind('/');
    if (slash != std::string::npos) dir = path.substr(0, slash == 0 ? 1 : slash);
    return parse_kubeconfig(text, dir, opts);
}

Result<Config> in_cluster_config(const InClusterOptions& opts) {
    auto env = [](const char* n) -> std::optional<std::string> {
        const char* v = std::getenv(n);
        if (!v || !*v) return std::nullopt;
        return std::string(v);
    };
    auto host = opts.host ? opts.host : env("KUBERNETES_SERVICE_HOST");
    auto port = opts.port ? opts.port : env("KUBERNETES_SERVICE_PORT");
    if (!host || !port || host->empty() || port->empty())
        return Error(ErrorCode::InvalidConfig,
                     "not in a cluster: KUBERNETES_SERVICE_HOST/PORT are not set");
    Config c;
    std::string h = *host;
    if (h.find(':') != std::string::npos && h.front() != '[') h = "[" + h + "]";  // IPv6
    c.server = "https://" + h + ":" + *port;
    c.ca_file = opts.dir + "/ca.crt";
    EC_TRY_ASSIGN(c.ca_pem, read_file(c.ca_file));
    auto ns = read_file(opts.dir + "/namespace");
    if (ns.ok() && !trim(*ns).empty()) c.namespace_ = trim(*ns);
    auto src = std::make_shared<FileTokenSource>(opts.dir + "/token", clock_or_real(opts.clock));
    // Fail early when the token is not there at all; later failures keep the last good one.
    EC_TRY(src->token());
    c.token_source = std::move(src);
    return c;
}

}  // namespace edgecert::k8s
