// DNS message building and parsing on ldns (message.h).
#include "dns/message.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <memory>

#include "dns/ldns_wrap.h"
#include "edgecert/base/encoding.h"

namespace edgecert::dns {
namespace {

struct PktFree {
    void operator()(ldns_pkt* p) const { ldns_pkt_free(p); }
};
struct RdfFree {
    void operator()(ldns_rdf* r) const { ldns_rdf_deep_free(r); }
};
struct RrListFree {
    void operator()(ldns_rr_list* l) const { ldns_rr_list_deep_free(l); }
};
struct CFree {
    void operator()(void* p) const { std::free(p); }
};
using PktPtr = std::unique_ptr<ldns_pkt, PktFree>;
using RdfPtr = std::unique_ptr<ldns_rdf, RdfFree>;
using RrListPtr = std::unique_ptr<ldns_rr_list, RrListFree>;

Error bad(std::string m) {
    return Error(ErrorCode::InvalidConfig, std::move(m));
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::string trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return std::string(s);
}

std::string rdf_text(const ldns_rdf* rdf) {
    if (!rdf) return "";
    std::unique_ptr<char, CFree> s(ldns_rdf2str(rdf));
    return s ? std::string(s.get()) : std::string();
}

// A presentation-format domain name → an ldns dname, refusing what ldns would misread.
Result<RdfPtr> dname(std::string_view name) {
    std::string n = fqdn(name);
    if (n.size() > 254) return bad(fmt::format("DNS name '{}' is too long", name));
    for (char c : n)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' ||
              c == '*'))
            return bad(fmt::format("'{}' is not a DNS name edgecert will update", name));
    RdfPtr r(ldns_dname_new_frm_str(n.c_str()));
    if (!r) return bad(fmt::format("'{}' is not a valid DNS name", name));
    return r;
}

Result<OutgoingMessage> to_wire(ldns_pkt* p, uint16_t id) {
    ldns_pkt_set_id(p, id);
    uint8_t* buf = nullptr;
    size_t len = 0;
    if (ldns_pkt2wire(&buf, p, &len) != LDNS_STATUS_OK || !buf)
        return Error(ErrorCode::Permanent, "could not encode the DNS message");
    std::unique_ptr<uint8_t, CFree> owned(buf);
    OutgoingMessage m;
    m.id = id;
    m.wire.assign(reinterpret_cast<const char*>(buf), len);
    return m;
}

// RFC 1035 §3.3.14: TXT RDATA is one or more <character-string>s; RFC 8555 §8.4 values fit in one.
std::string txt_data(const ldns_rr* rr) {
    std::string out;
    for (size_t i = 0; i < ldns_rr_rd_count(rr); ++i) {
        const ldns_rdf* f = ldns_rr_rdf(rr, i);
        if (!f || ldns_rdf_size(f) < 1) continue;
        const uint8_t* d = ldns_rdf_data(f);
        size_t n = std::min<size_t>(d[0], ldns_rdf_size(f) - 1);
        out.append(reinterpret_cast<const char*>(d + 1), n);
    }
    return out;
}

std::vector<Record> records(const ldns_rr_list* list) {
    std::vector<Record> out;
    if (!list) return out;
    for (size_t i = 0; i < ldns_rr_list_rr_count(list); ++i) {
        const ldns_rr* rr = ldns_rr_list_rr(list, i);
        Record r;
        r.name = lower(rdf_text(ldns_rr_owner(rr)));
        r.type = static_cast<uint16_t>(ldns_rr_get_type(rr));
        r.ttl = ldns_rr_ttl(rr);
        switch (r.type) {
            case static_cast<uint16_t>(RrType::A):
            case static_cast<uint16_t>(RrType::AAAA):
                r.data = rdf_text(ldns_rr_rdf(rr, 0));
                break;
            case static_cast<uint16_t>(RrType::NS):
            case static_cast<uint16_t>(RrType::SOA):  // RFC 1035 §3.3.13: MNAME first
                r.data = lower(rdf_text(ldns_rr_rdf(rr, 0)));
                break;
            case static_cast<uint16_t>(RrType::TXT):
                r.data = txt_data(rr);
                break;
            default:
                break;
        }
        out.push_back(std::move(r));
    }
    return out;
}

