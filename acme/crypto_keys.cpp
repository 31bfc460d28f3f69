// Private keys, JWKs (RFC 7517/7518/8037), thumbprints (RFC 7638), raw JWS signatures, hashes.
// OpenSSL 3 provider APIs only: keys are parsed once into an EVP_PKEY and every signature is one
// EVP_DigestSign over it.
#include <openssl/decoder.h>
#include <openssl/pem.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <vector>

#include "edgecert/acme/crypto.h"
#include "edgecert/base/encoding.h"

namespace edgecert::acme {
namespace {

using nlohmann::json;

// Fetched once: an implicit fetch by name on every hash is measurable in OpenSSL 3.0.
const EVP_MD* md_sha256() {
    static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    return md;
}
const EVP_MD* md_sha384() {
    static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA384", nullptr);
    return md;
}

size_t ec_field_bytes(KeyType t) { return t == KeyType::EcP384 ? 48 : 32; }
bool is_ec(KeyType t) { return t == KeyType::EcP256 || t == KeyType::EcP384; }
bool is_rsa(KeyType t) {
    return t == KeyType::Rsa2048 || t == KeyType::Rsa3072 || t == KeyType::Rsa4096;
}

std::string bn_to_bytes(const BIGNUM* bn, size_t pad) {
    size_t n = pad ? pad : static_cast<size_t>(BN_num_bytes(bn));
    std::string out(n, '\0');
    if (pad) {
        BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(pad));
    } else {
        BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
    }
    return out;
}

std::string get_bn_param(EVP_PKEY* k, const char* name, size_t pad) {
    BIGNUM* raw = nullptr;
    if (EVP_PKEY_get_bn_param(k, name, &raw) != 1) return {};
    ossl::UniquePtr<BIGNUM> bn(raw);
    return bn_to_bytes(bn.get(), pad);
}

Result<KeyType> detect_type(EVP_PKEY* k) {
    switch (EVP_PKEY_get_base_id(k)) {
        case EVP_PKEY_EC: {
            char group[64] = {0};
            size_t len = 0;
            if (EVP_PKEY_get_group_name(k, group, sizeof group, &len) != 1) {
                return ossl::error("EC key without a named curve", ErrorCode::InvalidConfig);
            }
            std::string_view g(group, len);
            if (g == "prime256v1" || g == "P-256" || g == "secp256r1") return KeyType::EcP256;
            if (g == "secp384r1" || g == "P-384") return KeyType::EcP384;
            return Error(ErrorCode::InvalidConfig,
                         "unsupported EC curve " + std::string(g) + " (want P-256 or P-384)");
        }
        case EVP_PKEY_RSA: {
            int bits = EVP_PKEY_get_bits(k);
            if (bits < 2048) {
                return Error(ErrorCode::InvalidConfig,
                             "RSA key of " + std::to_string(bits) + " bits is too small (min 2048)");
            }
            if (bits < 3072) return KeyType::Rsa2048;
            if (bits < 4096) return KeyType::Rsa3072;
            return KeyType::Rsa4096;
        }
        case EVP_PKEY_ED25519:
            return KeyType::Ed25519;
        default:
            return Error(ErrorCode::InvalidConfig, "unsupported key algorithm (want EC, RSA or Ed25519)");
    }
}

json make_public_jwk(EVP_PKEY* k, KeyType t) {
    if (is_ec(t)) {
        size_t n = ec_field_bytes(t);
        // RFC 7518 §6.2.1.2: coordinates are the full field size, left-padded with zeros.
        return json{{"crv", t == KeyType::EcP384 ? "P-384" : "P-256"},
                    {"kty", "EC"},
                    {"x", enc::base64url(get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, n))},
                    {"y", enc::base64url(get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, n))}};
    }
    if (is_rsa(t)) {
        // RFC 7518 §6.3.1: minimal big-endian octets.
        return json{{"e", enc::base64url(get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, 0))},
                    {"kty", "RSA"},
                    {"n", enc::base64url(get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, 0))}};
    }
    unsigned char raw[32];
    size_t len = sizeof raw;
    std::string x;
    if (EVP_PKEY_get_raw_public_key(k, raw, &len) == 1) x.assign(reinterpret_cast<char*>(raw), len);
    return json{{"crv", "Ed25519"}, {"kty", "OKP"}, {"x", enc::base64url(x)}};  // RFC 8037 §2
}

