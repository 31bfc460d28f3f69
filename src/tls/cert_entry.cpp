// The legacy EC_KEY/RSA decoders are used on purpose (see fast_parse_key).
#define OPENSSL_SUPPRESS_DEPRECATED
#include "tls/cert_entry.h"

#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <openssl/core_names.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <optional>
#include <utility>

namespace edgecert::tls {
namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// Everything outside PEM blocks must be whitespace: a cut-off or garbled file must not pass as
// "leaf plus nothing".
Status check_pem_structure(std::string_view pem, std::string_view what) {
    size_t pos = 0, blocks = 0;
    while (true) {
        size_t b = pem.find("-----BEGIN ", pos);
        std::string_view gap =
            pem.substr(pos, b == std::string_view::npos ? std::string_view::npos : b - pos);
        for (char c : gap)
            if (!std::isspace(static_cast<unsigned char>(c)))
                return Error(ErrorCode::InvalidConfig,
                             std::string(what) + ": data outside PEM blocks");
        if (b == std::string_view::npos) break;
        size_t e = pem.find("-----END ", b);
        if (e == std::string_view::npos)
            return Error(ErrorCode::InvalidConfig,
                         std::string(what) + ": truncated PEM (no END line)");
        size_t close = pem.find("-----", e + 9);
        if (close == std::string_view::npos)
            return Error(ErrorCode::InvalidConfig,
                         std::string(what) + ": truncated PEM (END line cut)");
        pos = close + 5;
        ++blocks;
    }
    if (blocks == 0) return Error(ErrorCode::InvalidConfig, std::string(what) + ": no PEM block");
    return {};
}

// A fresh EC_KEY on a copy of a group built once per curve: EC_GROUP_new_by_curve_name
// recomputes the curve's Montgomery constants (a modular inverse) every time, ~8 % of loading.
EC_KEY* new_ec_key(int nid) {
    static const std::array<std::pair<int, EC_GROUP*>, 3> groups = [] {
        std::array<std::pair<int, EC_GROUP*>, 3> g{
            {{NID_X9_62_prime256v1, nullptr}, {NID_secp384r1, nullptr}, {NID_secp521r1, nullptr}}};
        for (auto& [n, grp] : g) grp = EC_GROUP_new_by_curve_name(n);  // kept for the process
        return g;
    }();
    for (const auto& [n, grp] : groups) {
        if (n != nid || !grp) continue;
        EC_KEY* k = EC_KEY_new();
        if (k && EC_KEY_set_group(k, grp) != 1) {  // copies the group, constants included
            EC_KEY_free(k);
            k = nullptr;
        }
        return k;
    }
    return EC_KEY_new_by_curve_name(nid);
}

// Whether the certificate's public key is the public half of `key`, for keys from
// fast_parse_key (legacy EC_KEY / RSA). X509_check_private_key would first convert the legacy
// key into a provider key, which rebuilds its EC group from parameters: ~10 % of loading. The
// check is the same (public parts equal); the conversion happens once, at the first handshake.
// Returns nullopt when the key is not of that kind (then use X509_check_private_key).
std::optional<bool> fast_keys_match(X509* cert, EVP_PKEY* key) {
    EVP_PKEY* pub = X509_get0_pubkey(cert);
    if (!pub) return false;
    if (const EC_KEY* ec = EVP_PKEY_get0_EC_KEY(key)) {
        if (!EVP_PKEY_is_a(pub, "EC")) return false;
        const EC_GROUP* grp = EC_KEY_get0_group(ec);
        const EC_POINT* pt = EC_KEY_get0_public_key(ec);
        char group_name[64];
        unsigned char want[160], have[160];
        size_t want_len = 0, have_len = 0;
        if (!grp || !pt ||
            EVP_PKEY_get_utf8_string_param(pub, OSSL_PKEY_PARAM_GROUP_NAME, group_name,
                                           sizeof group_name, nullptr) != 1 ||
            OBJ_sn2nid(group_name) != EC_GROUP_get_curve_name(grp) ||
            EVP_PKEY_get_octet_string_param(pub, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, have,
                                            sizeof have, &have_len) != 1)
            return false;
        want_len =
            EC_POINT_point2oct(grp, pt, POINT_CONVERSION_UNCOMPRESSED, want, sizeof want, nullptr);
        if (want_len == 0 || have_len == 0) return false;
        if (have[0] !=
            POINT_CONVERSION_UNCOMPRESSED) {  // compressed in the certificate: compare points
            EC_POINT* p = EC_POINT_new(grp);
            bool same = p && EC_POINT_oct2point(grp, p, have, have_len, nullptr) == 1 &&
                        EC_POINT_cmp(grp, p, pt, nullptr) == 0;
            EC_POINT_free(p);
            return same;
        }
        return have_len == want_len && std::memcmp(have, want, want_len) == 0;
    }
    if (const RSA* rsa = EVP_PKEY_get0_RSA(key)) {
        if (!EVP_PKEY_is_a(pub, "RSA")) return false;
        const BIGNUM *n = nullptr, *e = nullptr;
        RSA_get0_key(rsa, &n, &e, nullptr);
        BIGNUM *pn = nullptr, *pe = nullptr;
        bool got = EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_RSA_N, &pn) == 1 &&
                   EVP_PKEY_get_bn_param(pub, OSSL_PKEY_PARAM_RSA_E, &pe) == 1;
        ossl::UniquePtr<BIGNUM> own_n(pn), own_e(pe);
        return got && n && e && BN_cmp(pn, n) == 0 && BN_cmp(pe, e) == 0;
    }
    return std::nullopt;
}

