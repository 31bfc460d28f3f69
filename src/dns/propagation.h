#pragma once
// Propagation check for dns-01: before the CA is told to look, every authoritative nameserver of
// the zone must answer the TXT value. Each is asked directly with RD=0 (RFC 1035 §4.1.1), never a
// recursive resolver, whose cache would answer an old negative result (RFC 2308) for minutes —
// the classic "record never propagates" failure.
//
// Which servers: the zone's NS records as the configured nameserver answers them; each NS name's
// addresses come from the glue in that answer, else from A/AAAA queries to the same server, else
// from the system resolver. A name with no address at all is replaced by the configured
// nameserver itself, so a setup whose NS names do not resolve from here (split horizon, tests)
// still checks the server it updates. Every NS address is asked on the configured nameserver's
// port (53 in production; tests use one port for everything). `servers` overrides the list.
#include <chrono>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "dns/transport.h"
#include "edgecert/base/clock.h"
#include "edgecert/base/result.h"

namespace edgecert::dns {

struct PropagationOptions {
    Endpoint nameserver;            // where NS records and addresses are asked
    std::vector<Endpoint> servers;  // explicit list to ask instead of the NS set
    std::chrono::milliseconds timeout{std::chrono::minutes(2)};  // the whole wait
    std::chrono::milliseconds poll_interval{std::chrono::seconds(2)};
    std::chrono::milliseconds query_timeout{std::chrono::seconds(3)};  // one query
};

class PropagationChecker {
  public:
    // `transport` and `clock` must outlive the checker.
    static Result<std::unique_ptr<PropagationChecker>> create(PropagationOptions opts,
                                                              DnsTransport& transport,
                                                              Clock& clock);

    // The servers that will be asked for names in `zone` (absolute).
    Result<std::vector<Endpoint>> authoritative_servers(const std::string& zone);

    // Waits until every authoritative server answers `value` among the TXT values of `name`.
    // Transient error naming the servers that still do not, once the timeout has passed.
    Status wait_for_txt(const std::string& name, const std::string& zone, const std::string& value);

    const PropagationOptions& options() const { return opts_; }

  private:
    PropagationChecker(PropagationOptions o, DnsTransport& t, Clock& c);
    uint16_t next_id() { return static_cast<uint16_t>(rng_() & 0xffff); }

    PropagationOptions opts_;
    DnsTransport& transport_;
    Clock& clock_;
    std::mt19937 rng_;
};

}  // namespace edgecert::dns