// ldns_pkt_tsig_verify, but without its leak: when it cannot compute the MAC (an algorithm it does
// not know, say) ldns 1.8 returns with the packet's TSIG RR detached, so ldns_pkt_free no longer
// frees it. Found by fuzzing (tests/data/fuzz-corpus/dns_response/leak-unknown-tsig-algorithm).
bool tsig_verify(ldns_pkt* p, std::string_view wire, const TsigKey& key,
                 const ldns_rdf* request_mac) {
    ldns_rr* tsig = ldns_pkt_tsig(p);
    bool ok =
        ldns_pkt_tsig_verify(p, reinterpret_cast<const uint8_t*>(wire.data()), wire.size(),
                             key.name().c_str(), key.secret_base64().reveal().data(), request_mac);
    if (tsig && ldns_pkt_tsig(p) != tsig) ldns_rr_free(tsig);
    return ok;
}

std::string tsig_error_name(int e) {
    switch (e) {
        case kTsigBadSig:
            return "BADSIG";
        case kTsigBadKey:
            return "BADKEY";
        case kTsigBadTime:
            return "BADTIME";
        case kTsigBadTrunc:
            return "BADTRUNC";
    }
    return fmt::format("TSIG error {}", e);
}

}  // namespace

std::string rcode_name(int rcode) {
    static const char* names[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN",
                                  "NOTIMP",  "REFUSED", "YXDOMAIN", "YXRRSET",
                                  "NXRRSET", "NOTAUTH", "NOTZONE"};
    if (rcode >= 0 && rcode <= 10) return names[rcode];
    return fmt::format("RCODE{}", rcode);
}

std::string fqdn(std::string_view name) {
    std::string n = lower(trim(name));
    if (n.empty() || n.back() != '.') n += '.';
    return n;
}

bool is_subdomain_or_equal(std::string_view name, std::string_view zone) {
    std::string n = fqdn(name), z = fqdn(zone);
    if (z == ".") return true;
    if (n == z) return true;
    return n.size() > z.size() && n.compare(n.size() - z.size(), z.size(), z) == 0 &&
           n[n.size() - z.size() - 1] == '.';
}

std::string parent_name(std::string_view name) {
    std::string n = fqdn(name);
    if (n == ".") return "";
    auto dot = n.find('.');
    return dot + 1 >= n.size() ? "." : n.substr(dot + 1);
}

Result<TsigKey> TsigKey::create(std::string_view name, std::string_view algorithm,
                                const SecretBytes& secret_text) {
    TsigKey k;
    if (trim(name).empty()) return bad("the TSIG key name is empty");
    EC_TRY(dname(name));
    k.name_ = fqdn(name);
    std::string alg = lower(trim(algorithm));
    if (alg.empty()) {
        // No algorithm given: the one a BIND key clause names (algorithm hmac-sha512;), if any.
        std::string_view t = secret_text.reveal();
        if (auto p = t.find("algorithm"); p != std::string_view::npos) {
            auto e = t.find(';', p);
            if (e != std::string_view::npos) alg = lower(trim(t.substr(p + 9, e - p - 9)));
        }
    }
    if (alg.empty() || alg == "hmac-sha256" || alg == "hmac-sha256." || alg == "hmacsha256")
        k.algorithm_ = "hmac-sha256.";
    else if (alg == "hmac-sha512" || alg == "hmac-sha512." || alg == "hmacsha512")
        k.algorithm_ = "hmac-sha512.";
    else
        return bad(fmt::format(
            "TSIG algorithm '{}' is not supported: use hmac-sha256 or hmac-sha512", algorithm));
    // Accept a bare base64 secret or a BIND key clause: key "n" { algorithm ..; secret "B64"; };
    std::string_view text = secret_text.reveal();
    std::string b64;
    if (auto p = text.find("secret");
        p != std::string_view::npos && text.find('"', p) != std::string_view::npos) {
        auto q1 = text.find('"', p);
        auto q2 = text.find('"', q1 + 1);
        if (q2 == std::string_view::npos)
            return bad("the TSIG key file has an unterminated secret");
        b64.assign(text.substr(q1 + 1, q2 - q1 - 1));
    } else {
        b64 = trim(text);
    }
    auto raw = enc::base64_decode(b64);
    std::fill(b64.begin(), b64.end(), '\0');
    if (!raw || raw->empty())
        return bad(fmt::format("the TSIG secret for key {} is not base64", k.name_));
    // Re-encode canonically: ldns decodes it again when it computes a MAC.
    k.secret_b64_ = SecretBytes(enc::base64(*raw));
    std::fill(raw->begin(), raw->end(), '\0');
    return k;
}

