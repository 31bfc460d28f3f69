#pragma once
// The DNS transport is passed in (DESIGN.md convention 6): the RFC 2136 client and the
// propagation checker are protocol code tested with a scripted fake; SocketTransport is the real
// one (UDP, then TCP when the answer is truncated, RFC 1035 §4.2).
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "edgecert/base/result.h"

namespace edgecert::dns {

// A nameserver: an IP address or host name, and a port.
struct Endpoint {
    std::string host;
    uint16_t port = 53;
    std::string to_string() const;  // "10.0.0.1:53", "[2001:db8::1]:53"
    bool operator==(const Endpoint&) const = default;
};

// "ns1.example.com", "10.0.0.1:5353", "[2001:db8::1]:53", "2001:db8::1" → Endpoint.
Result<Endpoint> parse_endpoint(std::string_view spec, uint16_t default_port = 53);

class DnsTransport {
  public:
    virtual ~DnsTransport() = default;
    // Sends one message and returns the response whose ID matches. Transient on timeout,
    // unreachable server or a broken stream.
    virtual Result<std::string> exchange(const Endpoint& server, std::string_view message,
                                         std::chrono::milliseconds timeout) = 0;
    // Addresses of a host name through the system resolver (for nameserver names that have no
    // glue). Empty when the name does not resolve.
    virtual std::vector<std::string> resolve_host(const std::string& name) = 0;
};

class SocketTransport final : public DnsTransport {
  public:
    Result<std::string> exchange(const Endpoint& server, std::string_view message,
                                 std::chrono::milliseconds timeout) override;
    std::vector<std::string> resolve_host(const std::string& name) override;
};

}  // namespace edgecert::dns
