#pragma once
// RFC 8555 §6.7 problem documents → edgecert::Error. The code says what to do next
// (DESIGN.md convention 1); Error::type keeps the full URN so a caller can tell a CAA failure
// from a DNS one; Error::details lists subproblems as "identifier: type: detail".
//
//   rateLimited                      → RateLimited (retry_after from the Retry-After header)
//   badNonce                         → BadNonce
//   serverInternal, any HTTP 5xx,
//   a non-problem error body         → Transient
//   externalAccountRequired,
//   invalidProfile, badRevocationReason,
//   userActionRequired (+ instance URL), invalidContact,
//   unsupportedContact               → InvalidConfig
//   accountDoesNotExist              → NotFound
//   connection, dns, caa, tls, unauthorized, rejectedIdentifier, incorrectResponse,
//   alreadyReplaced, alreadyRevoked, badCSR, ... and any other 4xx → Permanent
//
// Message: ONE line, "<detail> (<type>, HTTP <status>)".
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "edgecert/acme/types.h"
#include "edgecert/base/http.h"
#include "edgecert/base/result.h"

namespace edgecert::acme {

// RFC 8555 §6.7 error type URNs (the full strings, as Error::type carries them).
namespace problem {
inline constexpr std::string_view kPrefix = "urn:ietf:params:acme:error:";
inline constexpr std::string_view kAccountDoesNotExist =
    "urn:ietf:params:acme:error:accountDoesNotExist";
inline constexpr std::string_view kAlreadyReplaced = "urn:ietf:params:acme:error:alreadyReplaced";
inline constexpr std::string_view kAlreadyRevoked = "urn:ietf:params:acme:error:alreadyRevoked";
inline constexpr std::string_view kBadCSR = "urn:ietf:params:acme:error:badCSR";
inline constexpr std::string_view kBadNonce = "urn:ietf:params:acme:error:badNonce";
inline constexpr std::string_view kBadPublicKey = "urn:ietf:params:acme:error:badPublicKey";
inline constexpr std::string_view kBadRevocationReason =
    "urn:ietf:params:acme:error:badRevocationReason";
inline constexpr std::string_view kBadSignatureAlgorithm =
    "urn:ietf:params:acme:error:badSignatureAlgorithm";
inline constexpr std::string_view kCaa = "urn:ietf:params:acme:error:caa";
inline constexpr std::string_view kCompound = "urn:ietf:params:acme:error:compound";
inline constexpr std::string_view kConnection = "urn:ietf:params:acme:error:connection";
inline constexpr std::string_view kDns = "urn:ietf:params:acme:error:dns";
inline constexpr std::string_view kExternalAccountRequired =
    "urn:ietf:params:acme:error:externalAccountRequired";
inline constexpr std::string_view kIncorrectResponse =
    "urn:ietf:params:acme:error:incorrectResponse";
inline constexpr std::string_view kInvalidContact = "urn:ietf:params:acme:error:invalidContact";
inline constexpr std::string_view kInvalidProfile = "urn:ietf:params:acme:error:invalidProfile";
inline constexpr std::string_view kMalformed = "urn:ietf:params:acme:error:malformed";
inline constexpr std::string_view kOrderNotReady = "urn:ietf:params:acme:error:orderNotReady";
inline constexpr std::string_view kRateLimited = "urn:ietf:params:acme:error:rateLimited";
inline constexpr std::string_view kRejectedIdentifier =
    "urn:ietf:params:acme:error:rejectedIdentifier";
inline constexpr std::string_view kServerInternal = "urn:ietf:params:acme:error:serverInternal";
inline constexpr std::string_view kTls = "urn:ietf:params:acme:error:tls";
inline constexpr std::string_view kUnauthorized = "urn:ietf:params:acme:error:unauthorized";
inline constexpr std::string_view kUnsupportedContact =
    "urn:ietf:params:acme:error:unsupportedContact";
inline constexpr std::string_view kUnsupportedIdentifier =
    "urn:ietf:params:acme:error:unsupportedIdentifier";
inline constexpr std::string_view kUserActionRequired =
    "urn:ietf:params:acme:error:userActionRequired";
}  // namespace problem

// The Error for a problem document. `http_status` 0 = not from an HTTP response (e.g. a
// challenge's embedded error); retry_after as parsed from the response's Retry-After header.
Error problem_to_error(const Problem& p, int http_status,
                       std::optional<std::chrono::seconds> retry_after = std::nullopt);

// The Error for a non-2xx response to `url`: a problem document when the body is one, otherwise
// an error naming the URL and status with at most ~200 characters of the body: RateLimited for
// 429, NotFound for 404, Transient otherwise (a proxy page or a broken CA usually passes).
Error response_to_error(const HttpResponse& resp, std::string_view url, SystemTime now);

// A short, single-line excerpt of an unexpected body for error messages (≤ max chars).
std::string body_excerpt(std::string_view body, size_t max = 200);

}  // namespace edgecert::acme
