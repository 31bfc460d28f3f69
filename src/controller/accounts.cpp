#include "controller/accounts.h"

#include <spdlog/spdlog.h>

#include "edgecert/acme/crypto.h"
#include "edgecert/acme/order.h"

namespace edgecert::controller {

Result<std::shared_ptr<acme::Client>> AccountManager::client_for(const AccountRequest& req,
                                                                 FailureOrigin* origin) {
    const AcmeIssuerSpec& s = *req.spec;
    if (origin) *origin = FailureOrigin::Local;
    std::string fp = s.server + "\n" + s.email + "\n" + req.account_key_id + "\n" + s.eab_key_id + "\n" +
                     acme::sha256(s.ca_bundle_pem);
    std::lock_guard lk(mu_);
    auto it = entries_.find(req.issuer_key);
    if (it != entries_.end() && it->second.fingerprint == fp && it->second.client->has_account())
        return it->second.client;

    EC_TRY_ASSIGN(auto stored, keys_.load_account_key(req.account_key_id));
    std::optional<acme::PrivateKey> key;
    if (stored) {
        auto k = acme::PrivateKey::from_pem(stored->reveal());
        if (!k) return Error(ErrorCode::InvalidConfig, "the ACME account key in " + req.account_key_id +
                                                           " is not a usable private key");
        key = std::move(*k);
    } else {
        if (s.disable_account_key_generation)
            return Error(ErrorCode::InvalidConfig, "no ACME account key in " + req.account_key_id +
                                                       " and disableAccountKeyGeneration is set");
        EC_TRY_ASSIGN(key, acme::PrivateKey::generate(acme::KeyType::EcP256));
        if (auto st = keys_.save_account_key(req.account_key_id, key->to_pem()); !st) {
            Error e = st.error();
            e.context("saving the new ACME account key");
            return e;
        }
        spdlog::info("issuer {}: generated a new ACME account key, saved to {}", req.issuer_key, req.account_key_id);
    }

    EC_TRY_ASSIGN(auto http, http_(s));
    acme::ClientOptions o = base_;
    o.directory_url = s.server;
    EC_TRY_ASSIGN(auto client, acme::Client::create(*http, clock_, o));
    acme::NewAccountOptions na;
    if (!s.email.empty()) na.contacts = {"mailto:" + s.email};
    na.terms_of_service_agreed = true;
    if (!s.eab_key_id.empty()) {
        if (!req.eab_hmac) return Error(ErrorCode::InvalidConfig, "externalAccountBinding: the HMAC key Secret is missing");
        na.eab_kid = s.eab_key_id;
        na.eab_hmac_key = *req.eab_hmac;
    }
    auto acct = acme::ensure_account(*client, *key, na);
    if (!acct) {
        if (origin) *origin = FailureOrigin::Ca;
        Error e = acct.error();
        e.context("ACME account at " + s.server);
        return e;
    }
    spdlog::info("issuer {}: ACME account {}", req.issuer_key, acct->url);
    Entry e{fp, std::move(http), std::shared_ptr<acme::Client>(std::move(client))};
    auto c = e.client;
    entries_[req.issuer_key] = std::move(e);
    return c;
}

void AccountManager::forget(const std::string& issuer_key) {
    std::lock_guard lk(mu_);
    entries_.erase(issuer_key);
}

std::string AccountManager::account_url(const std::string& issuer_key) const {
    std::lock_guard lk(mu_);
    auto it = entries_.find(issuer_key);
    return it == entries_.end() ? std::string() : it->second.client->account_url();
}

}  // namespace edgecert::controller
