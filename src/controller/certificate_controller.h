#pragma once
// CertificateController: Certificate objects → issued, stored, renewed certificates.
//
// reconcile("ns/name") is level-triggered and re-reads everything: the Certificate and its
// issuer from the caches, the Secret and the pending-order record from the API (store/), and
// decides with evaluate() (issuance.h). When issuance is due it publishes Challenge objects for
// the terminators (challenge_publisher.h) and runs or resumes the order on the worker thread;
// for a selfSigned or ca issuer it signs the certificate itself (signing.h). The issuer half
// (Issuer status, ACME accounts, CA key pairs) is in certificate_issuers.cpp.
// Status (DESIGN.md "Certificate status"): conditions Ready / Issuing / RenewalOverdue, notBefore,
// notAfter, renewalTime, revision, failedIssuanceAttempts, lastFailureTime, order, ari. Written
// with a merge patch on the status subresource, and only when it changed (stable writes).
//
// Failures back off like cert-manager (1 h · 2^(n-1), cap 32 h; --failure-backoff-base scales the
// 1 h for tests) with rateLimited's Retry-After taking precedence, and are reported as Warning
// Events `Failed` / `RateLimited` on the Certificate and on the Ingress/Gateway it came from.
// Deleting a Certificate annotated edgecert.io/revoke-on-delete: "true" revokes its certificate
// first (a finalizer holds the delete until then).
//
// Issuer fallback (fallback.h, certificate_fallback.cpp): with spec.fallbackIssuerRefs each
// issuer keeps its own failures and backoff in status.issuerFailures; status.activeIssuerRef is
// the issuer of the attempt under way, status.issuerRef the one that signed the Secret's
// certificate. Leaving an issuer is a Warning Event `FallbackIssuer` and the Issuing reason
// `IssuerFallback`.
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <random>

#include "controller/accounts.h"
#include "controller/context.h"
#include "controller/issuance.h"
#include "controller/runner.h"
#include "pki/pki.h"
#include "store/secret_store.h"

namespace edgecert::controller {

inline constexpr const char* kAnnRevokeOnDelete = "edgecert.io/revoke-on-delete";
inline constexpr const char* kRevokeFinalizer = "edgecert.io/revoke-on-delete";

struct CertificateControllerOptions {
    int workers = 4;
    std::chrono::milliseconds challenge_present_timeout{60'000};
    std::chrono::seconds failure_backoff_base{3600};
    // Upper bound on how long a healthy certificate waits before it is looked at again (ARI
    // polls, clock jumps); its renewal time usually comes first.
    std::chrono::seconds max_requeue{6 * 3600};
    // Defaults for spec.fallbackPolicy (--fallback-after-attempts, --fallback-after-duration,
    // --fallback-max-retry-after).
    FallbackPolicy fallback;
};

class CertificateController {
  public:
    CertificateController(ControllerContext& ctx, AccountManager::HttpFactory http,
                          CertificateControllerOptions opts);
    ~CertificateController();
    CertificateController(const CertificateController&) = delete;
    CertificateController& operator=(const CertificateController&) = delete;

    void register_handlers();  // before the informers start
    void start();
    void stop();

    Result<Requeue> reconcile(const std::string& key);
    Runner& runner() { return *runner_; }

  private:
    struct Resolved {
        json issuer;
        std::string kind;        // Issuer | ClusterIssuer
        std::string issuer_key;  // "Issuer/ns/name" | "ClusterIssuer/name"
        IssuerSpec spec;
        std::string secret_namespace;  // where its Secrets live
    };
    struct CertState {  // for metrics and ARI, per "ns/name"
        std::string issuer_name, issuer_kind;
        std::string secret;  // "namespace/secretName": the terminator's served-certificate name
        // The issuer in use: the one being tried while issuing, else the one that signed the
        // stored certificate (edgecert_certificate_active_issuer); fallback = not the primary.
        std::optional<IssuerRef> active;
        bool active_fallback = false;
        double not_after = 0, renewal = 0;
        bool ready = false, overdue = false;
        std::optional<acme::RenewalInfo> ari;
        std::string ari_serial;  // the certificate the ARI answer is about
    };

    Result<Resolved> resolve_issuer(const CertificateSpec& spec);
    Result<Resolved> resolve_ref(const IssuerRef& ref, const std::string& ns);
    // spec.fallbackIssuerRefs resolved and usable for this certificate; InvalidConfig naming the
    // entry otherwise (an unknown issuer included: found at the first outage would be too late).
    Result<std::vector<Resolved>> resolve_fallbacks(const CertificateSpec& spec);
    // The issuer that signed the certificate in the Secret (its edgecert.io/issuer-* annotations).
    std::optional<IssuerRef> signer_of(const CertificateSpec& spec) const;
    void register_metrics();  // certificate_metrics.cpp
    void count_fallback(const std::string& key, const IssuerRef& from, const IssuerRef& to,
                        const std::string& reason);
    Result<Resolved> resolve_issuer_object(const std::string& kind, const json& obj);
    Result<Requeue> reconcile_issuer(const std::string& key);
    Result<std::shared_ptr<acme::Client>> client_for(const Resolved& r,
                                                     FailureOrigin* origin = nullptr);
    // The key pair of a ca issuer, from its Secret (load_ca()'s errors).
    Result<pki::CaKeyPair> ca_for(const Resolved& r);
    void enqueue_certificates_of(const std::string& kind, const std::string& ns,
                                 const std::string& name);
    void on_ca_secret(const json& secret);
    std::optional<acme::RenewalInfo> ari_for(const std::string& key, acme::Client& client,
                                              const acme::Certificate& leaf);
    Result<Requeue> handle_deletion(const json& cert, const std::string& key);
    void event(const json& cert, std::string_view type, std::string_view reason, const std::string& msg);
    void patch_status(const json& cert, json status);
    void set_metrics(const std::string& key, const CertState& st);
    std::chrono::seconds backoff(int attempts, const std::optional<Error>& err) const;

    ControllerContext& ctx_;
    CertificateControllerOptions opts_;
    AccountManager::HttpFactory http_factory_;  // also builds dns-01 webhook clients
    store::SecretStore store_;
    AccountManager accounts_;
    std::unique_ptr<Runner> runner_;
    std::unique_ptr<Runner> issuer_runner_;  // Issuer/ClusterIssuer status (account registration)
    std::atomic<bool> stopping_{false};
    std::mutex mu_;
    std::mt19937_64 rng_{std::random_device{}()};
    std::map<std::string, CertState> state_;
    std::map<std::string, Error> last_error_;
    std::map<std::string, int> issuer_failures_;  // ca issuers whose key pair is unusable: polls
    std::vector<metrics::ScopedCollector> collectors_;
};

}  // namespace edgecert::controller
