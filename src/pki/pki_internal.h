#pragma once
// Shared between the two halves of src/pki (template.cpp: what comes from the spec; sign.cpp:
// building and signing). Not for use outside src/pki.
#include <set>

#include "pki/pki.h"

// RAII for the two extension structs only src/pki builds (ossl::UniquePtr, as for every other
// OpenSSL handle; declared here rather than in base/ossl.h, which every file includes).
namespace edgecert::ossl {
template <>
struct Deleter<BASIC_CONSTRAINTS> {
    void operator()(BASIC_CONSTRAINTS* p) const { BASIC_CONSTRAINTS_free(p); }
};
// EXTENDED_KEY_USAGE is a STACK_OF(ASN1_OBJECT) that owns its objects.
template <>
struct Deleter<EXTENDED_KEY_USAGE> {
    void operator()(EXTENDED_KEY_USAGE* s) const { sk_ASN1_OBJECT_pop_free(s, ASN1_OBJECT_free); }
};
}  // namespace edgecert::ossl

namespace edgecert::pki {

// keyUsage as RFC 5280 bit numbers (bit n = 1 << n) and the extKeyUsage purposes by NID.
struct UsageBits {
    unsigned key_usage = 0;
    std::set<int> eku;
    bool operator==(const UsageBits&) const = default;
};

Result<ossl::UniquePtr<X509_NAME>> build_name(const Subject& s);
// What `t` asks for with `key` (defaults and isCA's cert sign applied).
UsageBits usage_bits(const CertificateTemplate& t, const acme::PrivateKey& key);
UsageBits usage_bits_of(const acme::Certificate& cert);
Status add_usage_extensions(X509* x, const UsageBits& b);
bool is_ca(const acme::Certificate& cert);

}  // namespace edgecert::pki