// Whether the private half of a directly decoded key belongs to its public half. The
// key/certificate match compares public parts only (as X509_check_private_key does), so a key whose
// private part was corrupted or edited while its public part still matches the certificate would be
// accepted and then fail every handshake: found by fuzzing (tests/fuzz/cert_entry.cpp). Cheap
// checks only, nothing like RSA_check_key's primality tests: EC: private scalar in [1, n-1] and
// private * G = public (one constant-time multiplication of the generator: about 10 us for P-256, 1
// ms for P-384 on these machines); RSA: n = p * q, e * d = 1 mod p-1 and mod q-1 (that is, mod
// lcm(p-1, q-1)) and the CRT values consistent: multiplications and reductions only (no gcd:
// OpenSSL's is constant-time and costs more than all the rest).
bool ec_scalar_in_range(const EC_KEY* ec) {
    const EC_GROUP* grp = EC_KEY_get0_group(ec);
    const BIGNUM* priv = EC_KEY_get0_private_key(ec);
    return grp && priv && !BN_is_zero(priv) && !BN_is_negative(priv) &&
           BN_cmp(priv, EC_GROUP_get0_order(grp)) < 0;
}

bool ec_key_consistent(const EC_KEY* ec) {
    const EC_GROUP* grp = EC_KEY_get0_group(ec);
    const BIGNUM* priv = EC_KEY_get0_private_key(ec);
    const EC_POINT* pub = EC_KEY_get0_public_key(ec);
    if (!pub || !ec_scalar_in_range(ec)) return false;
    ossl::UniquePtr<EC_POINT> q(EC_POINT_new(grp));
    return q && EC_POINT_mul(grp, q.get(), priv, nullptr, nullptr, nullptr) == 1 &&
           EC_POINT_cmp(grp, q.get(), pub, nullptr) == 0;
}