std::string alg_for(KeyType t) {
    switch (t) {
        case KeyType::EcP256: return "ES256";
        case KeyType::EcP384: return "ES384";
        case KeyType::Ed25519: return "EdDSA";
        default: return "RS256";
    }
}

// ---- JWK member access (JSON exceptions never escape: every access is checked) ----

Result<std::string> jwk_string(const json& jwk, const char* name) {
    if (!jwk.is_object()) return Error(ErrorCode::InvalidConfig, "JWK is not a JSON object");
    auto it = jwk.find(name);
    if (it == jwk.end() || !it->is_string()) {
        return Error(ErrorCode::InvalidConfig, std::string("JWK lacks string member \"") + name + "\"");
    }
    return it->get<std::string>();
}

Result<std::string> jwk_bytes(const json& jwk, const char* name) {
    EC_TRY_ASSIGN(std::string s, jwk_string(jwk, name));
    auto d = enc::base64url_decode(s);
    if (!d) return Error(ErrorCode::InvalidConfig, std::string("JWK member \"") + name + "\" is not base64url");
    return std::move(*d);
}

// Builds an EVP_PKEY from OSSL_PARAMs (EVP_PKEY_fromdata), the OpenSSL 3 way to import keys.
class ParamBuilder {
public:
    ParamBuilder() : bld_(OSSL_PARAM_BLD_new()) {}
    bool bn(const char* name, std::string_view bytes) {
        ossl::UniquePtr<BIGNUM> b(BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes.data()),
                                            static_cast<int>(bytes.size()), nullptr));
        if (!b || OSSL_PARAM_BLD_push_BN(bld_.get(), name, b.get()) != 1) return false;
        bns_.push_back(std::move(b));  // must outlive OSSL_PARAM_BLD_to_param
        return true;
    }
    bool utf8(const char* name, const char* v) {
        return OSSL_PARAM_BLD_push_utf8_string(bld_.get(), name, v, 0) == 1;
    }
    bool octets(const char* name, std::string_view v) {
        return OSSL_PARAM_BLD_push_octet_string(bld_.get(), name, v.data(), v.size()) == 1;
    }
    Result<ossl::UniquePtr<EVP_PKEY>> build(const char* type, int selection) {
        ossl::UniquePtr<OSSL_PARAM> params(OSSL_PARAM_BLD_to_param(bld_.get()));
        ossl::UniquePtr<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
        EVP_PKEY* out = nullptr;
        if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
            EVP_PKEY_fromdata(ctx.get(), &out, selection, params.get()) != 1) {
            return ossl::error("importing JWK", ErrorCode::InvalidConfig);
        }
        return ossl::UniquePtr<EVP_PKEY>(out);
    }

private:
    ossl::UniquePtr<OSSL_PARAM_BLD> bld_;
    std::vector<ossl::UniquePtr<BIGNUM>> bns_;
};

