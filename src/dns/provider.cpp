// dns-01 providers (provider.h).
#include "dns/provider.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

namespace edgecert::dns {

Status Rfc2136Provider::present(const Dns01Record& rec) {
    EC_TRY_ASSIGN(auto zone, client_->find_zone(rec.fqdn));
    EC_TRY(client_->add_txt(rec.fqdn, rec.value, zone));
    spdlog::info("dns-01: added a TXT value at {} in zone {} via {}", rec.fqdn, zone,
                 client_->options().server.to_string());
    if (checker_) EC_TRY(checker_->wait_for_txt(rec.fqdn, zone, rec.value));
    return ok_status();
}

Status Rfc2136Provider::cleanup(const Dns01Record& rec) {
    EC_TRY_ASSIGN(auto zone, client_->find_zone(rec.fqdn));
    // RFC 2136 §3.4.2.4: deleting an RR that is not there is a no-op (NOERROR), so a cleanup
    // after an add that never happened is harmless.
    EC_TRY(client_->delete_txt(rec.fqdn, rec.value, zone));
    spdlog::info("dns-01: removed a TXT value at {} in zone {}", rec.fqdn, zone);
    return ok_status();
}

Result<std::unique_ptr<WebhookProvider>> WebhookProvider::create(
    WebhookOptions opts, HttpClient& http, std::unique_ptr<Rfc2136Client> zone_finder,
    std::unique_ptr<PropagationChecker> checker) {
    if (opts.url.rfind("http://", 0) != 0 && opts.url.rfind("https://", 0) != 0)
        return Error(ErrorCode::InvalidConfig,
                     fmt::format("dns-01 webhook URL '{}' is not http(s)://", opts.url));
    if (checker && !zone_finder && opts.zone.empty())
        return Error(ErrorCode::InvalidConfig,
                     "the webhook's propagation check needs a nameserver or a zone");
    if (!opts.zone.empty()) opts.zone = fqdn(opts.zone);
    return std::unique_ptr<WebhookProvider>(
        new WebhookProvider(std::move(opts), http, std::move(zone_finder), std::move(checker)));
}

std::string WebhookProvider::body(std::string_view action, const Dns01Record& rec,
                                  const std::string& zone) {
    nlohmann::json j = {{"action", action},
                        {"fqdn", rec.fqdn},
                        {"zone", zone.empty() ? nlohmann::json() : nlohmann::json(zone)},
                        {"value", rec.value},
                        {"dnsName", rec.dns_name},
                        {"uid", rec.uid}};
    return j.dump();
}

Result<std::string> WebhookProvider::zone_of(const Dns01Record& rec) {
    if (!opts_.zone.empty()) return opts_.zone;
    if (zone_finder_) return zone_finder_->find_zone(rec.fqdn);
    return std::string();
}

Status WebhookProvider::call(std::string_view action, const Dns01Record& rec,
                             const std::string& zone) {
    HttpRequest req;
    req.method = "POST";
    req.url = opts_.url;
    req.headers = {{"Content-Type", "application/json"}};
    req.body = body(action, rec, zone);
    req.timeout = opts_.timeout;
    auto r = http_.send(req);
    if (!r) return r.error().with_context(fmt::format("dns-01 webhook {} {}", action, opts_.url));
    if (!r->success()) {
        std::string text = r->body.substr(0, 200);
        for (char& c : text)
            if (c == '\n' || c == '\r') c = ' ';
        // 4xx: the adapter refuses this request (config); 5xx: it failed, retry later.
        ErrorCode code = r->status >= 500 ? ErrorCode::Transient : ErrorCode::InvalidConfig;
        Error e(code, fmt::format("dns-01 webhook {} {} for {}: HTTP {}{}{}", action, opts_.url,
                                  rec.fqdn, r->status, text.empty() ? "" : ": ", text));
        e.http_status = r->status;
        return e;
    }
    return ok_status();
}

Status WebhookProvider::present(const Dns01Record& rec) {
    EC_TRY_ASSIGN(auto zone, zone_of(rec));
    EC_TRY(call("present", rec, zone));
    spdlog::info("dns-01: webhook presented a TXT value at {}", rec.fqdn);
    if (checker_) EC_TRY(checker_->wait_for_txt(rec.fqdn, zone, rec.value));
    return ok_status();
}

Status WebhookProvider::cleanup(const Dns01Record& rec) {
    auto zone = zone_of(rec);
    EC_TRY(call("cleanup", rec, zone ? *zone : std::string()));
    spdlog::info("dns-01: webhook cleaned up the TXT value at {}", rec.fqdn);
    return ok_status();
}

}  // namespace edgecert::dns
