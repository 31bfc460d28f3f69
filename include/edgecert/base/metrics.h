#pragma once
// Prometheus metrics registry, header-only so src/tls and src/proxy (which link only base) can
// count on their hot paths. Counters, gauges and histogram buckets are atomics: inc()/observe()
// take no lock. Registration (counter()/gauge()/histogram()) takes the registry mutex, so callers
// look a series up once and keep the pointer. render() writes the text exposition format 0.0.4
// (https://prometheus.io/docs/instrumenting/exposition_formats/): one "# HELP"/"# TYPE" pair per
// family, families sorted by name, series sorted by their (name-sorted) labels, so the output is
// stable and diffable.
#include <algorithm>
#include <atomic>
#include <cassert>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace edgecert::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;  // label name -> value

// Counter and Gauge take a cache line each, so two series updated by different threads do not
// slow each other down through false sharing.
class alignas(64) Counter {
public:
    // Prometheus counters only go up; a negative increment is a programming error.
    void inc(double v = 1) {
        assert(v >= 0);
        v_.fetch_add(v, std::memory_order_relaxed);
    }
    double value() const { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<double> v_{0};
};

class alignas(64) Gauge {
public:
    void set(double v) { v_.store(v, std::memory_order_relaxed); }
    void inc(double v = 1) { v_.fetch_add(v, std::memory_order_relaxed); }
    void dec(double v = 1) { v_.fetch_sub(v, std::memory_order_relaxed); }
    double value() const { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<double> v_{0};
};

class Histogram {
public:
    // `bounds` are the finite upper bounds, strictly increasing; +Inf is implicit.
    explicit Histogram(std::vector<double> bounds)
        : bounds_(std::move(bounds)), counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
        for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
    }
    void observe(double v) {
        // First bucket whose upper bound is >= v ("le" is inclusive); NaN lands in +Inf.
        size_t i = std::isnan(v) ? bounds_.size()
                                 : static_cast<size_t>(
                                       std::lower_bound(bounds_.begin(), bounds_.end(), v) -
                                       bounds_.begin());
        counts_[i].fetch_add(1, std::memory_order_relaxed);
        sum_.fetch_add(v, std::memory_order_relaxed);
    }
    const std::vector<double>& bounds() const { return bounds_; }
    // Per-bucket (non-cumulative) count; index bounds().size() is the +Inf bucket.
    uint64_t bucket_count(size_t i) const { return counts_[i].load(std::memory_order_relaxed); }
    uint64_t count() const {
        uint64_t n = 0;
        for (size_t i = 0; i <= bounds_.size(); ++i) n += bucket_count(i);
        return n;
    }
    double sum() const { return sum_.load(std::memory_order_relaxed); }

private:
    std::vector<double> bounds_;
    std::unique_ptr<std::atomic<uint64_t>[]> counts_;
    std::atomic<double> sum_{0};
};

namespace detail {

inline bool valid_metric_name(std::string_view n) {
    if (n.empty()) return false;
    for (size_t i = 0; i < n.size(); ++i) {
        char c = n[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok) return false;
    }
    return true;
}

inline bool valid_label_name(std::string_view n) {
    if (n.empty() || n.substr(0, 2) == "__") return false;  // "__" is reserved for Prometheus
    for (size_t i = 0; i < n.size(); ++i) {
        char c = n[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok) return false;
    }
    return true;
}

// Labels sorted by name: the identity of a series and the order they are rendered in.
inline Labels canonical(Labels l) {
    std::sort(l.begin(), l.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for ([[maybe_unused]] const auto& [k, v] : l) assert(valid_label_name(k));
    for (size_t i = 1; i < l.size(); ++i) assert(l[i - 1].first != l[i].first);  // duplicate label
    return l;
}

// Length of the well-formed UTF-8 sequence at the start of `s` (RFC 3629: no overlongs, no
// surrogates, max U+10FFFF), or 0 if it is not one.
inline size_t utf8_sequence_length(std::string_view s) {
    auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
    unsigned char c = b(0);
    if (c < 0x80) return 1;
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (s.size() < n || b(1) < lo || b(1) > hi) return 0;
    for (size_t i = 2; i < n; ++i)
        if (b(i) < 0x80 || b(i) > 0xBF) return 0;
    return n;
}

// Label values escape backslash, double quote and newline; HELP text escapes backslash and
// newline only (exposition format 0.0.4). The format requires UTF-8, and Prometheus rejects the
// whole scrape on one bad byte, so a value from the wire (an SNI, a certificate subject) cannot
// break it: each invalid byte becomes U+FFFD.
inline void append_escaped(std::string& out, std::string_view s, bool quote) {
    while (!s.empty()) {
        char c = s[0];
        size_t n = utf8_sequence_length(s);
        if (n == 0) {
            out += "\xEF\xBF\xBD";
            n = 1;
        } else if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else if (quote && c == '"') {
            out += "\\\"";
        } else {
            out.append(s.data(), n);
        }
        s.remove_prefix(n);
    }
}

// Integral values print as integers (timestamps stay readable: 1764352580, not 1.76435258e+09);
// everything else in the shortest form that round-trips, like Go's FormatFloat(v, 'g', -1).
inline std::string format_value(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    if (v == std::floor(v) && std::fabs(v) < 1e15) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%lld", static_cast<long long>(v));
        return buf;
    }
    char buf[64];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
}

// `name{k="v",...} value\n`; `extra` is one more label appended last (histogram "le").
inline void append_sample(std::string& out, std::string_view name, const Labels& labels,
                          const std::pair<std::string, std::string>* extra, double value) {
    out += name;
    if (!labels.empty() || extra) {
        out += '{';
        bool first = true;
        auto one = [&](const std::string& k, const std::string& v) {
            if (!first) out += ',';
            first = false;
            out += k;
            out += "=\"";
            append_escaped(out, v, true);
            out += '"';
        };
        for (const auto& [k, v] : labels) one(k, v);
        if (extra) one(extra->first, extra->second);
        out += '}';
    }
    out += ' ';
    out += format_value(value);
    out += '\n';
}

}  // namespace detail

class Registry {
public:
    Registry() = default;
    Registry(const Registry&) = delete;
    Registry& operator=(const Registry&) = delete;