Result<OutgoingMessage> build_txt_update(std::string_view zone, std::string_view name,
                                         std::string_view value, bool add, uint32_t ttl,
                                         uint16_t id, const TsigKey* key) {
    if (!is_subdomain_or_equal(name, zone))
        return bad(fmt::format("{} is not inside zone {}", fqdn(name), fqdn(zone)));
    if (value.empty() || value.size() > 255)
        return bad("a TXT value must be 1 to 255 bytes (RFC 1035 §3.3)");
    EC_TRY_ASSIGN(auto zone_rdf, dname(zone));
    EC_TRY_ASSIGN(auto owner, dname(name));

    // RFC 2136 §2.5.1: CLASS = zone class, TTL, RDATA. §2.5.4: CLASS = NONE, TTL = 0, RDATA.
    ldns_rr* rr = ldns_rr_new();
    ldns_rr_set_owner(rr, owner.release());
    ldns_rr_set_type(rr, LDNS_RR_TYPE_TXT);
    ldns_rr_set_class(rr, add ? LDNS_RR_CLASS_IN : LDNS_RR_CLASS_NONE);
    ldns_rr_set_ttl(rr, add ? ttl : 0);
    std::string str(1, static_cast<char>(value.size()));  // RFC 1035 §3.3: length-prefixed
    str.append(value);
    ldns_rr_push_rdf(rr, ldns_rdf_new_frm_data(LDNS_RDF_TYPE_STR, str.size(), str.data()));
    RrListPtr up(ldns_rr_list_new());
    ldns_rr_list_push_rr(up.get(), rr);  // the list owns rr now

    // RFC 2136 §2.3: the Zone section is the zone name with ZTYPE SOA (ldns takes zone_rdf).
    PktPtr p(ldns_update_pkt_new(zone_rdf.release(), LDNS_RR_CLASS_IN, nullptr, up.get(), nullptr));
    if (!p) return Error(ErrorCode::Permanent, "could not build the DNS UPDATE message");
    ldns_pkt_set_rd(p.get(), false);  // §2.2: the bits after Opcode are Z, zero on transmission
    ldns_pkt_set_id(p.get(), id);
    std::string mac;
    if (key) {
        // RFC 8945 §5.1: the TSIG RR is the last additional record; fudge 300 s (§10).
        if (ldns_pkt_tsig_sign(p.get(), key->name().c_str(), key->secret_base64().reveal().data(),
                               300, key->algorithm().c_str(), nullptr) != LDNS_STATUS_OK)
            return bad(fmt::format("could not sign the update with TSIG key {}", key->name()));
        const ldns_rr* t = ldns_pkt_tsig(p.get());
        const ldns_rdf* m = t && ldns_rr_rd_count(t) > 3 ? ldns_rr_rdf(t, 3) : nullptr;
        // The MAC field is RDF_TYPE_INT16_DATA: a 2-byte length, then the MAC itself.
        if (m && ldns_rdf_size(m) >= 2)
            mac.assign(reinterpret_cast<const char*>(ldns_rdf_data(m)) + 2, ldns_rdf_size(m) - 2);
    }
    EC_TRY_ASSIGN(auto out, to_wire(p.get(), id));
    out.request_mac = std::move(mac);
    return out;
}