Result<ossl::UniquePtr<EVP_PKEY>> key_from_jwk(const json& jwk, bool with_private) {
    EC_TRY_ASSIGN(std::string kty, jwk_string(jwk, "kty"));
    ParamBuilder pb;
    if (kty == "EC") {
        EC_TRY_ASSIGN(std::string crv, jwk_string(jwk, "crv"));
        size_t n;
        const char* group;
        if (crv == "P-256") {
            n = 32, group = "prime256v1";
        } else if (crv == "P-384") {
            n = 48, group = "secp384r1";
        } else {
            return Error(ErrorCode::InvalidConfig, "unsupported JWK curve " + crv);
        }
        EC_TRY_ASSIGN(std::string x, jwk_bytes(jwk, "x"));
        EC_TRY_ASSIGN(std::string y, jwk_bytes(jwk, "y"));
        if (x.size() != n || y.size() != n) {
            return Error(ErrorCode::InvalidConfig, "JWK EC coordinates are not the field size");
        }
        std::string point = "\x04" + x + y;  // SEC1 uncompressed point
        if (!pb.utf8(OSSL_PKEY_PARAM_GROUP_NAME, group) || !pb.octets(OSSL_PKEY_PARAM_PUB_KEY, point)) {
            return ossl::error("importing JWK");
        }
        if (with_private) {
            EC_TRY_ASSIGN(std::string d, jwk_bytes(jwk, "d"));
            if (!pb.bn(OSSL_PKEY_PARAM_PRIV_KEY, d)) return ossl::error("importing JWK");
        }
        return pb.build("EC", with_private ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY);
    }
    if (kty == "RSA") {
        static constexpr std::pair<const char*, const char*> pub[] = {
            {"n", OSSL_PKEY_PARAM_RSA_N}, {"e", OSSL_PKEY_PARAM_RSA_E}};
        static constexpr std::pair<const char*, const char*> priv[] = {
            {"d", OSSL_PKEY_PARAM_RSA_D},
            {"p", OSSL_PKEY_PARAM_RSA_FACTOR1},
            {"q", OSSL_PKEY_PARAM_RSA_FACTOR2},
            {"dp", OSSL_PKEY_PARAM_RSA_EXPONENT1},
            {"dq", OSSL_PKEY_PARAM_RSA_EXPONENT2},
            {"qi", OSSL_PKEY_PARAM_RSA_COEFFICIENT1}};
        for (auto [member, param] : pub) {
            EC_TRY_ASSIGN(std::string v, jwk_bytes(jwk, member));
            if (!pb.bn(param, v)) return ossl::error("importing JWK");
        }
        if (with_private) {
            for (auto [member, param] : priv) {
                EC_TRY_ASSIGN(std::string v, jwk_bytes(jwk, member));
                if (!pb.bn(param, v)) return ossl::error("importing JWK");
            }
        }
        return pb.build("RSA", with_private ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY);
    }
    if (kty == "OKP") {
        EC_TRY_ASSIGN(std::string crv, jwk_string(jwk, "crv"));
        if (crv != "Ed25519") return Error(ErrorCode::InvalidConfig, "unsupported OKP curve " + crv);
        EC_TRY_ASSIGN(std::string x, jwk_bytes(jwk, "x"));
        if (x.size() != 32) return Error(ErrorCode::InvalidConfig, "Ed25519 JWK \"x\" is not 32 bytes");
        EVP_PKEY* k = nullptr;
        if (with_private) {
            EC_TRY_ASSIGN(std::string d, jwk_bytes(jwk, "d"));
            if (d.size() != 32) return Error(ErrorCode::InvalidConfig, "Ed25519 JWK \"d\" is not 32 bytes");
            k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr,
                                             reinterpret_cast<const unsigned char*>(d.data()), d.size());
            OPENSSL_cleanse(d.data(), d.size());
        } else {
            k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                            reinterpret_cast<const unsigned char*>(x.data()), x.size());
        }
        if (!k) return ossl::error("importing JWK", ErrorCode::InvalidConfig);
        ossl::UniquePtr<EVP_PKEY> key(k);
        if (with_private) {
            unsigned char pubraw[32];
            size_t len = sizeof pubraw;
            if (EVP_PKEY_get_raw_public_key(k, pubraw, &len) != 1 || len != 32 ||
                std::memcmp(pubraw, x.data(), 32) != 0) {
                return Error(ErrorCode::InvalidConfig, "Ed25519 JWK \"x\" does not match \"d\"");
            }
        }
        return key;
    }
    return Error(ErrorCode::InvalidConfig, "unsupported JWK kty " + kty);
}

// One PEM block, DER wiped on destruction (it is private key material).
struct PemBlock {
    char* name = nullptr;
    char* header = nullptr;
    unsigned char* der = nullptr;
    long len = 0;
    PemBlock() = default;
    PemBlock(const PemBlock&) = delete;
    PemBlock& operator=(const PemBlock&) = delete;
    ~PemBlock() {
        OPENSSL_free(name);
        OPENSSL_free(header);
        if (der) OPENSSL_clear_free(der, static_cast<size_t>(len));
    }
};

