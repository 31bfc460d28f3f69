// The dns-01 protocol code on hostile answers (src/dns/propagation.cpp, rfc2136.cpp): the zone
// walk, the NS / glue / address resolution of the propagation check and its TXT polling, and the
// UPDATE exchange, against a transport that answers each query with the next fuzzed message.
//
// Input: messages, each a 2-byte length then the bytes (like DNS over TCP, RFC 1035 §4.2.2).
// The transport writes the query's ID into each answer so answers are not dropped for a wrong ID
// (the question still has to match). No socket, no system resolver; time is a FakeClock.
// Invariants: the check terminates within its timeout and a bounded number of queries; a
// server is listed once.
#include <map>

#include "dns/propagation.h"
#include "dns/rfc2136.h"
#include "tests/fuzz/fuzz_util.h"

using namespace edgecert;
using namespace edgecert::dns;

namespace {

class ScriptedTransport final : public DnsTransport {
  public:
    explicit ScriptedTransport(std::string_view in) : r_(in) {}
    Result<std::string> exchange(const Endpoint& server, std::string_view message,
                                 std::chrono::milliseconds) override {
        ++queries;
        std::string_view m = r_.bytes(r_.u16());
        if (m.empty()) return Error(ErrorCode::Transient, server.to_string() + ": timed out");
        std::string out(m);
        if (out.size() >= 2 && message.size() >= 2) out.replace(0, 2, message.substr(0, 2));
        return out;
    }
    std::vector<std::string> resolve_host(const std::string&) override { return {}; }
    int queries = 0;

  private:
    fuzz::Reader r_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in = fuzz::as_view(data, size);
    const std::string name = "_acme-challenge.www.example.test.";
    const std::string value = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0";

    {
        ScriptedTransport t(in);
        auto c = Rfc2136Client::create(Rfc2136Options{Endpoint{"192.0.2.53", 53}}, t);
        auto zone = (*c)->find_zone(name);
        if (zone)
            FUZZ_CHECK(is_subdomain_or_equal(name, *zone), "zone %s does not hold the name",
                       zone->c_str());
        FUZZ_CHECK(t.queries <= 8, "zone walk asked %d times for a 5-label name", t.queries);
        (void)(*c)->add_txt(name, value, "example.test.");
    }

    ScriptedTransport t(in);
    FakeClock clock;
    PropagationOptions o;
    o.nameserver = Endpoint{"192.0.2.53", 53};
    o.timeout = std::chrono::seconds(6);
    o.poll_interval = std::chrono::seconds(2);
    auto checker = PropagationChecker::create(o, t, clock);
    auto servers = (*checker)->authoritative_servers("example.test.");
    if (servers) {
        std::map<std::string, int> seen;
        for (const auto& s : *servers)
            FUZZ_CHECK(++seen[s.to_string()] == 1, "server listed twice");
    }
    auto start = clock.steady_now();
    Status st = (*checker)->wait_for_txt(name, "example.test.", value);
    FUZZ_CHECK(clock.steady_now() - start <= o.timeout + o.poll_interval,
               "the check overran its timeout");
    (void)st;
    return 0;
}
