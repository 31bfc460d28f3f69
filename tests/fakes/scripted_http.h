#pragma once
// ScriptedHttp: an HttpClient for unit tests that plays a script of expected requests and canned
// responses, in order, and records everything it was sent.
//
// It behaves like a strict ACME server where that matters for a client:
//  - every POST/HEAD response gets a fresh Replay-Nonce ("nonce-<n>") unless the step sets one;
//  - every POST must be a flattened JWS (RFC 8555 §6.2) whose protected header has the request
//    URL, a nonce this fake issued and that was not used before, and "kid" (Auth::Kid, the
//    account URL) or "jwk" (Auth::Jwk) as the step demands; the signature is verified with
//    verify_jws against the account key (kid) or the embedded jwk;
//  - a request that does not match the next step (method, URL) fails the test.
// Violations are reported with ADD_FAILURE and also kept in failures().
#include <gtest/gtest.h>

#include <deque>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "edgecert/acme/crypto.h"
#include "edgecert/base/encoding.h"
#include "edgecert/base/http.h"

namespace edgecert::testing {

enum class Auth { None, Jwk, Kid };

struct RecordedRequest {
    HttpRequest request;
    nlohmann::json protected_header;  // null unless a JWS POST
    nlohmann::json payload;           // decoded JSON payload; null for POST-as-GET or non-JWS
    bool post_as_get = false;
};

struct Step {
    std::string method;
    std::string url;
    Auth auth = Auth::None;
    HttpResponse response;
    std::optional<Error> transport_error;  // returned instead of the response
    // Extra checks on the decoded request (payload is null for POST-as-GET).
    std::function<void(const RecordedRequest&)> check;

    Step& header(std::string name, std::string value) {
        response.headers.emplace_back(ascii_lower(name), std::move(value));
        return *this;
    }
    Step& checking(std::function<void(const RecordedRequest&)> f) {
        check = std::move(f);
        return *this;
    }
};

class ScriptedHttp final : public HttpClient {
  public:
    // The key and account URL that kid-signed POSTs must use.
    void set_account(nlohmann::json jwk, std::string kid) {
        account_jwk_ = std::move(jwk);
        kid_ = std::move(kid);
    }

    Step& expect(std::string method, std::string url, int status, std::string body = {},
                 Auth auth = Auth::None) {
        Step s;
        s.method = std::move(method);
        s.url = std::move(url);
        s.auth = auth;
        s.response.status = status;
        s.response.body = std::move(body);
        steps_.push_back(std::move(s));
        return steps_.back();
    }
    Step& expect_post(std::string url, int status, std::string body = {}, Auth auth = Auth::Kid) {
        return expect("POST", std::move(url), status, std::move(body), auth);
    }
    Step& expect_transport_error(std::string method, std::string url, std::string message) {
        Step& s = expect(std::move(method), std::move(url), 0);
        s.transport_error = Error(ErrorCode::Transient, std::move(message));
        return s;
    }

    // Answer every HEAD to `url` with 200 and a fresh nonce, outside the script (for tests where
    // the number of nonce fetches is not deterministic, e.g. several threads).
    void serve_nonces_at(std::string url) { nonce_url_ = std::move(url); }
    int nonces_served() const { return nonces_served_; }

    Result<HttpResponse> send(const HttpRequest& req) override {
        std::lock_guard l(mu_);
        RecordedRequest rec;
        rec.request = req;
        if (!nonce_url_.empty() && req.method == "HEAD" && req.url == nonce_url_) {
            requests_.push_back(std::move(rec));
            ++nonces_served_;
            HttpResponse resp{200, {{"replay-nonce", "nonce-" + std::to_string(++counter_)}}, {}};
            issued_.insert(resp.headers.back().second);
            return resp;
        }
        if (steps_.empty()) {
            fail("unexpected request " + req.method + " " + req.url + " (script exhausted)");
            requests_.push_back(std::move(rec));
            return Error(ErrorCode::Permanent, "scripted http: no step left");
        }
        Step step = std::move(steps_.front());
        steps_.pop_front();
        if (req.method != step.method || req.url != step.url)
            fail("expected " + step.method + " " + step.url + ", got " + req.method + " " +
                 req.url);
        if (req.method == "POST") check_jws(req, step.auth, rec);
        if (step.check) step.check(rec);
        requests_.push_back(std::move(rec));
        if (step.transport_error) return *step.transport_error;
        HttpResponse resp = std::move(step.response);
        // §6.5: a fresh nonce on every response to a POST and to HEAD/GET newNonce; GETs of
        // other resources (directory, renewalInfo) carry none unless the step sets one.
        if (!resp.header("replay-nonce") && (req.method == "POST" || req.method == "HEAD"))
            resp.headers.emplace_back("replay-nonce", "nonce-" + std::to_string(++counter_));
        if (auto n = resp.header("replay-nonce")) issued_.insert(*n);
        return resp;
    }

