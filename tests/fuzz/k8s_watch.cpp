// The Kubernetes watch path (k8s/client.cpp, reflector.cpp): a chunked watch body split into
// lines (LineDecoder), each decoded (parse_watch_event, ERROR Status objects), driven through the
// real Client::watch and Reflector state machine over a scripted HttpClient and a FakeClock.
//
// Input: one byte giving the chunk size (1-256), then the watch body as the API server streams it.
// Invariants: the lines do not depend on how the body was chunked and equal a plain split on
// '\n' (trailing CR/space trimmed, empty lines dropped); after the watch the reflector's
// resourceVersion is the one of the last event or bookmark that carried one before any ERROR
// event; the sink saw exactly the decodable non-bookmark events before that ERROR.
#include <vector>

#include "edgecert/k8s/reflector.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/unit/k8s/fake_http.h"

using namespace edgecert;
using namespace edgecert::k8s;

namespace {

std::vector<std::string> split_lines(std::string_view body) {
    std::vector<std::string> out;
    for (size_t pos = 0; pos <= body.size();) {
        size_t nl = body.find('\n', pos);
        std::string_view l = body.substr(pos, nl == std::string_view::npos ? nl : nl - pos);
        while (!l.empty() && (l.back() == '\r' || l.back() == ' ')) l.remove_suffix(1);
        if (!l.empty()) out.emplace_back(l);
        if (nl == std::string_view::npos) break;
        pos = nl + 1;
    }
    return out;
}

struct Sink final : ReflectorSink {
    int applied = 0;
    void replace(std::vector<json>, const std::string&) override {}
    void apply(WatchEvent&& ev) override {
        FUZZ_CHECK(ev.object.is_object(), "event object is not an object");
        (void)meta::key(ev.object);
        ++applied;
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz::Reader r(fuzz::as_view(data, size));
    size_t chunk = r.u8() + 1;
    std::string_view body = r.rest();
    auto split = [&](size_t n) {
        std::vector<std::string> out;
        for (size_t i = 0; i < body.size(); i += n) out.emplace_back(body.substr(i, n));
        return out;
    };
    std::vector<std::string> chunks = split(chunk);

    // Framing: chunked and whole give the same lines as a plain split.
    std::vector<std::string> whole, chunked;
    LineDecoder d1, d2;
    d1.feed(body, [&](std::string_view l) { whole.emplace_back(l); });
    d1.finish([&](std::string_view l) { whole.emplace_back(l); });
    for (const auto& c : chunks) d2.feed(c, [&](std::string_view l) { chunked.emplace_back(l); });
    d2.finish([&](std::string_view l) { chunked.emplace_back(l); });
    FUZZ_CHECK(whole == chunked, "lines depend on chunking");
    FUZZ_CHECK(whole == split_lines(body), "lines differ from a plain split");

    // What the reflector must end up with.
    std::string want_rv = "1";
    int want_applied = 0;
    for (const auto& l : whole) {
        auto ev = parse_watch_event(l);
        if (!ev) continue;
        if (ev->type == WatchEvent::Type::Error) {
            Error e = status_object_error(ev->object, "watch secrets");
            FUZZ_CHECK(fuzz::one_line(e.message), "multi-line Status message");
            break;
        }
        if (ev->type != WatchEvent::Type::Bookmark) ++want_applied;
        std::string rv = meta::resource_version(ev->object);
        if (!rv.empty()) want_rv = rv;
    }

    testing::FakeHttp http;
    http.on_send = [](const HttpRequest&) -> Result<HttpResponse> {
        return testing::json_response(
            200, R"({"kind":"SecretList","metadata":{"resourceVersion":"1"},"items":[]})");
    };
    testing::StreamScript s;
    // Through the client in bigger pieces: one call per byte costs the fuzzer 10x the execs.
    s.chunks = split(chunk * 16);
    http.push_stream(std::move(s));
    FakeClock clock;
    Client client(http, ClientOptions{"http://api", nullptr}, clock);
    ReflectorOptions opts;
    opts.type = resources::Secret;
    opts.ns = "ns";
    opts.seed = 1;
    Sink sink;
    Reflector ref(client, sink, opts);
    FUZZ_CHECK(ref.step() == Reflector::State::Watching, "list failed");
    ref.step();
    FUZZ_CHECK(ref.resource_version() == want_rv, "resourceVersion %s, want %s",
               ref.resource_version().c_str(), want_rv.c_str());
    FUZZ_CHECK(sink.applied == want_applied, "%d events applied, want %d", sink.applied,
               want_applied);
    return 0;
}