bool rsa_key_consistent(const RSA* rsa) {
    const BIGNUM *n = nullptr, *e = nullptr, *d = nullptr, *p = nullptr, *q = nullptr,
                 *dmp1 = nullptr, *dmq1 = nullptr, *iqmp = nullptr;
    RSA_get0_key(rsa, &n, &e, &d);
    RSA_get0_factors(rsa, &p, &q);
    RSA_get0_crt_params(rsa, &dmp1, &dmq1, &iqmp);
    if (!n || !e || !d || !p || !q || !dmp1 || !dmq1 || !iqmp || BN_is_negative(p) ||
        BN_is_negative(q) || BN_cmp(p, BN_value_one()) <= 0 || BN_cmp(q, BN_value_one()) <= 0)
        return false;
    ossl::UniquePtr<BN_CTX> ctx(BN_CTX_new());
    ossl::UniquePtr<BIGNUM> t(BN_new()), p1(BN_dup(p)), q1(BN_dup(q));
    if (!ctx || !t || !p1 || !q1 || BN_sub_word(p1.get(), 1) != 1 || BN_sub_word(q1.get(), 1) != 1)
        return false;
    auto mod_is_one = [&](const BIGNUM* a, const BIGNUM* b, const BIGNUM* m) {  // a * b mod m == 1
        return BN_mod_mul(t.get(), a, b, m, ctx.get()) == 1 && BN_is_one(t.get());
    };
    return BN_mul(t.get(), p, q, ctx.get()) == 1 && BN_cmp(t.get(), n) == 0 &&  // n = p * q
           mod_is_one(e, d, p1.get()) && mod_is_one(e, d, q1.get()) &&
           mod_is_one(e, dmp1, p1.get()) && mod_is_one(e, dmq1, q1.get()) && mod_is_one(q, iqmp, p);
}

// OpenSSL 3.0's generic key decoder (PEM_read_bio_PrivateKey → OSSL_DECODER) costs about 1 ms
// per key here, which alone makes 10,000 certificates take 10 s. The ASN.1 decoders for the two
// key types we serve cost ~35 µs: PKCS#8, SEC1 and PKCS#1 are decoded directly and anything else
// falls back to the generic path. The DER copy of the key is wiped before it is freed.
ossl::UniquePtr<EVP_PKEY> fast_parse_key(std::string_view pem, bool* inconsistent) {
    auto bio = ossl::mem_bio(pem);
    char* name = nullptr;
    char* header = nullptr;
    unsigned char* der = nullptr;
    long len = 0;
    if (PEM_read_bio(bio.get(), &name, &header, &der, &len) != 1) {
        ossl::clear_errors();
        return nullptr;
    }
    ossl::UniquePtr<EVP_PKEY> out;
    std::string_view n(name);
    const unsigned char* p = der;
    EC_KEY* ec = nullptr;
    RSA* rsa = nullptr;
    if (n == "PRIVATE KEY") {
        PKCS8_PRIV_KEY_INFO* p8 = d2i_PKCS8_PRIV_KEY_INFO(nullptr, &p, len);
        const ASN1_OBJECT* alg_obj = nullptr;
        const unsigned char* pk = nullptr;
        int pklen = 0;
        const X509_ALGOR* alg = nullptr;
        if (p8 && PKCS8_pkey_get0(&alg_obj, &pk, &pklen, &alg, p8) == 1) {
            int nid = OBJ_obj2nid(alg_obj);
            if (nid == NID_X9_62_id_ecPublicKey) {
                int ptype = 0;
                const void* pval = nullptr;
                X509_ALGOR_get0(nullptr, &ptype, &pval, alg);
                if (ptype == V_ASN1_OBJECT) {  // named curve only
                    ec = new_ec_key(OBJ_obj2nid(static_cast<const ASN1_OBJECT*>(pval)));
                    if (ec && !d2i_ECPrivateKey(&ec, &pk, pklen)) {
                        EC_KEY_free(ec);
                        ec = nullptr;
                    }
                }
            } else if (nid == NID_rsaEncryption) {
                rsa = d2i_RSAPrivateKey(nullptr, &pk, pklen);
            }
        }
        PKCS8_PRIV_KEY_INFO_free(p8);
    } else if (n == "EC PRIVATE KEY") {
        ec = d2i_ECPrivateKey(nullptr, &p, len);
    } else if (n == "RSA PRIVATE KEY") {
        rsa = d2i_RSAPrivateKey(nullptr, &p, len);
    }
    if (ec || rsa) {
        out.reset(EVP_PKEY_new());
        bool consistent = true;
        if (ec && EC_KEY_get0_public_key(ec) == nullptr) {
            // SEC1 allows omitting the public key; compute it so the cert/key match check works
            // (consistent by construction, once the scalar is in range).
            ossl::UniquePtr<EC_POINT> pub(EC_POINT_new(EC_KEY_get0_group(ec)));
            consistent = pub && ec_scalar_in_range(ec) &&
                         EC_POINT_mul(EC_KEY_get0_group(ec), pub.get(), EC_KEY_get0_private_key(ec),
                                      nullptr, nullptr, nullptr) == 1 &&
                         EC_KEY_set_public_key(ec, pub.get()) == 1;
        } else if (ec) {
            consistent = ec_key_consistent(ec);
        } else {
            consistent = rsa_key_consistent(rsa);
        }
        if (!consistent) {
            *inconsistent = true;
            out.reset();
        }
        if (!out || (ec && EVP_PKEY_assign_EC_KEY(out.get(), ec) != 1) ||
            (rsa && EVP_PKEY_assign_RSA(out.get(), rsa) != 1)) {
            out.reset();
            EC_KEY_free(ec);
            RSA_free(rsa);
        }
    }
    OPENSSL_cleanse(der, static_cast<size_t>(len));
    OPENSSL_free(der);
    OPENSSL_free(name);
    OPENSSL_free(header);
    ossl::clear_errors();
    return out;
}

