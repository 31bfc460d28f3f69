#pragma once
// RAII for every OpenSSL handle (convention 2), modelled on BoringSSL's bssl::UniquePtr:
// one deleter per type, so `ossl::UniquePtr<X509>` frees with X509_free. Also helpers that drain
// the OpenSSL error queue into an Error, so every failure says what OpenSSL said.
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>
#include <string_view>

#include "edgecert/base/result.h"

namespace edgecert::ossl {

template <class T>
struct Deleter;

#define EDGECERT_OSSL_DELETER(type, fn) \
    template <>                         \
    struct Deleter<type> {              \
        void operator()(type* p) const { fn(p); } \
    };

EDGECERT_OSSL_DELETER(EVP_PKEY, EVP_PKEY_free)
EDGECERT_OSSL_DELETER(EVP_PKEY_CTX, EVP_PKEY_CTX_free)
EDGECERT_OSSL_DELETER(EVP_MD_CTX, EVP_MD_CTX_free)
EDGECERT_OSSL_DELETER(EVP_CIPHER_CTX, EVP_CIPHER_CTX_free)
EDGECERT_OSSL_DELETER(EVP_MAC, EVP_MAC_free)
EDGECERT_OSSL_DELETER(EVP_MAC_CTX, EVP_MAC_CTX_free)
EDGECERT_OSSL_DELETER(EVP_MD, EVP_MD_free)
EDGECERT_OSSL_DELETER(X509, X509_free)
EDGECERT_OSSL_DELETER(X509_REQ, X509_REQ_free)
EDGECERT_OSSL_DELETER(X509_NAME, X509_NAME_free)
EDGECERT_OSSL_DELETER(X509_EXTENSION, X509_EXTENSION_free)
EDGECERT_OSSL_DELETER(X509_STORE, X509_STORE_free)
EDGECERT_OSSL_DELETER(X509_STORE_CTX, X509_STORE_CTX_free)
EDGECERT_OSSL_DELETER(X509_CRL, X509_CRL_free)
EDGECERT_OSSL_DELETER(GENERAL_NAME, GENERAL_NAME_free)
EDGECERT_OSSL_DELETER(GENERAL_NAMES, GENERAL_NAMES_free)
EDGECERT_OSSL_DELETER(AUTHORITY_KEYID, AUTHORITY_KEYID_free)
// ASN1_INTEGER, ASN1_OCTET_STRING, ASN1_TIME... are all ASN1_STRING (one struct): one deleter.
EDGECERT_OSSL_DELETER(ASN1_STRING, ASN1_STRING_free)
EDGECERT_OSSL_DELETER(ASN1_OBJECT, ASN1_OBJECT_free)
EDGECERT_OSSL_DELETER(BIO, BIO_free_all)
EDGECERT_OSSL_DELETER(BIGNUM, BN_free)
EDGECERT_OSSL_DELETER(BN_CTX, BN_CTX_free)
EDGECERT_OSSL_DELETER(ECDSA_SIG, ECDSA_SIG_free)
EDGECERT_OSSL_DELETER(EC_POINT, EC_POINT_free)
EDGECERT_OSSL_DELETER(SSL_CTX, SSL_CTX_free)
EDGECERT_OSSL_DELETER(SSL, SSL_free)
EDGECERT_OSSL_DELETER(SSL_SESSION, SSL_SESSION_free)
EDGECERT_OSSL_DELETER(OSSL_PARAM_BLD, OSSL_PARAM_BLD_free)
EDGECERT_OSSL_DELETER(OSSL_PARAM, OSSL_PARAM_free)
#undef EDGECERT_OSSL_DELETER

// STACK_OF(X509) owns its certificates.
struct X509StackDeleter {
    void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};
using X509Stack = std::unique_ptr<STACK_OF(X509), X509StackDeleter>;

template <class T>
using UniquePtr = std::unique_ptr<T, Deleter<T>>;

// Pops every queued OpenSSL error and joins them: "lib:reason; lib:reason". Never contains key
// bytes: OpenSSL error strings name functions and reasons only.
inline std::string drain_errors() {
    std::string out;
    unsigned long e;
    const char* data = nullptr;
    int flags = 0;
    while ((e = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) != 0) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        if (!out.empty()) out += "; ";
        out += buf;
        // ERR_TXT_STRING data is added by OpenSSL itself (e.g. "Expecting: CERTIFICATE").
        if ((flags & ERR_TXT_STRING) && data && *data) {
            out += " (";
            out += data;
            out += ")";
        }
    }
    return out;
}

// Error for a failed OpenSSL call: "<what>: <openssl errors>".
inline Error error(std::string_view what, ErrorCode code = ErrorCode::Permanent) {
    std::string detail = drain_errors();
    std::string msg(what);
    if (!detail.empty()) msg += ": " + detail;
    return Error(code, std::move(msg));
}

// Clears the queue (e.g. after the expected PEM_R_NO_START_LINE at the end of a PEM bundle).
inline void clear_errors() { ERR_clear_error(); }

inline std::string bio_to_string(BIO* b) {
    BUF_MEM* mem = nullptr;
    BIO_get_mem_ptr(b, &mem);
    if (!mem || !mem->data) return {};
    return std::string(mem->data, mem->length);
}

// DER encoding through an OpenSSL i2d_* function (i2d_X509, i2d_PUBKEY, ...); "" on failure,
// with the error queue cleared.
template <class T>
std::string i2d_string(int (*i2d)(const T*, unsigned char**), const T* obj) {
    unsigned char* der = nullptr;
    int len = i2d(obj, &der);
    if (len <= 0) {
        clear_errors();
        return {};
    }
    std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
    OPENSSL_free(der);
    return out;
}

inline UniquePtr<BIO> mem_bio(std::string_view data) {
    return UniquePtr<BIO>(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

}  // namespace edgecert::ossl