    // The process-wide registry the admin server renders. Never destroyed (pointers into it stay
    // valid during static destruction, e.g. from threads still winding down).
    static Registry& global() {
        static Registry* r = new Registry();
        return *r;
    }

    // Returns a stable pointer (valid for the registry's life); same name+labels -> same object
    // (label order does not matter). All series of one name share one HELP/TYPE; a type clash is
    // a programming error (assert; in release builds a detached, never-rendered object).
    Counter* counter(const std::string& name, const std::string& help, const Labels& labels = {}) {
        return get<Counter>(name, help, "counter", labels, {});
    }
    Gauge* gauge(const std::string& name, const std::string& help, const Labels& labels = {}) {
        return get<Gauge>(name, help, "gauge", labels, {});
    }
    // Buckets are the finite upper bounds (sorted here; a trailing +Inf is dropped). All series of
    // one family share the buckets given at the first registration.
    Histogram* histogram(const std::string& name, const std::string& help,
                         std::vector<double> buckets, const Labels& labels = {}) {
        std::sort(buckets.begin(), buckets.end());
        buckets.erase(std::unique(buckets.begin(), buckets.end()), buckets.end());
        while (!buckets.empty() && (std::isinf(buckets.back()) || std::isnan(buckets.back())))
            buckets.pop_back();
        return get<Histogram>(name, help, "histogram", labels, std::move(buckets));
    }

    // Dynamic families computed at scrape time (e.g. one series per served certificate): the
    // callback appends samples. It runs on the scraping thread, under a lock that
    // remove_collector() also takes, so once remove_collector() returns the callback is not
    // running and never will again (safe to destroy what it captured). The callback may call
    // counter()/gauge()/... but must not call add_collector()/remove_collector()/render().
    struct Sample {
        Labels labels;
        double value;
    };
    using CollectFn = std::function<void(std::vector<Sample>&)>;
    int add_collector(const std::string& name, const std::string& help,
                      const std::string& type /*"gauge"|"counter"*/, CollectFn fn) {
        assert(detail::valid_metric_name(name));
        assert(type == "gauge" || type == "counter");
        std::lock_guard lk(collect_mu_);
        int id = next_collector_id_++;
        collectors_.emplace(id, Collector{name, help, type, std::move(fn)});
        return id;
    }
    void remove_collector(int id) {
        std::lock_guard lk(collect_mu_);
        collectors_.erase(id);
    }

