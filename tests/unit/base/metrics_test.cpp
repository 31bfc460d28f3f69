#include "edgecert/base/metrics.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

namespace edgecert::metrics {
namespace {

TEST(Metrics, CounterAndGaugeExpositionExact) {
    Registry r;
    r.counter("edgecert_tls_handshakes_total", "TLS handshakes by result.", {{"result", "ok"}})->inc(3);
    r.counter("edgecert_tls_handshakes_total", "TLS handshakes by result.", {{"result", "error"}})->inc();
    Gauge* g = r.gauge("edgecert_tls_connections", "Open TLS connections.");
    g->inc(5);
    g->dec(2);
    r.gauge("a_first", "Sorted before the others.")->set(0.25);
    EXPECT_EQ(r.render(),
              "# HELP a_first Sorted before the others.\n"
              "# TYPE a_first gauge\n"
              "a_first 0.25\n"
              "# HELP edgecert_tls_connections Open TLS connections.\n"
              "# TYPE edgecert_tls_connections gauge\n"
              "edgecert_tls_connections 3\n"
              "# HELP edgecert_tls_handshakes_total TLS handshakes by result.\n"
              "# TYPE edgecert_tls_handshakes_total counter\n"
              "edgecert_tls_handshakes_total{result=\"error\"} 1\n"
              "edgecert_tls_handshakes_total{result=\"ok\"} 3\n");
}

TEST(Metrics, EscapingOfLabelValuesAndHelp) {
    Registry r;
    r.gauge("x", "help with \\ backslash\nand newline and \"quotes\"",
            {{"v", "a\\b\"c\nd"}})
        ->set(1);
    EXPECT_EQ(r.render(),
              "# HELP x help with \\\\ backslash\\nand newline and \"quotes\"\n"
              "# TYPE x gauge\n"
              "x{v=\"a\\\\b\\\"c\\nd\"} 1\n");
}

TEST(Metrics, InvalidUtf8InLabelValuesIsReplaced) {
    Registry r;
    // Valid multi-byte text passes through; a stray byte, an overlong '/', a surrogate and a
    // truncated sequence each become U+FFFD, so one odd SNI cannot fail the whole scrape.
    r.gauge("u", "h", {{"ok", "caf\xC3\xA9 \xF0\x9F\x94\x92"},
                       {"bad", "a\xFF" "b\xC0\xAF" "c\xED\xA0\x80" "d\xE2\x82"}})
        ->set(1);
    const std::string R = "\xEF\xBF\xBD";
    EXPECT_EQ(r.render(), "# HELP u h\n# TYPE u gauge\nu{bad=\"a" + R + "b" + R + R + "c" + R + R + R +
                              "d" + R + R + "\",ok=\"caf\xC3\xA9 \xF0\x9F\x94\x92\"} 1\n");
}

TEST(Metrics, LabelsAreSortedAndOrderInsensitive) {
    Registry r;
    Counter* a = r.counter("c_total", "h", {{"namespace", "ns"}, {"name", "web"}});
    Counter* b = r.counter("c_total", "h", {{"name", "web"}, {"namespace", "ns"}});
    Counter* c = r.counter("c_total", "h", {{"name", "api"}, {"namespace", "ns"}});
    EXPECT_EQ(a, b);
    EXPECT_NE(a, c);
    a->inc();
    b->inc();
    EXPECT_EQ(a->value(), 2);
    EXPECT_EQ(r.render(),
              "# HELP c_total h\n"
              "# TYPE c_total counter\n"
              "c_total{name=\"api\",namespace=\"ns\"} 0\n"
              "c_total{name=\"web\",namespace=\"ns\"} 2\n");
}

TEST(Metrics, HistogramExpositionExact) {
    Registry r;
    Histogram* h = r.histogram("edgecert_tls_handshake_duration_seconds", "Handshake time.",
                               {0.1, 0.001, 0.01}, {{"listener", "https"}});
    h->observe(0.0005);
    h->observe(0.001);  // le is inclusive
    h->observe(0.05);
    h->observe(3);
    EXPECT_EQ(h->count(), 4u);
    EXPECT_DOUBLE_EQ(h->sum(), 3.0515);
    EXPECT_EQ(r.histogram("edgecert_tls_handshake_duration_seconds", "Handshake time.", {0.1},
                          {{"listener", "https"}}),
              h);
    std::string sum = detail::format_value(h->sum());
    EXPECT_EQ(r.render(),
              "# HELP edgecert_tls_handshake_duration_seconds Handshake time.\n"
              "# TYPE edgecert_tls_handshake_duration_seconds histogram\n"
              "edgecert_tls_handshake_duration_seconds_bucket{listener=\"https\",le=\"0.001\"} 2\n"
              "edgecert_tls_handshake_duration_seconds_bucket{listener=\"https\",le=\"0.01\"} 2\n"
              "edgecert_tls_handshake_duration_seconds_bucket{listener=\"https\",le=\"0.1\"} 3\n"
              "edgecert_tls_handshake_duration_seconds_bucket{listener=\"https\",le=\"+Inf\"} 4\n"
              "edgecert_tls_handshake_duration_seconds_sum{listener=\"https\"} " + sum + "\n"
              "edgecert_tls_handshake_duration_seconds_count{listener=\"https\"} 4\n");
}

TEST(Metrics, HistogramWithoutLabelsAndNaN) {
    Registry r;
    Histogram* h = r.histogram("h_seconds", "h", {1, std::numeric_limits<double>::infinity()});
    h->observe(std::nan(""));
    EXPECT_EQ(h->bucket_count(1), 1u);  // NaN counts in +Inf only
    EXPECT_EQ(r.render(),
              "# HELP h_seconds h\n"
              "# TYPE h_seconds histogram\n"
              "h_seconds_bucket{le=\"1\"} 0\n"
              "h_seconds_bucket{le=\"+Inf\"} 1\n"
              "h_seconds_sum NaN\n"
              "h_seconds_count 1\n");
}

TEST(Metrics, ValueFormatting) {
    EXPECT_EQ(detail::format_value(0), "0");
    EXPECT_EQ(detail::format_value(-3), "-3");
    EXPECT_EQ(detail::format_value(1764352580), "1764352580");
    EXPECT_EQ(detail::format_value(0.1), "0.1");
    EXPECT_EQ(detail::format_value(2.5e-7), "2.5e-07");
    EXPECT_EQ(detail::format_value(1e20), "1e+20");
    EXPECT_EQ(detail::format_value(std::numeric_limits<double>::infinity()), "+Inf");
    EXPECT_EQ(detail::format_value(-std::numeric_limits<double>::infinity()), "-Inf");
}

TEST(Metrics, ConcurrentIncrementsSum) {
    Registry r;
    constexpr int kThreads = 4, kIters = 50000;
    std::vector<std::thread> ts;
    for (int t = 0; t < kThreads; ++t)
        ts.emplace_back([&r] {
            // Registration races too: every thread must get the same objects.
            Counter* c = r.counter("hot_total", "h", {{"k", "v"}});
            Gauge* g = r.gauge("conns", "h");
            Histogram* h = r.histogram("lat", "h", {0.5});
            for (int i = 0; i < kIters; ++i) {
                c->inc();
                g->inc();
                h->observe(i % 2 ? 1.0 : 0.0);
                g->dec();
            }
        });
    // A concurrent scrape must not disturb the writers.
    for (int i = 0; i < 20; ++i) (void)r.render();
    for (auto& t : ts) t.join();
    EXPECT_EQ(r.counter("hot_total", "h", {{"k", "v"}})->value(), kThreads * kIters);
    EXPECT_EQ(r.gauge("conns", "h")->value(), 0);
    Histogram* h = r.histogram("lat", "h", {0.5});
    EXPECT_EQ(h->count(), static_cast<uint64_t>(kThreads * kIters));
    EXPECT_EQ(h->bucket_count(0), static_cast<uint64_t>(kThreads * kIters / 2));
    EXPECT_EQ(h->sum(), kThreads * kIters / 2);
}

TEST(Metrics, CollectorsRenderMergedAndSorted) {
    Registry r;
    r.gauge("m_static", "static")->set(7);
    int calls = 0;
    int id = r.add_collector(
        "edgecert_served_certificate_not_after_timestamp_seconds",
        "notAfter of each certificate being served.", "gauge",
        [&calls](std::vector<Registry::Sample>& out) {
            ++calls;
            out.push_back({{{"secret", "ns/web"}, {"serial", "0b"}}, 1764352580});
            out.push_back({{{"serial", "0a"}, {"secret", "ns/api"}}, 1764000000});
        });
    int id2 = r.add_collector("z_empty", "no samples -> no family", "counter",
                              [](std::vector<Registry::Sample>&) {});
    const std::string want =
        "# HELP edgecert_served_certificate_not_after_timestamp_seconds notAfter of each "
        "certificate being served.\n"
        "# TYPE edgecert_served_certificate_not_after_timestamp_seconds gauge\n"
        "edgecert_served_certificate_not_after_timestamp_seconds{secret=\"ns/api\",serial=\"0a\"} "
        "1764000000\n"
        "edgecert_served_certificate_not_after_timestamp_seconds{secret=\"ns/web\",serial=\"0b\"} "
        "1764352580\n"
        "# HELP m_static static\n"
        "# TYPE m_static gauge\n"
        "m_static 7\n";
    EXPECT_EQ(r.render(), want);
    EXPECT_EQ(calls, 1);
    r.remove_collector(id);
    r.remove_collector(id2);
    EXPECT_EQ(r.render(), "# HELP m_static static\n# TYPE m_static gauge\nm_static 7\n");
    EXPECT_EQ(calls, 1);
}

TEST(Metrics, CollectorMayRegisterStaticSeries) {
    Registry r;
    int id = r.add_collector("dyn", "d", "gauge", [&r](std::vector<Registry::Sample>& out) {
        r.counter("scrapes_total", "scrapes")->inc();  // must not deadlock
        out.push_back({{}, 1});
    });
    (void)r.render();
    EXPECT_NE(r.render().find("scrapes_total 2\n"), std::string::npos);
    r.remove_collector(id);
}

TEST(Metrics, RemoveDropsOneSeriesAndKeepsPointersValid) {
    Registry r;
    Gauge* web = r.gauge("expiry", "h", {{"name", "web"}});
    Gauge* api = r.gauge("expiry", "h", {{"name", "api"}});
    web->set(1);
    api->set(2);
    r.remove("expiry", {{"name", "web"}});
    r.remove("expiry", {{"name", "nope"}});  // unknown: no-op
    r.remove("nope", {});
    web->set(5);  // retired object still usable, just not rendered
    EXPECT_EQ(r.render(), "# HELP expiry h\n# TYPE expiry gauge\nexpiry{name=\"api\"} 2\n");
    Gauge* again = r.gauge("expiry", "h", {{"name", "web"}});
    EXPECT_EQ(again->value(), 0);  // a fresh series
    r.remove("expiry", {{"name", "api"}});
    r.remove("expiry", {{"name", "web"}});
    EXPECT_EQ(r.render(), "");  // an empty family renders nothing
}

TEST(Metrics, ExponentialBuckets) {
    EXPECT_EQ(exponential_buckets(0.001, 10, 4), (std::vector<double>{0.001, 0.01, 0.1, 1}));
    EXPECT_EQ(exponential_buckets(1, 2, 1), (std::vector<double>{1}));
}

TEST(Metrics, ScopedCollectorRemovesOnDestructionAndMove) {
    Registry r;
    auto fn = [](std::vector<Registry::Sample>& out) { out.push_back({{}, 1}); };
    {
        ScopedCollector a(r, "scoped", "h", "gauge", fn);
        EXPECT_EQ(r.render(), "# HELP scoped h\n# TYPE scoped gauge\nscoped 1\n");
        ScopedCollector b = std::move(a);  // ownership moves, a no longer removes
        a.reset();
        EXPECT_NE(r.render(), "");
        ScopedCollector c;
        c = std::move(b);
        EXPECT_NE(r.render(), "");
    }
    EXPECT_EQ(r.render(), "");
}

TEST(Metrics, GlobalIsASingleton) {
    EXPECT_EQ(&Registry::global(), &Registry::global());
}

#ifndef NDEBUG
TEST(MetricsDeathTest, TypeClashAsserts) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    Registry r;
    r.counter("clash", "h");
    EXPECT_DEATH(r.gauge("clash", "h"), "different types");
}
#endif

// The real exposition must satisfy Prometheus' own linter.
TEST(Metrics, PromtoolAcceptsExposition) {
    if (std::system("command -v promtool >/dev/null 2>&1") != 0)
        GTEST_SKIP() << "promtool not installed (Debian package 'prometheus', listed in "
                        "scripts/setup.sh): exposition not validated";
    Registry r;
    r.counter("edgecert_acme_requests_total", "ACME requests by endpoint and status.",
              {{"endpoint", "newOrder"}, {"status", "201"}})
        ->inc();
    r.gauge("edgecert_tls_connections", "Open TLS connections.")->set(12);
    r.histogram("edgecert_tls_handshake_duration_seconds", "TLS handshake duration.",
                {0.001, 0.01, 0.1, 1})
        ->observe(0.004);
    r.gauge("weird_labels", "Escapes: \\ and\nnewline.", {{"v", "q\"b\\n\nl"}})->set(-1.5);
    r.gauge("utf8_labels", "Non-ASCII and invalid bytes.", {{"sni", "caf\xC3\xA9.\xFF\xFE"}})->set(2);
    int id = r.add_collector("edgecert_served_certificate_not_after_timestamp_seconds",
                             "notAfter of served certificates.", "gauge",
                             [](std::vector<Registry::Sample>& out) {
                                 out.push_back({{{"secret", "default/web"}}, 1764352580});
                             });
    std::string text = r.render();
    r.remove_collector(id);

    auto path = std::filesystem::temp_directory_path() /
                ("metrics_test_" + std::to_string(::getpid()) + ".prom");
    {
        std::ofstream f(path);
        f << text;
    }
    std::string cmd = "promtool check metrics < " + path.string() + " 2>&1";
    FILE* p = ::popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string output;
    char buf[512];
    while (size_t n = std::fread(buf, 1, sizeof buf, p)) output.append(buf, n);
    int rc = ::pclose(p);
    std::filesystem::remove(path);
    EXPECT_EQ(rc, 0) << "promtool output:\n" << output << "\nexposition:\n" << text;
    EXPECT_EQ(output, "") << "promtool lint findings:\n" << output;
}

}  // namespace
}  // namespace edgecert::metrics