// Decodes DER private key bytes with a decoder narrowed to one structure and key type.
// PEM_read_bio_PrivateKey asks every decoder OpenSSL 3.0 has and costs about 1 ms per key;
// naming the structure and type cuts that to about a fifth (measured here: ~1 ms -> ~0.2 ms).
Result<ossl::UniquePtr<EVP_PKEY>> decode_private_der(const unsigned char* der, size_t len,
                                                     const char* structure, const char* keytype) {
    EVP_PKEY* out = nullptr;
    OSSL_DECODER_CTX* raw = OSSL_DECODER_CTX_new_for_pkey(&out, "DER", structure, keytype,
                                                          EVP_PKEY_KEYPAIR, nullptr, nullptr);
    std::unique_ptr<OSSL_DECODER_CTX, decltype(&OSSL_DECODER_CTX_free)> ctx(raw, OSSL_DECODER_CTX_free);
    const unsigned char* p = der;
    size_t left = len;
    if (!ctx || OSSL_DECODER_from_data(ctx.get(), &p, &left) != 1 || !out) {
        EVP_PKEY_free(out);
        return ossl::error("decoding", ErrorCode::InvalidConfig);
    }
    return ossl::UniquePtr<EVP_PKEY>(out);
}

// OpenSSL 3 has no "is there a private half" query; asking for the private value answers it.
// The copy is wiped at once.
bool has_private_part(EVP_PKEY* k, KeyType t) {
    if (t == KeyType::Ed25519) {
        unsigned char raw[32];
        size_t len = sizeof raw;
        bool ok = EVP_PKEY_get_raw_private_key(k, raw, &len) == 1;
        OPENSSL_cleanse(raw, sizeof raw);
        return ok;
    }
    BIGNUM* priv = nullptr;
    bool ok = EVP_PKEY_get_bn_param(k, is_ec(t) ? OSSL_PKEY_PARAM_PRIV_KEY : OSSL_PKEY_PARAM_RSA_D, &priv) == 1;
    BN_clear_free(priv);
    return ok;
}

// PKCS#8 names its algorithm by OID; read it so the decoder can be narrowed to that type.
const char* pkcs8_key_type(const unsigned char* der, long len) {
    const unsigned char* p = der;
    PKCS8_PRIV_KEY_INFO* p8 = d2i_PKCS8_PRIV_KEY_INFO(nullptr, &p, len);
    if (!p8) return nullptr;
    const ASN1_OBJECT* alg = nullptr;
    const char* type = nullptr;
    if (PKCS8_pkey_get0(&alg, nullptr, nullptr, nullptr, p8) == 1) {
        switch (OBJ_obj2nid(alg)) {
            case NID_X9_62_id_ecPublicKey: type = "EC"; break;
            case NID_rsaEncryption: type = "RSA"; break;
            case NID_ED25519: type = "ED25519"; break;
            default: break;
        }
    }
    PKCS8_PRIV_KEY_INFO_free(p8);  // clears the key octets
    return type;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

Result<KeyType> parse_key_type(std::string_view s) {
    std::string l(s);
    std::transform(l.begin(), l.end(), l.begin(), [](unsigned char c) { return std::tolower(c); });
    if (l == "ec256" || l == "p256" || l == "ecdsa-p256" || l == "p-256" || l == "ecdsa256") {
        return KeyType::EcP256;
    }
    if (l == "ec384" || l == "p384" || l == "ecdsa-p384" || l == "p-384" || l == "ecdsa384") {
        return KeyType::EcP384;
    }
    if (l == "rsa2048" || l == "rsa-2048") return KeyType::Rsa2048;
    if (l == "rsa3072" || l == "rsa-3072") return KeyType::Rsa3072;
    if (l == "rsa4096" || l == "rsa-4096") return KeyType::Rsa4096;
    if (l == "ed25519") return KeyType::Ed25519;
    return Error(ErrorCode::InvalidConfig,
                 "unknown key type \"" + std::string(s) +
                     "\" (want ec256, ec384, rsa2048, rsa3072, rsa4096 or ed25519)");
}

std::string_view to_string(KeyType t) {
    switch (t) {
        case KeyType::EcP256: return "ec256";
        case KeyType::EcP384: return "ec384";
        case KeyType::Rsa2048: return "rsa2048";
        case KeyType::Rsa3072: return "rsa3072";
        case KeyType::Rsa4096: return "rsa4096";
        case KeyType::Ed25519: return "ed25519";
    }
    return "unknown";
}

PrivateKey::PrivateKey(std::shared_ptr<EVP_PKEY> k, KeyType t) : pkey_(std::move(k)), type_(t) {
    auto d = std::make_shared<Derived>();
    d->jwk = make_public_jwk(pkey_.get(), type_);
    d->thumbprint = enc::base64url(sha256(d->jwk.dump()));
    d->alg = alg_for(type_);
    derived_ = std::move(d);
}

Result<PrivateKey> PrivateKey::generate(KeyType type) {
    EVP_PKEY* k = nullptr;
    switch (type) {
        case KeyType::EcP256: k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"); break;
        case KeyType::EcP384: k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384"); break;
        case KeyType::Rsa2048: k = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}); break;
        case KeyType::Rsa3072: k = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{3072}); break;
        case KeyType::Rsa4096: k = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{4096}); break;
        case KeyType::Ed25519: k = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"); break;
    }
    if (!k) return ossl::error("generating " + std::string(to_string(type)) + " key");
    return PrivateKey(std::shared_ptr<EVP_PKEY>(k, EVP_PKEY_free), type);
}

