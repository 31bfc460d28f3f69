#pragma once
// dns-01 for `edgecert issue`: the --dns-* / --tsig-* flags and the solver they describe.
#include <memory>
#include <optional>

#include "app/flags.h"
#include "controller/dns_solver.h"
#include "dns/transport.h"
#include "platform/curl_http.h"

namespace edgecert::app {

// Adds --dns-server, --dns-zone, --tsig-key-name, --tsig-algorithm, --tsig-secret-file,
// --dns-webhook, --dns-propagation-timeout, --dns-poll-interval, --dns-check-server,
// --dns-skip-propagation-check.
void add_dns_flags(Flags& f);

// A dns-01 solver and what it runs on.
struct DnsCliSolver {
    std::unique_ptr<dns::SocketTransport> transport;
    std::unique_ptr<platform::CurlHttpClient> http;  // webhook only
    std::unique_ptr<controller::DnsSolver> solver;
};

// The solver the flags describe. InvalidConfig when dns-01 is asked for without --dns-server or
// --dns-webhook, or a value is wrong. The TSIG secret is read from its file here (never printed).
Result<DnsCliSolver> dns_solver_from_flags(const Flags& f, Clock& clock);

}  // namespace edgecert::app
