// DnsSolver and CompositeSolver (dns_solver.h).
#include "controller/dns_solver.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "controller/renewal.h"
#include "edgecert/acme/crypto.h"

namespace edgecert::controller {

dns::Dns01Record DnsSolver::record_for(const std::string& domain, const acme::Challenge& ch,
                                       const std::string& key_authorization) {
    dns::Dns01Record rec;
    std::string base = domain.rfind("*.", 0) == 0 ? domain.substr(2) : domain;
    rec.dns_name = base;
    rec.fqdn = dns::fqdn("_acme-challenge." + base);  // RFC 8555 §8.4
    rec.value = acme::dns01_txt_value(key_authorization);
    rec.uid = ch.url;
    return rec;
}

Status DnsSolver::present(const std::string& domain, const acme::Challenge& ch,
                          const std::string& key_authorization) {
    if (ch.type != acme::kDns01)
        return Error(ErrorCode::InvalidConfig, "the dns-01 solver cannot answer " + ch.type);
    auto rec = record_for(domain, ch, key_authorization);
    {
        // Remember it first: cleanup() must remove the value even if present() fails halfway
        // (an update that reached the server but whose answer was lost).
        std::lock_guard l(mu_);
        presented_[ch.url] = rec;
    }
    return provider_->present(rec);
}

void DnsSolver::cleanup(const std::string& domain, const acme::Challenge& ch) noexcept {
    dns::Dns01Record rec;
    {
        std::lock_guard l(mu_);
        auto it = presented_.find(ch.url);
        if (it == presented_.end()) return;
        rec = std::move(it->second);
        presented_.erase(it);
    }
    try {
        auto st = provider_->cleanup(rec);
        if (!st)
            spdlog::warn("dns-01: could not remove the TXT value at {} for {}: {}", rec.fqdn,
                         domain, st.error().message);
    } catch (const std::exception& e) {  // cleanup is noexcept: nothing may escape
        spdlog::warn("dns-01: cleanup of {} failed: {}", rec.fqdn, e.what());
    }
}

std::vector<std::string> CompositeSolver::supported_types() const {
    std::vector<std::string> out;
    for (auto* p : parts_)
        for (auto& t : p->supported_types())
            if (std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
    return out;
}

acme::ChallengeSolver* CompositeSolver::for_type(const std::string& type) const {
    for (auto* p : parts_) {
        auto ts = p->supported_types();
        if (std::find(ts.begin(), ts.end(), type) != ts.end()) return p;
    }
    return nullptr;
}

Status CompositeSolver::present(const std::string& domain, const acme::Challenge& ch,
                                const std::string& key_authorization) {
    auto* p = for_type(ch.type);
    if (!p) return Error(ErrorCode::InvalidConfig, "no solver is configured for " + ch.type);
    return p->present(domain, ch, key_authorization);
}

void CompositeSolver::cleanup(const std::string& domain, const acme::Challenge& ch) noexcept {
    if (auto* p = for_type(ch.type)) p->cleanup(domain, ch);
}

Result<std::unique_ptr<DnsSolver>> make_dns_solver(const Dns01Config& cfg,
                                                   dns::DnsTransport& transport, HttpClient* http,
                                                   Clock& clock) {
    std::optional<dns::Endpoint> ns;
    if (!cfg.nameserver.empty()) {
        EC_TRY_ASSIGN(ns, dns::parse_endpoint(cfg.nameserver));
    }
    std::unique_ptr<dns::PropagationChecker> checker;
    if (cfg.check_propagation && (ns || !cfg.check_servers.empty())) {
        dns::PropagationOptions po;
        if (ns) po.nameserver = *ns;
        for (const auto& s : cfg.check_servers) {
            EC_TRY_ASSIGN(auto ep, dns::parse_endpoint(s));
            po.servers.push_back(ep);
        }
        po.timeout = cfg.propagation_timeout;
        po.poll_interval = cfg.poll_interval;
        EC_TRY_ASSIGN(checker, dns::PropagationChecker::create(po, transport, clock));
    }
    std::unique_ptr<dns::Rfc2136Client> client;
    if (ns) {
        dns::Rfc2136Options ro;
        ro.server = *ns;
        ro.zone = cfg.zone;
        if (!cfg.tsig_key_name.empty()) {
            if (cfg.tsig_secret.empty())
                return Error(ErrorCode::InvalidConfig,
                             "dns-01: TSIG key " + cfg.tsig_key_name + " has no secret");
            EC_TRY_ASSIGN(ro.tsig, dns::TsigKey::create(cfg.tsig_key_name, cfg.tsig_algorithm,
                                                        cfg.tsig_secret));
        } else if (!cfg.tsig_secret.empty()) {
            return Error(ErrorCode::InvalidConfig, "dns-01: a TSIG secret needs a TSIG key name");
        }
        EC_TRY_ASSIGN(client, dns::Rfc2136Client::create(std::move(ro), transport));
    }
    std::unique_ptr<dns::Dns01Provider> provider;
    if (!cfg.webhook_url.empty()) {
        if (!http) return Error(ErrorCode::InvalidConfig, "dns-01 webhook: no HTTP client");
        dns::WebhookOptions wo{
            .url = cfg.webhook_url, .timeout = cfg.webhook_timeout, .zone = cfg.zone};
        EC_TRY_ASSIGN(auto w, dns::WebhookProvider::create(std::move(wo), *http, std::move(client),
                                                           std::move(checker)));
        provider = std::move(w);
    } else {
        if (!client)
            return Error(ErrorCode::InvalidConfig,
                         "dns-01 needs a nameserver (RFC 2136) or a webhook URL");
        provider = std::make_unique<dns::Rfc2136Provider>(std::move(client), std::move(checker));
    }
    return std::make_unique<DnsSolver>(std::move(provider));
}

Result<OwnedDnsSolver> make_owned_dns_solver(
    Dns01Config cfg, const std::function<Result<SecretBytes>(const Dns01Config&)>& read_secret,
    const std::function<Result<std::unique_ptr<HttpClient>>()>& http, Clock& clock) {
    OwnedDnsSolver out;
    if (!cfg.tsig_key_name.empty() && cfg.tsig_secret.empty()) {
        if (!read_secret)
            return Error(ErrorCode::InvalidConfig, "dns-01: no way to read the TSIG secret");
        EC_TRY_ASSIGN(cfg.tsig_secret, read_secret(cfg));
    }
    if (!cfg.webhook_url.empty()) {
        if (!http) return Error(ErrorCode::InvalidConfig, "dns-01 webhook: no HTTP client");
        EC_TRY_ASSIGN(out.http, http());
    }
    out.transport = std::make_unique<dns::SocketTransport>();
    EC_TRY_ASSIGN(out.solver, make_dns_solver(cfg, *out.transport, out.http.get(), clock));
    return out;
}

namespace {

Error bad_dns(std::string m) {
    return Error(ErrorCode::InvalidConfig, "spec.acme.solvers[].dns01" + m);
}

Result<std::chrono::milliseconds> duration_field(const nlohmann::json& j, const char* name,
                                                 std::chrono::milliseconds def) {
    if (!j.contains(name)) return def;
    if (!j[name].is_string())
        return bad_dns(std::string(".") + name + " must be a duration string (e.g. 2m)");
    auto d = parse_go_duration(j[name].get<std::string>());
    if (!d || d->count() <= 0)
        return bad_dns(std::string(".") + name + " '" + j[name].get<std::string>() +
                       "' is not a positive duration");
    return std::chrono::duration_cast<std::chrono::milliseconds>(*d);
}

std::string str(const nlohmann::json& j, const char* name) {
    return j.is_object() && j.contains(name) && j[name].is_string() ? j[name].get<std::string>()
                                                                    : "";
}

}  // namespace

Result<Dns01Config> parse_dns01_solver(const nlohmann::json& d) {
    Dns01Config c;
    if (!d.is_object()) return bad_dns(" must be an object");
    if (str(d, "cnameStrategy") == "Follow")
        return bad_dns(".cnameStrategy Follow is not supported yet");
    const bool has_rfc = d.contains("rfc2136"), has_hook = d.contains("webhook");
    if (has_rfc == has_hook) return bad_dns(": set exactly one of rfc2136 and webhook");
    if (has_rfc) {
        const auto& r = d["rfc2136"];
        if (!r.is_object()) return bad_dns(".rfc2136 must be an object");
        c.nameserver = str(r, "nameserver");
        if (c.nameserver.empty())
            return bad_dns(".rfc2136.nameserver is required (HOST or HOST:PORT)");
        c.zone = str(r, "zone");
        c.tsig_key_name = str(r, "tsigKeyName");
        if (auto a = str(r, "tsigAlgorithm"); !a.empty()) c.tsig_algorithm = a;
        if (r.contains("tsigSecretSecretRef") && r["tsigSecretSecretRef"].is_object()) {
            c.tsig_secret_name = str(r["tsigSecretSecretRef"], "name");
            c.tsig_secret_key = str(r["tsigSecretSecretRef"], "key");
        }
        c.tsig_secret_file = str(r, "tsigSecretFile");  // edgecert run's file only
        if (!c.tsig_key_name.empty() && c.tsig_secret_name.empty() && c.tsig_secret_file.empty())
            return bad_dns(".rfc2136.tsigKeyName needs tsigSecretSecretRef.name");
        if (c.tsig_key_name.empty() && (!c.tsig_secret_name.empty() || !c.tsig_secret_file.empty()))
            return bad_dns(".rfc2136: a TSIG secret needs tsigKeyName");
        // Validate the algorithm now (a dummy secret), so a typo is a BadConfig at once.
        if (!c.tsig_key_name.empty()) {
            auto k = dns::TsigKey::create(c.tsig_key_name, c.tsig_algorithm,
                                          SecretBytes(std::string("AAAA")));
            if (!k) return bad_dns(".rfc2136: " + k.error().message);
        }
    } else {
        const auto& w = d["webhook"];
        if (!w.is_object()) return bad_dns(".webhook must be an object");
        c.webhook_url = str(w, "url");
        if (c.webhook_url.rfind("http://", 0) != 0 && c.webhook_url.rfind("https://", 0) != 0)
            return bad_dns(
                ".webhook.url must be an http(s):// URL (cert-manager's groupName/solverName "
                "webhooks are not supported: put an adapter behind a URL)");
        c.nameserver = str(w, "nameserver");
        c.zone = str(w, "zone");
        EC_TRY_ASSIGN(c.webhook_timeout, duration_field(w, "timeout", c.webhook_timeout));
    }
    if (d.contains("skipPropagationCheck")) {
        if (!d["skipPropagationCheck"].is_boolean())
            return bad_dns(".skipPropagationCheck must be true or false");
        c.check_propagation = !d["skipPropagationCheck"].get<bool>();
    }
    EC_TRY_ASSIGN(c.propagation_timeout,
                  duration_field(d, "propagationTimeout", c.propagation_timeout));
    EC_TRY_ASSIGN(c.poll_interval, duration_field(d, "pollInterval", c.poll_interval));
    if (d.contains("checkServers")) {
        if (!d["checkServers"].is_array())
            return bad_dns(".checkServers must be a list of HOST:PORT");
        for (const auto& s : d["checkServers"]) {
            if (!s.is_string()) return bad_dns(".checkServers must be a list of HOST:PORT");
            if (auto ep = dns::parse_endpoint(s.get<std::string>()); !ep)
                return bad_dns(".checkServers: " + ep.error().message);
            c.check_servers.push_back(s.get<std::string>());
        }
    }
    if (!c.nameserver.empty())
        if (auto ep = dns::parse_endpoint(c.nameserver); !ep)
            return bad_dns(": " + ep.error().message);
    if (c.check_propagation && c.nameserver.empty() && c.check_servers.empty())
        return bad_dns(
            ".webhook: the propagation check needs webhook.nameserver or checkServers "
            "(or skipPropagationCheck: true)");
    return c;
}

}  // namespace edgecert::controller
