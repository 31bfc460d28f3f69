#pragma once
// RFC 2136 dynamic update client for dns-01: add or delete one TXT value, TSIG-signed (RFC 8945),
// in a zone that is configured or found by an SOA walk at the primary server. Every update's
// answer is checked: rcode (RFC 2136 §2.2) and, for a signed update, the response's TSIG — a wrong
// key fails here with InvalidConfig, before any CA is asked to look at the record.
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>

#include "dns/message.h"
#include "dns/transport.h"

namespace edgecert::dns {

struct Rfc2136Options {
    Endpoint server;              // the primary (or any server that accepts updates)
    std::optional<TsigKey> tsig;  // unsigned updates when absent (only for trusted networks)
    std::string zone;             // empty: found by SOA walk at `server`
    uint32_t ttl = 60;            // of the TXT record
    std::chrono::milliseconds query_timeout{5'000};  // per exchange
};

class Rfc2136Client {
  public:
    // `transport` must outlive the client.
    static Result<std::unique_ptr<Rfc2136Client>> create(Rfc2136Options opts,
                                                         DnsTransport& transport);

    // The zone `name` belongs to: the configured zone (when `name` is inside it), or the owner of
    // the SOA record the server returns walking up from `name` (RFC 2308 §3: a negative answer
    // carries the zone's SOA in the authority section).
    Result<std::string> find_zone(std::string_view name);
    // RFC 2136 §2.5.1 / §2.5.4 on one value only. `zone` empty: find_zone(name).
    Status add_txt(std::string_view name, std::string_view value, std::string_view zone = "");
    Status delete_txt(std::string_view name, std::string_view value, std::string_view zone = "");

    const Rfc2136Options& options() const { return opts_; }
    // One query to the server with RD=0 (also used by the propagation checker).
    Result<Response> query(const Endpoint& server, std::string_view name, RrType type);

  private:
    Rfc2136Client(Rfc2136Options o, DnsTransport& t);
    Status change(std::string_view name, std::string_view value, std::string_view zone, bool add);
    uint16_t next_id();

    Rfc2136Options opts_;
    DnsTransport& transport_;
    std::mutex mu_;
    std::mt19937 rng_;
};

// One query with RD=0, checked against the question (ID, name) it answers.
Result<Response> query_server(DnsTransport& transport, const Endpoint& server,
                              std::string_view name, RrType type, uint16_t id,
                              std::chrono::milliseconds timeout);

}  // namespace edgecert::dns
