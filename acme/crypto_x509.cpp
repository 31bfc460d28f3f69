// Certificates: parsing (PEM, DER, chains), the fields the controller needs (validity, SANs,
// issuer for preferred-chain matching, key match) and the RFC 9773 ARI certificate identifier.
#include <openssl/pem.h>

#include <cctype>
#include <ctime>

#include "edgecert/acme/crypto.h"
#include "edgecert/base/encoding.h"
#include "edgecert/base/ip.h"

namespace edgecert::acme {
namespace {

std::shared_ptr<X509> share(X509* x) {
    return std::shared_ptr<X509>(x, X509_free);
}

SystemTime asn1_to_time(const ASN1_TIME* t) {
    std::tm tm{};
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1) {
        ossl::clear_errors();
        return SystemTime{};
    }
    // Certificates use year 1 and 9999 (RFC 5280 §4.1.2.5 "no well-defined expiration"):
    // clamped to what SystemTime holds.
    return system_time_from_unix(timegm(&tm));
}

std::string name_cn(const X509_NAME* name) {
    if (!name) return {};
    int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
    if (idx < 0) return {};
    const ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
    unsigned char* utf8 = nullptr;
    int len = ASN1_STRING_to_UTF8(&utf8, data);
    if (len < 0) {
        ossl::clear_errors();
        return {};
    }
    std::string out(reinterpret_cast<char*>(utf8), static_cast<size_t>(len));
    OPENSSL_free(utf8);
    return out;
}

// True when the reason on the error queue is the PEM reader running out of input.
bool only_no_start_line() {
    unsigned long e = ERR_peek_last_error();
    return e != 0 && ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE;
}

}  // namespace

Result<Certificate> Certificate::from_pem(std::string_view pem) {
    auto bio = ossl::mem_bio(pem);
    if (!bio) return ossl::error("parsing certificate");
    X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
    if (!x) return ossl::error("parsing certificate PEM", ErrorCode::InvalidConfig);
    return Certificate(share(x));
}

Result<Certificate> Certificate::from_der(std::string_view der) {
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    X509* x = d2i_X509(nullptr, &p, static_cast<long>(der.size()));
    if (!x) return ossl::error("parsing certificate DER", ErrorCode::InvalidConfig);
    auto cert = Certificate(share(x));
    if (p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
        return Error(ErrorCode::InvalidConfig, "parsing certificate DER: trailing data");
    }
    return cert;
}

Certificate Certificate::adopt(ossl::UniquePtr<X509> x) {
    return Certificate(share(x.release()));
}

std::string Certificate::to_pem() const {
    ossl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_X509(bio.get(), x_.get()) != 1) {
        ossl::clear_errors();
        return {};
    }
    return ossl::bio_to_string(bio.get());
}

std::string Certificate::to_der() const {
    return ossl::i2d_string(i2d_X509, x_.get());
}

std::string Certificate::serial_hex() const {
    ossl::UniquePtr<BIGNUM> bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(x_.get()), nullptr));
    if (!bn) {
        ossl::clear_errors();
        return {};
    }
    if (BN_is_zero(bn.get())) return "0";
    char* hex = BN_bn2hex(bn.get());
    if (!hex) return {};
    std::string out(hex);
    OPENSSL_free(hex);
    size_t start = out[0] == '-' ? 1 : 0;
    size_t nz = out.find_first_not_of('0', start);
    out.erase(start, nz - start);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

SystemTime Certificate::not_before() const {
    return asn1_to_time(X509_get0_notBefore(x_.get()));
}
SystemTime Certificate::not_after() const {
    return asn1_to_time(X509_get0_notAfter(x_.get()));
}

namespace {
// Calls fn(contents) for each subjectAltName entry of `type` (GEN_DNS, GEN_IPADD).
template <class F>
void for_each_san(X509* x, int type, F&& fn) {
    ossl::UniquePtr<GENERAL_NAMES> names(
        static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr)));
    if (!names) return;
    for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
        const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
        if (gn->type != type) continue;
        const ASN1_STRING* s = type == GEN_DNS ? gn->d.dNSName : gn->d.iPAddress;
        fn(ASN1_STRING_get0_data(s), static_cast<size_t>(ASN1_STRING_length(s)));
    }
}
}  // namespace

