// The parts of a certificate that come from its spec: usages (keyUsage / extKeyUsage), the
// subject name, and the comparison that tells a stored certificate from what the spec asks now.
#include <algorithm>
#include <array>
#include <cctype>
#include <set>

#include "pki/pki_internal.h"

namespace edgecert::pki {
namespace {

struct UsageInfo {
    Usage usage;
    std::string_view name;
    int ku_bit;   // RFC 5280 §4.2.1.3 KeyUsage bit number, or -1
    int eku_nid;  // extKeyUsage purpose, or NID_undef
};

// cert-manager.io/v1 KeyUsage values, in its order.
constexpr std::array<UsageInfo, 23> kUsages{{
    {Usage::Signing, "signing", 0, NID_undef},
    {Usage::DigitalSignature, "digital signature", 0, NID_undef},
    {Usage::ContentCommitment, "content commitment", 1, NID_undef},
    {Usage::KeyEncipherment, "key encipherment", 2, NID_undef},
    {Usage::KeyAgreement, "key agreement", 4, NID_undef},
    {Usage::DataEncipherment, "data encipherment", 3, NID_undef},
    {Usage::CertSign, "cert sign", 5, NID_undef},
    {Usage::CrlSign, "crl sign", 6, NID_undef},
    {Usage::EncipherOnly, "encipher only", 7, NID_undef},
    {Usage::DecipherOnly, "decipher only", 8, NID_undef},
    {Usage::Any, "any", -1, NID_anyExtendedKeyUsage},
    {Usage::ServerAuth, "server auth", -1, NID_server_auth},
    {Usage::ClientAuth, "client auth", -1, NID_client_auth},
    {Usage::CodeSigning, "code signing", -1, NID_code_sign},
    {Usage::EmailProtection, "email protection", -1, NID_email_protect},
    {Usage::SMime, "s/mime", -1, NID_email_protect},
    {Usage::IpsecEndSystem, "ipsec end system", -1, NID_ipsecEndSystem},
    {Usage::IpsecTunnel, "ipsec tunnel", -1, NID_ipsecTunnel},
    {Usage::IpsecUser, "ipsec user", -1, NID_ipsecUser},
    {Usage::Timestamping, "timestamping", -1, NID_time_stamp},
    {Usage::OcspSigning, "ocsp signing", -1, NID_OCSP_sign},
    {Usage::MicrosoftSgc, "microsoft sgc", -1, NID_ms_sgc},
    {Usage::NetscapeSgc, "netscape sgc", -1, NID_ns_sgc},
}};

const UsageInfo& info(Usage u) {
    for (const auto& i : kUsages)
        if (i.usage == u) return i;
    return kUsages[0];  // unreachable: every enumerator is in the table
}

bool is_rsa(const acme::PrivateKey& key) {
    return key.type() == acme::KeyType::Rsa2048 || key.type() == acme::KeyType::Rsa3072 ||
           key.type() == acme::KeyType::Rsa4096;
}

Status add_entries(X509_NAME* name, int nid, const std::vector<std::string>& values,
                   const char* field) {
    for (const auto& v : values) {
        if (v.empty()) return Error(ErrorCode::InvalidConfig, std::string(field) + ": empty value");
        if (X509_NAME_add_entry_by_NID(name, nid, MBSTRING_UTF8,
                                       reinterpret_cast<const unsigned char*>(v.data()),
                                       static_cast<int>(v.size()), -1, 0) != 1)
            return ossl::error(std::string(field) + " '" + v + "' cannot be encoded",
                               ErrorCode::InvalidConfig);
    }
    return {};
}

}  // namespace

Result<Usage> parse_usage(std::string_view name) {
    for (const auto& i : kUsages)
        if (i.name == name) return i.usage;
    std::string known;
    for (const auto& i : kUsages)
        known += std::string(known.empty() ? "" : ", ") + std::string(i.name);
    return Error(ErrorCode::InvalidConfig,
                 "usage '" + std::string(name) + "' is not one of: " + known);
}

std::string_view to_string(Usage u) {
    return info(u).name;
}

bool Subject::empty() const {
    return common_name.empty() && organizations.empty() && organizational_units.empty() &&
           countries.empty() && localities.empty() && provinces.empty() &&
           street_addresses.empty() && postal_codes.empty() && serial_number.empty();
}

Result<ossl::UniquePtr<X509_NAME>> build_name(const Subject& s) {
    ossl::UniquePtr<X509_NAME> name(X509_NAME_new());
    if (!name) return ossl::error("building subject");
    for (const auto& c : s.countries)
        if (c.size() != 2 || !std::isalpha(static_cast<unsigned char>(c[0])) ||
            !std::isalpha(static_cast<unsigned char>(c[1])))
            return Error(ErrorCode::InvalidConfig,
                         "spec.subject.countries: '" + c + "' is not a two-letter code");
    if (s.common_name.size() > 64)  // RFC 5280 ub-common-name
        return Error(ErrorCode::InvalidConfig,
                     "spec.commonName is longer than 64 characters (RFC 5280)");
    // Go's pkix.Name.ToRDNSequence order, which cert-manager's certificates have.
    EC_TRY(add_entries(name.get(), NID_countryName, s.countries, "spec.subject.countries"));
    EC_TRY(add_entries(name.get(), NID_stateOrProvinceName, s.provinces, "spec.subject.provinces"));
    EC_TRY(add_entries(name.get(), NID_localityName, s.localities, "spec.subject.localities"));
    EC_TRY(add_entries(name.get(), NID_streetAddress, s.street_addresses,
                       "spec.subject.streetAddresses"));
    EC_TRY(add_entries(name.get(), NID_postalCode, s.postal_codes, "spec.subject.postalCodes"));
    EC_TRY(add_entries(name.get(), NID_organizationName, s.organizations,
                       "spec.subject.organizations"));
    EC_TRY(add_entries(name.get(), NID_organizationalUnitName, s.organizational_units,
                       "spec.subject.organizationalUnits"));
    if (!s.common_name.empty())
        EC_TRY(add_entries(name.get(), NID_commonName, {s.common_name}, "spec.commonName"));
    if (!s.serial_number.empty())
        EC_TRY(add_entries(name.get(), NID_serialNumber, {s.serial_number},
                           "spec.subject.serialNumber"));
    return name;
}

UsageBits usage_bits(const CertificateTemplate& t, const acme::PrivateKey& key) {
    UsageBits b;
    std::vector<Usage> us = t.usages;
    if (us.empty()) {
        us.push_back(Usage::DigitalSignature);
        if (is_rsa(key)) us.push_back(Usage::KeyEncipherment);
    }
    if (t.is_ca) us.push_back(Usage::CertSign);
    for (Usage u : us) {
        const UsageInfo& i = info(u);
        if (i.ku_bit >= 0) b.key_usage |= 1u << i.ku_bit;
        if (i.eku_nid != NID_undef) b.eku.insert(i.eku_nid);
    }
    return b;
}

Status add_usage_extensions(X509* x, const UsageBits& b) {
    if (b.key_usage != 0) {
        ossl::UniquePtr<ASN1_STRING> bits(ASN1_BIT_STRING_new());
        if (!bits) return ossl::error("building keyUsage");
        for (int bit = 0; bit <= 8; ++bit)
            if ((b.key_usage & (1u << bit)) && ASN1_BIT_STRING_set_bit(bits.get(), bit, 1) != 1)
                return ossl::error("building keyUsage");
        // RFC 5280 §4.2.1.3: SHOULD be critical.
        if (X509_add1_ext_i2d(x, NID_key_usage, bits.get(), 1, X509V3_ADD_DEFAULT) != 1)
            return ossl::error("adding keyUsage");
    }
    if (!b.eku.empty()) {
        ossl::UniquePtr<EXTENDED_KEY_USAGE> eku(sk_ASN1_OBJECT_new_null());
        if (!eku) return ossl::error("building extKeyUsage");
        for (int nid : b.eku) {
            ASN1_OBJECT* o = OBJ_nid2obj(nid);
            if (!o || sk_ASN1_OBJECT_push(eku.get(), o) <= 0)
                return ossl::error("building extKeyUsage");
        }
        if (X509_add1_ext_i2d(x, NID_ext_key_usage, eku.get(), 0, X509V3_ADD_DEFAULT) != 1)
            return ossl::error("adding extKeyUsage");
    }
    return {};
}

UsageBits usage_bits_of(const acme::Certificate& cert) {
    UsageBits b;
    if (auto bits = ossl::UniquePtr<ASN1_STRING>(static_cast<ASN1_STRING*>(
            X509_get_ext_d2i(cert.get(), NID_key_usage, nullptr, nullptr)))) {
        for (int bit = 0; bit <= 8; ++bit)
            if (ASN1_BIT_STRING_get_bit(bits.get(), bit)) b.key_usage |= 1u << bit;
    }
    if (auto eku = ossl::UniquePtr<EXTENDED_KEY_USAGE>(static_cast<EXTENDED_KEY_USAGE*>(
            X509_get_ext_d2i(cert.get(), NID_ext_key_usage, nullptr, nullptr)))) {
        for (int i = 0; i < sk_ASN1_OBJECT_num(eku.get()); ++i)
            b.eku.insert(OBJ_obj2nid(sk_ASN1_OBJECT_value(eku.get(), i)));
    }
    ossl::clear_errors();
    return b;
}

bool is_ca(const acme::Certificate& cert) {
    ossl::UniquePtr<BASIC_CONSTRAINTS> bc(static_cast<BASIC_CONSTRAINTS*>(
        X509_get_ext_d2i(cert.get(), NID_basic_constraints, nullptr, nullptr)));
    ossl::clear_errors();
    return bc && bc->ca;
}

std::vector<std::string> differences(const CertificateTemplate& t, const acme::Certificate& cert,
                                     const acme::PrivateKey& key) {
    std::vector<std::string> out;
    if (is_ca(cert) != t.is_ca) out.emplace_back("spec.isCA");
    if (usage_bits(t, key) != usage_bits_of(cert)) out.emplace_back("spec.usages");
    auto want = build_name(t.subject);
    if (!want || X509_NAME_cmp(want->get(), X509_get_subject_name(cert.get())) != 0)
        out.emplace_back("spec.commonName/spec.subject");
    ossl::clear_errors();
    return out;
}

}  // namespace edgecert::pki