Result<PrivateKey> PrivateKey::from_pem(std::string_view pem) {
    auto bio = ossl::mem_bio(pem);
    if (!bio) return ossl::error("parsing private key");
    // Skip other blocks (a combined cert+key PEM); the error text never contains the input.
    for (;;) {
        PemBlock b;
        if (PEM_read_bio(bio.get(), &b.name, &b.header, &b.der, &b.len) != 1) {
            unsigned long e = ERR_peek_last_error();
            if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
                ossl::clear_errors();
                return Error(ErrorCode::InvalidConfig, "parsing private key PEM: no private key found");
            }
            return ossl::error("parsing private key PEM", ErrorCode::InvalidConfig);
        }
        std::string_view name(b.name);
        const char* structure = nullptr;
        const char* type = nullptr;
        // Encrypted keys would need a passphrase we never have; say so instead of "bad decrypt".
        if (name == "ENCRYPTED PRIVATE KEY" ||
            (b.header && std::string_view(b.header).find("ENCRYPTED") != std::string_view::npos)) {
            return Error(ErrorCode::InvalidConfig, "parsing private key PEM: encrypted keys are not supported");
        }
        if (name == "PRIVATE KEY") {  // PKCS#8
            structure = "PrivateKeyInfo";
            type = pkcs8_key_type(b.der, b.len);
            if (!type) {
                ossl::clear_errors();
                return Error(ErrorCode::InvalidConfig,
                             "parsing private key PEM: malformed PKCS#8 or unsupported algorithm");
            }
        } else if (name == "EC PRIVATE KEY") {  // SEC1 (RFC 5915)
            structure = "type-specific", type = "EC";
        } else if (name == "RSA PRIVATE KEY") {  // PKCS#1
            structure = "type-specific", type = "RSA";
        } else {
            continue;  // CERTIFICATE, EC PARAMETERS, ...
        }
        auto k = decode_private_der(b.der, static_cast<size_t>(b.len), structure, type);
        if (!k.ok()) {
            return Error(ErrorCode::InvalidConfig, "parsing private key PEM: malformed " + std::string(name) +
                                                       " block (" + k.error().message + ")");
        }
        ossl::clear_errors();
        return from_pkey(std::move(k).value());
    }
}

Result<PrivateKey> PrivateKey::from_pkey(ossl::UniquePtr<EVP_PKEY> pkey) {
    if (!pkey) return Error(ErrorCode::InvalidConfig, "no private key");
    EC_TRY_ASSIGN(KeyType t, detect_type(pkey.get()));
    if (!has_private_part(pkey.get(), t)) {
        ossl::clear_errors();
        return Error(ErrorCode::InvalidConfig, "key has no private part");
    }
    return PrivateKey(std::shared_ptr<EVP_PKEY>(pkey.release(), EVP_PKEY_free), t);
}