std::vector<std::string> Certificate::dns_names() const {
    std::vector<std::string> out;
    for_each_san(x_.get(), GEN_DNS, [&](const unsigned char* p, size_t n) {
        out.emplace_back(reinterpret_cast<const char*>(p), n);
    });
    return out;
}

std::vector<std::string> Certificate::ip_addresses() const {
    std::vector<std::string> out;
    for_each_san(x_.get(), GEN_IPADD, [&](const unsigned char* p, size_t n) {
        if (auto ip = IpAddress::from_bytes(p, n)) out.push_back(ip->to_string());
    });
    return out;
}

std::string Certificate::subject_cn() const {
    return name_cn(X509_get_subject_name(x_.get()));
}
std::string Certificate::issuer_cn() const {
    return name_cn(X509_get_issuer_name(x_.get()));
}

std::string Certificate::issuer_name() const {
    ossl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
    if (!bio ||
        X509_NAME_print_ex(bio.get(), X509_get_issuer_name(x_.get()), 0, XN_FLAG_RFC2253) < 0) {
        ossl::clear_errors();
        return {};
    }
    return ossl::bio_to_string(bio.get());
}

bool Certificate::self_signed() const {
    return X509_NAME_cmp(X509_get_subject_name(x_.get()), X509_get_issuer_name(x_.get())) == 0;
}

bool Certificate::matches_key(const PrivateKey& key) const {
    bool ok = X509_check_private_key(x_.get(), key.get()) == 1;
    ossl::clear_errors();  // a mismatch is an answer, not an error to carry around
    return ok;
}

Result<std::string> Certificate::ari_cert_id() const {
    // X509_get0_authority_key_id caches the extensions first; null if there is no keyIdentifier.
    const ASN1_OCTET_STRING* akid = X509_get0_authority_key_id(x_.get());
    if (!akid || ASN1_STRING_length(akid) <= 0) {
        ossl::clear_errors();
        return Error(ErrorCode::Permanent,
                     "certificate has no Authority Key Identifier keyIdentifier (needed for ARI)");
    }
    // RFC 9773 §4.1: the serial's DER encoding without tag and length, i.e. the minimal
    // two's-complement octets (a leading 0x00 when the top bit is set).
    unsigned char* der = nullptr;
    int len = i2d_ASN1_INTEGER(X509_get0_serialNumber(x_.get()), &der);
    if (len < 2) {
        OPENSSL_free(der);
        return ossl::error("encoding serial number");
    }
    std::string_view enc_serial(reinterpret_cast<char*>(der), static_cast<size_t>(len));
    size_t hdr = 2;
    unsigned char l0 = static_cast<unsigned char>(enc_serial[1]);
    if (l0 & 0x80) hdr += l0 & 0x7f;  // long-form length (never for <= 20-octet serials)
    std::string content(enc_serial.substr(std::min(hdr, enc_serial.size())));
    OPENSSL_free(der);
    std::string_view keyid(reinterpret_cast<const char*>(ASN1_STRING_get0_data(akid)),
                           static_cast<size_t>(ASN1_STRING_length(akid)));
    return enc::base64url(keyid) + "." + enc::base64url(content);
}

Result<std::vector<Certificate>> parse_pem_chain(std::string_view pem) {
    auto bio = ossl::mem_bio(pem);
    if (!bio) return ossl::error("parsing certificate chain");
    std::vector<Certificate> out;
    for (;;) {
        X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
        if (x) {
            out.push_back(Certificate::adopt(ossl::UniquePtr<X509>(x)));
            continue;
        }
        // End of input shows up as PEM_R_NO_START_LINE: expected after the last certificate.
        if (only_no_start_line() && !out.empty()) {
            ossl::clear_errors();
            return out;
        }
        if (out.empty() && only_no_start_line()) {
            ossl::clear_errors();
            return Error(ErrorCode::InvalidConfig, "no certificate in PEM");
        }
        return ossl::error(
            "parsing certificate " + std::to_string(out.size() + 1) + " of the chain",
            ErrorCode::InvalidConfig);
    }
}

std::string chain_to_pem(const std::vector<Certificate>& chain) {
    std::string out;
    for (const auto& c : chain) out += c.to_pem();
    return out;
}

}  // namespace edgecert::acme
