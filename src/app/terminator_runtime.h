#pragma once
// The TLS edge as one reusable piece, shared by `edgecert terminator` and `edgecert run`: a
// CertSource (a directory with inotify, or Kubernetes Secrets) → tls::CertStore
// (validate, build snapshot, swap) → proxy::Server workers, the challenge chain, session-ticket
// key rotation, and the admin server with the terminator's metrics collectors and its
// /certificates endpoint (what is served, docs/status.md).
//
// Challenges come from an optional --challenge-dir style folder and from an externally owned
// tls::MemoryChallengeSource, which the in-process controller of `edgecert run` fills: an answer
// put there is served by the next request, with no file or API round trip.
//
// Lifecycle: create() validates; start() loads the first full certificate set synchronously
// (readiness follows it), binds the listeners, starts the workers and the admin server; tick()
// from the control thread about once a second (ticket-key rotation); reload() on SIGHUP;
// drain() on SIGTERM; stop() (also in the destructor) closes everything.
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "app/status_sources.h"
#include "edgecert/base/clock.h"
#include "edgecert/base/metrics.h"
#include "edgecert/base/result.h"
#include "platform/admin_server.h"
#include "platform/cert_dir_source.h"
#include "proxy/server.h"
#include "tls/cert_store.h"
#include "tls/challenge_source.h"
#include "tls/ticket_keys.h"
#include "tls/tls_context.h"

namespace edgecert::app {

struct TerminatorRuntimeOptions {
    proxy::ServerOptions server;
    tls::TlsOptions tls;
    std::string cert_dir;       // one folder per certificate (tls.crt, tls.key)
    std::string challenge_dir;  // optional: DIR/<token>, DIR/tls-alpn-01/<domain>
    std::string default_cert;   // folder served when SNI matches nothing
    bool strict_sni = false;
    std::string admin;  // ADDR:PORT of /healthz, /readyz, /metrics; empty: no admin server
    std::chrono::milliseconds rescan{10'000};
    std::chrono::seconds ticket_rotation{12 * 3600};
    // Extra readiness condition, ANDed with "first certificate set loaded and not draining".
    std::function<bool()> extra_ready;
    // Another certificate source than cert_dir (Kubernetes Secrets): built with the CertStore so
    // it can attach the per-entry result callback. `source_desc` names it in the load log line.
    std::function<Result<std::unique_ptr<tls::CertSource>>(tls::CertStore&)> make_source;
    std::string source_desc;
    // More challenge sources (Kubernetes Challenges), consulted after challenge_dir and before
    // the in-process one. Must outlive the runtime.
    std::vector<const tls::ChallengeSource*> extra_challenges;
};

// "http1" | "h2c" (the --upstream-protocol / upstreamProtocol setting).
Result<proxy::UpstreamProtocol> parse_upstream_protocol(const std::string& s);

// "off" | "auto" | "on" (the --ktls / ktls setting).
Result<proxy::KtlsMode> parse_ktls_mode(const std::string& s);

// The ALPN list offered to clients. Without an explicit list: what the upstream speaks
// (http/1.1; h2 first when the upstream is h2c or an h2 upstream is given). An explicit list may
// not offer h2 otherwise: the decrypted bytes are forwarded unchanged, so those clients would
// send HTTP/2 to an HTTP/1.1 server and get an empty reply.
Result<std::vector<std::string>> offered_alpn(const proxy::ServerOptions& server,
                                              const std::vector<std::string>* explicit_list);

class TerminatorRuntime {
  public:
    // `in_process` (may be null) must outlive the runtime; `registry` too.
    static Result<std::unique_ptr<TerminatorRuntime>> create(TerminatorRuntimeOptions opts, Clock& clock,
                                                             tls::MemoryChallengeSource* in_process,
                                                             metrics::Registry& registry);
    ~TerminatorRuntime();
    TerminatorRuntime(const TerminatorRuntime&) = delete;
    TerminatorRuntime& operator=(const TerminatorRuntime&) = delete;

    Status start();
    void tick();    // control thread, ~1/s: ticket-key rotation
    void reload();  // SIGHUP: re-read every certificate folder
    // SIGTERM: stop accepting, let connections finish up to server.drain_timeout; false if some
    // were still open at the deadline (closed anyway).
    bool drain();
    void stop();  // idempotent

    bool ready() const;
    // Every certificate of the served snapshot (GET /certificates on the admin port).
    std::vector<status::ServedEntry> served() const;
    int tls_port() const { return server_ ? server_->tls_port() : 0; }
    int http_port() const { return server_ ? server_->http_port() : 0; }
    int admin_port() const { return admin_ ? admin_->port() : 0; }
    platform::AdminServer* admin() { return admin_.get(); }
    tls::SnapshotHolder& snapshots() { return holder_; }
    const tls::CertStore& cert_store() const { return *store_; }

  private:
    TerminatorRuntime(TerminatorRuntimeOptions opts, Clock& clock, metrics::Registry& registry)
        : opts_(std::move(opts)), clock_(clock), registry_(registry) {}
    void register_metrics();

    TerminatorRuntimeOptions opts_;
    Clock& clock_;
    metrics::Registry& registry_;
    std::unique_ptr<tls::DirChallengeSource> dir_challenges_;
    tls::ChainChallengeSource challenges_;
    std::unique_ptr<tls::TicketKeys> tickets_;
    std::unique_ptr<tls::TlsContext> tls_;
    tls::SnapshotHolder holder_;
    std::unique_ptr<tls::CertStore> store_;
    std::unique_ptr<tls::CertSource> source_;
    std::unique_ptr<proxy::Server> server_;
    std::unique_ptr<platform::AdminServer> admin_;
    std::vector<int> collector_ids_;
    std::atomic<bool> draining_{false};
    bool started_ = false, stopped_ = false;
};

}  // namespace edgecert::app
