#pragma once
// An in-memory authoritative DNS server and transport for unit tests of the RFC 2136 client, the
// propagation checker and the dns-01 solver. Messages really go through wire format (ldns on both
// sides): updates are TSIG-verified and applied per RFC 2136 §3.4.2, responses are signed with the
// request MAC (RFC 8945 §5.3), queries are answered from the zone like an authoritative server.
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "dns/ldns_wrap.h"
#include "dns/message.h"
#include "dns/transport.h"

namespace edgecert::dns::testing {

class FakeDnsServer {
  public:
    std::string zone = "example.test.";
    std::vector<std::string> ns = {"ns1.example.test."};
    std::map<std::string, std::string> addresses = {{"ns1.example.test.", "127.0.0.1"}};  // glue
    std::map<std::string, std::set<std::string>> txt;  // name → values
    std::optional<TsigKey> key;                        // updates must be signed with it when set
    bool accept_updates = true;
    int updates = 0, queries = 0;

    std::string handle(std::string_view wire) {
        ldns_pkt* q = nullptr;
        if (ldns_wire2pkt(&q, reinterpret_cast<const uint8_t*>(wire.data()), wire.size()) !=
            LDNS_STATUS_OK)
            return "";
        ldns_pkt* r = ldns_pkt_new();
        ldns_pkt_set_id(r, ldns_pkt_id(q));
        ldns_pkt_set_qr(r, true);
        ldns_pkt_set_opcode(r, ldns_pkt_get_opcode(q));
        ldns_rr* question = ldns_rr_clone(ldns_rr_list_rr(ldns_pkt_question(q), 0));
        std::string qname = text(ldns_rr_owner(question));
        ldns_rr_type qtype = ldns_rr_get_type(question);
        ldns_pkt_push_rr(r, LDNS_SECTION_QUESTION, question);
        bool sign = false;
        if (ldns_pkt_get_opcode(q) == LDNS_PACKET_UPDATE) {
            ++updates;
            if (key) {
                if (!verify_request_tsig(wire, *key)) {
                    ldns_pkt_set_rcode(r, LDNS_RCODE_NOTAUTH);  // RFC 8945 §5.2.2, unsigned
                    return finish(q, r, false);
                }
                sign = true;
            }
            if (!accept_updates || qname != zone) {
                ldns_pkt_set_rcode(r, accept_updates ? LDNS_RCODE_NOTAUTH : LDNS_RCODE_REFUSED);
                return finish(q, r, sign);
            }
            const ldns_rr_list* up = ldns_pkt_authority(q);
            for (size_t i = 0; i < ldns_rr_list_rr_count(up); ++i) {
                const ldns_rr* rr = ldns_rr_list_rr(up, i);
                std::string owner = text(ldns_rr_owner(rr));
                const ldns_rdf* f = ldns_rr_rdf(rr, 0);
                std::string value(reinterpret_cast<const char*>(ldns_rdf_data(f)) + 1,
                                  ldns_rdf_size(f) - 1);
                if (ldns_rr_get_class(rr) == LDNS_RR_CLASS_IN) txt[owner].insert(value);  // §2.5.1
                if (ldns_rr_get_class(rr) == LDNS_RR_CLASS_NONE) {                        // §2.5.4
                    txt[owner].erase(value);
                    if (txt[owner].empty()) txt.erase(owner);
                }
            }
            return finish(q, r, sign);
        }
        ++queries;
        if (!is_subdomain_or_equal(qname, zone)) {
            ldns_pkt_set_rcode(r, LDNS_RCODE_REFUSED);
            return finish(q, r, false);
        }
        ldns_pkt_set_aa(r, true);
        bool found = false;
        if (qtype == LDNS_RR_TYPE_SOA && qname == zone) {
            push(r, LDNS_SECTION_ANSWER, soa());
            found = true;
        } else if (qtype == LDNS_RR_TYPE_NS && qname == zone) {
            for (const auto& n : ns) {
                push(r, LDNS_SECTION_ANSWER, zone + " 60 IN NS " + n);
                if (addresses.count(n))
                    push(r, LDNS_SECTION_ADDITIONAL, n + " 60 IN A " + addresses[n]);
            }
            found = true;
        } else if (qtype == LDNS_RR_TYPE_TXT && txt.count(qname)) {
            for (const auto& v : txt[qname])
                push(r, LDNS_SECTION_ANSWER, qname + " 60 IN TXT \"" + v + "\"");
            found = true;
        } else if (qtype == LDNS_RR_TYPE_A && addresses.count(qname)) {
            push(r, LDNS_SECTION_ANSWER, qname + " 60 IN A " + addresses[qname]);
            found = true;
        }
        if (!found) {
            // RFC 2308 §2: a negative answer carries the zone's SOA in the authority section.
            bool exists = txt.count(qname) || addresses.count(qname) || qname == zone;
            for (const auto& [n, _] : txt)
                if (is_subdomain_or_equal(n, qname)) exists = true;
            ldns_pkt_set_rcode(r, exists ? LDNS_RCODE_NOERROR : LDNS_RCODE_NXDOMAIN);
            push(r, LDNS_SECTION_AUTHORITY, soa());
        }
        return finish(q, r, false);
    }

