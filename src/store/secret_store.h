#pragma once
// The Kubernetes backend of the certificate store (DESIGN.md "Secret", "Certificate status"):
//
// - the certificate: Secret <secretName>, type kubernetes.io/tls, tls.crt = leaf + chain, tls.key
//   = PKCS#8, ca.crt = the signing CA (selfSigned / ca issuers only), label
//   edgecert.io/managed=true, annotations edgecert.io/certificate-name, issuer-name, issuer-kind,
//   alt-names, ip-sans (when it has IP SANs; cert-manager's cert-manager.io/ip-sans)
//   (+ spec.secretTemplate). Keys other than tls.crt/tls.key/ca.crt that someone else put in the
//   Secret are kept.
// - the order in flight: Secret <certificateName>-next-key (Opaque, label
//   edgecert.io/pending-order) holding the new key AND the order URL/server/names as annotations,
//   written in ONE request, so a restart never sees a URL without its key or the reverse. The
//   Certificate's status.order {url, keySecretName, state} mirrors it for `kubectl describe`.
// - ACME account keys: the Secret named by privateKeySecretRef, id "namespace/name:key".
//
// Reads go to the API server, not a cache: the store is what a restarted controller trusts.
#include "edgecert/k8s/client.h"
#include "store/cert_store.h"

namespace edgecert::store {

class SecretStore final : public CertificateStore, public AccountKeyStore {
  public:
    SecretStore(k8s::Client& client, std::string field_manager = "edgecert")
        : client_(client), field_manager_(std::move(field_manager)) {}

    static std::string pending_secret_name(const CertificateRef& ref);

    Result<std::optional<StoredCertificate>> load_certificate(const CertificateRef& ref) override;
    Status save_certificate(const CertificateRef& ref, const StoredCertificate& cert,
                            const CertificateMeta& meta) override;
    Result<std::optional<PendingOrder>> load_pending(const CertificateRef& ref) override;
    Status save_pending(const CertificateRef& ref, const PendingOrder& order) override;
    Status clear_pending(const CertificateRef& ref) override;

    // A valid certificate found in an existing Secret (cert-manager made it, or a person): add our
    // label and annotations so the terminators load it, instead of ordering a new one.
    Status adopt(const CertificateRef& ref, const CertificateMeta& meta);

    Result<std::optional<SecretBytes>> load_account_key(const std::string& id) override;
    Status save_account_key(const std::string& id, const SecretBytes& pem) override;

  private:
    // Create the Secret, or PUT it over the current one (read-modify-write, retried on 409).
    // `check` (optional) vets an existing Secret before it is overwritten, on the same read.
    Status upsert(const std::string& ns, const std::string& name,
                  const std::function<void(k8s::json& secret)>& fill,
                  const std::function<Status(const k8s::json& existing)>& check = {});
    void patch_order_status(const CertificateRef& ref, const k8s::json& order);

    k8s::Client& client_;
    std::string field_manager_;
};

}  // namespace edgecert::store