PrivateKey PrivateKey::adopt(ossl::UniquePtr<EVP_PKEY> pkey) {
    auto t = detect_type(pkey.get());
    // Documented precondition: a supported key. Fall back to a plausible type rather than crash.
    KeyType type = t.ok() ? *t : (EVP_PKEY_get_base_id(pkey.get()) == EVP_PKEY_RSA ? KeyType::Rsa2048
                                                                                  : KeyType::EcP256);
    return PrivateKey(std::shared_ptr<EVP_PKEY>(pkey.release(), EVP_PKEY_free), type);
}

Result<PrivateKey> PrivateKey::from_jwk(const nlohmann::json& jwk) {
    EC_TRY_ASSIGN(auto k, key_from_jwk(jwk, true));
    return from_pkey(std::move(k));
}

SecretBytes PrivateKey::to_pem() const {
    ossl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
    // PEM_write_bio_PrivateKey writes PKCS#8 ("PRIVATE KEY") for every key type in OpenSSL 3.
    if (!bio || PEM_write_bio_PrivateKey(bio.get(), pkey_.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
        ossl::clear_errors();
        return SecretBytes();
    }
    return SecretBytes(ossl::bio_to_string(bio.get()));  // BUF_MEM_free cleanses the buffer
}

nlohmann::json PrivateKey::public_jwk() const { return derived_->jwk; }
std::string PrivateKey::thumbprint() const { return derived_->thumbprint; }
std::string PrivateKey::jws_alg() const { return derived_->alg; }

Result<std::string> PrivateKey::sign(std::string_view signing_input) const {
    ossl::UniquePtr<EVP_MD_CTX> ctx(EVP_MD_CTX_new());
    const EVP_MD* md = type_ == KeyType::Ed25519 ? nullptr
                       : type_ == KeyType::EcP384 ? md_sha384()
                                                  : md_sha256();
    // RSA: the default padding of an RSA EVP_PKEY is RSASSA-PKCS1-v1_5, which RS256 is.
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, md, nullptr, pkey_.get()) != 1) {
        return ossl::error("signing");
    }
    const auto* in = reinterpret_cast<const unsigned char*>(signing_input.data());
    size_t len = 0;
    if (EVP_DigestSign(ctx.get(), nullptr, &len, in, signing_input.size()) != 1) {
        return ossl::error("signing");
    }
    std::string sig(len, '\0');
    if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, in,
                       signing_input.size()) != 1) {
        return ossl::error("signing");
    }
    sig.resize(len);
    if (!is_ec(type_)) return sig;
    // RFC 7518 §3.4: JWS carries R||S, each the full field size, not the DER ECDSA-Sig-Value.
    const auto* p = reinterpret_cast<const unsigned char*>(sig.data());
    ossl::UniquePtr<ECDSA_SIG> es(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(sig.size())));
    if (!es) return ossl::error("decoding ECDSA signature");
    size_t n = ec_field_bytes(type_);
    return bn_to_bytes(ECDSA_SIG_get0_r(es.get()), n) + bn_to_bytes(ECDSA_SIG_get0_s(es.get()), n);
}

std::string PrivateKey::public_key_der() const {
    return ossl::i2d_string(i2d_PUBKEY, pkey_.get());
}

Result<std::string> jwk_thumbprint(const nlohmann::json& jwk) {
    EC_TRY_ASSIGN(std::string kty, jwk_string(jwk, "kty"));
    // RFC 7638 §3.2: only the required members, lexicographic order (json objects are sorted).
    const std::vector<const char*>* members = nullptr;
    static const std::vector<const char*> ec{"crv", "x", "y"}, rsa{"e", "n"}, okp{"crv", "x"}, oct{"k"};
    if (kty == "EC") members = &ec;
    else if (kty == "RSA") members = &rsa;
    else if (kty == "OKP") members = &okp;
    else if (kty == "oct") members = &oct;
    else return Error(ErrorCode::InvalidConfig, "unsupported JWK kty " + kty);
    json canon = json::object();
    canon["kty"] = kty;
    for (const char* m : *members) {
        EC_TRY_ASSIGN(std::string v, jwk_string(jwk, m));
        canon[m] = std::move(v);
    }
    try {
        return enc::base64url(sha256(canon.dump()));
    } catch (const json::exception&) {
        return Error(ErrorCode::InvalidConfig, "JWK member is not valid UTF-8");
    }
}

