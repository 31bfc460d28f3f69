#include "app/terminator_runtime.h"

#include <spdlog/spdlog.h>

#include <ctime>

#include "app/status_sources.h"

namespace edgecert::app {

Result<proxy::UpstreamProtocol> parse_upstream_protocol(const std::string& s) {
    if (s == "http1" || s == "http/1.1") return proxy::UpstreamProtocol::Http1;
    if (s == "h2c" || s == "h2") return proxy::UpstreamProtocol::H2c;
    return Error(ErrorCode::InvalidConfig,
                 "upstream protocol '" + s + "': use http1 (HTTP/1.1) or h2c (HTTP/2 with prior knowledge, and HTTP/1.1)");
}

Result<proxy::KtlsMode> parse_ktls_mode(const std::string& s) {
    if (s == "off") return proxy::KtlsMode::Off;
    if (s == "auto") return proxy::KtlsMode::Auto;
    if (s == "on") return proxy::KtlsMode::On;
    return Error(ErrorCode::InvalidConfig,
                 "ktls '" + s + "': use off (OpenSSL encrypts every record), auto (the kernel encrypts what is "
                 "sent when it offers kTLS) or on (like auto, and refuse to start without it)");
}

Result<std::vector<std::string>> offered_alpn(const proxy::ServerOptions& server,
                                              const std::vector<std::string>* explicit_list) {
    bool h2 = server.upstream_protocol == proxy::UpstreamProtocol::H2c || !server.h2_upstream.empty();
    if (!explicit_list || explicit_list->empty())
        return h2 ? std::vector<std::string>{"h2", "http/1.1"} : std::vector<std::string>{"http/1.1"};
    for (const auto& p : *explicit_list)
        if (p == "h2" && !h2)
            return Error(ErrorCode::InvalidConfig,
                         "ALPN h2 is offered but the upstream protocol is http1: clients that pick h2 (curl, every "
                         "browser) would send HTTP/2 to an HTTP/1.1 upstream. If the upstream accepts HTTP/2 with "
                         "prior knowledge, declare it (--upstream-protocol h2c / upstreamProtocol: h2c, or a "
                         "separate HTTP/2 port with --upstream-h2 / upstreamH2); otherwise drop h2 from the list");
    return *explicit_list;
}

Result<std::unique_ptr<TerminatorRuntime>> TerminatorRuntime::create(TerminatorRuntimeOptions opts, Clock& clock,
                                                                     tls::MemoryChallengeSource* in_process,
                                                                     metrics::Registry& registry) {
    if (opts.cert_dir.empty() && !opts.make_source)
        return Error(ErrorCode::InvalidConfig, "terminator: no certificate directory");
    std::unique_ptr<TerminatorRuntime> rt(new TerminatorRuntime(std::move(opts), clock, registry));
    // A configured folder is consulted first (an operator's manual override), then the answers
    // the in-process controller published.
    if (!rt->opts_.challenge_dir.empty()) {
        rt->dir_challenges_ = std::make_unique<tls::DirChallengeSource>(rt->opts_.challenge_dir);
        rt->challenges_.add(rt->dir_challenges_.get());
    }
    for (const tls::ChallengeSource* c : rt->opts_.extra_challenges) rt->challenges_.add(c);
    rt->challenges_.add(in_process);
    rt->tickets_ = std::make_unique<tls::TicketKeys>(clock, rt->opts_.ticket_rotation);
    EC_TRY_ASSIGN(rt->tls_, tls::TlsContext::create(rt->opts_.tls, &rt->challenges_, *rt->tickets_));
    rt->store_ = std::make_unique<tls::CertStore>(
        tls::CertStoreOptions{rt->opts_.default_cert, rt->opts_.strict_sni}, clock, rt->holder_);
    if (rt->opts_.make_source) {
        EC_TRY_ASSIGN(rt->source_, rt->opts_.make_source(*rt->store_));
    } else {
        EC_TRY_ASSIGN(auto dir, platform::CertDirSource::create(
                                    {rt->opts_.cert_dir, std::chrono::milliseconds(50), rt->opts_.rescan}));
        rt->source_ = std::move(dir);
        if (rt->opts_.source_desc.empty()) rt->opts_.source_desc = rt->opts_.cert_dir;
    }
    return rt;
}

TerminatorRuntime::~TerminatorRuntime() { stop(); }

Status TerminatorRuntime::start() {
    if (started_) return {};
    started_ = true;
    auto t0 = std::chrono::steady_clock::now();
    std::clock_t c0 = std::clock();  // process CPU time: on a busy machine wall time says little
    EC_TRY(source_->start(*store_));
    spdlog::info("terminator: {} certificate(s) loaded from {} in {:.1f} ms ({:.1f} ms CPU)", holder_.get()->size(),
                 opts_.source_desc,
                 std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(),
                 1000.0 * double(std::clock() - c0) / CLOCKS_PER_SEC);
    if (!opts_.default_cert.empty() && !holder_.get()->find_entry(opts_.default_cert))
        spdlog::warn("terminator: the default certificate {} is not loaded (yet)", opts_.default_cert);
    EC_TRY_ASSIGN(server_, proxy::Server::create(opts_.server, *tls_, holder_, &challenges_));
    EC_TRY(server_->start());
    register_metrics();
    if (!opts_.admin.empty()) {
        EC_TRY_ASSIGN(admin_, platform::AdminServer::create({opts_.admin}, registry_, [this] { return ready(); }));
        // What is on the wire, for `edgecert status --terminator` and the status pages
        // (docs/status.md): names, serials, validity, issuer, fingerprint; never key material.
        admin_->add_handler("/certificates", [this](const std::string&, const std::string&, int&,
                                                    std::string& ct, std::string& body) {
            ct = "application/json";
            body = status::served_to_json(served()).dump(2) + "\n";
        });
        EC_TRY(admin_->start());
        spdlog::info("terminator: admin on port {}", admin_->port());
    }
    return {};
}

std::vector<status::ServedEntry> TerminatorRuntime::served() const {
    return status::served_entries(*holder_.get());
}

bool TerminatorRuntime::ready() const {
    if (!store_ || !store_->loaded() || draining_.load()) return false;
    return !opts_.extra_ready || opts_.extra_ready();
}

void TerminatorRuntime::tick() {
    if (tickets_) tickets_->maybe_rotate();
}

void TerminatorRuntime::reload() {
    if (source_ && started_) source_->request_full_rescan();
}

bool TerminatorRuntime::drain() {
    if (!server_) return true;
    draining_.store(true);
    server_->begin_drain();
    return server_->wait_for(opts_.server.drain_timeout + std::chrono::seconds(2));
}

void TerminatorRuntime::stop() {
    if (stopped_) return;
    stopped_ = true;
    if (server_) server_->stop();
    if (source_ && started_) source_->stop();
    if (admin_) admin_->stop();
    // Collectors capture this object: gone from the registry before it is.
    for (int id : collector_ids_) registry_.remove_collector(id);
    collector_ids_.clear();
}

void TerminatorRuntime::register_metrics() {
    using S = metrics::Registry::Sample;
    auto& reg = registry_;
    proxy::Server* srv = server_.get();
    tls::CertStore* store = store_.get();
    tls::SnapshotHolder* holder = &holder_;
    auto add = [&](const char* name, const char* help, const char* type, std::function<void(std::vector<S>&)> fn) {
        collector_ids_.push_back(reg.add_collector(name, help, type, std::move(fn)));
    };
    add("edgecert_tls_handshakes_total", "TLS handshakes by result.", "counter", [srv](std::vector<S>& out) {
        auto s = srv->stats();
        out.push_back({{{"result", "ok"}}, double(s.hs_ok)});
        out.push_back({{{"result", "failed"}}, double(s.hs_failed)});
        out.push_back({{{"result", "timeout"}}, double(s.hs_timeout)});
    });
    add("edgecert_tls_connections", "Open client TLS connections.", "gauge",
        [srv](std::vector<S>& out) { out.push_back({{}, double(srv->stats().tls_conns_open)}); });
    add("edgecert_tls_connections_total", "Accepted client TLS connections.", "counter",
        [srv](std::vector<S>& out) { out.push_back({{}, double(srv->stats().tls_conns_total)}); });
    add("edgecert_http_connections_total", "Accepted plain-HTTP connections.", "counter",
        [srv](std::vector<S>& out) { out.push_back({{}, double(srv->stats().http_conns_total)}); });
    add("edgecert_bytes_total", "Application bytes proxied, by direction (in: from clients).", "counter",
        [srv](std::vector<S>& out) {
            auto s = srv->stats();
            out.push_back({{{"direction", "in"}}, double(s.bytes_in)});
            out.push_back({{{"direction", "out"}}, double(s.bytes_out)});
        });
    add("edgecert_connections_evicted_total",
        "Connections that had sent no request byte, closed at max-connections to admit a new one.", "counter",
        [srv](std::vector<S>& out) { out.push_back({{}, double(srv->stats().evicted)}); });
    add("edgecert_connection_timeouts_total", "Connections closed by a deadline, by phase.", "counter",
        [srv](std::vector<S>& out) {
            auto s = srv->stats();
            out.push_back({{{"phase", "handshake"}}, double(s.hs_timeout)});
            out.push_back({{{"phase", "request_head"}}, double(s.head_timeouts)});
            out.push_back({{{"phase", "idle"}}, double(s.idle_timeouts)});
        });
    add("edgecert_accept_pauses_total",
        "Times accepting stopped for a moment, by reason: full (max-connections and nothing to evict, 10 ms) "
        "or fds (out of file descriptors, 100 ms).",
        "counter", [srv](std::vector<S>& out) {
            auto s = srv->stats();
            out.push_back({{{"reason", "full"}}, double(s.accept_waits_full)});
            out.push_back({{{"reason", "fds"}}, double(s.accept_paused)});
        });
    add("edgecert_upstream_errors_total", "Upstream connect/read/write failures.", "counter",
        [srv](std::vector<S>& out) { out.push_back({{}, double(srv->stats().upstream_errors)}); });
    add("edgecert_acme_challenges_served_total", "ACME challenge answers served, by type.", "counter",
        [srv](std::vector<S>& out) {
            auto s = srv->stats();
            out.push_back({{{"type", "http-01"}}, double(s.http01_served)});
            out.push_back({{{"type", "tls-alpn-01"}}, double(s.tls_alpn01_served)});
        });
    add("edgecert_certificate_reloads_total", "Certificate (re)loads by result; errors keep the last good certificate.",
        "counter", [store](std::vector<S>& out) {
            out.push_back({{{"result", "ok"}}, double(store->reloads_ok())});
            out.push_back({{{"result", "error"}}, double(store->reloads_error())});
        });
    add("edgecert_upstream_http_502_total",
        "HTTP/1.1 clients answered 502 because the upstream refused, reset or did not accept the connection.",
        "counter", [srv](std::vector<S>& out) { out.push_back({{}, double(srv->stats().upstream_502)}); });
    if (const proxy::H2Gate* gate = srv->h2_gate()) {
        add("edgecert_upstream_h2_offered",
            "1 while h2 is offered to clients (--upstream-protocol h2c and the upstream answers the HTTP/2 preface).",
            "gauge", [gate](std::vector<S>& out) { out.push_back({{}, gate->offered() ? 1.0 : 0.0}); });
        add("edgecert_upstream_h2_checks_total", "Checks whether the upstream speaks HTTP/2 with prior knowledge, by result.",
            "counter", [gate](std::vector<S>& out) {
                out.push_back({{{"result", "ok"}}, double(gate->probes_ok())});
                out.push_back({{{"result", "not_h2"}}, double(gate->probes_not_h2())});
                out.push_back({{{"result", "unreachable"}}, double(gate->probes_unreachable())});
            });
        add("edgecert_upstream_h2_mismatches_total",
            "h2 client connections whose upstream did not answer with HTTP/2; each client was told to retry over "
            "HTTP/1.1 (RST_STREAM HTTP_1_1_REQUIRED).",
            "counter", [srv](std::vector<S>& out) { out.push_back({{}, double(srv->stats().h2_http11_required)}); });
    }
    add("edgecert_ktls_kernel_available", "1 if the kernel accepts the tls upper-layer protocol (kTLS), probed at start.",
        "gauge", [srv](std::vector<S>& out) { out.push_back({{}, srv->ktls().kernel ? 1.0 : 0.0}); });
    add("edgecert_ktls_tx_enabled",
        "1 if the kernel encrypts what is sent to clients after the handshake (--ktls auto or on, and the kernel "
        "offers kTLS); 0: OpenSSL encrypts every record.",
        "gauge", [srv](std::vector<S>& out) { out.push_back({{}, srv->ktls_tx() ? 1.0 : 0.0}); });
    add("edgecert_ktls_tx_handshakes_total",
        "Completed handshakes with kTLS enabled, by record layer for what is sent: kernel, or user_space when the "
        "cipher suite or the kernel did not allow it on that connection.",
        "counter", [srv](std::vector<S>& out) {
            auto s = srv->stats();
            out.push_back({{{"layer", "kernel"}}, double(s.ktls_tx_conns)});
            out.push_back({{{"layer", "user_space"}}, double(s.ktls_tx_declined)});
        });
    add("edgecert_ktls_spliced_bytes_total",
        "Bytes moved from the upstream to kTLS clients with splice(2), without a copy through user space (also in "
        "edgecert_bytes_total{direction=\"out\"}).",
        "counter", [srv](std::vector<S>& out) { out.push_back({{}, double(srv->stats().ktls_spliced_bytes)}); });
    add("edgecert_loaded_certificates", "Certificates in the served snapshot.", "gauge",
        [holder](std::vector<S>& out) { out.push_back({{}, double(holder->get()->size())}); });
    add("edgecert_served_certificate_not_after_timestamp_seconds",
        "notAfter of every certificate in the served snapshot (what is on the wire).", "gauge",
        [holder](std::vector<S>& out) {
            auto snap = holder->get();
            snap->for_each_entry([&](const std::string& name, const tls::CertEntry& e) {
                out.push_back({{{"name", name}, {"serial", e.serial}}, double(e.not_after)});
            });
        });
}

}  // namespace edgecert::app
