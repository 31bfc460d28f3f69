#include "edgecert/k8s/models.h"

#include "edgecert/base/encoding.h"

namespace edgecert::k8s {

namespace {

std::string s(const json& j, const char* f) {
    if (!j.is_object()) return {};
    auto it = j.find(f);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}
std::optional<std::string> opt_s(const json& j, const char* f) {
    if (!j.is_object()) return std::nullopt;
    auto it = j.find(f);
    if (it == j.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
}
const json& sub(const json& j, const char* f) {
    static const json kNull;
    if (!j.is_object()) return kNull;
    auto it = j.find(f);
    return it == j.end() ? kNull : *it;
}
std::optional<SystemTime> opt_time(const json& j, const char* f) {
    auto v = opt_s(j, f);
    if (!v || v->empty()) return std::nullopt;
    auto t = parse_time(*v);
    if (!t.ok()) return std::nullopt;
    return *t;
}
Error not_object(const char* what) {
    return Error(ErrorCode::InvalidConfig, std::string(what) + ": not an object");
}

}  // namespace

ObjectReference ObjectReference::from_object(const json& obj, const ResourceType& rt) {
    ObjectReference r;
    r.kind = s(obj, "kind");
    if (r.kind.empty()) r.kind = std::string(rt.kind);
    r.api_version = s(obj, "apiVersion");
    if (r.api_version.empty()) r.api_version = rt.api_version();
    r.namespace_ = meta::namespace_(obj);
    r.name = meta::name(obj);
    r.uid = meta::uid(obj);
    r.resource_version = meta::resource_version(obj);
    return r;
}

ObjectReference ObjectReference::from_json(const json& j) {
    ObjectReference r;
    r.kind = s(j, "kind");
    r.namespace_ = s(j, "namespace");
    r.name = s(j, "name");
    r.uid = s(j, "uid");
    r.api_version = s(j, "apiVersion");
    r.resource_version = s(j, "resourceVersion");
    r.field_path = s(j, "fieldPath");
    return r;
}

json ObjectReference::to_json() const {
    json j = json::object();
    auto put = [&](const char* k, const std::string& v) {
        if (!v.empty()) j[k] = v;
    };
    put("kind", kind);
    put("namespace", namespace_);
    put("name", name);
    put("uid", uid);
    put("apiVersion", api_version);
    put("resourceVersion", resource_version);
    put("fieldPath", field_path);
    return j;
}

Result<Secret> Secret::from_json(const json& j) {
    if (!j.is_object()) return not_object("Secret");
    Secret out;
    out.name = meta::name(j);
    out.namespace_ = meta::namespace_(j);
    out.type = s(j, "type");
    out.labels = meta::labels(j);
    out.annotations = meta::annotations(j);
    out.resource_version = meta::resource_version(j);
    const json& d = sub(j, "data");
    if (d.is_object()) {
        for (auto& [k, v] : d.items()) {
            if (!v.is_string()) continue;
            auto bytes = enc::base64_decode(v.get<std::string>());
            if (!bytes)
                return Error(ErrorCode::InvalidConfig,
                             "Secret " + meta::key(j) + ": data[" + k + "] is not base64");
            out.data.emplace(k, SecretBytes(std::move(*bytes)));
        }
    }
    // stringData is write-only on the server, but tolerate it in manifests.
    const json& sd = sub(j, "stringData");
    if (sd.is_object())
        for (auto& [k, v] : sd.items())
            if (v.is_string()) out.data.insert_or_assign(k, SecretBytes(v.get<std::string>()));
    return out;
}

json Secret::to_json() const {
    json j = {{"apiVersion", "v1"}, {"kind", "Secret"}, {"metadata", {{"name", name}}}};
    if (!namespace_.empty()) j["metadata"]["namespace"] = namespace_;
    if (!labels.empty()) j["metadata"]["labels"] = labels;
    if (!annotations.empty()) j["metadata"]["annotations"] = annotations;
    if (!resource_version.empty()) j["metadata"]["resourceVersion"] = resource_version;
    if (!type.empty()) j["type"] = type;
    json d = json::object();
    for (auto& [k, v] : data) d[k] = enc::base64(v.reveal());
    j["data"] = std::move(d);
    return j;
}

std::optional<std::string> Secret::text(const std::string& key) const {
    auto it = data.find(key);
    if (it == data.end()) return std::nullopt;
    return std::string(it->second.reveal());
}

SecretBytes Secret::tls_key() const {
    auto it = data.find("tls.key");
    return it == data.end() ? SecretBytes() : it->second;
}

Result<Event> Event::from_json(const json& j) {
    if (!j.is_object()) return not_object("Event");
    Event e;
    e.name = meta::name(j);
    e.namespace_ = meta::namespace_(j);
    e.resource_version = meta::resource_version(j);
    e.involved_object = ObjectReference::from_json(sub(j, "involvedObject"));
    e.reason = s(j, "reason");
    e.message = s(j, "message");
    e.type = s(j, "type");
    e.source_component = s(sub(j, "source"), "component");
    e.source_host = s(sub(j, "source"), "host");
    e.first_timestamp = opt_time(j, "firstTimestamp");
    e.last_timestamp = opt_time(j, "lastTimestamp");
    const json& c = sub(j, "count");
    if (c.is_number_integer()) e.count = c.get<int>();
    return e;
}

json Event::to_json() const {
    json j = {{"apiVersion", "v1"}, {"kind", "Event"}, {"metadata", {{"name", name}}}};
    if (!namespace_.empty()) j["metadata"]["namespace"] = namespace_;
    j["involvedObject"] = involved_object.to_json();
    j["reason"] = reason;
    j["message"] = message;
    j["type"] = type;
    json src = json::object();
    if (!source_component.empty()) src["component"] = source_component;
    if (!source_host.empty()) src["host"] = source_host;
    j["source"] = src;
    if (!source_component.empty()) j["reportingComponent"] = source_component;
    if (first_timestamp) j["firstTimestamp"] = format_time(*first_timestamp);
    if (last_timestamp) j["lastTimestamp"] = format_time(*last_timestamp);
    j["count"] = count;
    return j;
}

LeaseSpec LeaseSpec::from_json(const json& spec) {
    LeaseSpec l;
    l.holder_identity = s(spec, "holderIdentity");
    const json& d = sub(spec, "leaseDurationSeconds");
    if (d.is_number_integer()) l.lease_duration_seconds = d.get<int>();
    l.acquire_time = opt_time(spec, "acquireTime");
    l.renew_time = opt_time(spec, "renewTime");
    const json& t = sub(spec, "leaseTransitions");
    if (t.is_number_integer()) l.lease_transitions = t.get<int>();
    return l;
}

json LeaseSpec::to_json() const {
    json j = json::object();
    j["holderIdentity"] = holder_identity;
    if (lease_duration_seconds) j["leaseDurationSeconds"] = *lease_duration_seconds;
    if (acquire_time) j["acquireTime"] = format_micro_time(*acquire_time);
    if (renew_time) j["renewTime"] = format_micro_time(*renew_time);
    j["leaseTransitions"] = lease_transitions;
    return j;
}

bool LeaseSpec::operator==(const LeaseSpec& o) const {
    return holder_identity == o.holder_identity &&
           lease_duration_seconds == o.lease_duration_seconds && acquire_time == o.acquire_time &&
           renew_time == o.renew_time && lease_transitions == o.lease_transitions;
}

Result<Ingress> Ingress::from_json(const json& j) {
    if (!j.is_object()) return not_object("Ingress");
    Ingress in;
    in.name = meta::name(j);
    in.namespace_ = meta::namespace_(j);
    in.uid = meta::uid(j);
    in.labels = meta::labels(j);
    in.annotations = meta::annotations(j);
    const json& spec = sub(j, "spec");
    in.ingress_class_name = opt_s(spec, "ingressClassName");
    const json& tls = sub(spec, "tls");
    if (tls.is_array()) {
        for (auto& t : tls) {
            IngressTLS it;
            it.secret_name = s(t, "secretName");
            const json& hosts = sub(t, "hosts");
            if (hosts.is_array())
                for (auto& h : hosts)
                    if (h.is_string()) it.hosts.push_back(h.get<std::string>());
            in.tls.push_back(std::move(it));
        }
    }
    const json& rules = sub(spec, "rules");
    if (rules.is_array())
        for (auto& r : rules)
            if (auto h = opt_s(r, "host")) in.rule_hosts.push_back(*h);
    return in;
}

Result<Gateway> Gateway::from_json(const json& j) {
    if (!j.is_object()) return not_object("Gateway");
    Gateway g;
    g.name = meta::name(j);
    g.namespace_ = meta::namespace_(j);
    g.uid = meta::uid(j);
    g.labels = meta::labels(j);
    g.annotations = meta::annotations(j);
    const json& spec = sub(j, "spec");
    g.gateway_class_name = s(spec, "gatewayClassName");
    const json& ls = sub(spec, "listeners");
    if (ls.is_array()) {
        for (auto& l : ls) {
            GatewayListener gl;
            gl.name = s(l, "name");
            gl.hostname = opt_s(l, "hostname");
            gl.protocol = s(l, "protocol");
            const json& port = sub(l, "port");
            if (port.is_number_integer()) gl.port = port.get<int>();
            const json& tls = sub(l, "tls");
            if (tls.is_object()) {
                gl.has_tls = true;
                gl.tls_mode = s(tls, "mode");
                if (gl.tls_mode.empty()) gl.tls_mode = "Terminate";  // API default
                const json& refs = sub(tls, "certificateRefs");
                if (refs.is_array()) {
                    for (auto& r : refs) {
                        SecretObjectReference ref;
                        ref.group = s(r, "group");
                        if (auto k = opt_s(r, "kind")) ref.kind = *k;
                        ref.name = s(r, "name");
                        ref.namespace_ = opt_s(r, "namespace");
                        gl.certificate_refs.push_back(std::move(ref));
                    }
                }
            }
            g.listeners.push_back(std::move(gl));
        }
    }
    return g;
}

Result<ReferenceGrant> ReferenceGrant::from_json(const json& j) {
    if (!j.is_object()) return not_object("ReferenceGrant");
    ReferenceGrant g;
    g.name = meta::name(j);
    g.namespace_ = meta::namespace_(j);
    const json& spec = sub(j, "spec");
    const json& from = sub(spec, "from");
    if (from.is_array())
        for (auto& f : from) g.from.push_back({s(f, "group"), s(f, "kind"), s(f, "namespace")});
    const json& to = sub(spec, "to");
    if (to.is_array())
        for (auto& t : to) g.to.push_back({s(t, "group"), s(t, "kind"), opt_s(t, "name")});
    return g;
}

bool ReferenceGrant::permits(std::string_view from_group, std::string_view from_kind,
                             std::string_view from_ns, std::string_view to_group,
                             std::string_view to_kind, std::string_view to_name) const {
    auto core = [](std::string_view g) { return g == "core" ? std::string_view() : g; };
    bool from_ok = false;
    for (auto& f : from)
        if (core(f.group) == core(from_group) && f.kind == from_kind && f.namespace_ == from_ns)
            from_ok = true;
    if (!from_ok) return false;
    for (auto& t : to)
        if (core(t.group) == core(to_group) && t.kind == to_kind &&
            (!t.name || t.name->empty() || *t.name == to_name))
            return true;
    return false;
}

}  // namespace edgecert::k8s
