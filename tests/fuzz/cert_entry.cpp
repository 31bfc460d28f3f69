// What a Secret (or a store folder) may hold: tls.crt and tls.key as parse_cert_entry loads them
// (src/tls/cert_entry.cpp), including the hand-written direct PKCS#8 / SEC1 / PKCS#1 key decoders
// and the fast certificate/key match.
//
// Input: tls.crt bytes, a NUL byte, tls.key bytes (no NUL: all of it is tls.crt, tls.key empty).
// The clock is fixed inside the seeds' validity (2024-2124), so replays do not age.
// Invariants: an accepted entry's key really is the certificate's key (a signature made with it
// verifies with the leaf's public key: "a bad Secret never replaces a good one" depends on it);
// validity and names are as reported; an error message never carries a line of the key text.
#include <openssl/evp.h>

#include <cctype>

#include "tests/fuzz/fuzz_util.h"
#include "tls/cert_entry.h"

using namespace edgecert;
using namespace edgecert::tls;

namespace {

const FakeClock& fixed_clock() {
    static const FakeClock* c =
        new FakeClock(SystemTime(std::chrono::seconds(1'893'456'000)));  // 2030-01-01
    return *c;
}

// Signs a fixed message with the entry's key and verifies it with the leaf's public key.
bool key_signs_for_leaf(const CertEntry& e) {
    static const unsigned char msg[] = "edgecert fuzz: does the key belong to the certificate?";
    ossl::UniquePtr<EVP_MD_CTX> sctx(EVP_MD_CTX_new()), vctx(EVP_MD_CTX_new());
    unsigned char sig[1024];
    size_t sig_len = sizeof sig;
    if (EVP_DigestSignInit(sctx.get(), nullptr, EVP_sha256(), nullptr, e.key.get()) != 1 ||
        EVP_DigestSign(sctx.get(), sig, &sig_len, msg, sizeof msg) != 1)
        return false;
    EVP_PKEY* pub = X509_get0_pubkey(e.leaf.get());
    return pub && EVP_DigestVerifyInit(vctx.get(), nullptr, EVP_sha256(), nullptr, pub) == 1 &&
           EVP_DigestVerify(vctx.get(), sig, sig_len, msg, sizeof msg) == 1;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in = fuzz::as_view(data, size);
    size_t nul = in.find('\0');
    std::string_view crt = in.substr(0, nul);
    std::string_view key = nul == std::string_view::npos ? std::string_view() : in.substr(nul + 1);

    auto r = parse_cert_entry("ns/fuzz", crt, SecretBytes(std::string(key)), fixed_clock());
    ERR_clear_error();
    if (!r) {
        const std::string& msg = r.error().message;
        FUZZ_CHECK(r.error().code == ErrorCode::InvalidConfig, "unexpected error code");
        // Key material never appears in a message: no 16+ byte base64 line of tls.key may show up.
        for (size_t pos = 0; pos < key.size();) {
            size_t nl = key.find('\n', pos);
            std::string_view line = key.substr(pos, nl == std::string_view::npos ? nl : nl - pos);
            pos = nl == std::string_view::npos ? key.size() : nl + 1;
            // Lines of key material: base64 only, and not all hex (a serial number in a message is
            // hex; fixed message text has spaces and punctuation the fuzzer may copy into tls.key).
            bool b64 = line.find_first_not_of(
                           "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") ==
                       std::string_view::npos;
            bool hex = line.find_first_not_of("0123456789abcdef") == std::string_view::npos;
            if (line.size() >= 16 && b64 && !hex)
                FUZZ_CHECK(msg.find(line) == std::string::npos,
                           "tls.key text in an error message: %s", msg.c_str());
        }
        return 0;
    }
    const CertEntry& e = **r;
    FUZZ_CHECK(e.leaf && e.key && e.chain, "accepted entry without leaf, key or chain");
    std::time_t now = std::chrono::system_clock::to_time_t(fixed_clock().now());
    FUZZ_CHECK(e.not_after > now && e.not_before <= now + 300, "accepted outside its validity");
    for (const auto& n : e.dns_names)
        for (char c : n)
            FUZZ_CHECK(!std::isupper(static_cast<unsigned char>(c)), "name not lowercase");
    FUZZ_CHECK(e.key_type == (EVP_PKEY_is_a(e.key.get(), "RSA") ? KeyType::RSA : KeyType::EC),
               "key type");
    FUZZ_CHECK(key_signs_for_leaf(e),
               "accepted a tls.key that cannot sign for the certificate in tls.crt");
    return 0;
}
