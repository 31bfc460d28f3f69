#pragma once
// RFC 8555 ACME client: one CA directory, one account. All I/O goes through the injected
// HttpClient and every wait through Clock::sleep_for (DESIGN.md convention 6), so a whole order
// flow runs against a scripted fake in no real time.
//
// What it does for every request:
//  - keeps a pool of nonces (Replay-Nonce from every response, newest used first; HEAD newNonce
//    when empty, §7.2);
//  - signs each POST with the account key: "jwk" before the account exists, "kid" after (§6.2);
//  - retries badNonce with the nonce the error response carried (§6.5), up to
//    max_bad_nonce_retries times;
//  - retries transport errors and HTTP 5xx (serverInternal included) up to max_transient_retries
//    times, waiting Retry-After (≤ 30 s) or 1 s, 2 s, 4 s...; other errors go to the caller;
//  - maps every error response to an Error (problem.h); nlohmann exceptions never escape.
//
// Thread-safe: one Client (per CA and account) may be shared by workers; the nonce pool, cached
// directory and account are guarded, and no lock is held across I/O or waits. The HttpClient and
// Clock must outlive the Client (and be thread-safe themselves when shared).
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "edgecert/acme/ari.h"
#include "edgecert/acme/crypto.h"
#include "edgecert/acme/types.h"
#include "edgecert/base/clock.h"
#include "edgecert/base/http.h"
#include "edgecert/base/result.h"
#include "edgecert/base/secret.h"

namespace edgecert::acme {

// One HTTP exchange, reported to ClientOptions::on_request (metrics, debug logs). `resource` is
// a low-cardinality label: directory, newNonce, newAccount, account, keyChange, newOrder, order,
// authz, challenge, finalize, certificate, revokeCert, renewalInfo. `status` 0: transport error.
struct RequestEvent {
    std::string_view method;
    std::string_view resource;
    int status = 0;
    std::string_view problem_type;  // the error response's problem type, if any
    std::chrono::milliseconds duration{0};
};

struct ClientOptions {
    std::string directory_url;
    std::chrono::milliseconds request_timeout{30'000};  // per HTTP request
    // Overall bound for wait_authorization / wait_order (→ Transient "timed out after ...").
    std::chrono::milliseconds poll_deadline{std::chrono::minutes(5)};
    int max_bad_nonce_retries = 10;
    int max_transient_retries = 3;
    std::string user_agent;  // default: edgecert/<version>
    // Optional: set to true (e.g. at shutdown) to make every pending request and wait return a
    // Transient "cancelled" error at the next request or within a second of sleeping.
    const std::atomic<bool>* cancel = nullptr;
    // Called after every HTTP exchange, on the calling thread. Must not call back into the Client.
    std::function<void(const RequestEvent&)> on_request;
};

// RFC 8555 §7.3 newAccount request.
struct NewAccountOptions {
    std::vector<std::string> contacts;  // "mailto:admin@example.com"
    bool terms_of_service_agreed = false;
    bool only_return_existing = false;  // §7.3.1: look up, never create
    // §7.3.4 external account binding; used when eab_kid is non-empty. The HMAC key is the raw
    // key (base64url-decoded by the caller).
    std::string eab_kid;
    SecretBytes eab_hmac_key;
};

// RFC 8555 §7.4 newOrder request.
struct NewOrderOptions {
    std::vector<std::string> dns_names;  // "example.com", "*.example.com"
    // RFC 8738 "ip" identifiers: IP literals in any textual form, sent canonical (canonical_ip).
    // An IP literal among dns_names, or a malformed address here, is InvalidConfig, before
    // anything is sent.
    std::vector<std::string> ip_addresses;
    // Profiles draft: must be one of Directory::meta.profiles when the CA lists any
    // (InvalidConfig otherwise, before anything is sent). Empty: the CA's default.
    std::string profile;
    std::string replaces;  // RFC 9773 §5: ARI certID of the certificate this order replaces
    std::optional<SystemTime> not_before;
    std::optional<SystemTime> not_after;
};

// One certificate chain as the CA served it (§7.4.2): leaf first.
struct CertChain {
    std::string url;
    std::string pem;  // exactly as downloaded
    std::vector<Certificate> certs;
};

// RFC 5280 §5.3.1 CRLReason codes accepted by revokeCert (§7.6).
enum class RevocationReason : int {
    Unspecified = 0,
    KeyCompromise = 1,
    AffiliationChanged = 3,
    Superseded = 4,
    CessationOfOperation = 5,
};

class Client {
  public:
    static Result<std::unique_ptr<Client>> create(HttpClient& http, Clock& clock,
                                                  ClientOptions opts);
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    // §7.1.1: fetched on first use, then cached.
    Result<Directory> directory();

