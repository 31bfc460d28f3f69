// JWS for ACME: RFC 8555 §6.2 flattened JSON serialization, §7.3.4 external account binding,
// §7.3.5 key rollover; key authorizations (§8.1) and the dns-01 TXT value (§8.4).
#include <openssl/crypto.h>

#include "edgecert/acme/crypto.h"
#include "edgecert/base/encoding.h"

namespace edgecert::acme {
namespace {

using nlohmann::json;

// One flattened JWS (RFC 7515 §7.2.2): {"protected", "payload", "signature"}.
Result<json> sign_flattened(const PrivateKey& key, const json& protected_header, std::string_view payload) {
    std::string input;
    try {
        input = enc::base64url(protected_header.dump());
    } catch (const json::exception&) {
        // dump() throws on invalid UTF-8, e.g. a URL taken from a hostile server response.
        return Error(ErrorCode::Permanent, "JWS protected header is not valid UTF-8");
    }
    size_t protected_len = input.size();
    input += '.';
    input += enc::base64url(payload);
    EC_TRY_ASSIGN(std::string sig, key.sign(input));
    return json{{"protected", input.substr(0, protected_len)},
                {"payload", input.substr(protected_len + 1)},
                {"signature", enc::base64url(sig)}};
}

Result<std::string> member(const json& j, const char* name) {
    auto it = j.find(name);
    if (it == j.end() || !it->is_string()) {
        return Error(ErrorCode::InvalidConfig, std::string("JWS lacks string member \"") + name + "\"");
    }
    return it->get<std::string>();
}

}  // namespace

Result<nlohmann::json> sign_jws(const PrivateKey& key, std::string_view url, std::string_view nonce,
                                std::string_view kid, std::string_view payload) {
    json header = {{"alg", key.jws_alg()}, {"url", std::string(url)}};
    // The nonce is mandatory on every request (§6.5); only the inner key-change JWS has none.
    if (!nonce.empty()) header["nonce"] = std::string(nonce);
    if (kid.empty()) {
        header["jwk"] = key.public_jwk();
    } else {
        header["kid"] = std::string(kid);
    }
    return sign_flattened(key, header, payload);
}

Result<nlohmann::json> sign_eab(const PrivateKey& account_key, std::string_view eab_kid,
                                const SecretBytes& hmac_key, std::string_view url) {
    json header = {{"alg", "HS256"}, {"kid", std::string(eab_kid)}, {"url", std::string(url)}};
    std::string input;
    try {
        input = enc::base64url(header.dump());
    } catch (const json::exception&) {
        return Error(ErrorCode::InvalidConfig, "EAB key id or URL is not valid UTF-8");
    }
    size_t protected_len = input.size();
    input += '.';
    input += enc::base64url(account_key.public_jwk().dump());
    EC_TRY_ASSIGN(std::string mac, hmac_sha256(hmac_key, input));
    return json{{"protected", input.substr(0, protected_len)},
                {"payload", input.substr(protected_len + 1)},
                {"signature", enc::base64url(mac)}};
}

// §7.3.5: returns the INNER JWS (signed by the new key, header {alg, jwk: new key, url}, no nonce,
// payload {account, oldKey}). The caller sends it as the payload of an ordinary request signed by
// the old key: sign_jws(old_key, url, nonce, account_url, inner.dump()).
Result<nlohmann::json> sign_key_change(const PrivateKey& old_key, const PrivateKey& new_key,
                                       std::string_view account_url, std::string_view url) {
    json header = {{"alg", new_key.jws_alg()}, {"jwk", new_key.public_jwk()}, {"url", std::string(url)}};
    json payload = {{"account", std::string(account_url)}, {"oldKey", old_key.public_jwk()}};
    std::string body;
    try {
        body = payload.dump();
    } catch (const json::exception&) {
        return Error(ErrorCode::Permanent, "account URL is not valid UTF-8");
    }
    return sign_flattened(new_key, header, body);
}

Result<std::string> verify_jws(const nlohmann::json& jws, const nlohmann::json& jwk) {
    if (!jws.is_object()) return Error(ErrorCode::InvalidConfig, "JWS is not a JSON object");
    EC_TRY_ASSIGN(std::string prot64, member(jws, "protected"));
    EC_TRY_ASSIGN(std::string payload64, member(jws, "payload"));
    EC_TRY_ASSIGN(std::string sig64, member(jws, "signature"));
    auto prot = enc::base64url_decode(prot64);
    auto payload = enc::base64url_decode(payload64);
    auto sig = enc::base64url_decode(sig64);
    if (!prot || !payload || !sig) return Error(ErrorCode::InvalidConfig, "JWS member is not base64url");
    json header = json::parse(*prot, nullptr, /*allow_exceptions=*/false);
    if (!header.is_object()) return Error(ErrorCode::InvalidConfig, "JWS protected header is not a JSON object");
    EC_TRY_ASSIGN(std::string alg, member(header, "alg"));
    std::string input = prot64 + "." + payload64;
    if (alg == "HS256") {
        if (!jwk.is_object() || jwk.value("kty", "") != "oct" || !jwk.contains("k") || !jwk["k"].is_string()) {
            return Error(ErrorCode::InvalidConfig, "HS256 JWS needs an oct JWK");
        }
        auto k = enc::base64url_decode(jwk["k"].get<std::string>());
        if (!k) return Error(ErrorCode::InvalidConfig, "oct JWK \"k\" is not base64url");
        SecretBytes key(std::move(*k));
        EC_TRY_ASSIGN(std::string mac, hmac_sha256(key, input));
        if (mac.size() != sig->size() || CRYPTO_memcmp(mac.data(), sig->data(), mac.size()) != 0) {
            return Error(ErrorCode::Permanent, "JWS HMAC does not verify");
        }
        return std::move(*payload);
    }
    EC_TRY_ASSIGN(auto pkey, public_key_from_jwk(jwk));
    EC_TRY(verify_signature(pkey.get(), alg, input, *sig));
    return std::move(*payload);
}

std::string key_authorization(std::string_view token, std::string_view thumbprint) {
    std::string out;
    out.reserve(token.size() + 1 + thumbprint.size());
    out += token;
    out += '.';
    out += thumbprint;
    return out;
}

std::string dns01_txt_value(std::string_view key_authorization) {
    return enc::base64url(sha256(key_authorization));
}

}  // namespace edgecert::acme
