#pragma once
// The local-directory store of `edgecert run` (and the layout `edgecert issue` writes):
//
//   ROOT/certs/<secretName>/tls.crt           leaf + chain (0644)
//   ROOT/certs/<secretName>/tls.key           PKCS#8 (0600), written before tls.crt
//   ROOT/certs/<secretName>/ca.crt            the signing CA (selfSigned / ca issuers only)
//   ROOT/certs/<secretName>/certificate.json  metadata (issuer, names): rebuilt on each issue
//   ROOT/certs/<secretName>/status.json       what `edgecert run` knows (Ready, last failure,
//                                             next renewal) for `edgecert status --store`
//   ROOT/certs/<secretName>/.pending/         order.json + tls.key (0600) of an order in flight
//   ROOT/accounts/<id>/account.key            ACME account key (0600)
//
// ROOT/certs is what the terminator's directory source watches: one folder per certificate,
// the same shape as a mounted kubernetes.io/tls Secret. Every write is temp file + fsync +
// rename, with one directory fsync per batch.
#include <memory>
#include <string>

#include "store/cert_store.h"

namespace edgecert::store {

class DirStore final : public CertificateStore, public AccountKeyStore {
  public:
    // Creates ROOT, ROOT/certs and ROOT/accounts (0700) if needed.
    static Result<std::unique_ptr<DirStore>> create(std::string root);

    const std::string& root() const { return root_; }
    std::string certs_dir() const { return root_ + "/certs"; }
    std::string cert_dir(const CertificateRef& ref) const;

    Result<std::optional<StoredCertificate>> load_certificate(const CertificateRef& ref) override;
    Status save_certificate(const CertificateRef& ref, const StoredCertificate& cert,
                            const CertificateMeta& meta) override;
    Result<std::optional<PendingOrder>> load_pending(const CertificateRef& ref) override;
    Status save_pending(const CertificateRef& ref, const PendingOrder& order) override;
    Status clear_pending(const CertificateRef& ref) override;
    // ROOT/certs/<secretName>/status.json (0644, not secret): replaced atomically, no fsync
    // (rewritten at the next change).
    Status save_status(const CertificateRef& ref, std::string_view json);

    Result<std::optional<SecretBytes>> load_account_key(const std::string& id) override;
    Status save_account_key(const std::string& id, const SecretBytes& pem) override;

  private:
    explicit DirStore(std::string root) : root_(std::move(root)) {}
    std::string root_;
};

}  // namespace edgecert::store
