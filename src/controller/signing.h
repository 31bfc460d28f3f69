#pragma once
// Issuance by the `selfSigned` and `ca` issuers: the certificate is signed here (src/pki), with
// no CA to talk to. One code path for the controller (CA key pair from a Secret) and for
// `edgecert run` (from its store or from files): callers only say where the CA material is.
//
//   load_ca()       the CA key pair of a `ca` issuer, validated, with cert-manager's Issuer
//                   reasons: ErrGetKeyPair (missing Secret / tls.crt / tls.key), ErrInvalidKeyPair
//                   (a key that does not match, not a CA, expired)
//   check_signed()  after evaluate(): is the valid stored certificate still what the spec and
//                   the issuer would produce (RequestChanged / IncorrectIssuer)
//   issue_signed()  key (rotation policy) → sign → store (tls.crt, tls.key, ca.crt)
//
// What happens to leaves when their CA certificate is renewed: a leaf whose ca.crt is not the
// issuer's current CA certificate (the CA was renewed, with a new key or the same one) is
// re-issued at its next reconcile (IncorrectIssuer), so every leaf Secret carries a ca.crt that
// is valid and chains. cert-manager leaves them until their own renewal (its issue #2478).
#include <optional>
#include <string>

#include "controller/issuance.h"
#include "pki/pki.h"

namespace edgecert::controller {

// cert-manager's CA Issuer condition reasons and messages (pkg/issuer/ca/setup.go).
inline constexpr const char* kReasonKeyPairVerified = "KeyPairVerified";
inline constexpr const char* kMessageKeyPairVerified = "Signing CA verified";
inline constexpr const char* kReasonGetKeyPair = "ErrGetKeyPair";
inline constexpr const char* kReasonInvalidKeyPair = "ErrInvalidKeyPair";
inline constexpr const char* kReasonSelfSignedReady = "IsReady";

// What a `ca` issuer's Secret (or `edgecert run`'s files) holds. `where` names it in messages
// ("Secret edgecert-system/root-ca"); nothing is read here.
struct CaMaterial {
    std::string where;
    bool exists = false;
    std::optional<std::string> tls_crt;
    std::optional<SecretBytes> tls_key;
    std::string ca_crt;  // optional
};

// NotFound for what is missing (reason ErrGetKeyPair), InvalidConfig for what is wrong
// (ErrInvalidKeyPair). Messages follow cert-manager's: "Error getting keypair for CA issuer: ..."
// / "Invalid signing key pair: ...".
Result<pki::CaKeyPair> load_ca(const CaMaterial& m, SystemTime now);
const char* ca_reason(const Error& load_ca_error);
// How long a ca issuer with an unusable key pair waits before looking again, after `attempts`
// failed looks: 2 s doubling to 5 min. The Secret (or file) may be created or fixed without any
// event edgecert sees, and looking faster would only repeat the same answer.
std::chrono::milliseconds ca_retry_delay(int attempts);

// The signer of a certificate signed here: a CA key pair, or none (selfSigned).
struct Signer {
    IssuerType type = IssuerType::SelfSigned;
    const pki::CaKeyPair* ca = nullptr;  // type Ca
};

// For an Evaluation that found nothing to do: re-issue when the stored certificate no longer has
// what the spec asks (isCA, usages, subject: RequestChanged) or was not signed by what the issuer
// signs with now (IncorrectIssuer; see above). `signer.ca` null with type Ca: the CA is not
// loadable right now, so only the spec is compared.
void check_signed(Evaluation& ev, const CertificateSpec& spec,
                  const store::StoredCertificate& stored, const Signer& signer);

// Signs a new certificate for `req.spec` and stores it with its key and ca.crt. `req.current`
// supplies the key when rotationPolicy is Never. InvalidConfig when the spec cannot be encoded.
Result<IssueResult> issue_signed(store::CertificateStore& store, const IssueRequest& req,
                                 const Signer& signer, Clock& clock);

// The tail of an Issued/Renewed Event when the CA certificate cut the requested lifetime short.
std::string clamp_note(const IssueResult& r);

}  // namespace edgecert::controller
