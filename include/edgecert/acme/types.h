#pragma once
// ACME wire types (RFC 8555 §7.1, RFC 9773, draft-aaron-acme-profiles). Statuses are kept as
// the strings the server sent so an unknown value never breaks parsing; the constants below
// name the ones RFC 8555 §7.1.6 defines. Timestamps are RFC 3339 on the wire (§7.1) and
// SystemTime here. Parsers accept unknown fields and reject a body whose required members are
// missing or have the wrong JSON type (a Transient error: the server sent garbage).
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "edgecert/base/clock.h"
#include "edgecert/base/result.h"

namespace edgecert::acme {

// RFC 8555 §7.1.6 status values.
namespace status {
inline constexpr std::string_view kPending = "pending";
inline constexpr std::string_view kReady = "ready";
inline constexpr std::string_view kProcessing = "processing";
inline constexpr std::string_view kValid = "valid";
inline constexpr std::string_view kInvalid = "invalid";
inline constexpr std::string_view kExpired = "expired";
inline constexpr std::string_view kDeactivated = "deactivated";
inline constexpr std::string_view kRevoked = "revoked";
}  // namespace status

// RFC 8555 §9.7.8 challenge types (+ RFC 8737 tls-alpn-01).
inline constexpr std::string_view kHttp01 = "http-01";
inline constexpr std::string_view kDns01 = "dns-01";
inline constexpr std::string_view kTlsAlpn01 = "tls-alpn-01";

// RFC 8555 §9.7.7 identifier types: "dns" (and "ip", RFC 8738).
inline constexpr std::string_view kIdentifierDns = "dns";
inline constexpr std::string_view kIdentifierIp = "ip";
struct Identifier {
    std::string type = "dns";
    std::string value;
    bool operator==(const Identifier&) const = default;
};

// RFC 8738 §3: an "ip" identifier's value is the address's canonical text (dotted quad for
// IPv4, RFC 5952 for IPv6). Accepts any IP literal (IpAddress::parse, base/ip.h) and returns that
// text, so "0:0:0:0:0:0:0:1" and "::1" are one identifier. InvalidConfig for anything that is not
// an IP address, and for an IPv4-mapped IPv6 address (a certificate for ::ffff:10.0.0.1 matches
// no IPv4 client; the message says to write 10.0.0.1).
Result<std::string> canonical_ip(std::string_view text);
// True when `name` is an IP literal: such a value is never a DNS name (RFC 1123 §2.1), so it
// belongs in an "ip" identifier, not a "dns" one.
bool is_ip_literal(std::string_view name);
// RFC 1123 §2.1: the last label of a host name is not all digits, so "10.0.0.300" or "127.1" is a
// mistyped address, not a DNS name. Callers say so instead of ordering a certificate for it.
bool has_numeric_last_label(std::string_view name);

// RFC 8555 §6.7 / RFC 7807 problem document, with §6.7.1 subproblems.
struct Subproblem {
    std::string type;  // full URN, e.g. urn:ietf:params:acme:error:caa
    std::string detail;
    std::optional<Identifier> identifier;
};
struct Problem {
    std::string type;  // full URN; "about:blank" when the server sent none
    std::string detail;
    std::string instance;  // RFC 7807 instance; userActionRequired puts the ToS URL here (§7.3.3)
    int status = 0;        // the "status" member (the HTTP status is passed separately)
    std::vector<Subproblem> subproblems;
};

// RFC 8555 §7.1.1 directory "meta".
struct DirectoryMeta {
    std::string terms_of_service;
    std::string website;
    std::vector<std::string> caa_identities;
    bool external_account_required = false;
    // draft-aaron-acme-profiles §3: profile name → human description.
    std::map<std::string, std::string> profiles;
};

// RFC 8555 §7.1.1 directory (+ RFC 9773 §4 renewalInfo).
struct Directory {
    std::string new_nonce;
    std::string new_account;
    std::string new_order;
    std::string new_authz;  // optional (pre-authorization, §7.4.1)
    std::string revoke_cert;
    std::string key_change;
    std::string renewal_info;  // RFC 9773 §4; empty when the CA has no ARI
    DirectoryMeta meta;
};

// RFC 8555 §7.1.2 account object. `url` is the Location header (the "kid").
struct Account {
    std::string url;
    std::string status;
    std::vector<std::string> contact;
    bool terms_of_service_agreed = false;
    std::string orders;
};

// RFC 8555 §7.1.3 order object (+ RFC 9773 §5 replaces, profiles draft "profile"). `url` is the
// Location header of newOrder or the URL the order was fetched from.
struct Order {
    std::string url;
    std::string status;
    std::optional<SystemTime> expires;
    std::vector<Identifier> identifiers;
    std::string profile;
    std::optional<SystemTime> not_before;
    std::optional<SystemTime> not_after;
    std::vector<std::string> authorizations;
    std::string finalize;
    std::string certificate;
    std::optional<Problem> error;
    std::string replaces;
};

// RFC 8555 §7.1.5 (+ RFC 8737) challenge object.
struct Challenge {
    std::string type;
    std::string url;
    std::string token;
    std::string status;
    std::optional<SystemTime> validated;
    std::optional<Problem> error;
};

// RFC 8555 §7.1.4 authorization object. For a wildcard order the identifier value has no "*."
// and `wildcard` is true (only dns-01 may be offered then).
struct Authorization {
    std::string url;
    std::string status;
    Identifier identifier;
    bool wildcard = false;
    std::vector<Challenge> challenges;
    std::optional<SystemTime> expires;
};

// RFC 3339 timestamps (§7.1 of RFC 8555 uses them for every date). Accepts fractional seconds
// and "Z" or a numeric offset; returns nullopt for anything else.
std::optional<SystemTime> parse_rfc3339(std::string_view s);
// "2026-11-28T17:55:00Z" (whole seconds, UTC).
std::string format_rfc3339(SystemTime t);

// Parsers for response bodies. Errors are Transient ("malformed <what> from the server: ...").
Result<Directory> parse_directory(std::string_view body);
Result<Account> parse_account(std::string_view body, std::string url);
Result<Order> parse_order(std::string_view body, std::string url);
Result<Authorization> parse_authorization(std::string_view body, std::string url);
Result<Challenge> parse_challenge(std::string_view body);
// A problem document; nullopt when the body is not one (not JSON, or no "type"/"detail").
std::optional<Problem> parse_problem(std::string_view body);

}  // namespace edgecert::acme