    // Drops one series (e.g. a deleted certificate). Pointers already handed out stay valid (the
    // object is retired, not freed) but are no longer rendered; registering the same name+labels
    // again starts a fresh series.
    void remove(const std::string& name, const Labels& labels) {
        std::lock_guard lk(mu_);
        auto f = families_.find(name);
        if (f == families_.end()) return;
        auto s = f->second.series.find(detail::canonical(labels));
        if (s == f->second.series.end()) return;
        retired_.push_back(std::move(s->second));
        f->second.series.erase(s);
    }

    // Prometheus text exposition format 0.0.4.
    std::string render() const {
        // Collector output first, outside mu_ so a callback may register static series.
        struct Dyn {
            std::string help, type;
            std::vector<Sample> samples;
        };
        std::map<std::string, Dyn> dyn;
        {
            std::lock_guard lk(collect_mu_);
            for (const auto& [id, c] : collectors_) {
                Dyn& d = dyn[c.name];
                if (d.type.empty()) {
                    d.help = c.help;
                    d.type = c.type;
                }
                assert(d.type == c.type);
                if (d.type != c.type) continue;
                std::vector<Sample> tmp;
                c.fn(tmp);
                for (auto& s : tmp) d.samples.push_back({detail::canonical(std::move(s.labels)), s.value});
            }
        }
        for (auto& [n, d] : dyn)
            std::stable_sort(d.samples.begin(), d.samples.end(),
                             [](const Sample& a, const Sample& b) { return a.labels < b.labels; });

        std::string out;
        std::lock_guard lk(mu_);
        auto header = [&](const std::string& name, const std::string& help, const std::string& type) {
            out += "# HELP ";
            out += name;
            out += ' ';
            detail::append_escaped(out, help, false);
            out += "\n# TYPE ";
            out += name;
            out += ' ';
            out += type;
            out += '\n';
        };
        auto fi = families_.begin();
        auto di = dyn.begin();
        while (fi != families_.end() || di != dyn.end()) {
            bool take_static = di == dyn.end() || (fi != families_.end() && fi->first <= di->first);
            if (take_static) {
                const auto& [name, fam] = *fi;
                // A collector with the same name as a static family is a clash: static wins.
                assert(di == dyn.end() || di->first != name);
                if (di != dyn.end() && di->first == name) ++di;
                if (!fam.series.empty()) {
                    header(name, fam.help, fam.type);
                    for (const auto& [labels, obj] : fam.series) render_series(out, name, fam, labels, obj);
                }
                ++fi;
            } else {
                const auto& [name, d] = *di;
                if (!d.samples.empty()) {
                    header(name, d.help, d.type);
                    for (const auto& s : d.samples)
                        detail::append_sample(out, name, s.labels, nullptr, s.value);
                }
                ++di;
            }
        }
        return out;
    }

private:
    struct Object {
        std::unique_ptr<Counter> counter;
        std::unique_ptr<Gauge> gauge;
        std::unique_ptr<Histogram> histogram;
    };
    struct Family {
        std::string help, type;
        std::vector<double> buckets;  // histogram only
        std::map<Labels, Object> series;
    };
    struct Collector {
        std::string name, help, type;
        CollectFn fn;
    };

    template <class T>
    static T* slot(Object& o) {
        if constexpr (std::is_same_v<T, Counter>) {
            if (!o.counter) o.counter = std::make_unique<Counter>();
            return o.counter.get();
        } else if constexpr (std::is_same_v<T, Gauge>) {
            if (!o.gauge) o.gauge = std::make_unique<Gauge>();
            return o.gauge.get();
        } else {
            return o.histogram.get();
        }
    }

