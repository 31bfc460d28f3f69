// RFC 2136 client (rfc2136.h).
#include "dns/rfc2136.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace edgecert::dns {

Result<Response> query_server(DnsTransport& transport, const Endpoint& server,
                              std::string_view name, RrType type, uint16_t id,
                              std::chrono::milliseconds timeout) {
    EC_TRY_ASSIGN(auto q, build_query(name, type, id, /*rd=*/false));
    EC_TRY_ASSIGN(auto wire, transport.exchange(server, q.wire, timeout));
    EC_TRY_ASSIGN(auto r, parse_response(wire));
    if (r.id != id || r.question != fqdn(name))
        return Error(ErrorCode::Transient, fmt::format("{} answered another question ({})",
                                                       server.to_string(), r.question));
    return r;
}

Rfc2136Client::Rfc2136Client(Rfc2136Options o, DnsTransport& t)
    : opts_(std::move(o)), transport_(t), rng_(std::random_device{}()) {}

Result<std::unique_ptr<Rfc2136Client>> Rfc2136Client::create(Rfc2136Options opts,
                                                             DnsTransport& transport) {
    if (opts.server.host.empty())
        return Error(ErrorCode::InvalidConfig, "rfc2136: the nameserver is required");
    if (!opts.zone.empty()) opts.zone = fqdn(opts.zone);
    return std::unique_ptr<Rfc2136Client>(new Rfc2136Client(std::move(opts), transport));
}

uint16_t Rfc2136Client::next_id() {
    std::lock_guard l(mu_);
    return static_cast<uint16_t>(rng_() & 0xffff);
}

Result<Response> Rfc2136Client::query(const Endpoint& server, std::string_view name, RrType type) {
    return query_server(transport_, server, name, type, next_id(), opts_.query_timeout);
}

Result<std::string> Rfc2136Client::find_zone(std::string_view name) {
    const std::string n = fqdn(name);
    if (!opts_.zone.empty()) {
        if (!is_subdomain_or_equal(n, opts_.zone))
            return Error(ErrorCode::InvalidConfig,
                         fmt::format("{} is not inside the configured zone {}", n, opts_.zone));
        return opts_.zone;
    }
    std::string last;
    for (std::string cand = n; !cand.empty() && cand != "."; cand = parent_name(cand)) {
        auto r = query(opts_.server, cand, RrType::SOA);
        // No answer at all (down, unreachable, garbage): walking further up cannot help, and
        // "no zone" would send the operator looking in the wrong place.
        if (!r) return r.error().with_context("finding the zone of " + n);
        for (const auto& rec : r->answer)
            if (rec.type == static_cast<uint16_t>(RrType::SOA) && rec.name == cand) return cand;
        if (r->rcode == kNoError || r->rcode == kNxDomain)
            for (const auto& rec : r->authority)
                if (rec.type == static_cast<uint16_t>(RrType::SOA) &&
                    is_subdomain_or_equal(n, rec.name))
                    return rec.name;
        last = rcode_name(r->rcode);
    }
    return Error(ErrorCode::InvalidConfig,
                 fmt::format("no zone for {} at {} ({}): set the zone explicitly", n,
                             opts_.server.to_string(), last.empty() ? "no SOA" : last));
}

Status Rfc2136Client::add_txt(std::string_view name, std::string_view value,
                              std::string_view zone) {
    return change(name, value, zone, true);
}

Status Rfc2136Client::delete_txt(std::string_view name, std::string_view value,
                                 std::string_view zone) {
    return change(name, value, zone, false);
}

Status Rfc2136Client::change(std::string_view name, std::string_view value, std::string_view zone,
                             bool add) {
    std::string z(zone);
    if (z.empty()) {
        EC_TRY_ASSIGN(z, find_zone(name));
    }
    const std::string what =
        fmt::format("{} TXT {} in zone {}", add ? "adding" : "deleting", fqdn(name), z);
    const TsigKey* key = opts_.tsig ? &*opts_.tsig : nullptr;
    EC_TRY_ASSIGN(auto msg, build_txt_update(z, name, value, add, opts_.ttl, next_id(), key));
    EC_TRY_ASSIGN(auto wire, transport_.exchange(opts_.server, msg.wire, opts_.query_timeout));
    EC_TRY_ASSIGN(auto r, parse_response(wire));
    if (r.id != msg.id)
        return Error(ErrorCode::Transient,
                     fmt::format("{}: the answer has another message ID", what));
    // RFC 8945 §5.3: check the TSIG first — a server that could not verify us answers NOTAUTH
    // with BADSIG/BADKEY, and that must read as a key problem, not as a zone problem.
    if (key) EC_TRY(verify_response_tsig(wire, r, *key, msg.request_mac));
    EC_TRY(update_status(r, opts_.server.to_string(), what));
    spdlog::debug("dns: {} at {}: done", what, opts_.server.to_string());
    return ok_status();
}

}  // namespace edgecert::dns
