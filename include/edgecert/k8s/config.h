#pragma once
// Where the API server is and how to authenticate: kubeconfig
// (https://kubernetes.io/docs/concepts/configuration/organize-cluster-access-kubeconfig/) and the
// in-cluster service-account files. A Config carries what the caller needs to build its
// HttpClient (CA, client certificate and key) plus a TokenSource for the Authorization header.
// Tokens and keys are SecretBytes: never logged, never in an error message.
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "edgecert/base/clock.h"
#include "edgecert/base/result.h"
#include "edgecert/base/secret.h"

namespace edgecert::k8s {

// Supplies the bearer token for each request. Thread-safe.
class TokenSource {
  public:
    virtual ~TokenSource() = default;
    virtual Result<SecretBytes> token() = 0;
    // The server answered 401 with the current token: drop any cached value so the next token()
    // fetches a fresh one (exec plugins re-run, token files are re-read).
    virtual void invalidate() {}
};

class StaticTokenSource final : public TokenSource {
  public:
    explicit StaticTokenSource(SecretBytes token) : token_(std::move(token)) {}
    Result<SecretBytes> token() override { return token_; }

  private:
    SecretBytes token_;
};

// A token file that is rotated underneath us (projected service-account tokens expire; the
// kubelet rewrites the file). Re-read when the cached copy is older than `refresh` (client-go
// and kube-rs: once a minute); a failed read keeps the last good token (kubernetes#68164).
class FileTokenSource final : public TokenSource {
  public:
    FileTokenSource(std::string path, Clock& clock,
                    std::chrono::seconds refresh = std::chrono::seconds(60));
    Result<SecretBytes> token() override;
    void invalidate() override;

  private:
    std::string path_;
    Clock& clock_;
    std::chrono::seconds refresh_;
    std::mutex mu_;
    std::optional<SecretBytes> cached_;
    SteadyTime read_at_{};
    bool stale_ = false;  // invalidate() was called: re-read on next use
};

// users[].user.exec: client.authentication.k8s.io/v1 (and v1beta1) credential plugins.
struct ExecConfig {
    std::string api_version = "client.authentication.k8s.io/v1";
    std::string command;  // resolved against the kubeconfig's directory when it has a '/'
    std::vector<std::string> args;
    std::vector<std::pair<std::string, std::string>> env;
    std::string interactive_mode = "Never";
    std::chrono::seconds timeout{30};
};

// What an ExecCredential's status carried.
struct ExecCredential {
    SecretBytes token;
    std::string client_certificate_pem;
    SecretBytes client_key_pem;
    std::optional<SystemTime> expiration;  // absent: valid until the server says 401
};

// Runs the plugin and parses its stdout. Exposed for tests.
Result<ExecCredential> run_exec_plugin(const ExecConfig& cfg);
Result<ExecCredential> parse_exec_credential(std::string_view stdout_json);

// Caches the credential until its expirationTimestamp (minus a small margin) or until a 401.
class ExecTokenSource final : public TokenSource {
  public:
    ExecTokenSource(ExecConfig cfg, Clock& clock, std::optional<ExecCredential> initial = {})
        : cfg_(std::move(cfg)), clock_(clock), cached_(std::move(initial)) {}
    Result<SecretBytes> token() override;
    void invalidate() override;
    int runs() const;  // how many times the plugin ran (tests)

  private:
    ExecConfig cfg_;
    Clock& clock_;
    mutable std::mutex mu_;
    std::optional<ExecCredential> cached_;
    int runs_ = 0;
};

struct Config {
    std::string server;   // "https://host:port", no trailing slash
    std::string ca_pem;   // trust anchors (certificate-authority-data, or a file read)
    std::string ca_file;  // as given, for messages
    bool insecure_skip_tls_verify = false;
    std::string tls_server_name;
    std::string client_certificate_pem;
    SecretBytes client_key_pem;
    std::string namespace_ = "default";         // the context's namespace
    std::shared_ptr<TokenSource> token_source;  // null: no bearer token
};

struct KubeconfigOptions {
    std::string context;     // --context override; empty: current-context
    Clock* clock = nullptr;  // default RealClock
};

// Parses a kubeconfig file; relative paths inside resolve against the file's directory.
Result<Config> load_kubeconfig(const std::string& path, const KubeconfigOptions& opts = {});
Result<Config> parse_kubeconfig(std::string_view yaml, const std::string& base_dir,
                                const KubeconfigOptions& opts = {});

struct InClusterOptions {
    std::string dir = "/var/run/secrets/kubernetes.io/serviceaccount";
    // Default: getenv(KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT).
    std::optional<std::string> host, port;
    Clock* clock = nullptr;
};
Result<Config> in_cluster_config(const InClusterOptions& opts = {});

}  // namespace edgecert::k8s