Result<OutgoingMessage> build_query(std::string_view name, RrType type, uint16_t id, bool rd) {
    EC_TRY_ASSIGN(auto n, dname(name));
    PktPtr p(ldns_pkt_query_new(n.release(), static_cast<ldns_rr_type>(type), LDNS_RR_CLASS_IN,
                                rd ? LDNS_RD : 0));
    if (!p) return Error(ErrorCode::Permanent, "could not build the DNS query");
    return to_wire(p.get(), id);
}

Result<Response> parse_response(std::string_view wire) {
    ldns_pkt* raw = nullptr;
    if (ldns_wire2pkt(&raw, reinterpret_cast<const uint8_t*>(wire.data()), wire.size()) !=
            LDNS_STATUS_OK ||
        !raw)
        return Error(ErrorCode::Transient,
                     fmt::format("malformed DNS response ({} bytes)", wire.size()));
    PktPtr p(raw);
    Response r;
    r.id = ldns_pkt_id(p.get());
    r.rcode = static_cast<int>(ldns_pkt_get_rcode(p.get()));
    r.aa = ldns_pkt_aa(p.get());
    r.tc = ldns_pkt_tc(p.get());
    r.opcode = static_cast<int>(ldns_pkt_get_opcode(p.get()));
    if (const ldns_rr_list* q = ldns_pkt_question(p.get()); q && ldns_rr_list_rr_count(q) > 0)
        r.question = lower(rdf_text(ldns_rr_owner(ldns_rr_list_rr(q, 0))));
    r.answer = records(ldns_pkt_answer(p.get()));
    r.authority = records(ldns_pkt_authority(p.get()));
    r.additional = records(ldns_pkt_additional(p.get()));
    // ldns moves the TSIG RR (RFC 8945 §4.2: last in the additional section) out of the list.
    if (const ldns_rr* t = ldns_pkt_tsig(p.get())) {
        TsigInfo ti;
        ti.key_name = lower(rdf_text(ldns_rr_owner(t)));
        if (ldns_rr_rd_count(t) > 5) ti.error = ldns_rdf2native_int16(ldns_rr_rdf(t, 5));
        if (ldns_rr_rd_count(t) > 3) ti.has_mac = ldns_rdf_size(ldns_rr_rdf(t, 3)) > 2;
        r.tsig = ti;
    }
    return r;
}

std::vector<std::string> txt_values(const Response& r, std::string_view name) {
    std::vector<std::string> out;
    std::string n = fqdn(name);
    for (const auto& rec : r.answer)
        if (rec.type == static_cast<uint16_t>(RrType::TXT) && rec.name == n)
            out.push_back(rec.data);
    return out;
}

