#pragma once
// Shared fixtures for the ACME protocol tests: a scripted CA at https://ca.test, a FakeClock,
// and JSON builders for RFC 8555 resources.
#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "edgecert/acme/client.h"
#include "edgecert/acme/crypto.h"
#include "edgecert/acme/order.h"
#include "fakes/scripted_http.h"

namespace edgecert::acme::testutil {

using edgecert::testing::Auth;
using edgecert::testing::ScriptedHttp;
using nlohmann::json;

inline const std::string kDirUrl = "https://ca.test/dir";
inline const std::string kNonceUrl = "https://ca.test/nonce";
inline const std::string kNewAccountUrl = "https://ca.test/new-acct";
inline const std::string kNewOrderUrl = "https://ca.test/new-order";
inline const std::string kRevokeUrl = "https://ca.test/revoke";
inline const std::string kKeyChangeUrl = "https://ca.test/key-change";
inline const std::string kAriUrl = "https://ca.test/renewal-info";
inline const std::string kAccountUrl = "https://ca.test/acct/1";
inline const std::string kOrderUrl = "https://ca.test/order/1";
inline const std::string kFinalizeUrl = "https://ca.test/order/1/finalize";
inline const std::string kCertUrl = "https://ca.test/cert/1";

inline json directory_json() {
    return json{
        {"newNonce", kNonceUrl},
        {"newAccount", kNewAccountUrl},
        {"newOrder", kNewOrderUrl},
        {"revokeCert", kRevokeUrl},
        {"keyChange", kKeyChangeUrl},
        {"renewalInfo", kAriUrl},
        {"meta", {{"termsOfService", "https://ca.test/tos"}, {"website", "https://ca.test"}}}};
}

inline json problem_json(const std::string& short_type, const std::string& detail, int status) {
    return json{{"type", "urn:ietf:params:acme:error:" + short_type},
                {"detail", detail},
                {"status", status}};
}

inline json order_json(const std::string& status, const std::vector<std::string>& names,
                       const std::vector<std::string>& authzs, const std::string& cert = {}) {
    json ids = json::array();
    for (const auto& n : names)
        ids.push_back({{"type", is_ip_literal(n) ? "ip" : "dns"}, {"value", n}});
    json o{{"status", status},
           {"expires", "2030-01-01T00:00:00Z"},
           {"identifiers", ids},
           {"authorizations", authzs},
           {"finalize", kFinalizeUrl}};
    if (!cert.empty()) o["certificate"] = cert;
    return o;
}

inline json challenge_json(const std::string& type, const std::string& url,
                           const std::string& token, const std::string& status = "pending") {
    return json{{"type", type}, {"url", url}, {"token", token}, {"status", status}};
}

inline json authz_json(const std::string& status, const std::string& name, json challenges,
                       bool wildcard = false) {
    json a{{"status", status},
           {"identifier", {{"type", is_ip_literal(name) ? "ip" : "dns"}, {"value", name}}},
           {"expires", "2030-01-01T00:00:00Z"},
           {"challenges", std::move(challenges)}};
    if (wildcard) a["wildcard"] = true;
    return a;
}

// Records what obtain() asked of it.
struct RecordingSolver : ChallengeSolver {
    std::vector<std::string> types{"http-01"};
    std::vector<std::string> presented;  // "domain type token keyauth"
    std::vector<std::string> cleaned;    // "domain type token"
    Status present_result;

    std::vector<std::string> supported_types() const override { return types; }
    Status present(const std::string& domain, const Challenge& ch, const std::string& ka) override {
        presented.push_back(domain + " " + ch.type + " " + ch.token + " " + ka);
        return present_result;
    }
    void cleanup(const std::string& domain, const Challenge& ch) noexcept override {
        cleaned.push_back(domain + " " + ch.type + " " + ch.token);
    }
};

// A client talking to the scripted CA.
struct AcmeEnv {
    ScriptedHttp http;
    FakeClock clock;
    PrivateKey account_key;
    std::unique_ptr<Client> client;

    explicit AcmeEnv(ClientOptions opts = {})
        : account_key(must(PrivateKey::generate(KeyType::EcP256))) {
        opts.directory_url = kDirUrl;
        auto c = Client::create(http, clock, opts);
        EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().message);
        client = std::move(c).value();
    }

    template <class T>
    static T must(Result<T> r) {
        EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
        return std::move(r).value();
    }

    // The account exists: kid-signed requests from the start.
    void use_account() {
        client->set_account(account_key, kAccountUrl);
        http.set_account(account_key.public_jwk(), kAccountUrl);
    }
    void expect_directory(json dir = directory_json()) {
        http.expect("GET", kDirUrl, 200, dir.dump());
    }
    void expect_nonce() { http.expect("HEAD", kNonceUrl, 200); }
    // directory + first nonce, the prelude of every session.
    void expect_prelude(json dir = directory_json()) {
        expect_directory(std::move(dir));
        expect_nonce();
    }
};

}  // namespace edgecert::acme::testutil
