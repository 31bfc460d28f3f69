// Decoding of RFC 8555 resources. Every parser catches at this boundary and returns a Transient
// Error: a malformed body from the CA is the CA's problem and usually goes away.
#include "edgecert/acme/types.h"

#include <cctype>
#include <chrono>
#include <cstdio>

#include "acme/wire.h"
#include "edgecert/acme/problem.h"
#include "edgecert/base/ip.h"

namespace edgecert::acme {

using wire::json;

namespace {

bool digits(std::string_view s, size_t pos, size_t n, int& out) {
    if (pos + n > s.size()) return false;
    int v = 0;
    for (size_t i = pos; i < pos + n; ++i) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    out = v;
    return true;
}

template <class T, class F>
Result<T> decode(std::string_view body, const char* what, F&& f) {
    try {
        json j = json::parse(body);
        if (!j.is_object()) throw wire::WireError("not a JSON object");
        return f(j);
    } catch (const std::exception& e) {
        return Error(ErrorCode::Transient, std::string("malformed ") + what +
                                               " from the server: " + body_excerpt(e.what(), 160));
    }
}

}  // namespace

Result<std::string> canonical_ip(std::string_view text) {
    auto ip = IpAddress::parse(text);
    if (!ip)
        return Error(ErrorCode::InvalidConfig,
                     "'" + std::string(text) +
                         "' is not an IP address (IPv4 dotted quad or IPv6, without brackets, "
                         "zone or prefix length)");
    if (ip->is_v4_mapped())
        return Error(ErrorCode::InvalidConfig,
                     "'" + std::string(text) + "' is an IPv4-mapped IPv6 address: write it as " +
                         IpAddress::from_bytes(ip->data() + 12, 4)->to_string());
    return ip->to_string();
}

bool is_ip_literal(std::string_view name) {
    return IpAddress::parse(name).has_value();
}

bool has_numeric_last_label(std::string_view name) {
    if (!name.empty() && name.back() == '.') name.remove_suffix(1);
    std::string_view last =
        name.substr(name.rfind('.') == std::string_view::npos ? 0 : name.rfind('.') + 1);
    return !last.empty() && last.find_first_not_of("0123456789") == std::string_view::npos;
}

std::optional<SystemTime> parse_rfc3339(std::string_view s) {
    // YYYY-MM-DDTHH:MM:SS[.frac](Z|±hh:mm)
    int y, mo, d, h, mi, sec;
    if (s.size() < 20) return std::nullopt;
    if (!digits(s, 0, 4, y) || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
        !digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        !digits(s, 11, 2, h) || s[13] != ':' || !digits(s, 14, 2, mi) || s[16] != ':' ||
        !digits(s, 17, 2, sec))
        return std::nullopt;
    size_t pos = 19;
    std::chrono::nanoseconds frac{0};
    if (pos < s.size() && s[pos] == '.') {
        ++pos;
        int64_t scale = 100'000'000;
        size_t start = pos;
        while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) {
            frac += std::chrono::nanoseconds((s[pos] - '0') * scale);
            scale /= 10;
            ++pos;
        }
        if (pos == start) return std::nullopt;
    }
    if (pos >= s.size()) return std::nullopt;
    std::chrono::minutes offset{0};
    if (s[pos] == 'Z' || s[pos] == 'z') {
        ++pos;
    } else if (s[pos] == '+' || s[pos] == '-') {
        int oh, om;
        if (!digits(s, pos + 1, 2, oh) || pos + 3 >= s.size() || s[pos + 3] != ':' ||
            !digits(s, pos + 4, 2, om))
            return std::nullopt;
        offset = std::chrono::minutes(oh * 60 + om);
        if (s[pos] == '-') offset = -offset;
        pos += 6;
    } else {
        return std::nullopt;
    }
    if (pos != s.size()) return std::nullopt;
    if (mo < 1 || mo > 12 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
    std::chrono::year_month_day ymd{std::chrono::year(y),
                                    std::chrono::month(static_cast<unsigned>(mo)),
                                    std::chrono::day(static_cast<unsigned>(d))};
    if (!ymd.ok()) return std::nullopt;
    // Whole seconds first, in 64 bits: years up to 9999 fit there but not in SystemTime's
    // nanoseconds, which saturate (a CA may well write "9999-12-31T23:59:59Z" for "never").
    int64_t secs = std::chrono::sys_days(ymd).time_since_epoch().count() * int64_t{86'400} +
                   h * 3600 + mi * 60 + sec -
                   std::chrono::duration_cast<std::chrono::seconds>(offset).count();
    SystemTime t = system_time_from_unix(secs);
    if (t == kSystemTimeMin || t == kSystemTimeMax) return t;
    return t + std::chrono::duration_cast<SystemTime::duration>(frac);
}

std::string format_rfc3339(SystemTime t) {
    return rfc3339(t);
}

namespace wire {

Identifier decode_identifier(const json& j) {
    if (!j.is_object()) throw WireError("identifier is not an object");
    return Identifier{req_str(j, "type"), req_str(j, "value")};
}

Problem decode_problem(const json& j) {
    if (!j.is_object()) throw WireError("problem is not an object");
    Problem p;
    p.type = opt_str(j, "type");
    if (p.type.empty()) p.type = "about:blank";  // RFC 7807 §4.2
    p.detail = opt_str(j, "detail");
    p.instance = opt_str(j, "instance");
    if (auto it = j.find("status"); it != j.end() && it->is_number_integer())
        p.status = it->get<int>();
    if (auto it = j.find("subproblems"); it != j.end() && it->is_array()) {
        for (const auto& sj : *it) {
            if (!sj.is_object()) continue;
            Subproblem sp;
            sp.type = opt_str(sj, "type");
            sp.detail = opt_str(sj, "detail");
            if (auto id = sj.find("identifier"); id != sj.end() && id->is_object())
                sp.identifier = decode_identifier(*id);
            p.subproblems.push_back(std::move(sp));
        }
    }
    return p;
}

std::optional<Problem> opt_problem(const json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return std::nullopt;
    return decode_problem(*it);
}

Challenge decode_challenge(const json& j) {
    if (!j.is_object()) throw WireError("challenge is not an object");
    Challenge c;
    c.type = req_str(j, "type");
    c.url = req_str(j, "url");
    c.status = req_str(j, "status");
    c.token = opt_str(j, "token");
    c.validated = opt_time(j, "validated");
    c.error = opt_problem(j, "error");
    return c;
}

}  // namespace wire

Result<Directory> parse_directory(std::string_view body) {
    return decode<Directory>(body, "directory", [](const json& j) {
        Directory d;
        d.new_nonce = wire::req_str(j, "newNonce");
        d.new_account = wire::req_str(j, "newAccount");
        d.new_order = wire::req_str(j, "newOrder");
        d.new_authz = wire::opt_str(j, "newAuthz");
        d.revoke_cert = wire::opt_str(j, "revokeCert");
        d.key_change = wire::opt_str(j, "keyChange");
        d.renewal_info = wire::opt_str(j, "renewalInfo");
        if (auto m = j.find("meta"); m != j.end() && m->is_object()) {
            d.meta.terms_of_service = wire::opt_str(*m, "termsOfService");
            d.meta.website = wire::opt_str(*m, "website");
            d.meta.caa_identities = wire::opt_str_array(*m, "caaIdentities");
            d.meta.external_account_required = wire::opt_bool(*m, "externalAccountRequired");
            if (auto p = m->find("profiles"); p != m->end() && p->is_object()) {
                for (const auto& [name, desc] : p->items())
                    d.meta.profiles[name] =
                        desc.is_string() ? desc.get<std::string>() : desc.dump();
            }
        }
        return d;
    });
}

Result<Account> parse_account(std::string_view body, std::string url) {
    return decode<Account>(body, "account", [&](const json& j) {
        Account a;
        a.url = std::move(url);
        a.status = wire::req_str(j, "status");
        a.contact = wire::opt_str_array(j, "contact");
        a.terms_of_service_agreed = wire::opt_bool(j, "termsOfServiceAgreed");
        a.orders = wire::opt_str(j, "orders");
        return a;
    });
}

Result<Order> parse_order(std::string_view body, std::string url) {
    return decode<Order>(body, "order", [&](const json& j) {
        Order o;
        o.url = std::move(url);
        o.status = wire::req_str(j, "status");
        o.expires = wire::opt_time(j, "expires");
        const json& ids = j.at("identifiers");
        if (!ids.is_array()) throw wire::WireError("\"identifiers\" is not an array");
        for (const auto& i : ids) o.identifiers.push_back(wire::decode_identifier(i));
        o.profile = wire::opt_str(j, "profile");
        o.not_before = wire::opt_time(j, "notBefore");
        o.not_after = wire::opt_time(j, "notAfter");
        o.authorizations = wire::opt_str_array(j, "authorizations");
        o.finalize = wire::req_str(j, "finalize");
        o.certificate = wire::opt_str(j, "certificate");
        o.error = wire::opt_problem(j, "error");
        o.replaces = wire::opt_str(j, "replaces");
        return o;
    });
}

Result<Authorization> parse_authorization(std::string_view body, std::string url) {
    return decode<Authorization>(body, "authorization", [&](const json& j) {
        Authorization a;
        a.url = std::move(url);
        a.status = wire::req_str(j, "status");
        a.identifier = wire::decode_identifier(j.at("identifier"));
        a.wildcard = wire::opt_bool(j, "wildcard");
        a.expires = wire::opt_time(j, "expires");
        if (auto c = j.find("challenges"); c != j.end()) {
            if (!c->is_array()) throw wire::WireError("\"challenges\" is not an array");
            for (const auto& cj : *c) a.challenges.push_back(wire::decode_challenge(cj));
        }
        return a;
    });
}

Result<Challenge> parse_challenge(std::string_view body) {
    return decode<Challenge>(body, "challenge",
                             [](const json& j) { return wire::decode_challenge(j); });
}

std::optional<Problem> parse_problem(std::string_view body) {
    try {
        json j = json::parse(body);
        if (!j.is_object() || (!j.contains("type") && !j.contains("detail"))) return std::nullopt;
        return wire::decode_problem(j);
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

}  // namespace edgecert::acme
