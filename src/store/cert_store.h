#pragma once
// Where the controller keeps what it must never lose: the issued certificate with its key, the
// order in flight with its new key, and the ACME account keys. Two backends: Kubernetes
// (Secrets + Certificate status; secret_store.h) and a local directory (dir_store.h, the store of
// `edgecert run`). The issuance code (src/controller/issuance.h) only sees this interface.
//
// Crash-safety contract, relied on by issuance: save_pending() returns only once the key and the
// order URL are durable; save_certificate() writes key before certificate, so a reader that sees
// the new certificate also sees its key; clear_pending() comes after save_certificate().
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "edgecert/base/result.h"
#include "edgecert/base/secret.h"

namespace edgecert::store {

// Names one certificate: namespace ("" off Kubernetes), the Certificate's name, and where its
// material goes (Secret name / folder name).
struct CertificateRef {
    std::string namespace_;
    std::string name;
    std::string secret_name;
    std::string key() const { return namespace_.empty() ? name : namespace_ + "/" + name; }
};

struct StoredCertificate {
    std::string cert_pem;  // leaf + chain, no root (the kubernetes.io/tls tls.crt)
    SecretBytes key_pem;   // PKCS#8 (tls.key)
    // ca.crt: the CA that signed it, for clients to trust (selfSigned / ca issuers; empty for
    // ACME, whose roots clients already have). Empty removes a ca.crt left from an earlier issuer.
    std::string ca_pem;
};

// Written with a certificate, for people and for other tools (DESIGN.md "Secret").
struct CertificateMeta {
    std::string issuer_name;
    std::string issuer_kind;  // Issuer | ClusterIssuer (edgecert run: Issuer)
    std::vector<std::string> dns_names;
    std::vector<std::string> ip_addresses;                 // RFC 8738, canonical text
    std::map<std::string, std::string> extra_labels;       // spec.secretTemplate
    std::map<std::string, std::string> extra_annotations;  // spec.secretTemplate
};

// An order the CA created and we have not finished: resumed instead of ordering again.
struct PendingOrder {
    std::string server;                  // ACME directory URL it belongs to
    // The issuer that placed it ("ClusterIssuer/name"; "" in records written before issuer
    // fallback existed): the order is resumed with that issuer only (controller/fallback.h).
    std::string issuer;
    std::vector<std::string> dns_names;  // sorted
    std::vector<std::string> ip_addresses;  // sorted, canonical text
    std::string order_url;
    SecretBytes key_pem;  // the key the CSR will be signed with
};

class CertificateStore {
  public:
    virtual ~CertificateStore() = default;
    // nullopt: nothing stored yet. A stored object that lacks tls.crt/tls.key is reported as
    // present with the empty field (the caller treats it as invalid and re-issues).
    virtual Result<std::optional<StoredCertificate>> load_certificate(const CertificateRef& ref) = 0;
    virtual Status save_certificate(const CertificateRef& ref, const StoredCertificate& cert,
                                    const CertificateMeta& meta) = 0;

    virtual Result<std::optional<PendingOrder>> load_pending(const CertificateRef& ref) = 0;
    virtual Status save_pending(const CertificateRef& ref, const PendingOrder& order) = 0;
    virtual Status clear_pending(const CertificateRef& ref) = 0;
};

// ACME account keys, one per (issuer, server). `id` names the account: the Secret named by
// privateKeySecretRef ("namespace/name[:key]") on Kubernetes, the issuer name locally.
class AccountKeyStore {
  public:
    virtual ~AccountKeyStore() = default;
    virtual Result<std::optional<SecretBytes>> load_account_key(const std::string& id) = 0;
    // Must be durable before it returns: the key is saved before the CA ever sees it.
    virtual Status save_account_key(const std::string& id, const SecretBytes& pem) = 0;
};

}  // namespace edgecert::store