int no_passphrase(char*, int, int, void*) {
    return -1;
}

}  // namespace

std::string serial_hex(const X509* cert) {
    const ASN1_INTEGER* s = X509_get0_serialNumber(cert);
    ossl::UniquePtr<BIGNUM> bn(ASN1_INTEGER_to_BN(s, nullptr));
    if (!bn) return "";
    char* hex = BN_bn2hex(bn.get());
    std::string out = lower(hex ? hex : "");
    OPENSSL_free(hex);
    return out;
}

std::time_t asn1_time_to_unix(const ASN1_TIME* t) {
    struct tm tm {};
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
    return timegm(&tm);
}

Result<std::shared_ptr<const CertEntry>> parse_cert_entry(std::string name,
                                                          std::string_view cert_pem,
                                                          const SecretBytes& key_pem,
                                                          const Clock& clock) {
    auto fail = [&](std::string msg) {
        ossl::clear_errors();
        return Error(ErrorCode::InvalidConfig, "certificate " + name + ": " + msg);
    };
    if (auto st = check_pem_structure(cert_pem, "tls.crt"); !st) return fail(st.error().message);
    if (auto st = check_pem_structure(key_pem.reveal(), "tls.key"); !st)
        return fail(st.error().message);

    auto entry = std::make_shared<CertEntry>();
    entry->name = name;
    entry->chain.reset(sk_X509_new_null());

    auto bio = ossl::mem_bio(cert_pem);
    entry->leaf.reset(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!entry->leaf)
        return fail("tls.crt: cannot parse leaf certificate: " + ossl::drain_errors());
    while (true) {
        X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
        if (!c) {
            unsigned long e = ERR_peek_last_error();
            if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
                ossl::clear_errors();
                break;
            }
            return fail("tls.crt: cannot parse chain certificate: " + ossl::drain_errors());
        }
        sk_X509_push(entry->chain.get(), c);
    }

    // The key: never put any of its bytes in a message; OpenSSL's reasons carry none.
    bool inconsistent = false;
    entry->key = fast_parse_key(key_pem.reveal(), &inconsistent);
    if (inconsistent)
        return fail("tls.key: the private key does not belong to its own public key (corrupted?)");
    if (!entry->key) {
        auto kbio = ossl::mem_bio(key_pem.reveal());
        // No passphrase callback would make OpenSSL prompt on the terminal for an encrypted key
        // and block the loader (seen while fuzzing): encrypted keys are refused instead.
        entry->key.reset(PEM_read_bio_PrivateKey(kbio.get(), nullptr, no_passphrase, nullptr));
        if (entry->key) {
            // The same consistency check as for the directly decoded keys (here OpenSSL's own).
            ossl::UniquePtr<EVP_PKEY_CTX> pctx(
                EVP_PKEY_CTX_new_from_pkey(nullptr, entry->key.get(), nullptr));
            if (!pctx || EVP_PKEY_pairwise_check(pctx.get()) != 1)
                return fail(
                    "tls.key: the private key does not belong to its own public key (corrupted?)");
        }
    }
    if (!entry->key) {
        ossl::clear_errors();
        return fail("tls.key: cannot parse private key (an encrypted key is not supported)");
    }
    if (EVP_PKEY_is_a(entry->key.get(), "EC")) {
        entry->key_type = KeyType::EC;
    } else if (EVP_PKEY_is_a(entry->key.get(), "RSA")) {
        entry->key_type = KeyType::RSA;
        if (EVP_PKEY_get_bits(entry->key.get()) < 2048)
            return fail("tls.key: RSA key shorter than 2048 bits");
    } else {
        return fail("tls.key: unsupported key type (want EC or RSA)");
    }
    std::optional<bool> match = fast_keys_match(entry->leaf.get(), entry->key.get());
    if (!match) match = X509_check_private_key(entry->leaf.get(), entry->key.get()) == 1;
    if (!*match) return fail("tls.key does not match the certificate in tls.crt");

    entry->not_before = asn1_time_to_unix(X509_get0_notBefore(entry->leaf.get()));
    entry->not_after = asn1_time_to_unix(X509_get0_notAfter(entry->leaf.get()));
    entry->serial = serial_hex(entry->leaf.get());
    std::time_t now = std::chrono::system_clock::to_time_t(clock.now());
    if (entry->not_after <= now) return fail("expired (serial " + entry->serial + ")");
    if (entry->not_before > now + 300)  // small skew allowance
        return fail("not valid yet (serial " + entry->serial + ")");
    // Chain entries must at least be valid X.509 (parsed above) and not expired themselves.
    for (int i = 0; i < sk_X509_num(entry->chain.get()); ++i) {
        X509* c = sk_X509_value(entry->chain.get(), i);
        if (asn1_time_to_unix(X509_get0_notAfter(c)) <= now)
            return fail("chain certificate " + std::to_string(i + 1) + " expired");
    }

    ossl::UniquePtr<GENERAL_NAMES> sans(static_cast<GENERAL_NAMES*>(
        X509_get_ext_d2i(entry->leaf.get(), NID_subject_alt_name, nullptr, nullptr)));
    if (sans) {
        for (int i = 0; i < sk_GENERAL_NAME_num(sans.get()); ++i) {
            const GENERAL_NAME* gn = sk_GENERAL_NAME_value(sans.get(), i);
            if (gn->type == GEN_IPADD) {  // served to clients without SNI (cert_snapshot.h)
                const ASN1_OCTET_STRING* o = gn->d.iPAddress;
                if (auto ip = IpAddress::from_bytes(o->data, static_cast<size_t>(o->length)))
                    entry->ip_addresses.push_back(*ip);
                continue;
            }
            if (gn->type != GEN_DNS) continue;
            const ASN1_IA5STRING* s = gn->d.dNSName;
            entry->dns_names.push_back(lower(std::string_view(
                reinterpret_cast<const char*>(s->data), static_cast<size_t>(s->length))));
        }
    } else {
        // Legacy certificates without SAN: fall back to the subject CN.
        X509_NAME* subj = X509_get_subject_name(entry->leaf.get());
        int idx = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
        if (idx >= 0) {
            ASN1_STRING* cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx));
            entry->dns_names.push_back(
                lower(std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(cn)),
                                       static_cast<size_t>(ASN1_STRING_length(cn)))));
        }
    }
    ossl::clear_errors();
    return std::shared_ptr<const CertEntry>(std::move(entry));
}

}  // namespace edgecert::tls
