// `edgecert status` and the status page: problem detection, sort and exit codes, relative times,
// the JSON schema field by field, table alignment and colour, and escaping (terminal and HTML).
#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>

#include "app/status_model.h"
#include "app/status_page.h"
#include "app/status_sources.h"
#include "app/status_table.h"
#include "edgecert/acme/crypto.h"
#include "edgecert/base/encoding.h"
#include "platform/files.h"

namespace edgecert::app::status {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;
using json = nlohmann::json;

const SystemTime kNow = SystemTime(seconds(1'750'000'000));  // 2025-06-15T15:06:40Z
constexpr auto kDay = hours(24);

CertRow good(std::string name, int days_left = 60) {
    CertRow r;
    r.namespace_ = "default";
    r.name = name;
    r.secret_name = name + "-tls";
    r.dns_names = {name + ".example.test"};
    r.issuer_name = "letsencrypt";
    r.issuer_kind = "ClusterIssuer";
    r.serial = "0a" + name;
    r.not_before = kNow - kDay * (90 - days_left);
    r.not_after = kNow + kDay * days_left;
    r.renewal_time = *r.not_after - kDay * 30;
    r.ready = "True";
    r.ready_reason = "Ready";
    return r;
}

std::vector<Problem> problems_of(CertRow r) {
    evaluate(r, kNow);
    return r.problems;
}

TEST(StatusModel, RelativeTimes) {
    EXPECT_EQ(relative_time(kNow, kNow), "now");
    EXPECT_EQ(relative_time(kNow + seconds(42), kNow), "in 42s");
    EXPECT_EQ(relative_time(kNow - seconds(59), kNow), "59s ago");
    EXPECT_EQ(relative_time(kNow + minutes(5) + seconds(59), kNow), "in 5m");
    EXPECT_EQ(relative_time(kNow - hours(3), kNow), "3h ago");
    EXPECT_EQ(relative_time(kNow + hours(47), kNow), "in 47h");
    EXPECT_EQ(relative_time(kNow + hours(48), kNow), "in 2d");
    EXPECT_EQ(relative_time(kNow + kDay * 23 + hours(5), kNow), "in 23d");
    EXPECT_EQ(relative_time(kNow - kDay * 400, kNow), "400d ago");
    EXPECT_EQ(relative_time(kNow + kDay * 365 * 3, kNow), "in 3y");
}

TEST(StatusModel, ProblemsFromTheRowsData) {
    EXPECT_TRUE(problems_of(good("ok")).empty());

    CertRow expired = good("old", -3);
    expired.ready = "False";
    EXPECT_EQ(problems_of(expired),
              (std::vector<Problem>{Problem::Expired, Problem::RenewalOverdue, Problem::NotReady}));

    CertRow overdue = good("late", 10);  // renewal was 20 days ago
    EXPECT_EQ(problems_of(overdue), std::vector<Problem>{Problem::RenewalOverdue});
    CertRow just_due = good("due", 30);
    just_due.renewal_time =
        kNow - minutes(30);  // inside the one-hour grace: an order may be running
    EXPECT_TRUE(problems_of(just_due).empty());
    CertRow flagged = good("flagged");
    flagged.overdue_condition = true;
    EXPECT_EQ(problems_of(flagged), std::vector<Problem>{Problem::RenewalOverdue});

    CertRow failing = good("failing");
    failing.failed_attempts = 2;
    EXPECT_EQ(problems_of(failing), std::vector<Problem>{Problem::Failing});

    CertRow never;  // nothing stored, not Ready: no expiry to judge
    never.name = "never";
    never.ready = "False";
    EXPECT_EQ(problems_of(never), std::vector<Problem>{Problem::NotReady});
}

TEST(StatusModel, ServedAgainstStored) {
    CertRow r = good("web");
    r.served = {{"http://a:9402", "", true, "default/web-tls", r.serial, r.not_after}};
    EXPECT_TRUE(problems_of(r).empty());
    EXPECT_EQ(served_state(r), "ok");

    r.served.push_back({"http://b:9402", "", true, "web-tls", "01", r.not_after});
    EXPECT_EQ(problems_of(r), std::vector<Problem>{Problem::ServedMismatch});
    EXPECT_EQ(served_state(r), "mismatch");

    // One terminator serving it is enough; none serving a valid stored certificate is not.
    r.served = {{"http://a:9402", "", false, "", "", {}},
                {"http://b:9402", "", true, "x", r.serial, {}}};
    EXPECT_TRUE(problems_of(r).empty());
    r.served = {{"http://a:9402", "", false, "", "", {}}};
    EXPECT_EQ(problems_of(r), std::vector<Problem>{Problem::NotServed});
    EXPECT_EQ(served_state(r), "not-served");

    r.served = {{"http://a:9402", "connection refused", false, "", "", {}}};
    EXPECT_EQ(problems_of(r), std::vector<Problem>{Problem::TerminatorUnreachable});
    EXPECT_EQ(served_state(r), "unreachable");

    // The Secret could not be read (RBAC): the status's notAfter says a certificate is stored,
    // its serial is unknown, so what is served cannot be called a mismatch.
    CertRow unread = good("unread");
    unread.serial.clear();
    unread.served = {{"http://a:9402", "", true, "default/unread-tls", "77", {}}};
    EXPECT_TRUE(problems_of(unread).empty());
    EXPECT_EQ(served_state(unread), "unknown");
    unread.not_after = kNow - kDay;  // expiry is still known
    EXPECT_EQ(problems_of(unread).front(), Problem::Expired);
    // Served while nothing is stored (a deleted Secret): not what is stored.
    CertRow gone;
    gone.ready = "False";
    gone.served = {{"http://a:9402", "", true, "default/gone", "77", {}}};
    EXPECT_EQ(problems_of(gone),
              (std::vector<Problem>{Problem::ServedMismatch, Problem::NotReady}));

    CertRow none;  // nothing stored and nothing served: nothing to compare
    none.ready = "False";
    none.served = {{"http://a:9402", "", false, "", "", {}}};
    EXPECT_EQ(problems_of(none), std::vector<Problem>{Problem::NotReady});
    EXPECT_EQ(served_state(none), "none");
}

Report sample() {
    Report r;
    r.source_kind = "kubernetes";
    r.source = "https://127.0.0.1:6443";
    r.generated_at = kNow;
    r.certificates.push_back(good("later", 80));
    r.certificates.push_back(good("sooner", 40));
    CertRow failing = good("failing", 50);
    failing.failed_attempts = 3;
    failing.failure_reason = "Failed";
    failing.failure_message = "connection refused";
    failing.last_failure_time = kNow - minutes(5);
    r.certificates.push_back(failing);
    CertRow expired = good("expired", -2);
    expired.ready = "False";
    expired.ready_reason = "Expired";
    r.certificates.push_back(expired);
    return r;
}

TEST(StatusModel, SortsProblemsFirstThenByNotAfterAndPicksTheExitCode) {
    Report r = sample();
    evaluate(r);
    std::vector<std::string> order;
    for (const auto& c : r.certificates) order.push_back(c.name);
    EXPECT_EQ(order, (std::vector<std::string>{"expired", "failing", "sooner", "later"}));
    EXPECT_EQ(exit_code(r), kExitExpired);

    r.certificates.erase(r.certificates.begin());
    EXPECT_EQ(exit_code(r), kExitNotReady);
    r.certificates.front().served = {{"t", "", true, "x", "ff", {}}};
    evaluate(r);
    EXPECT_EQ(exit_code(r), kExitServed);
    r.certificates.clear();
    EXPECT_EQ(exit_code(r), kExitOk);
}

TEST(StatusModel, JsonSchemaFieldByField) {
    Report r = sample();
    r.certificates[2].served = {
        {"http://t:9402", "", true, "default/failing-tls", "77", kNow + kDay}};
    r.terminators = {{"http://t:9402", "", 1}};
    r.issuers = {
        {"", "letsencrypt", "ClusterIssuer", "True", "ACMEAccountRegistered", "registered"}};
    evaluate(r);
    json j = to_json(r);
    EXPECT_EQ(j["schemaVersion"], 1);
    EXPECT_EQ(j["generatedAt"], "2025-06-15T15:06:40Z");
    EXPECT_EQ(j["source"], (json{{"kind", "kubernetes"}, {"location", "https://127.0.0.1:6443"}}));
    EXPECT_EQ(j["summary"], (json{{"certificates", 4},
                                  {"withProblems", 2},
                                  {"worstProblem", "Expired"},
                                  {"exitCode", 6}}));
    ASSERT_EQ(j["certificates"].size(), 4u);
    const json& f = j["certificates"][1];
    EXPECT_EQ(f["namespace"], "default");
    EXPECT_EQ(f["name"], "failing");
    EXPECT_EQ(f["secretName"], "failing-tls");
    EXPECT_EQ(f["dnsNames"], json::array({"failing.example.test"}));
    EXPECT_EQ(f["issuerRef"], (json{{"name", "letsencrypt"}, {"kind", "ClusterIssuer"}}));
    EXPECT_EQ(f["serial"], "0afailing");
    EXPECT_EQ(f["issuerDN"], nullptr);
    EXPECT_EQ(f["notBefore"], rfc3339(kNow - kDay * 40));
    EXPECT_EQ(f["notAfter"], rfc3339(kNow + kDay * 50));
    EXPECT_EQ(f["renewalTime"], rfc3339(kNow + kDay * 20));
    EXPECT_EQ(f["ready"], (json{{"status", "True"}, {"reason", "Ready"}, {"message", nullptr}}));
    EXPECT_EQ(f["failedIssuanceAttempts"], 3);
    EXPECT_EQ(f["lastFailure"], (json{{"time", rfc3339(kNow - minutes(5))},
                                      {"reason", "Failed"},
                                      {"message", "connection refused"}}));
    EXPECT_EQ(f["nextAttemptTime"], nullptr);
    EXPECT_EQ(f["served"], json::array({json{{"terminator", "http://t:9402"},
                                             {"state", "mismatch"},
                                             {"entry", "default/failing-tls"},
                                             {"serial", "77"},
                                             {"notAfter", rfc3339(kNow + kDay)},
                                             {"error", nullptr}}}));
    EXPECT_EQ(f["servedState"], "mismatch");
    EXPECT_EQ(f["problems"], json::array({"ServedMismatch", "Failing"}));
    EXPECT_EQ(j["certificates"][3]["lastFailure"], nullptr);
    EXPECT_EQ(j["certificates"][3]["servedState"], nullptr);
    EXPECT_EQ(j["issuers"], json::array({json{{"namespace", ""},
                                              {"name", "letsencrypt"},
                                              {"kind", "ClusterIssuer"},
                                              {"ready",
                                               {{"status", "True"},
                                                {"reason", "ACMEAccountRegistered"},
                                                {"message", "registered"}}}}}));
    EXPECT_EQ(j["warnings"], json::array());
    EXPECT_EQ(j["terminators"], json::array({json{{"url", "http://t:9402"},
                                                  {"reachable", true},
                                                  {"error", nullptr},
                                                  {"certificates", 1}}}));
}

// ---- table --------------------------------------------------------------------------------------

std::vector<std::string> lines(const std::string& s) {
    std::vector<std::string> out;
    std::istringstream in(s);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

TEST(StatusTable, WidthTruncateSanitize) {
    EXPECT_EQ(display_width("abc"), 3u);
    EXPECT_EQ(display_width("\x1b[31mred\x1b[0m"), 3u);
    EXPECT_EQ(display_width("d\xc3\xa9j\xc3\xa0"), 4u);  // "déjà"
    EXPECT_EQ(truncate("abcdefgh", 8), "abcdefgh");
    EXPECT_EQ(truncate("abcdefghi", 8), "abcde...");
    EXPECT_EQ(truncate("d\xc3\xa9j\xc3\xa0 vu, again", 6), "d\xc3\xa9j...");
    // A message must not drive the terminal: ESC, BEL, C1 CSI become '?', newlines a space.
    EXPECT_EQ(sanitize("a\x1b[2Jb\x07\nc\xc2\x9b"
                       "1m\xc3\xa9"),
              "a?[2Jb? c?1m\xc3\xa9");
    EXPECT_EQ(not_after_text(kNow + kDay * 23, kNow), "2025-07-08 15:06 (in 23d)");
    EXPECT_TRUE(colour_wanted(true, nullptr, "xterm"));
    EXPECT_TRUE(colour_wanted(true, "", "xterm"));  // no-color.org: only a non-empty value counts
    EXPECT_FALSE(colour_wanted(true, "1", "xterm"));
    EXPECT_FALSE(colour_wanted(false, nullptr, "xterm"));
    EXPECT_FALSE(colour_wanted(true, nullptr, "dumb"));
}

TEST(StatusTable, ColumnsAlignWithoutColourAndProblemsComeFirst) {
    Report r = sample();
    r.certificates[0].dns_names.push_back("www.later.example.test");
    r.certificates[2].failure_message = std::string(200, 'x');
    evaluate(r);
    std::string t = render_table(r, {});
    EXPECT_EQ(t.find('\x1b'), std::string::npos) << t;
    auto ls = lines(t);
    ASSERT_EQ(ls.size(), 6u) << t;  // header, 4 rows, summary
    EXPECT_EQ(ls[0].rfind("NAME", 0), 0u);
    for (const char* col : {"DNS NAMES", "ISSUER", "READY", "NOT AFTER", "RENEWAL", "STATUS"}) {
        size_t at = ls[0].find(col);
        ASSERT_NE(at, std::string::npos) << col;
        for (size_t i = 1; i <= 4; ++i) {
            // Every cell starts where its header does: the character before is a space, the
            // one at the column is not.
            ASSERT_GT(ls[i].size(), at) << col << "\n" << t;
            EXPECT_EQ(ls[i][at - 1], ' ') << col << "\n" << t;
            EXPECT_NE(ls[i][at], ' ') << col << "\n" << t;
        }
    }
    EXPECT_EQ(ls[1].rfind("default/expired", 0), 0u);
    EXPECT_NE(ls[1].find("Expired,RenewalOverdue,NotReady"), std::string::npos) << ls[1];
    EXPECT_EQ(ls[2].rfind("default/failing", 0), 0u);
    EXPECT_NE(ls[2].find("Failing: Failed x3 (5m ago): xxxx"), std::string::npos) << ls[2];
    EXPECT_NE(ls[2].find("xxx..."), std::string::npos) << "long messages are cut without -o wide";
    EXPECT_NE(ls[3].find("ClusterIssuer/letsencrypt"), std::string::npos);
    EXPECT_NE(ls[4].find("later.example.test +1"), std::string::npos);
    EXPECT_NE(ls[4].find("2025-09-03 15:06 (in 80d)"), std::string::npos) << ls[4];
    EXPECT_NE(ls[4].find("in 50d"), std::string::npos) << "renewal column";
    EXPECT_EQ(ls[5], "4 certificates, 2 with problems (exit 6)");

    std::string wide = render_table(r, {.colour = false, .wide = true});
    EXPECT_NE(wide.find("SERIAL"), std::string::npos);
    EXPECT_NE(wide.find(std::string(200, 'x')), std::string::npos);
    EXPECT_NE(wide.find("later.example.test,www.later.example.test"), std::string::npos);
}

TEST(StatusTable, ColourIsOptInAndDoesNotBreakAlignment) {
    Report r = sample();
    evaluate(r);
    std::string plain = render_table(r, {});
    std::string c = render_table(r, {.colour = true});
    EXPECT_NE(c.find("\x1b[31m"), std::string::npos);
    EXPECT_NE(c.find("\x1b[32m"), std::string::npos);
    // Stripping the SGR sequences gives the plain table back.
    std::string stripped;
    for (size_t i = 0; i < c.size(); ++i) {
        if (c[i] == '\x1b') {
            while (i < c.size() && c[i] != 'm') ++i;
            continue;
        }
        stripped += c[i];
    }
    EXPECT_EQ(stripped, plain);
}

// ---- HTML
// -----------------------------------------------------------------------------------------

TEST(StatusPage, EscapesEverythingFromUsers) {
    EXPECT_EQ(html_escape("<img src=x onerror='a()'>&\"q\""),
              "&lt;img src=x onerror=&#39;a()&#39;&gt;&amp;&quot;q&quot;");
    Report r = sample();
    r.certificates[0].name = "<script>alert(1)</script>";
    r.certificates[1].failure_message = "\"><img src=x onerror=alert(2)>";
    r.certificates[2].dns_names = {"<b>bold</b>.test"};
    r.issuers = {{"ns", "<i>iss</i>", "Issuer", "False", "x", "<svg onload=alert(3)>"}};
    r.source = "<u>src</u>";
    evaluate(r);
    std::string page = render_page(r, {});
    for (const char* raw : {"<script>alert", "<img src=x", "<b>bold", "<i>iss", "<svg", "<u>src"})
        EXPECT_EQ(page.find(raw), std::string::npos) << raw;
    EXPECT_NE(page.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
    EXPECT_NE(page.find("&quot;&gt;&lt;img src=x onerror=alert(2)&gt;"), std::string::npos);
    // No script at all, and a CSP that would stop one anyway; nothing loaded from elsewhere.
    EXPECT_EQ(page.find("<script"), std::string::npos);
    EXPECT_NE(page.find("default-src 'none'"), std::string::npos);
    EXPECT_EQ(page.find("http://"), std::string::npos);
    EXPECT_EQ(page.find("https://"), std::string::npos);
}

size_t count(const std::string& s, const std::string& what) {
    size_t n = 0;
    for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
    return n;
}

TEST(StatusPage, OneRowAndOneBarPerCertificateProblemsFirst) {
    Report r = sample();
    CertRow never;
    never.namespace_ = "default";
    never.name = "never";
    never.ready = "False";
    r.certificates.push_back(never);
    evaluate(r);
    std::string page = render_page(r, {});
    EXPECT_EQ(count(page, "<tr class=\"problem\""), 3u);
    EXPECT_EQ(count(page, "<tr class=\"ok\""), 2u);
    EXPECT_EQ(count(page, "class=\"tl-bar"), 5u);
    EXPECT_EQ(count(page, "class=\"tl-renew\""), 4u);  // "never" has no renewal time
    EXPECT_EQ(count(page, "class=\"tl-now\""), 5u);
    EXPECT_LT(page.find("data-key=\"default/expired\""), page.find("data-key=\"default/sooner\""));
    EXPECT_NE(page.find("no certificate stored"), std::string::npos);
}

// ---- sources
// --------------------------------------------------------------------------------------

TEST(StatusSources, CertificateObjectAndSecret) {
    FakeClock clock(kNow);
    auto key = acme::PrivateKey::generate(acme::KeyType::EcP256);
    ASSERT_TRUE(key);
    auto leaf = acme::make_self_signed(*key, {"web.example.test", "www.example.test"},
                                       hours(24 * 90), clock);
    ASSERT_TRUE(leaf);
    json cert = {
        {"metadata", {{"name", "web"}, {"namespace", "prod"}}},
        {"spec",
         {{"secretName", "web-tls"},
          {"dnsNames", {"web.example.test", "www.example.test"}},
          {"issuerRef", {{"name", "le"}, {"kind", "ClusterIssuer"}}}}},
        {"status",
         {{"notAfter", "2020-01-01T00:00:00Z"},  // stale: the Secret wins
          {"renewalTime", "2025-08-01T00:00:00Z"},
          {"failedIssuanceAttempts", 2},
          {"lastFailureTime", "2025-06-15T15:00:00Z"},
          {"conditions",
           {{{"type", "Ready"}, {"status", "True"}, {"reason", "Ready"}, {"message", "up to date"}},
            {{"type", "Issuing"},
             {"status", "False"},
             {"reason", "RateLimited"},
             {"message", "too many"}},
            {{"type", "RenewalOverdue"}, {"status", "True"}}}}}}};
    json secret = {{"data", {{"tls.crt", enc::base64(leaf->to_pem())}}}};
    CertRow row = row_from_certificate(cert, &secret);
    EXPECT_EQ(row.key(), "prod/web");
    EXPECT_EQ(row.secret_name, "web-tls");
    EXPECT_EQ(row.issuer_kind, "ClusterIssuer");
    EXPECT_EQ(row.serial, leaf->serial_hex());
    EXPECT_EQ(*row.not_after, leaf->not_after());
    EXPECT_EQ(*row.not_before, leaf->not_before());
    EXPECT_EQ(rfc3339(*row.renewal_time), "2025-08-01T00:00:00Z");
    EXPECT_EQ(row.issuer_dn, leaf->issuer_name());
    EXPECT_EQ(row.ready, "True");
    EXPECT_TRUE(row.overdue_condition);
    EXPECT_EQ(row.failed_attempts, 2);
    EXPECT_EQ(row.failure_reason, "RateLimited");
    EXPECT_EQ(row.failure_message, "too many");
    EXPECT_EQ(rfc3339(*row.last_failure_time), "2025-06-15T15:00:00Z");

    IssuerRow iss = row_from_issuer({{"metadata", {{"name", "le"}}},
                                     {"status",
                                      {{"conditions",
                                        {{{"type", "Ready"},
                                          {"status", "False"},
                                          {"reason", "ErrRegisterACMEAccount"},
                                          {"message", "refused"}}}}}}},
                                    "ClusterIssuer");
    EXPECT_EQ(iss.name, "le");
    EXPECT_EQ(iss.kind, "ClusterIssuer");
    EXPECT_EQ(iss.ready, "False");
    EXPECT_EQ(iss.reason, "ErrRegisterACMEAccount");
    EXPECT_EQ(iss.message, "refused");

    CertRow bare =
        row_from_certificate({{"metadata", {{"name", "x"}, {"namespace", "d"}}}}, nullptr);
    EXPECT_EQ(bare.ready, "Unknown");
    EXPECT_EQ(bare.issuer_kind, "Issuer");
    EXPECT_TRUE(bare.serial.empty());
}

TEST(StatusSources, ServedEntriesMatchByNameThenBySans) {
    std::vector<ServedEntry> entries = {
        {"prod/web-tls", {"web.example.test"}, "aa", kNow, kNow + kDay, "CN=CA", "AB:CD"},
        {"api-tls", {"api.example.test"}, "0BB", {}, {}, "", ""},  // another terminator's spelling
        {"other", {"*.example.test", "shop.example.test"}, "cc", {}, {}, "", ""},
    };
    auto round = parse_served(served_to_json(entries).dump());
    ASSERT_TRUE(round) << round.error().message;
    ASSERT_EQ(round->size(), 3u);
    EXPECT_EQ((*round)[0].fingerprint, "AB:CD");
    EXPECT_EQ((*round)[0].issuer, "CN=CA");
    EXPECT_EQ(*(*round)[0].not_after, kNow + kDay);
    EXPECT_EQ((*round)[1].serial, "bb");
    EXPECT_EQ(normalize_serial("000"), "0");
    EXPECT_EQ(normalize_serial("0DB3"), "db3");

    Report r;
    r.generated_at = kNow;
    auto row = [](std::string ns, std::string secret, std::vector<std::string> dns) {
        CertRow c;
        c.namespace_ = std::move(ns);
        c.name = secret;
        c.secret_name = std::move(secret);
        c.dns_names = std::move(dns);
        return c;
    };
    r.certificates = {
        row("prod", "web-tls", {"web.example.test"}), row("prod", "api-tls", {"api.example.test"}),
        row("prod", "shop", {"SHOP.example.test"}), row("prod", "gone", {"gone.example.test"})};
    attach_served(r, "http://t", *round);
    attach_served(r, "http://down", Error(ErrorCode::Transient, "connection refused"));
    EXPECT_EQ(r.certificates[0].served[0].entry, "prod/web-tls");
    EXPECT_EQ(r.certificates[1].served[0].entry, "api-tls");
    EXPECT_EQ(r.certificates[2].served[0].entry, "other");
    EXPECT_FALSE(r.certificates[3].served[0].found);
    EXPECT_EQ(r.certificates[3].served[1].error, "connection refused");
    ASSERT_EQ(r.terminators.size(), 2u);
    EXPECT_EQ(r.terminators[0].certificates, 3u);
    EXPECT_EQ(r.terminators[1].error, "connection refused");
    EXPECT_FALSE(parse_served("{\"nope\":1}"));
    EXPECT_FALSE(parse_served("<html>"));
}

TEST(StatusSources, RunStatusFileRoundTripAndStoreCollection) {
    RunCertStatus s;
    s.name = "demo";
    s.secret_name = "demo-folder";
    s.dns_names = {"demo.example.test"};
    s.issuer_name = "pebble";
    s.ready = "False";
    s.reason = "Failed";
    s.message = "connection refused";
    s.failed_attempts = 2;
    s.last_failure_time = kNow - minutes(1);
    s.failure_reason = "Failed";
    s.failure_message = "connection refused";
    s.next_attempt_time = kNow + seconds(20);
    auto back = run_status_from_json(to_json(s));
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, s);

    char tmpl[] = "/tmp/status_test.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    const std::string root = tmpl;
    ASSERT_TRUE(
        platform::write_file_atomic(root + "/certs/demo-folder/status.json", to_json(s).dump()));
    auto rep = collect_store(root, std::nullopt, kNow);
    ASSERT_TRUE(rep) << rep.error().message;
    ASSERT_EQ(rep->certificates.size(), 1u);
    const CertRow& c = rep->certificates[0];
    EXPECT_EQ(c.name, "demo");
    EXPECT_EQ(c.secret_name, "demo-folder");
    EXPECT_EQ(c.failed_attempts, 2);
    EXPECT_EQ(c.failure_message, "connection refused");
    EXPECT_EQ(*c.next_attempt_time, kNow + seconds(20));
    EXPECT_TRUE(c.serial.empty());
    // With the names from a config: also the ones the store has never seen.
    auto named = collect_store(
        root, std::map<std::string, std::string>{{"demo", "demo-folder"}, {"new", "new"}}, kNow);
    ASSERT_TRUE(named);
    ASSERT_EQ(named->certificates.size(), 2u);
    EXPECT_EQ(named->certificates[1].name, "new");
    EXPECT_EQ(named->certificates[1].ready, "Unknown");
    EXPECT_FALSE(collect_store(root + "/missing", std::nullopt, kNow));
    (void)std::system(("rm -rf '" + root + "'").c_str());
}

}  // namespace
}  // namespace edgecert::app::status