  private:
    std::string soa() const {
        return zone + " 60 IN SOA ns1." + zone + " hostmaster." + zone + " 1 60 60 600 1";
    }
    static std::string text(const ldns_rdf* rdf) {
        char* s = ldns_rdf2str(rdf);
        std::string out(s ? s : "");
        free(s);
        for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return out;
    }
    static void push(ldns_pkt* p, ldns_pkt_section sec, const std::string& rr_text) {
        ldns_rr* rr = nullptr;
        if (ldns_rr_new_frm_str(&rr, rr_text.c_str(), 60, nullptr, nullptr) == LDNS_STATUS_OK)
            ldns_pkt_push_rr(p, sec, rr);
    }
    std::string finish(ldns_pkt* q, ldns_pkt* r, bool sign) {
        if (sign) {
            // RFC 8945 §5.3: the response MAC covers the request MAC.
            ldns_rdf* mac = ldns_rdf_clone(ldns_rr_rdf(ldns_pkt_tsig(q), 3));
            ldns_pkt_tsig_sign(r, key->name().c_str(), key->secret_base64().reveal().data(), 300,
                               key->algorithm().c_str(), mac);
            ldns_rdf_deep_free(mac);
        }
        uint8_t* buf = nullptr;
        size_t len = 0;
        ldns_pkt2wire(&buf, r, &len);
        std::string out(reinterpret_cast<char*>(buf), len);
        free(buf);
        ldns_pkt_free(q);
        ldns_pkt_free(r);
        return out;
    }
};

// Routes exchanges to FakeDnsServers by "host:port"; an unknown endpoint times out.
class FakeTransport final : public DnsTransport {
  public:
    std::map<std::string, FakeDnsServer*> servers;
    std::map<std::string, std::vector<std::string>> hosts;  // resolve_host answers
    std::vector<std::string> log;                           // "host:port" of every exchange
    // Called before each exchange (e.g. to let a lagging server catch up).
    std::function<void(const Endpoint&, std::string_view)> before;

    Result<std::string> exchange(const Endpoint& server, std::string_view message,
                                 std::chrono::milliseconds) override {
        log.push_back(server.to_string());
        if (before) before(server, message);
        auto it = servers.find(server.to_string());
        if (it == servers.end())
            return Error(ErrorCode::Transient, server.to_string() + ": no answer (timeout)");
        return it->second->handle(message);
    }
    std::vector<std::string> resolve_host(const std::string& name) override {
        auto it = hosts.find(name);
        return it == hosts.end() ? std::vector<std::string>{} : it->second;
    }
};

inline TsigKey test_key(const std::string& secret = "XRVYeZiaTd3p7qnygPZPJJWLCohwUDPk019r7/kyA04=",
                        const std::string& alg = "hmac-sha256") {
    return TsigKey::create("edgecert-test", alg, SecretBytes(secret)).value();
}

}  // namespace edgecert::dns::testing
