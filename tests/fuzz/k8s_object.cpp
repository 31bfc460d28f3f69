// Kubernetes object decoders (k8s/object.cpp, models.cpp): what list and watch responses carry
// for Secrets, Events, Leases, Ingresses, Gateways and ReferenceGrants, and the API's time format.
//
// Input: a JSON object as the API server sends it. Every decoder and ObjectMeta accessor runs on
// it. Invariants: decoders never throw; Secret, Event and LeaseSpec survive to_json → from_json
// unchanged (data bytes, names, times); a time that parsed survives format → parse; an error
// never carries a Secret's data.
#include "edgecert/k8s/models.h"
#include "tests/fuzz/fuzz_util.h"

using namespace edgecert;
using namespace edgecert::k8s;

namespace {

void check_time(const std::optional<SystemTime>& t, bool micro) {
    if (!t) return;
    std::string s = micro ? format_micro_time(*t) : format_time(*t);
    auto back = parse_time(s);
    FUZZ_CHECK(back.ok(), "formatted time does not parse: %s", s.c_str());
    auto want = micro ? std::chrono::floor<std::chrono::microseconds>(*t)
                      : std::chrono::floor<std::chrono::seconds>(*t);
    FUZZ_CHECK(*back == want, "time %s does not round-trip", s.c_str());
}

// metav1.Time has whole seconds: what an Event writes back.
std::optional<SystemTime> floor_s(const std::optional<SystemTime>& t) {
    if (!t) return t;
    return std::chrono::floor<std::chrono::seconds>(*t);
}

void check_secret(const json& j) {
    auto s = Secret::from_json(j);
    if (!s) {
        if (auto d = j.find("data"); d != j.end() && d->is_object())
            for (auto& [k, v] : d->items())
                if (v.is_string() && v.get<std::string>().size() >= 8)
                    FUZZ_CHECK(s.error().message.find(v.get<std::string>()) == std::string::npos,
                               "Secret data in an error message");
        return;
    }
    auto back = Secret::from_json(s->to_json());
    FUZZ_CHECK(back.ok(), "a Secret's own JSON does not decode");
    FUZZ_CHECK(
        back->name == s->name && back->namespace_ == s->namespace_ && back->type == s->type &&
            back->labels == s->labels && back->annotations == s->annotations &&
            back->resource_version == s->resource_version && back->data.size() == s->data.size(),
        "Secret changed in a round trip");
    for (const auto& [k, v] : s->data) {
        auto it = back->data.find(k);
        FUZZ_CHECK(it != back->data.end() && it->second.reveal() == v.reveal(),
                   "Secret data changed");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    json j = json::parse(fuzz::as_view(data, size), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return 0;

    (void)meta::key(j);
    (void)meta::labels(j);
    (void)meta::annotations(j);
    (void)meta::finalizers(j);
    (void)meta::owner_references(j);
    (void)meta::annotation(j, "edgecert.io/issuer");
    (void)meta::is_deleting(j);
    (void)ObjectReference::from_object(j, resources::Ingress).to_json();
    check_secret(j);

    if (auto e = Event::from_json(j)) {
        check_time(e->first_timestamp, false);
        check_time(e->last_timestamp, false);
        auto back = Event::from_json(e->to_json());
        FUZZ_CHECK(back.ok() && back->reason == e->reason && back->message == e->message &&
                       back->involved_object.uid == e->involved_object.uid &&
                       back->count == e->count &&
                       back->first_timestamp == floor_s(e->first_timestamp),
                   "Event changed in a round trip");
    }
    if (j.is_object() && j.contains("spec")) {
        LeaseSpec l = LeaseSpec::from_json(j["spec"]);
        check_time(l.acquire_time, true);
        check_time(l.renew_time, true);
        FUZZ_CHECK(LeaseSpec::from_json(l.to_json()) == l, "LeaseSpec changed in a round trip");
    }
    (void)Ingress::from_json(j);
    (void)Gateway::from_json(j);
    if (auto g = ReferenceGrant::from_json(j))
        (void)g->permits("gateway.networking.k8s.io", "Gateway", "a", "", "Secret", "s");
    json copy = j;
    meta::strip_managed_fields(copy);
    FUZZ_CHECK(meta::name(copy) == meta::name(j), "strip_managed_fields changed the name");
    // Times as they come in any string field.
    if (j.is_object())
        for (auto& [k, v] : j.items())
            if (v.is_string())
                if (auto t = parse_time(v.get<std::string>())) check_time(*t, true);
    return 0;
}