    // ---- account (§7.3) --------------------------------------------------------------------
    // Registers (or, with only_return_existing, looks up) the account for `key`. On success the
    // client uses `key` and the returned URL (kid) for every later request.
    Result<Account> new_account(const PrivateKey& key, const NewAccountOptions& opts);
    // Use a persisted account without contacting the CA.
    void set_account(const PrivateKey& key, std::string account_url);
    bool has_account() const;
    std::string account_url() const;                // empty before new_account/set_account
    std::optional<PrivateKey> account_key() const;  // nullopt before new_account/set_account

    Result<Account> fetch_account();  // POST-as-GET to the account URL
    Result<Account> update_contacts(const std::vector<std::string>& contacts);  // §7.3.2
    Result<Account> deactivate_account();                                       // §7.3.6
    // §7.3.5 key rollover; on success the client signs with new_key from then on.
    Status key_change(const PrivateKey& new_key);

    // RFC 8555 §8.1 key authorization for a challenge token with the current account key.
    Result<std::string> key_authorization(std::string_view token) const;

    // ---- orders (§7.4) ---------------------------------------------------------------------
    Result<Order> new_order(const NewOrderOptions& opts);
    Result<Order> get_order(const std::string& url);
    Result<Authorization> get_authorization(const std::string& url);
    Result<Challenge> accept_challenge(const Challenge& ch);                 // §7.5.1: POST {}
    Result<Authorization> deactivate_authorization(const std::string& url);  // §7.5.2

    // Polls (POST-as-GET) until the authorization leaves "pending". The first fetch is
    // immediate; between polls it sleeps Retry-After clamped to [1 s, 30 s], or 0.25, 0.5, 1, 2,
    // 4, 8, 10, 10... s when there is none; gives up after poll_deadline (Transient "timed out
    // after ...").
    // "invalid" → the failing challenge's problem as the Error (Permanent, type = its URN).
    Result<Authorization> wait_authorization(const std::string& url);
    // Same polling while the order is "pending" or "processing"; invalid/expired → order_error().
    Result<Order> wait_order(const std::string& url);

    // §7.4: finalize with a DER CSR (sent base64url). Returns the order as the CA answered.
    Result<Order> finalize(const Order& order, std::string_view csr_der);

    // §7.4.2: downloads the certificate (Accept: application/pem-certificate-chain); with
    // `alternates` also every Link: <url>;rel="alternate" chain. The default chain is first.
    Result<std::vector<CertChain>> download_certificate(const std::string& url,
                                                        bool alternates = true);

    // §7.6 revocation by the account key (kid).
    Status revoke(const Certificate& cert, std::optional<RevocationReason> reason = std::nullopt);
    // §7.6 revocation signed by the certificate's own key (jwk) - no account needed.
    Status revoke_with_cert_key(const Certificate& cert, const PrivateKey& cert_key,
                                std::optional<RevocationReason> reason = std::nullopt);

    // ---- ARI (RFC 9773) --------------------------------------------------------------------
    bool supports_ari();  // the directory has renewalInfo
    // GET <renewalInfo>/<certID>. NotFound-coded Error when the CA has no ARI.
    Result<RenewalInfo> renewal_info(const Certificate& cert);

    Clock& clock() const;
    const ClientOptions& options() const;

    struct Impl;

  private:
    explicit Client(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// Preferred-chain selection (lego / cert-manager semantics): the first chain whose topmost
// certificate's issuer CN equals `preferred_issuer_cn`; the first (default) chain otherwise or
// when `preferred_issuer_cn` is empty. `chains` must not be empty.
const CertChain& select_chain(const std::vector<CertChain>& chains,
                              std::string_view preferred_issuer_cn);

// The Error for an authorization that is neither pending nor valid: the failing challenge's
// problem (Permanent unless the CA failed internally), or "authorization for X is <status>".
Error authorization_error(const Authorization& a);

// The Error for an order that can no longer succeed (§7.1.6: invalid, expired, deactivated):
// Permanent (RateLimited if that was the cause) carrying the order's problem; nullopt otherwise.
std::optional<Error> order_error(const Order& order);

// Parses the Link header values of a response and returns the targets with rel="<rel>".
std::vector<std::string> parse_link_headers(const std::vector<std::string>& values,
                                            std::string_view rel);

}  // namespace edgecert::acme
