// ACME JWS (RFC 8555 §6.2, §7.3.4, §7.3.5), key authorizations (§8.1) and dns-01 values (§8.4).
#include <gtest/gtest.h>

#include "edgecert/acme/crypto.h"
#include "edgecert/base/encoding.h"

namespace edgecert::acme {
namespace {

using nlohmann::json;

json decode_json(const json& v) {
    auto d = enc::base64url_decode(v.get<std::string>());
    EXPECT_TRUE(d.has_value());
    return json::parse(d.value_or("null"));
}

class CryptoJwsEachType : public ::testing::TestWithParam<KeyType> {};

TEST_P(CryptoJwsEachType, SignJwsWithJwkAndKid) {
    auto key = PrivateKey::generate(GetParam());
    ASSERT_TRUE(key.ok());
    const std::string payload = R"({"termsOfServiceAgreed":true})";

    // newAccount: the public key rides in the header.
    auto jws = sign_jws(*key, "https://ca.test/acme/new-acct", "nonce-1", "", payload);
    ASSERT_TRUE(jws.ok()) << jws.error().message;
    ASSERT_EQ(jws->size(), 3u);
    json hdr = decode_json((*jws)["protected"]);
    EXPECT_EQ(hdr, (json{{"alg", key->jws_alg()},
                         {"jwk", key->public_jwk()},
                         {"nonce", "nonce-1"},
                         {"url", "https://ca.test/acme/new-acct"}}));
    auto got = verify_jws(*jws, key->public_jwk());
    ASSERT_TRUE(got.ok()) << got.error().message;
    EXPECT_EQ(*got, payload);

    // Later requests: kid instead of jwk.
    auto jws2 = sign_jws(*key, "https://ca.test/acme/order/1", "nonce-2", "https://ca.test/acme/acct/7", payload);
    ASSERT_TRUE(jws2.ok());
    json hdr2 = decode_json((*jws2)["protected"]);
    EXPECT_EQ(hdr2["kid"], "https://ca.test/acme/acct/7");
    EXPECT_FALSE(hdr2.contains("jwk"));
    EXPECT_TRUE(verify_jws(*jws2, key->public_jwk()).ok());

    // Tampering with any member breaks verification.
    json tampered = *jws2;
    tampered["payload"] = enc::base64url(R"({"termsOfServiceAgreed":false})");
    EXPECT_FALSE(verify_jws(tampered, key->public_jwk()).ok());
    auto other = PrivateKey::generate(GetParam());
    ASSERT_TRUE(other.ok());
    EXPECT_FALSE(verify_jws(*jws2, other->public_jwk()).ok());
}

INSTANTIATE_TEST_SUITE_P(Crypto, CryptoJwsEachType,
                         ::testing::Values(KeyType::EcP256, KeyType::EcP384, KeyType::Rsa2048, KeyType::Ed25519),
                         [](const auto& info) { return std::string(to_string(info.param)); });

TEST(CryptoJws, PostAsGetHasEmptyPayload) {
    auto key = PrivateKey::generate(KeyType::EcP256);
    ASSERT_TRUE(key.ok());
    auto jws = sign_jws(*key, "https://ca.test/acme/authz/1", "n", "https://ca.test/acct/1", "");
    ASSERT_TRUE(jws.ok());
    // RFC 8555 §6.3: the payload member is the empty string, not "e30" ({}).
    EXPECT_EQ((*jws)["payload"], "");
    auto got = verify_jws(*jws, key->public_jwk());
    ASSERT_TRUE(got.ok()) << got.error().message;
    EXPECT_EQ(*got, "");
}

TEST(CryptoJws, RejectsMalformedJws) {
    auto key = PrivateKey::generate(KeyType::EcP256);
    ASSERT_TRUE(key.ok());
    EXPECT_FALSE(verify_jws(json::array(), key->public_jwk()).ok());
    EXPECT_FALSE(verify_jws(json{{"protected", "!!"}, {"payload", ""}, {"signature", ""}}, key->public_jwk()).ok());
    json none = {{"protected", enc::base64url(R"({"alg":"none"})")}, {"payload", ""}, {"signature", ""}};
    EXPECT_FALSE(verify_jws(none, key->public_jwk()).ok());
    // Invalid UTF-8 in a server-supplied URL is an error, not an exception.
    auto bad = sign_jws(*key, "https://ca.test/\xff", "n", "", "");
    EXPECT_FALSE(bad.ok());
}

TEST(CryptoJws, ExternalAccountBinding) {
    auto key = PrivateKey::generate(KeyType::EcP256);
    ASSERT_TRUE(key.ok());
    SecretBytes hmac(std::string("0123456789abcdef0123456789abcdef"));
    auto eab = sign_eab(*key, "kid-1", hmac, "https://ca.test/acme/new-acct");
    ASSERT_TRUE(eab.ok()) << eab.error().message;
    // RFC 8555 §7.3.4: HS256, kid = EAB key id, url = newAccount URL, no nonce; payload = account JWK.
    EXPECT_EQ(decode_json((*eab)["protected"]),
              (json{{"alg", "HS256"}, {"kid", "kid-1"}, {"url", "https://ca.test/acme/new-acct"}}));
    EXPECT_EQ(decode_json((*eab)["payload"]), key->public_jwk());
    // The MAC is HMAC-SHA256 over protected "." payload.
    auto mac = hmac_sha256(hmac, (*eab)["protected"].get<std::string>() + "." + (*eab)["payload"].get<std::string>());
    ASSERT_TRUE(mac.ok());
    EXPECT_EQ((*eab)["signature"], enc::base64url(*mac));
    json oct = {{"kty", "oct"}, {"k", enc::base64url(hmac.reveal())}};
    auto got = verify_jws(*eab, oct);
    ASSERT_TRUE(got.ok()) << got.error().message;
    EXPECT_EQ(json::parse(*got), key->public_jwk());
    json wrong = {{"kty", "oct"}, {"k", enc::base64url("another key of 32 bytes........")}};
    EXPECT_FALSE(verify_jws(*eab, wrong).ok());
    EXPECT_FALSE(sign_eab(*key, "kid-1", SecretBytes(), "https://ca.test/acme/new-acct").ok());
}

TEST(CryptoJws, KeyChangeInnerJws) {
    auto old_key = PrivateKey::generate(KeyType::EcP256);
    auto new_key = PrivateKey::generate(KeyType::Ed25519);
    ASSERT_TRUE(old_key.ok() && new_key.ok());
    auto inner = sign_key_change(*old_key, *new_key, "https://ca.test/acct/1", "https://ca.test/acme/key-change");
    ASSERT_TRUE(inner.ok()) << inner.error().message;
    // RFC 8555 §7.3.5: inner header {alg, jwk: new key, url}, no nonce, no kid.
    EXPECT_EQ(decode_json((*inner)["protected"]),
              (json{{"alg", "EdDSA"}, {"jwk", new_key->public_jwk()}, {"url", "https://ca.test/acme/key-change"}}));
    auto payload = verify_jws(*inner, new_key->public_jwk());
    ASSERT_TRUE(payload.ok()) << payload.error().message;
    EXPECT_EQ(json::parse(*payload), (json{{"account", "https://ca.test/acct/1"}, {"oldKey", old_key->public_jwk()}}));
    // The outer request wraps it, signed by the old key with kid.
    auto outer = sign_jws(*old_key, "https://ca.test/acme/key-change", "n", "https://ca.test/acct/1", inner->dump());
    ASSERT_TRUE(outer.ok());
    auto outer_payload = verify_jws(*outer, old_key->public_jwk());
    ASSERT_TRUE(outer_payload.ok());
    EXPECT_EQ(json::parse(*outer_payload), *inner);
}

TEST(CryptoChallenge, KeyAuthorizationAndDns01) {
    // RFC 8555 §8.1: token "." base64url(JWK thumbprint); the RFC 7638 §3.1 key's thumbprint.
    const std::string thumb = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
    const std::string token = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA";
    std::string ka = key_authorization(token, thumb);
    EXPECT_EQ(ka, token + "." + thumb);
    // §8.4: the TXT value is base64url(SHA-256(key authorization)), 43 characters, no padding.
    std::string txt = dns01_txt_value(ka);
    EXPECT_EQ(txt, enc::base64url(sha256(ka)));
    EXPECT_EQ(txt.size(), 43u);
    EXPECT_EQ(txt.find('='), std::string::npos);
    // Known answer computed independently: `printf %s "$ka" | openssl dgst -sha256 -binary | basenc --base64url`.
    EXPECT_EQ(dns01_txt_value("abc"), "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
}

}  // namespace
}  // namespace edgecert::acme