    Result<HttpResponse> stream(const HttpRequest& req,
                                const std::function<bool(std::string_view)>&) override {
        fail("unexpected streaming request " + req.url);
        return Error(ErrorCode::Permanent, "scripted http: streaming not supported");
    }

    const std::vector<RecordedRequest>& requests() const { return requests_; }
    size_t remaining() const { return steps_.size(); }
    const std::vector<std::string>& failures() const { return failures_; }
    // Nonces this fake gave out, so a test can assert which one a request used.
    bool issued(const std::string& nonce) const { return issued_.contains(nonce); }

  private:
    void fail(const std::string& what) {
        failures_.push_back(what);
        ADD_FAILURE() << "ScriptedHttp: " << what;
    }

    void check_jws(const HttpRequest& req, Auth auth, RecordedRequest& rec) {
        const std::string where = " in POST " + req.url;
        auto ct = std::find_if(req.headers.begin(), req.headers.end(), [](const auto& h) {
            return ascii_lower(h.first) == "content-type";
        });
        if (ct == req.headers.end() || ct->second != "application/jose+json")
            fail("Content-Type is not application/jose+json" + where);
        nlohmann::json jws;
        try {
            jws = nlohmann::json::parse(req.body);
            auto prot = enc::base64url_decode(jws.at("protected").get<std::string>());
            auto payload = enc::base64url_decode(jws.at("payload").get<std::string>());
            if (!prot || !payload) return fail("JWS members are not base64url" + where);
            rec.protected_header = nlohmann::json::parse(*prot);
            rec.post_as_get = payload->empty();
            if (!payload->empty()) rec.payload = nlohmann::json::parse(*payload);
        } catch (const std::exception& e) {
            return fail(std::string("body is not a flattened JWS: ") + e.what() + where);
        }
        const auto& h = rec.protected_header;
        if (h.value("url", "") != req.url)
            fail("protected url " + h.value("url", "") + " != request URL" + where);
        std::string nonce = h.value("nonce", "");
        if (nonce.empty())
            fail("no nonce" + where);
        else if (!issued_.contains(nonce))
            fail("nonce " + nonce + " was never issued" + where);
        else if (!used_.insert(nonce).second)
            fail("nonce " + nonce + " reused" + where);
        if (!h.contains("alg")) fail("no alg" + where);
        nlohmann::json verify_key;
        if (auth == Auth::Kid) {
            if (h.contains("jwk")) fail("jwk present in a kid-signed request" + where);
            if (h.value("kid", "") != kid_)
                fail("kid " + h.value("kid", "") + " != " + kid_ + where);
            verify_key = account_jwk_;
        } else if (auth == Auth::Jwk) {
            if (h.contains("kid")) fail("kid present in a jwk-signed request" + where);
            if (!h.contains("jwk")) return fail("no jwk" + where);
            verify_key = h.at("jwk");
        } else {
            fail("POST not expected to be signed" + where);
            return;
        }
        auto v = acme::verify_jws(jws, verify_key);
        if (!v.ok()) fail("signature does not verify: " + v.error().message + where);
    }

    std::mutex mu_;
    std::deque<Step> steps_;
    std::vector<RecordedRequest> requests_;
    std::vector<std::string> failures_;
    std::set<std::string> issued_;
    std::set<std::string> used_;
    nlohmann::json account_jwk_;
    std::string kid_;
    std::string nonce_url_;
    int nonces_served_ = 0;
    int counter_ = 0;
};

}  // namespace edgecert::testing
