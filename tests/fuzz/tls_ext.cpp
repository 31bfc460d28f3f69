// The hand-written ClientHello extension parsers (src/tls/tls_context.cpp) on any bytes, without
// OpenSSL's framing in front: server_name (RFC 6066 §3) and ALPN (RFC 7301 §3.1) bodies, and the
// SNI lookup they feed (CertSnapshot::find).
//
// Input: one byte (even: server_name, odd: ALPN), then the extension body.
// Invariants: a parsed host_name lies inside the body, right after its own 2-byte length; an
// accepted ALPN list is exactly the canonical encoding of the protocols it returned (so nothing
// is skipped or invented), none empty; the lookup is case-insensitive and a name always gets the
// default certificate or a certificate that covers it.
#include <cctype>
#include <vector>

#include "tests/fuzz/fuzz_util.h"
#include "tests/unit/tls/test_certs.h"
#include "tls/cert_snapshot.h"
#include "tls/tls_context.h"

using namespace edgecert;
using namespace edgecert::tls;

namespace {

struct World {
    FakeClock clock{SystemTime(std::chrono::seconds(time(nullptr)))};
    std::shared_ptr<const CertSnapshot> snap;
    World() {
        time_t now = time(nullptr);
        EntryMap m;
        long serial = 1;
        for (auto [name, sans] : std::vector<std::pair<std::string, std::vector<std::string>>>{
                 {"a", {"a.test", "*.w.test"}},
                 {"b", {"b.test", "*.b.test"}},
                 {"default", {"default.test"}}}) {
            auto c = testing::make_cert(sans, false, serial++, now);
            auto e = parse_cert_entry(name, c.cert_pem, c.key_pem, clock);
            if (!e) std::abort();
            m[name] = *e;
        }
        snap = CertSnapshot::build(m, "default", false);
    }
};

World& world() {
    static World* w = new World();
    return *w;
}

bool covers(const CertEntry& e, std::string_view sni) {
    std::string n(sni);
    if (!n.empty() && n.back() == '.') n.pop_back();  // absolute form
    for (auto& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const auto& d : e.dns_names) {
        if (d == n) return true;
        if (d.size() > 2 && d[0] == '*' && d[1] == '.') {
            size_t dot = n.find('.');
            if (dot != std::string::npos && dot > 0 && n.substr(dot + 1) == d.substr(2))
                return true;
        }
    }
    return false;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    world();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz::Reader r(fuzz::as_view(data, size));
    bool alpn = r.u8() & 1;
    std::string_view body = r.rest();
    const auto* p = reinterpret_cast<const unsigned char*>(body.data());
    if (!alpn) {
        std::string_view sni;
        if (!parse_sni_ext(p, body.size(), &sni)) return 0;
        FUZZ_CHECK(fuzz::within(sni, body), "host_name outside the extension");
        size_t off = static_cast<size_t>(sni.data() - body.data());
        FUZZ_CHECK(off >= 5, "host_name overlaps the list header");
        FUZZ_CHECK(body[off - 3] == 0, "name type is not host_name");
        FUZZ_CHECK(static_cast<size_t>(static_cast<uint8_t>(body[off - 2]) << 8 |
                                       static_cast<uint8_t>(body[off - 1])) == sni.size(),
                   "host_name length mismatch");
        MatchKind kind = MatchKind::None, kind_upper = MatchKind::None;
        CertSlot slot = world().snap->find(sni, &kind);
        std::string upper(sni);
        for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        CertSlot slot_upper = world().snap->find(upper, &kind_upper);
        FUZZ_CHECK(slot.ec == slot_upper.ec && kind == kind_upper, "SNI lookup depends on case");
        FUZZ_CHECK(slot.ec != nullptr, "non-strict snapshot without a certificate");
        if (kind == MatchKind::Exact || kind == MatchKind::Wildcard)
            FUZZ_CHECK(covers(*slot.ec, sni), "%s does not cover the SNI", slot.ec->name.c_str());
        else
            FUZZ_CHECK(kind == MatchKind::Default && slot.ec->name == "default", "not the default");
        return 0;
    }
    std::vector<std::string_view> protos;
    if (!parse_alpn_ext(p, body.size(), &protos)) return 0;
    std::string wire(2, '\0');
    for (auto v : protos) {
        FUZZ_CHECK(!v.empty() && v.size() <= 255 && fuzz::within(v, body), "bad protocol view");
        wire.push_back(static_cast<char>(v.size()));
        wire.append(v);
    }
    wire[0] = static_cast<char>((wire.size() - 2) >> 8);
    wire[1] = static_cast<char>((wire.size() - 2) & 0xff);
    FUZZ_CHECK(wire == body, "ALPN list is not the canonical encoding of what was returned");
    return 0;
}