    template <class T>
    T* get(const std::string& name, const std::string& help, const char* type,
           const Labels& labels, std::vector<double> buckets) {
        assert(detail::valid_metric_name(name));
        Labels key = detail::canonical(labels);
        if constexpr (std::is_same_v<T, Histogram>) {
            for ([[maybe_unused]] const auto& [k, v] : key) assert(k != "le");
        }
        std::lock_guard lk(mu_);
        auto [fit, created] = families_.try_emplace(name);
        Family& fam = fit->second;
        if (created) {
            fam.help = help;
            fam.type = type;
            fam.buckets = buckets;
        }
        if (fam.type != type) {
            assert(false && "metric registered twice with different types");
            // Release builds: hand out a working object that is never rendered.
            Object& o = retired_.emplace_back();
            if constexpr (std::is_same_v<T, Histogram>) o.histogram = std::make_unique<Histogram>(buckets);
            return slot<T>(o);
        }
        auto [sit, fresh] = fam.series.try_emplace(std::move(key));
        if constexpr (std::is_same_v<T, Histogram>) {
            if (fresh) sit->second.histogram = std::make_unique<Histogram>(fam.buckets);
        }
        (void)fresh;
        return slot<T>(sit->second);
    }

    static void render_series(std::string& out, const std::string& name, const Family& fam,
                              const Labels& labels, const Object& o) {
        if (o.counter) {
            detail::append_sample(out, name, labels, nullptr, o.counter->value());
        } else if (o.gauge) {
            detail::append_sample(out, name, labels, nullptr, o.gauge->value());
        } else if (o.histogram) {
            // Buckets are cumulative; _count is the +Inf bucket so the two always agree even
            // while observe() runs concurrently.
            const Histogram& h = *o.histogram;
            const std::string bucket = name + "_bucket";
            uint64_t cum = 0;
            for (size_t i = 0; i <= h.bounds().size(); ++i) {
                cum += h.bucket_count(i);
                std::pair<std::string, std::string> le{
                    "le", i < h.bounds().size() ? detail::format_value(h.bounds()[i]) : "+Inf"};
                detail::append_sample(out, bucket, labels, &le, static_cast<double>(cum));
            }
            detail::append_sample(out, name + "_sum", labels, nullptr, h.sum());
            detail::append_sample(out, name + "_count", labels, nullptr, static_cast<double>(cum));
        }
        (void)fam;
    }

    mutable std::mutex mu_;          // families_, retired_
    mutable std::mutex collect_mu_;  // collectors_ (held while callbacks run)
    std::map<std::string, Family> families_;
    std::vector<Object> retired_;
    std::map<int, Collector> collectors_;
    int next_collector_id_ = 1;
};

// `count` bucket bounds start, start*factor, start*factor^2, ... (like client_golang's
// ExponentialBuckets). Example: handshake latency exponential_buckets(0.0005, 2, 12) spans
// 0.5 ms .. ~1 s.
inline std::vector<double> exponential_buckets(double start, double factor, int count) {
    assert(start > 0 && factor > 1 && count >= 1);
    std::vector<double> b;
    b.reserve(static_cast<size_t>(count));
    for (double v = start; count-- > 0; v *= factor) b.push_back(v);
    return b;
}

// Owns one collector registration: removes it on destruction (after which the callback is
// guaranteed not to run), so a component's collector cannot outlive what it captured.
class ScopedCollector {
public:
    ScopedCollector() = default;
    ScopedCollector(Registry& r, const std::string& name, const std::string& help,
                    const std::string& type, Registry::CollectFn fn)
        : r_(&r), id_(r.add_collector(name, help, type, std::move(fn))) {}
    ScopedCollector(ScopedCollector&& o) noexcept : r_(o.r_), id_(o.id_) { o.r_ = nullptr; }
    ScopedCollector& operator=(ScopedCollector&& o) noexcept {
        if (this != &o) {
            reset();
            r_ = o.r_;
            id_ = o.id_;
            o.r_ = nullptr;
        }
        return *this;
    }
    ~ScopedCollector() { reset(); }
    void reset() {
        if (r_) r_->remove_collector(id_);
        r_ = nullptr;
    }

private:
    Registry* r_ = nullptr;
    int id_ = 0;
};

}  // namespace edgecert::metrics
