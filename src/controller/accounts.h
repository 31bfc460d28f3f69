#pragma once
// ACME accounts per issuer: one acme::Client per (issuer, server, account key), created on first
// use and shared by every certificate of that issuer (acme::Client is thread-safe). The account
// key is loaded from the AccountKeyStore, or generated and saved BEFORE the CA ever sees it (a
// registered account whose key was lost cannot be recovered), then registered or looked up with
// ensure_account().
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "controller/issuance.h"
#include "edgecert/acme/client.h"
#include "edgecert/base/http.h"
#include "store/cert_store.h"

namespace edgecert::controller {

struct AccountRequest {
    std::string issuer_key;      // "Issuer/ns/name", "ClusterIssuer/name", "run/name": cache key
    const AcmeIssuerSpec* spec = nullptr;
    std::string account_key_id;  // AccountKeyStore id
    std::optional<SecretBytes> eab_hmac;  // raw key (base64url-decoded), when EAB is configured
};

class AccountManager {
  public:
    // An HttpClient for one issuer's ACME endpoint (its caBundle); lives as long as its Client.
    using HttpFactory = std::function<Result<std::unique_ptr<HttpClient>>(const AcmeIssuerSpec&)>;

    AccountManager(store::AccountKeyStore& keys, HttpFactory http, Clock& clock,
                   acme::ClientOptions base_options = {})
        : keys_(keys), http_(std::move(http)), clock_(clock), base_(std::move(base_options)) {}

    // The client for this issuer, registered. A changed spec (server, email, key reference,
    // caBundle) builds a new one. Errors: InvalidConfig (no key and generation disabled, EAB
    // required but missing, account deactivated), Transient/RateLimited from the CA. `origin`
    // (optional) says whether a failure came from the CA or from our side (the key store).
    Result<std::shared_ptr<acme::Client>> client_for(const AccountRequest& req,
                                                     FailureOrigin* origin = nullptr);
    // Forget an issuer (deleted or changed).
    void forget(const std::string& issuer_key);
    // The registered account URL, if any (for Issuer status).
    std::string account_url(const std::string& issuer_key) const;

  private:
    struct Entry {
        std::string fingerprint;  // spec fields the client depends on
        std::unique_ptr<HttpClient> http;
        std::shared_ptr<acme::Client> client;
    };
    store::AccountKeyStore& keys_;
    HttpFactory http_;
    Clock& clock_;
    acme::ClientOptions base_;
    mutable std::mutex mu_;  // held across creation: creating one account at a time is fine
    std::map<std::string, Entry> entries_;
};

}  // namespace edgecert::controller
