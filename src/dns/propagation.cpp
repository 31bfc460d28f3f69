// Propagation checker (propagation.h).
#include "dns/propagation.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>

#include "dns/message.h"
#include "dns/rfc2136.h"

namespace edgecert::dns {
namespace {

std::string join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
    return out;
}

std::string millis_text(std::chrono::milliseconds d) {
    if (d.count() % 1000 == 0) return fmt::format("{}s", d.count() / 1000);
    return fmt::format("{}ms", d.count());
}

}  // namespace

PropagationChecker::PropagationChecker(PropagationOptions o, DnsTransport& t, Clock& c)
    : opts_(std::move(o)), transport_(t), clock_(c), rng_(std::random_device{}()) {}

Result<std::unique_ptr<PropagationChecker>> PropagationChecker::create(PropagationOptions opts,
                                                                       DnsTransport& transport,
                                                                       Clock& clock) {
    if (opts.nameserver.host.empty() && opts.servers.empty())
        return Error(ErrorCode::InvalidConfig,
                     "the propagation check needs a nameserver to find the zone's servers");
    if (opts.timeout.count() <= 0)
        return Error(ErrorCode::InvalidConfig, "the DNS propagation timeout must be positive");
    if (opts.poll_interval.count() <= 0) opts.poll_interval = std::chrono::seconds(2);
    return std::unique_ptr<PropagationChecker>(
        new PropagationChecker(std::move(opts), transport, clock));
}

Result<std::vector<Endpoint>> PropagationChecker::authoritative_servers(const std::string& zone) {
    if (!opts_.servers.empty()) return opts_.servers;
    const Endpoint& ns = opts_.nameserver;
    auto r = query_server(transport_, ns, zone, RrType::NS, next_id(), opts_.query_timeout);
    if (!r)
        return r.error().with_context("asking " + ns.to_string() + " for the NS records of " +
                                      zone);
    std::vector<std::string> targets;
    for (const auto& rec : r->answer)
        if (rec.type == static_cast<uint16_t>(RrType::NS) && rec.name == fqdn(zone))
            targets.push_back(rec.data);
    if (targets.empty()) {
        spdlog::warn("dns: {} lists no NS records for {} ({}); checking {} only", ns.to_string(),
                     zone, rcode_name(r->rcode), ns.to_string());
        return std::vector<Endpoint>{ns};
    }
    std::sort(targets.begin(), targets.end());
    std::vector<Endpoint> out;
    auto add = [&](const std::string& host) {
        Endpoint e{host, ns.port};
        if (std::find(out.begin(), out.end(), e) == out.end()) out.push_back(e);
    };
    for (const auto& t : targets) {
        std::vector<std::string> addrs;
        // Glue first (RFC 1035 §4.1: the additional section carries the NS targets' addresses).
        for (const auto& rec : r->additional)
            if (rec.name == t && (rec.type == static_cast<uint16_t>(RrType::A) ||
                                  rec.type == static_cast<uint16_t>(RrType::AAAA)))
                addrs.push_back(rec.data);
        if (addrs.empty()) {
            for (RrType ty : {RrType::A, RrType::AAAA}) {
                auto a = query_server(transport_, ns, t, ty, next_id(), opts_.query_timeout);
                if (!a) continue;
                for (const auto& rec : a->answer)
                    if (rec.name == t && rec.type == static_cast<uint16_t>(ty))
                        addrs.push_back(rec.data);
            }
        }
        if (addrs.empty()) addrs = transport_.resolve_host(t.substr(0, t.size() - 1));
        if (addrs.empty()) {
            spdlog::warn("dns: nameserver {} of {} has no address; asking {} in its place", t, zone,
                         ns.to_string());
            add(ns.host);
            continue;
        }
        for (const auto& a : addrs) add(a);
    }
    return out;
}

Status PropagationChecker::wait_for_txt(const std::string& name, const std::string& zone,
                                        const std::string& value) {
    EC_TRY_ASSIGN(auto servers, authoritative_servers(zone));
    const auto start = clock_.steady_now();
    const auto deadline = start + opts_.timeout;
    std::map<std::string, std::string> waiting;  // server → what it last answered
    std::vector<Endpoint> pending = servers;
    std::vector<std::string> names;
    for (const auto& s : servers) names.push_back(s.to_string());
    spdlog::info("dns: waiting up to {} for {} TXT at {}", millis_text(opts_.timeout), name,
                 join(names));
    for (;;) {
        std::vector<Endpoint> still;
        for (const auto& s : pending) {
            auto r = query_server(transport_, s, name, RrType::TXT, next_id(), opts_.query_timeout);
            std::string last;
            if (!r) {
                last = r.error().message;
            } else {
                auto vals = txt_values(*r, name);
                if (r->rcode == kNoError &&
                    std::find(vals.begin(), vals.end(), value) != vals.end()) {
                    if (!r->aa)
                        spdlog::warn("dns: {} answers {} without the AA bit: is it authoritative?",
                                     s.to_string(), name);
                    continue;  // this server has it
                }
                last = fmt::format("{}, {} other TXT value(s)", rcode_name(r->rcode), vals.size());
            }
            waiting[s.to_string()] = last;
            still.push_back(s);
        }
        pending = std::move(still);
        if (pending.empty()) {
            auto took =
                std::chrono::duration_cast<std::chrono::milliseconds>(clock_.steady_now() - start);
            spdlog::info("dns: {} TXT is served by all {} authoritative server(s) after {}", name,
                         servers.size(), millis_text(took));
            return ok_status();
        }
        auto now = clock_.steady_now();
        if (now >= deadline) {
            std::vector<std::string> why;
            for (const auto& s : pending)
                why.push_back(s.to_string() + " (" + waiting[s.to_string()] + ")");
            return Error(
                ErrorCode::Transient,
                fmt::format("DNS propagation of {} TXT timed out after {}: not yet served by {}",
                            name, millis_text(opts_.timeout), join(why)));
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
        clock_.sleep_for(std::min(opts_.poll_interval, left));
    }
}

}  // namespace edgecert::dns
