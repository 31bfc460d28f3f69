#pragma once
// Issuance, independent of where specs come from (Certificate/Issuer objects, or the YAML file
// of `edgecert run`, which uses the same field names) and where results go (store/cert_store.h).
//
//   parse_certificate_spec / parse_issuer_spec  CRD-shaped JSON → validated specs (InvalidConfig
//                                               with a message fit for a BadConfig Event)
//   evaluate()                                  is the stored certificate fine, and when to renew
//   issue()                                     ACME: order (or resume) → solve → store
//   issue_signed() (signing.h)                  selfSigned / ca: sign here → store
//
// issue() is crash-safe through the store contract: the new key and order URL are saved the
// moment the CA creates the order; a restart finds them and resumes that order (no second order,
// no key lost); a resumed order that is dead (invalid/expired) is replaced by a new one.
#include <nlohmann/json.hpp>

#include <optional>
#include <random>
#include <string>
#include <vector>

#include "controller/dns_solver.h"
#include "controller/fallback.h"
#include "controller/renewal.h"
#include "edgecert/acme/client.h"
#include "edgecert/acme/crypto.h"
#include "edgecert/acme/order.h"
#include "edgecert/base/clock.h"
#include "edgecert/base/result.h"
#include "pki/pki.h"
#include "store/cert_store.h"

namespace edgecert::controller {

using json = nlohmann::json;

// Certificate spec (deploy/crds/certificates.edgecert.io.yaml).
struct CertificateSpec {
    store::CertificateRef ref;
    // lower-case, sorted, unique; may be empty with ipAddresses or (selfSigned/ca) a commonName
    std::vector<std::string> dns_names;
    std::vector<std::string> ip_addresses;  // RFC 8738: canonical text, sorted, unique
    std::string issuer_name;
    std::string issuer_kind = "Issuer";
    acme::KeyType key_type = acme::KeyType::EcP256;
    bool rotate_key = true;  // privateKey.rotationPolicy: Always (default) | Never
    RenewalSpec renewal;
    std::map<std::string, std::string> secret_labels, secret_annotations;  // secretTemplate
    std::map<std::string, std::string> labels;  // metadata.labels (solver selectors match them)
    // What selfSigned / ca issuers put in the certificate; an ACME CA decides these itself.
    bool is_ca = false;                            // spec.isCA
    pki::Subject subject;                          // spec.subject + spec.commonName
    std::vector<pki::Usage> usages;                // spec.usages
    std::optional<std::chrono::seconds> duration;  // spec.duration (signed here: 90 days if unset)

    pki::CertificateTemplate signing_template() const;

    // edgecert extension (fallback.h): spec.fallbackIssuerRefs, tried in order after the primary
    // (issuer_name/kind) fails on the CA's side; spec.fallbackPolicy says when.
    std::vector<IssuerRef> fallback_issuers;
    FallbackPolicySpec fallback_policy;