Result<ossl::UniquePtr<EVP_PKEY>> public_key_from_jwk(const nlohmann::json& jwk) {
    return key_from_jwk(jwk, false);
}

Status verify_signature(EVP_PKEY* key, std::string_view alg, std::string_view signing_input,
                        std::string_view signature) {
    if (!key) return Error(ErrorCode::InvalidConfig, "no key");
    int id = EVP_PKEY_get_base_id(key);
    const EVP_MD* md = nullptr;
    std::string der;  // EC: R||S re-encoded as DER for OpenSSL
    std::string_view sig = signature;
    // The key decides what is acceptable: never let the JWS "alg" pick a weaker check.
    if (alg == "ES256" || alg == "ES384") {
        auto t = detect_type(key);
        KeyType want = alg == "ES256" ? KeyType::EcP256 : KeyType::EcP384;
        if (id != EVP_PKEY_EC || !t.ok() || *t != want) {
            return Error(ErrorCode::InvalidConfig, "JWS alg " + std::string(alg) + " does not match the key");
        }
        size_t n = ec_field_bytes(want);
        if (signature.size() != 2 * n) return Error(ErrorCode::Permanent, "bad ECDSA signature length");
        ossl::UniquePtr<ECDSA_SIG> es(ECDSA_SIG_new());
        BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(signature.data()), static_cast<int>(n), nullptr);
        BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(signature.data()) + n, static_cast<int>(n), nullptr);
        if (!es || !r || !s || ECDSA_SIG_set0(es.get(), r, s) != 1) {
            BN_free(r);
            BN_free(s);
            return ossl::error("encoding ECDSA signature");
        }
        unsigned char* p = nullptr;
        int len = i2d_ECDSA_SIG(es.get(), &p);
        if (len <= 0) return ossl::error("encoding ECDSA signature");
        der.assign(reinterpret_cast<char*>(p), static_cast<size_t>(len));
        OPENSSL_free(p);
        sig = der;
        md = want == KeyType::EcP384 ? md_sha384() : md_sha256();
    } else if (alg == "RS256") {
        if (id != EVP_PKEY_RSA) return Error(ErrorCode::InvalidConfig, "JWS alg RS256 does not match the key");
        md = md_sha256();
    } else if (alg == "EdDSA") {
        if (id != EVP_PKEY_ED25519) return Error(ErrorCode::InvalidConfig, "JWS alg EdDSA does not match the key");
    } else {
        return Error(ErrorCode::InvalidConfig, "unsupported JWS alg \"" + std::string(alg) + "\"");
    }
    ossl::UniquePtr<EVP_MD_CTX> ctx(EVP_MD_CTX_new());
    if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, key) != 1) {
        return ossl::error("verifying signature");
    }
    int rc = EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                              reinterpret_cast<const unsigned char*>(signing_input.data()),
                              signing_input.size());
    ossl::clear_errors();
    if (rc != 1) return Error(ErrorCode::Permanent, "JWS signature does not verify");
    return ok_status();
}

std::string sha256(std::string_view data) {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(data.data(), data.size(), out, &len, md_sha256(), nullptr) != 1) {
        ossl::clear_errors();
        return {};
    }
    return std::string(reinterpret_cast<char*>(out), len);
}

Result<std::string> hmac_sha256(const SecretBytes& key, std::string_view data) {
    static EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (!mac) return ossl::error("fetching HMAC");
    if (key.empty()) return Error(ErrorCode::InvalidConfig, "empty HMAC key");
    ossl::UniquePtr<EVP_MAC_CTX> ctx(EVP_MAC_CTX_new(mac));
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    unsigned char out[EVP_MAX_MD_SIZE];
    size_t len = 0;
    if (!ctx || EVP_MAC_init(ctx.get(), key.data(), key.size(), params) != 1 ||
        EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1 ||
        EVP_MAC_final(ctx.get(), out, &len, sizeof out) != 1) {
        return ossl::error("HMAC-SHA256");
    }
    return std::string(reinterpret_cast<char*>(out), len);
}

}  // namespace edgecert::acme
