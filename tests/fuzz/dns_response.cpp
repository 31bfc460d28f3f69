// DNS answers as dns-01 reads them (src/dns/message.cpp): parse_response on any bytes a
// nameserver (or a stray packet) may send, then what the RFC 2136 client and the propagation
// check do with the result: TXT values, the TSIG checks of a signed exchange, the UPDATE verdict.
//
// Input: a DNS message (the seeds are answers recorded from BIND 9 and from the in-repo fake).
// Invariants: record names are absolute and lower-case; txt_values returns only TXT data of the
// asked name; TSIG verification of an answer that was not signed with our key never succeeds;
// error messages never carry the TSIG secret.
#include "dns/message.h"
#include "tests/fuzz/fuzz_util.h"

using namespace edgecert;
using namespace edgecert::dns;

namespace {

const char kSecret[] =
    "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==";  // base64("secret-secret-secret-secret!")

const TsigKey& key() {
    static const TsigKey* k = new TsigKey(
        *TsigKey::create("edgecert-key", "hmac-sha256", SecretBytes(std::string(kSecret))));
    return *k;
}

void check_records(const std::vector<Record>& rs) {
    for (const auto& r : rs) {
        FUZZ_CHECK(!r.name.empty() && r.name.back() == '.', "record name not absolute: %s",
                   r.name.c_str());
        for (char c : r.name) FUZZ_CHECK(!(c >= 'A' && c <= 'Z'), "record name not lower-case");
    }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    key();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view wire = fuzz::as_view(data, size);
    auto r = parse_response(wire);
    (void)tsig_mac_of(wire);
    if (!r) return 0;
    check_records(r->answer);
    check_records(r->authority);
    check_records(r->additional);
    FUZZ_CHECK(r->rcode >= 0 && r->rcode < 16, "rcode %d out of the header's 4 bits", r->rcode);

    std::string name = r->question.empty() ? "_acme-challenge.example.test." : r->question;
    size_t txt = 0;
    for (const auto& rec : r->answer) txt += rec.type == 16 && rec.name == fqdn(name);
    FUZZ_CHECK(txt_values(*r, name).size() == txt, "txt_values disagrees with the answer section");

    // A fuzzed answer cannot carry a valid MAC made with our secret over our request MAC.
    Status v = verify_response_tsig(wire, *r, key(), "request-mac-0123456789abcdef0123");
    FUZZ_CHECK(!v.ok(), "an answer we never signed verified");
    FUZZ_CHECK(v.error().message.find(kSecret) == std::string::npos,
               "TSIG secret in an error message");
    (void)verify_request_tsig(wire, key());
    Status u = update_status(*r, "192.0.2.1:53", "add _acme-challenge.example.test TXT");
    FUZZ_CHECK(u.ok() == (r->rcode == kNoError), "UPDATE verdict does not follow the rcode");
    return 0;
}