    IssuerRef issuer_ref() const {
        return IssuerRef{issuer_name, issuer_kind, std::string(kGroup)};
    }
    // The primary, then the fallbacks.
    std::vector<IssuerRef> issuer_chain() const;
};

// One entry of spec.acme.solvers with its selector (cert-manager's ACMEChallengeSolver).
struct SolverSpec {
    std::string type;  // "http-01" | "tls-alpn-01" | "dns-01"
    std::map<std::string, std::string> match_labels;
    std::vector<std::string> dns_names, dns_zones;
    Dns01Config dns01;  // type "dns-01": the rfc2136 / webhook settings (dns_solver.h)
};

// spec of an Issuer/ClusterIssuer with `acme` (deploy/crds/issuers.edgecert.io.yaml). Secrets the
// spec references (account key, EAB HMAC) are resolved by the caller.
struct AcmeIssuerSpec {
    std::string server;
    std::string ca_bundle_pem;  // PEM to trust for the ACME endpoint; empty: system roots
    bool skip_tls_verify = false;
    std::string email;
    std::string private_key_secret_name;  // privateKeySecretRef.name
    std::string private_key_secret_key = "tls.key";
    bool disable_account_key_generation = false;
    std::string eab_key_id;
    std::string eab_secret_name, eab_secret_key;  // externalAccountBinding.keySecretRef
    std::string preferred_chain;
    std::string profile;
    // Challenge types the solvers offer, in preference order: "http-01", "tls-alpn-01".
    std::vector<std::string> challenge_types;
    std::vector<SolverSpec> solvers;  // as listed; empty list = both terminator-answered types
};

// Which issuer an Issuer/ClusterIssuer spec (or an `edgecert run` issuer entry) is.
enum class IssuerType { Acme, SelfSigned, Ca };
std::string_view to_string(IssuerType t);  // "acme", "selfSigned", "ca"

struct IssuerSpec {
    IssuerType type = IssuerType::Acme;
    AcmeIssuerSpec acme;         // type Acme
    std::string ca_secret_name;  // type Ca: spec.ca.secretName
};

// Exactly one of spec.acme, spec.selfSigned, spec.ca (InvalidConfig otherwise).
Result<IssuerSpec> parse_issuer_spec(const json& issuer_spec);
// What a certificate asks that its issuer cannot give: an ACME CA validates DNS names (so
// spec.dnsNames is required) and does not issue CA certificates (spec.isCA). InvalidConfig.
Status check_certificate_for_issuer(const CertificateSpec& spec, const IssuerSpec& issuer);

// The challenge types to offer for a certificate: the solver whose selector matches every one of
// its names most specifically (cert-manager's order: dnsNames > longest dnsZones > more
// matchLabels > no selector; the first listed wins a tie). A certificate with a wildcard name
// only considers dns01 solvers (RFC 8555 §7.1.3), one with an IP address never considers them
// (RFC 8738 §7; an address matches selector.dnsNames when listed there, never dnsZones).
// InvalidConfig when none matches.
Result<std::vector<std::string>> challenge_types_for(
    const AcmeIssuerSpec& issuer, const std::map<std::string, std::string>& cert_labels,
    const std::vector<std::string>& dns_names, const std::vector<std::string>& ip_addresses = {});
// The same choice, returning the solver itself (its dns01 settings); nullptr when the issuer
// lists no solvers (both terminator-answered types then).
Result<const SolverSpec*> select_solver(const AcmeIssuerSpec& issuer,
                                        const std::map<std::string, std::string>& cert_labels,
                                        const std::vector<std::string>& dns_names,
                                        const std::vector<std::string>& ip_addresses = {});

// `obj` is the whole object (metadata used for ref) or, with ns/name given, a bare spec holder
// {"spec": ...}. Namespace "" is fine (edgecert run).
Result<CertificateSpec> parse_certificate_spec(const json& obj);
// spec.acme of an issuer; InvalidConfig when it has no acme block or a field is wrong.
Result<AcmeIssuerSpec> parse_acme_issuer(const json& issuer_spec);

// Why a certificate must be issued now (cert-manager's Issuing condition reasons).
// RequestChanged / IncorrectIssuer: only for certificates signed here (signing.h).
enum class IssueReason {
    None,
    DoesNotExist,
    InvalidCertificate,
    SANsChanged,
    KeyMismatch,
    Renewing,
    Expired,
    RequestChanged,
    IncorrectIssuer,
    ManuallyTriggered  // `edgecert renew NAME`: condition Issuing=True, reason ManuallyTriggered
};
// The reason of the Issuing condition that asks for a new certificate now (cmctl renew's).
inline constexpr const char* kManuallyTriggered = "ManuallyTriggered";
std::string_view to_string(IssueReason r);
// Whether a valid stored certificate stays in service (Ready True) while issuance for `r` runs:
// a renewal or a change of request, not a missing, broken or expired certificate.
bool keeps_serving(IssueReason r);

struct Evaluation {
    IssueReason reason = IssueReason::None;
    std::string detail;                  // human text for the condition / Event
    std::optional<acme::Certificate> leaf;  // the stored leaf when it parsed
    std::optional<RenewalDecision> renewal;  // when a valid leaf exists
};

// `previous_renewal_time`: a time chosen earlier for this same certificate (status.renewalTime);
// kept while it still lies inside the ARI window, so each reconcile does not roll the dice again.
Evaluation evaluate(const CertificateSpec& spec, const std::optional<store::StoredCertificate>& stored,
                    const std::optional<acme::RenewalInfo>& ari,
                    std::optional<SystemTime> previous_renewal_time, std::mt19937_64& rng,
                    SystemTime now);
// A renewal asked for by hand (`edgecert renew`): a valid certificate that is not due yet is
// renewed now (reason ManuallyTriggered). Any other reason to issue already wins.
void apply_manual_renewal(Evaluation& ev);

struct IssueRequest {
    const CertificateSpec* spec = nullptr;
    const AcmeIssuerSpec* issuer = nullptr;
    // The certificate in service (renewal): its key is reused when rotate_key is false, and its
    // ARI certID goes into `replaces` when the CA offers ARI and issued it (`current_from_issuer`:
    // a certID means nothing to another CA, which would refuse the order).
    std::optional<store::StoredCertificate> current;
    bool current_from_issuer = true;
    // The issuer this attempt uses (a fallback, or the primary when unset): it is named in the
    // Secret's edgecert.io/issuer-* annotations and in the pending-order record.
    std::optional<IssuerRef> issuer_ref;
    // Set on failure: whether the CA failed, or our side (store, challenge publishing).
    FailureOrigin* origin = nullptr;
};

struct IssueResult {
    acme::ObtainResult obtained;  // signed here: chain and chain_pem only
    bool resumed = false;  // a pending order from an earlier run was completed
    std::string replaced_cert_id;
    // Signed here and cut short by the CA certificate's notAfter: the notAfter asked for.
    std::optional<SystemTime> clamped_from;
};

// What the Secret records about the certificate (issuer, names, secretTemplate).
store::CertificateMeta secret_meta(const CertificateSpec& spec);

// The private key for a new certificate: the current one when spec.privateKey.rotationPolicy is
// Never and it has the requested type, else a fresh one.
Result<acme::PrivateKey> key_for_issuance(const CertificateSpec& spec,
                                          const std::optional<store::StoredCertificate>& current);

// Runs or resumes the order and stores the result. Errors keep their codes (RateLimited with
// retry_after, Transient, Permanent...). A pending order survives Transient/RateLimited errors
// so the next attempt resumes it; it is dropped when it can no longer succeed.
Result<IssueResult> issue(acme::Client& client, acme::ChallengeSolver& solver,
                          store::CertificateStore& store, const IssueRequest& req, Clock& clock);

}  // namespace edgecert::controller
