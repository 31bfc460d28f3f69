#pragma once
// DNS messages for dns-01: RFC 2136 UPDATE (add / delete one TXT value), RFC 1035 queries (SOA,
// NS, A, AAAA, TXT) and responses, RFC 8945 TSIG signing and verification.
//
// The wire format and the TSIG MAC are ldns's (a well-kept library beats hand-written TSIG: the
// MAC covers a canonical form of the message that is easy to get subtly wrong). This file does no
// I/O: it turns requests into bytes and bytes into responses, so it is tested on recorded bytes.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "edgecert/base/result.h"
#include "edgecert/base/secret.h"

namespace edgecert::dns {

// RFC 1035 §3.2.2 types used here.
enum class RrType : uint16_t { A = 1, NS = 2, SOA = 6, TXT = 16, AAAA = 28 };

// RFC 1035 §4.1.1 + RFC 2136 §2.2 response codes.
enum Rcode : int {
    kNoError = 0,
    kFormErr = 1,
    kServFail = 2,
    kNxDomain = 3,
    kNotImp = 4,
    kRefused = 5,
    kYxDomain = 6,
    kYxRrset = 7,
    kNxRrset = 8,
    kNotAuth = 9,
    kNotZone = 10,
};
std::string rcode_name(int rcode);

// RFC 8945 §5.2 TSIG error codes carried in the TSIG RR's Error field.
enum TsigError : int { kTsigBadSig = 16, kTsigBadKey = 17, kTsigBadTime = 18, kTsigBadTrunc = 22 };

// A shared TSIG key (RFC 8945 §6): name, algorithm and the secret as the base64 text BIND's
// tsig-keygen prints. The secret is kept as SecretBytes: it has no formatter and is never logged.
class TsigKey {
  public:
    // algorithm: "hmac-sha256" or "hmac-sha512" (cert-manager's HMACSHA256 / HMACSHA512 too);
    // empty: the key clause's `algorithm ...;` when secret_text is one, else hmac-sha256.
    // secret_text: the base64 secret, or a whole BIND key file / named.conf key clause (the
    // `secret "...";` is taken from it). InvalidConfig when the name, algorithm or secret is bad.
    static Result<TsigKey> create(std::string_view name, std::string_view algorithm,
                                  const SecretBytes& secret_text);
    const std::string& name() const { return name_; }            // absolute, "key.example."
    const std::string& algorithm() const { return algorithm_; }  // "hmac-sha256."
    const SecretBytes& secret_base64() const { return secret_b64_; }

  private:
    std::string name_, algorithm_;
    SecretBytes secret_b64_;  // canonical base64, NUL-terminated (ldns takes a C string)
};

// Names are handled in presentation format; these make them absolute and lower-case.
std::string fqdn(std::string_view name);  // "a.Example.test" → "a.example.test."
bool is_subdomain_or_equal(std::string_view name, std::string_view zone);  // both absolute
std::string parent_name(std::string_view name);  // "a.b." → "b.", "b." → "." , "." → ""

struct OutgoingMessage {
    uint16_t id = 0;
    std::string wire;
    std::string request_mac;  // TSIG MAC of the request (binary); empty when unsigned
};

// RFC 2136 §2.5.1 (add to an RRset) or §2.5.4 (delete one RR from an RRset): one TXT value at
// `name` in `zone`. Only that value is touched, so a wildcard and its base name (same TXT name,
// two values) never remove each other's. Signed with `key` when given (RFC 8945 §5.1).
Result<OutgoingMessage> build_txt_update(std::string_view zone, std::string_view name,
                                         std::string_view value, bool add, uint32_t ttl,
                                         uint16_t id, const TsigKey* key);

// RFC 1035 §4.1 query. rd=false asks an authoritative server for its own data (no recursion).
Result<OutgoingMessage> build_query(std::string_view name, RrType type, uint16_t id, bool rd);

struct Record {
    std::string name;  // absolute, lower-case
    uint16_t type = 0;
    uint32_t ttl = 0;
    // A/AAAA: the address; NS: the absolute target name; SOA: the MNAME; TXT: the character
    // strings concatenated (RFC 8555 §8.4 values are a single string); other types: empty.
    std::string data;
};

struct TsigInfo {
    std::string key_name;
    int error = 0;  // RFC 8945 §5.2 (0, BADSIG, BADKEY, BADTIME...)
    bool has_mac = false;
};

struct Response {
    uint16_t id = 0;
    int rcode = 0;
    bool aa = false;  // authoritative answer (RFC 1035 §4.1.1)
    bool tc = false;  // truncated: ask again over TCP
    int opcode = 0;
    std::string question;  // first question name, absolute
    std::vector<Record> answer, authority, additional;
    std::optional<TsigInfo> tsig;
};

// Parses a response. Transient on malformed bytes (a broken middlebox or a stray packet).
Result<Response> parse_response(std::string_view wire);

// TXT values of `name` in the answer section.
std::vector<std::string> txt_values(const Response& r, std::string_view name);

// RFC 8945 §5.3: a response to a signed request must carry a valid TSIG. BADSIG/BADKEY/BADTIME
// (the server could not verify us, §5.2) and an unsigned or wrongly signed answer are
// InvalidConfig naming the key — never its secret.
Status verify_response_tsig(std::string_view wire, const Response& parsed, const TsigKey& key,
                            std::string_view request_mac);

// Server side of RFC 8945 §5.2: verifies a signed request (tests' fake servers use it).
Status verify_request_tsig(std::string_view wire, const TsigKey& key);
// The MAC of a TSIG-signed message (binary); empty when it is not signed.
std::string tsig_mac_of(std::string_view wire);

// The outcome of an UPDATE (RFC 2136 §2.2 / §3.8): ok for NOERROR; InvalidConfig for
// REFUSED/NOTAUTH/NOTZONE (the server or zone is wrong, or the key may not update it); Transient
// for SERVFAIL; Permanent otherwise. `what` names the change in the message.
Status update_status(const Response& r, std::string_view server, std::string_view what);

}  // namespace edgecert::dns
