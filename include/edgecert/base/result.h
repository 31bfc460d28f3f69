#pragma once
// Result<T> and Error: the one error vocabulary (DESIGN.md, convention 1).
// The code says what the caller should do next; the message is for humans and never holds
// key material. `type` carries a protocol-specific sub-kind (an ACME problem type such as
// "urn:ietf:params:acme:error:caa", or a Kubernetes Status reason) for callers that need it.
#include <cassert>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace edgecert {

enum class ErrorCode {
    Transient,      // back off and retry
    RateLimited,    // wait retry_after, then retry
    BadNonce,       // retry now with a fresh nonce
    InvalidConfig,  // the input is wrong: report (Warning Event), do not retry until it changes
    Conflict,       // optimistic concurrency lost: re-read and retry
    NotFound,
    AlreadyExists,
    Gone,           // resourceVersion too old / resource gone: relist
    Unauthorized,   // credentials missing or wrong
    Forbidden,      // authenticated, not allowed
    Permanent,      // will not succeed by retrying
};

constexpr std::string_view to_string(ErrorCode c) {
    switch (c) {
        case ErrorCode::Transient: return "Transient";
        case ErrorCode::RateLimited: return "RateLimited";
        case ErrorCode::BadNonce: return "BadNonce";
        case ErrorCode::InvalidConfig: return "InvalidConfig";
        case ErrorCode::Conflict: return "Conflict";
        case ErrorCode::NotFound: return "NotFound";
        case ErrorCode::AlreadyExists: return "AlreadyExists";
        case ErrorCode::Gone: return "Gone";
        case ErrorCode::Unauthorized: return "Unauthorized";
        case ErrorCode::Forbidden: return "Forbidden";
        case ErrorCode::Permanent: return "Permanent";
    }
    return "Unknown";
}

struct Error {
    ErrorCode code = ErrorCode::Permanent;
    std::string message;
    // Protocol sub-kind: ACME problem type (full URN) or Kubernetes Status reason. May be empty.
    std::string type;
    // Set for RateLimited (and any error whose response carried Retry-After).
    std::optional<std::chrono::seconds> retry_after;
    // HTTP status of the response that produced this error, 0 when there was none.
    int http_status = 0;
    // Sub-errors (ACME subproblems, one per identifier): "identifier: type: detail".
    std::vector<std::string> details;

    Error() = default;
    Error(ErrorCode c, std::string msg) : code(c), message(std::move(msg)) {}

    bool retryable() const {
        return code == ErrorCode::Transient || code == ErrorCode::RateLimited ||
               code == ErrorCode::BadNonce || code == ErrorCode::Conflict;
    }
    // Prefix the message with context: "loading account: <message>".
    Error& context(std::string_view what) {
        message.insert(0, std::string(what) + ": ");
        return *this;
    }
    Error with_context(std::string_view what) const {
        Error e = *this;
        e.context(what);
        return e;
    }
};

inline Error make_error(ErrorCode c, std::string msg) { return Error(c, std::move(msg)); }

template <class T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
    Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

    bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }

    T& value() & { assert(ok()); return std::get<0>(v_); }
    const T& value() const& { assert(ok()); return std::get<0>(v_); }
    T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T&& operator*() && { return std::move(*this).value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

    const Error& error() const& { assert(!ok()); return std::get<1>(v_); }
    Error&& error() && { assert(!ok()); return std::get<1>(std::move(v_)); }

    T value_or(T fallback) const& { return ok() ? std::get<0>(v_) : std::move(fallback); }

private:
    std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error error) : err_(std::move(error)) {}  // NOLINT

    bool ok() const { return !err_.has_value(); }
    explicit operator bool() const { return ok(); }
    const Error& error() const& { assert(!ok()); return *err_; }
    Error&& error() && { assert(!ok()); return std::move(*err_); }

private:
    std::optional<Error> err_;
};

using Status = Result<void>;
inline Status ok_status() { return {}; }

}  // namespace edgecert

#define EC_CONCAT_INNER(a, b) a##b
#define EC_CONCAT(a, b) EC_CONCAT_INNER(a, b)

// EC_TRY(expr): evaluate a Result; on error return the error from the enclosing function.
#define EC_TRY(expr)                                               \
    do {                                                           \
        auto&& ec_try_r_ = (expr);                                 \
        if (!ec_try_r_.ok()) return ec_try_r_.error();             \
    } while (0)

// EC_TRY_ASSIGN(lhs, expr): `lhs = *expr` or return its error. lhs may declare: `auto x`.
#define EC_TRY_ASSIGN(lhs, expr) EC_TRY_ASSIGN_IMPL(EC_CONCAT(ec_try_r_, __LINE__), lhs, expr)
#define EC_TRY_ASSIGN_IMPL(tmp, lhs, expr)                  \
    auto tmp = (expr);                                      \
    if (!tmp.ok()) return std::move(tmp).error();           \
    lhs = std::move(tmp).value()
