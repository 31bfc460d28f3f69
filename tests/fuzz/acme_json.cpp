// ACME response bodies from the CA (acme/types.cpp, problem.cpp, ari.cpp): directory, account,
// order, authorization, challenge, problem documents and error responses, renewalInfo with its
// Retry-After header.
//
// Input: one selector byte, then (renewalInfo and error responses) a header line ending in '\n',
// then the body. Invariants: every timestamp that parsed survives format → parse (whole seconds);
// parsing is deterministic (the same body twice gives the same fields); error messages are one
// line (problem.h) and body excerpts bounded; an accepted ARI window ends after it starts, its
// poll interval is clamped to [1 min, 1 day], and the chosen renewal time lies in the window (or
// is now).
#include <random>

#include "edgecert/acme/ari.h"
#include "edgecert/acme/problem.h"
#include "edgecert/acme/types.h"
#include "tests/fuzz/fuzz_util.h"

using namespace edgecert;
using namespace edgecert::acme;

namespace {

const SystemTime kNow = SystemTime(std::chrono::seconds(1'893'456'000));  // 2030-01-01

void check_time(const std::optional<SystemTime>& t) {
    if (!t) return;
    std::string s = format_rfc3339(*t);
    auto back = parse_rfc3339(s);
    FUZZ_CHECK(back.has_value(), "format_rfc3339 wrote something parse_rfc3339 refuses: %s",
               s.c_str());
    FUZZ_CHECK(*back == std::chrono::floor<std::chrono::seconds>(*t), "time %s does not round-trip",
               s.c_str());
}

void check_problem(const std::optional<Problem>& p) {
    if (!p) return;
    FUZZ_CHECK(!p->type.empty(), "problem without a type");
    for (int status : {0, 400, 429, 500}) {
        Error e = problem_to_error(*p, status);
        FUZZ_CHECK(fuzz::one_line(e.message), "multi-line problem message");
        FUZZ_CHECK(e.type == p->type, "problem type lost");
        for (const auto& d : e.details) FUZZ_CHECK(fuzz::one_line(d), "multi-line subproblem");
    }
}

bool same(const Order& a, const Order& b) {
    return a.status == b.status && a.expires == b.expires && a.identifiers == b.identifiers &&
           a.authorizations == b.authorizations && a.finalize == b.finalize &&
           a.certificate == b.certificate && a.not_before == b.not_before &&
           a.not_after == b.not_after && a.replaces == b.replaces && a.profile == b.profile &&
           a.error.has_value() == b.error.has_value();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz::Reader r(fuzz::as_view(data, size));
    uint8_t which = r.u8() % 8;
    switch (which) {
        case 0: {
            auto d = parse_directory(r.rest());
            if (!d) FUZZ_CHECK(fuzz::one_line(d.error().message), "multi-line error");
            break;
        }
        case 1: {
            auto a = parse_account(r.rest(), "https://ca.test/acct/1");
            if (a) FUZZ_CHECK(a->url == "https://ca.test/acct/1", "account URL lost");
            break;
        }
        case 2: {
            std::string_view body = r.rest();
            auto o = parse_order(body, "https://ca.test/order/1");
            auto o2 = parse_order(body, "https://ca.test/order/1");
            FUZZ_CHECK(o.ok() == o2.ok(), "order parsing is not deterministic");
            if (!o) break;
            FUZZ_CHECK(same(*o, *o2), "order parsing is not deterministic");
            check_time(o->expires);
            check_time(o->not_before);
            check_time(o->not_after);
            check_problem(o->error);
            break;
        }
        case 3: {
            auto a = parse_authorization(r.rest(), "https://ca.test/authz/1");
            if (!a) break;
            check_time(a->expires);
            for (const auto& c : a->challenges) {
                check_time(c.validated);
                check_problem(c.error);
            }
            break;
        }
        case 4: {
            auto c = parse_challenge(r.rest());
            if (c) {
                check_time(c->validated);
                check_problem(c->error);
            }
            break;
        }
        case 5: {
            check_problem(parse_problem(r.rest()));
            break;
        }
        case 6: {  // an error response: status line "NNN", Retry-After, body
            HttpResponse resp;
            resp.status = 400 + r.u8() % 200;
            std::string_view ra = r.line();
            if (!ra.empty()) resp.headers.emplace_back("retry-after", std::string(ra));
            resp.body = std::string(r.rest());
            Error e = response_to_error(resp, "https://ca.test/x", kNow);
            FUZZ_CHECK(fuzz::one_line(e.message), "multi-line error message");
            if (e.retry_after) FUZZ_CHECK(e.retry_after->count() >= 0, "negative Retry-After");
            std::string ex = body_excerpt(resp.body, 200);
            FUZZ_CHECK(ex.size() <= 203, "excerpt too long");
            for (char c : ex)
                FUZZ_CHECK(static_cast<unsigned char>(c) >= 0x20 && c != 0x7f,
                           "control in excerpt");
            break;
        }
        case 7: {  // renewalInfo (RFC 9773): Retry-After line, then the body
            std::string_view ra = r.line();
            std::optional<std::string_view> header;
            if (!ra.empty()) header = ra;
            auto info = parse_renewal_info(r.rest(), header, kNow);
            if (!info) {
                FUZZ_CHECK(info.error().retry_after.has_value(),
                           "ARI error without a poll interval");
                break;
            }
            FUZZ_CHECK(info->suggested_window.end > info->suggested_window.start,
                       "empty window accepted");
            FUZZ_CHECK(info->retry_after >= kAriMinRetry && info->retry_after <= kAriMaxRetry,
                       "Retry-After not clamped: %lld",
                       static_cast<long long>(info->retry_after.count()));
            check_time(info->suggested_window.start);
            check_time(info->suggested_window.end);
            std::mt19937_64 rng(size);
            SystemTime t = choose_renewal_time(info->suggested_window, rng, kNow);
            FUZZ_CHECK(t >= kNow, "renewal chosen in the past");
            if (info->suggested_window.end > kNow)
                FUZZ_CHECK(t >= info->suggested_window.start && t <= info->suggested_window.end,
                           "renewal time outside the window");
            break;
        }
    }
    return 0;
}