Status verify_response_tsig(std::string_view wire, const Response& parsed, const TsigKey& key,
                            std::string_view request_mac) {
    std::string name = key.name().substr(0, key.name().size() - 1);
    auto fail = [&](std::string_view kind, std::string_view detail) {
        return bad(fmt::format("TSIG verification failed ({}) for key {}: {}", kind, name, detail));
    };
    if (!parsed.tsig) {
        // §5.2: a server that cannot verify the request may answer NOTAUTH unsigned; a server
        // that ignores TSIG altogether answers without one.
        if (parsed.rcode == kNotAuth)
            return fail("BADSIG/BADKEY",
                        "the server rejected the request's signature (NOTAUTH); "
                        "check the key name, secret and algorithm");
        return fail("unsigned", "the server's answer carries no TSIG");
    }
    if (parsed.tsig->error == kTsigBadSig || parsed.tsig->error == kTsigBadKey)
        // §5.2.1 BADKEY: unknown key or algorithm; §5.2.2 BADSIG: the MAC does not verify.
        return fail("BADSIG/BADKEY", fmt::format("the server answered {}; check the key name, "
                                                 "secret and algorithm",
                                                 tsig_error_name(parsed.tsig->error)));
    if (parsed.tsig->error == kTsigBadTime)  // §5.2.3
        return fail("BADTIME", "this machine's clock and the server's differ by more than 300 s");
    if (parsed.tsig->error != 0)
        return fail(tsig_error_name(parsed.tsig->error), "the server refused the signature");
    ldns_pkt* raw = nullptr;
    if (ldns_wire2pkt(&raw, reinterpret_cast<const uint8_t*>(wire.data()), wire.size()) !=
            LDNS_STATUS_OK ||
        !raw)
        return fail("malformed", "the answer does not parse");
    PktPtr p(raw);
    // §5.3: the response MAC covers the request MAC (length-prefixed), then the response.
    std::string mac_field(2, '\0');
    mac_field[0] = static_cast<char>((request_mac.size() >> 8) & 0xff);
    mac_field[1] = static_cast<char>(request_mac.size() & 0xff);
    mac_field.append(request_mac);
    RdfPtr orig(
        ldns_rdf_new_frm_data(LDNS_RDF_TYPE_INT16_DATA, mac_field.size(), mac_field.data()));
    if (!tsig_verify(p.get(), wire, key, orig.get()))
        return fail("BADSIG", "the answer's MAC does not verify with this key");
    return ok_status();
}

Status verify_request_tsig(std::string_view wire, const TsigKey& key) {
    ldns_pkt* raw = nullptr;
    if (ldns_wire2pkt(&raw, reinterpret_cast<const uint8_t*>(wire.data()), wire.size()) !=
            LDNS_STATUS_OK ||
        !raw)
        return bad("malformed request");
    PktPtr p(raw);
    if (!ldns_pkt_tsig(p.get())) return bad("the request is not signed");
    if (!tsig_verify(p.get(), wire, key, nullptr))
        return bad(fmt::format("TSIG verification failed (BADSIG) for key {}", key.name()));
    return ok_status();
}

std::string tsig_mac_of(std::string_view wire) {
    ldns_pkt* raw = nullptr;
    if (ldns_wire2pkt(&raw, reinterpret_cast<const uint8_t*>(wire.data()), wire.size()) !=
            LDNS_STATUS_OK ||
        !raw)
        return "";
    PktPtr p(raw);
    const ldns_rr* t = ldns_pkt_tsig(p.get());
    const ldns_rdf* m = t && ldns_rr_rd_count(t) > 3 ? ldns_rr_rdf(t, 3) : nullptr;
    if (!m || ldns_rdf_size(m) < 2) return "";
    return std::string(reinterpret_cast<const char*>(ldns_rdf_data(m)) + 2, ldns_rdf_size(m) - 2);
}

Status update_status(const Response& r, std::string_view server, std::string_view what) {
    if (r.rcode == kNoError) return ok_status();
    std::string msg = fmt::format("DNS UPDATE {} at {}: {}", what, server, rcode_name(r.rcode));
    switch (r.rcode) {
        case kRefused:
            return bad(msg +
                       " (the server does not allow this update: check allow-update / "
                       "update-policy and the TSIG key)");
        case kNotAuth:
            return bad(
                msg +
                " (the server is not authoritative for the zone, or the key was not accepted)");
        case kNotZone:
            return bad(msg + " (the name is not inside the zone: check the zone setting)");
        case kServFail:
            return Error(ErrorCode::Transient, msg);
        default:
            return Error(ErrorCode::Permanent, msg);
    }
}

}  // namespace edgecert::dns
