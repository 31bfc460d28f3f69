// RFC 8555 §6.7 problem documents → Error (see the table in problem.h).
#include "edgecert/acme/problem.h"

#include <fmt/format.h>

namespace edgecert::acme {

namespace {

ErrorCode code_for(std::string_view type, int http_status) {
    using namespace problem;
    if (type == kRateLimited) return ErrorCode::RateLimited;
    if (type == kBadNonce) return ErrorCode::BadNonce;
    if (type == kServerInternal) return ErrorCode::Transient;
    if (type == kExternalAccountRequired || type == kInvalidProfile ||
        type == kBadRevocationReason || type == kUserActionRequired || type == kInvalidContact ||
        type == kUnsupportedContact)
        return ErrorCode::InvalidConfig;
    if (type == kAccountDoesNotExist) return ErrorCode::NotFound;
    if (type.starts_with(kPrefix)) {
        // Any other ACME error type is final for this request (connection, dns, caa, tls,
        // unauthorized, rejectedIdentifier, incorrectResponse, alreadyReplaced, badCSR...),
        // except when the server itself failed.
        return http_status >= 500 ? ErrorCode::Transient : ErrorCode::Permanent;
    }
    if (http_status >= 500) return ErrorCode::Transient;
    if (http_status == 429) return ErrorCode::RateLimited;
    if (http_status == 404) return ErrorCode::NotFound;
    return ErrorCode::Permanent;
}

std::string one_line(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) out += (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
    return out;
}

}  // namespace

std::string body_excerpt(std::string_view body, size_t max) {
    std::string out;
    for (char c : body) {
        if (out.size() >= max) {
            out += "...";
            break;
        }
        unsigned char u = static_cast<unsigned char>(c);
        out += (u < 0x20 || u == 0x7f) ? ' ' : c;
    }
    return out;
}

Error problem_to_error(const Problem& p, int http_status,
                       std::optional<std::chrono::seconds> retry_after) {
    Error e;
    e.code = code_for(p.type, http_status);
    e.type = p.type;
    e.http_status = http_status;
    e.retry_after = retry_after;
    std::string detail =
        p.detail.empty() ? std::string("the CA reported an error") : one_line(p.detail);
    if (p.type == problem::kUserActionRequired && !p.instance.empty())
        detail += fmt::format("; see {}", one_line(p.instance));
    if (!p.subproblems.empty() && p.detail.empty()) {
        // Some CAs put everything in the subproblems: surface the first one.
        const auto& sp = p.subproblems.front();
        detail =
            fmt::format("{}: {}", sp.identifier ? sp.identifier->value : "?", one_line(sp.detail));
    }
    if (http_status > 0)
        e.message = fmt::format("{} ({}, HTTP {})", detail, p.type, http_status);
    else
        e.message = fmt::format("{} ({})", detail, p.type);
    for (const auto& sp : p.subproblems) {
        e.details.push_back(fmt::format("{}: {}: {}", sp.identifier ? sp.identifier->value : "?",
                                        sp.type, one_line(sp.detail)));
    }
    return e;
}

Error response_to_error(const HttpResponse& resp, std::string_view url, SystemTime now) {
    std::optional<std::chrono::seconds> ra;
    if (auto h = resp.header("retry-after")) ra = parse_retry_after(*h, now);
    if (auto p = parse_problem(resp.body)) return problem_to_error(*p, resp.status, ra);
    Error e;
    e.http_status = resp.status;
    e.retry_after = ra;
    // Not a problem document: a proxy or load balancer in front of the CA answered, or the CA
    // is broken. Either usually passes, so it is Transient unless the status says more.
    if (resp.status == 429) {
        e.code = ErrorCode::RateLimited;
    } else if (resp.status == 404) {
        e.code = ErrorCode::NotFound;
    } else {
        e.code = ErrorCode::Transient;
    }
    e.message =
        fmt::format("unexpected response from {} (HTTP {}): {}", url, resp.status,
                    resp.body.empty() ? std::string("empty body") : body_excerpt(resp.body));
    return e;
}

}  // namespace edgecert::acme
