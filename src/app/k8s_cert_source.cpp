#include "app/k8s_cert_source.h"

#include <spdlog/spdlog.h>

#include "edgecert/k8s/models.h"
#include "edgecert/k8s/object.h"

namespace edgecert::app {
namespace {

constexpr const char* kTlsType = "kubernetes.io/tls";

}  // namespace

std::vector<std::string> split_list(const std::string& s) {
    std::vector<std::string> out;
    size_t pos = 0;
    while (pos <= s.size()) {
        size_t c = s.find(',', pos);
        std::string p = s.substr(pos, c == std::string::npos ? std::string::npos : c - pos);
        while (!p.empty() && p.front() == ' ') p.erase(p.begin());
        while (!p.empty() && p.back() == ' ') p.pop_back();
        if (!p.empty()) out.push_back(p);
        if (c == std::string::npos) break;
        pos = c + 1;
    }
    return out;
}

Result<std::unique_ptr<SecretCertSource>> SecretCertSource::create(k8s::Client& client,
                                                                   k8s::EventRecorder* events,
                                                                   SecretSourceOptions opts) {
    if (opts.selector == "all") opts.selector.clear();
    std::unique_ptr<SecretCertSource> s(new SecretCertSource(client, events, std::move(opts)));
    std::vector<std::string> nss = s->opts_.namespaces;
    if (nss.empty()) nss.push_back("");  // one informer across all namespaces
    for (const auto& ns : nss) {
        k8s::ReflectorOptions ro{k8s::resources::Secret};
        ro.ns = ns;
        if (s->opts_.selector.empty())
            ro.field_selector = std::string("type=") + kTlsType;
        else
            ro.label_selector = s->opts_.selector;
        auto inf = std::make_unique<k8s::Informer>(client, ro);
        // The cache holds every selected Secret; managedFields is bookkeeping we never read.
        inf->set_transform(k8s::meta::strip_managed_fields);
        SecretCertSource* self = s.get();
        inf->add_handlers(k8s::upsert_delete_handlers([self](const k8s::ObjectPtr& o) { self->on_upsert(o); },
                                                      [self](const k8s::ObjectPtr& o) { self->on_delete(o); }));
        s->informers_.push_back(std::move(inf));
    }
    return s;
}

SecretCertSource::~SecretCertSource() {
    stop();
}

SecretCertSource::Converted SecretCertSource::convert(const k8s::json& obj) {
    Converted out;
    std::string name = k8s::meta::key(obj);
    auto sec = k8s::Secret::from_json(obj);
    if (!sec) {
        out.skip_reason = sec.error().message;
        return out;
    }
    if (sec->type != kTlsType) {
        // An unset type is Opaque (the API server's default; some servers and clients omit it).
        out.skip_reason = "type is '" + (sec->type.empty() ? std::string("Opaque") : sec->type) +
                          "', not " + kTlsType;
        return out;
    }
    auto crt = sec->data.find("tls.crt");
    auto key = sec->data.find("tls.key");
    if (crt == sec->data.end() || key == sec->data.end()) {
        out.skip_reason = crt == sec->data.end() ? "no tls.crt in data" : "no tls.key in data";
        return out;
    }
    out.usable = true;
    out.change.kind = tls::CertChange::Kind::Upsert;
    out.change.name = name;
    out.change.cert_pem = std::string(crt->second.reveal());  // a certificate chain: public
    out.change.key_pem = key->second;
    return out;
}

// Converts and remembers the object as the one being delivered for its name; logs a skip once
// per resourceVersion. Caller holds deliver_mu_.
bool SecretCertSource::accept_locked(const k8s::ObjectPtr& obj, tls::CertChange& out) {
    auto c = convert(*obj);
    std::string name = k8s::meta::key(*obj);
    if (!c.usable) {
        std::string rv = k8s::meta::resource_version(*obj);
        auto& last = reported_rv_[name];
        if (last != rv) spdlog::warn("secret {}: skipped: {}", name, c.skip_reason);
        last = rv;
        return false;
    }
    inflight_[name] = obj;
    out = std::move(c.change);
    return true;
}

Status SecretCertSource::start(tls::CertSink& sink) {
    sink_ = &sink;
    auto last_error = std::make_shared<std::pair<std::mutex, std::string>>();
    for (auto& inf : informers_) {
        inf->set_error_handler([last_error](const Error& e) {
            // Bounded by the reflector's backoff (0.8 s doubling to 30 s); the cache and what is
            // served stay as they are meanwhile.
            spdlog::warn("secrets: list/watch: {}", e.message);
            std::lock_guard l(last_error->first);
            last_error->second = e.message;
        });
        inf->start();
    }
    auto deadline = std::chrono::steady_clock::now() + opts_.sync_timeout;
    for (auto& inf : informers_) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (!inf->wait_for_sync(std::max(left, std::chrono::milliseconds(0)))) {
            std::string why;
            {
                std::lock_guard l(last_error->first);
                why = last_error->second;
            }
            stop();
            return Error(ErrorCode::Transient,
                         "listing Secrets: no answer from the API server within " +
                             std::to_string(opts_.sync_timeout.count() / 1000) + " s" +
                             (why.empty() ? "" : " (" + why + ")"));
        }
    }
    std::lock_guard l(deliver_mu_);
    deliver_full_locked();
    delivered_ = true;
    return {};
}

void SecretCertSource::deliver_full_locked() {
    std::vector<tls::CertChange> changes;
    size_t objects = 0;
    for (auto& inf : informers_) {
        for (auto& obj : inf->store().list()) {
            ++objects;
            tls::CertChange c;
            if (accept_locked(obj, c)) changes.push_back(std::move(c));
        }
    }
    spdlog::info("secrets: full set: {} Secret(s), {} with a certificate pair", objects,
                 changes.size());
    sink_->apply(std::move(changes), true);
}

void SecretCertSource::request_full_rescan() {
    std::lock_guard l(deliver_mu_);
    if (!delivered_) return;  // start() is delivering the full set anyway
    deliver_full_locked();
}

void SecretCertSource::on_upsert(const k8s::ObjectPtr& obj) {
    std::lock_guard l(deliver_mu_);
    if (!delivered_) return;  // the first full set (read from the store after sync) includes it
    tls::CertChange c;
    if (!accept_locked(obj, c)) {
        // Never a certificate pair (wrong type, keys missing): stop serving what it once was.
        std::string name = k8s::meta::key(*obj);
        if (inflight_.erase(name))
            sink_->apply({{tls::CertChange::Kind::Remove, name, {}, {}}}, false);
        return;
    }
    std::vector<tls::CertChange> v;
    v.push_back(std::move(c));
    sink_->apply(std::move(v), false);
}

void SecretCertSource::on_delete(const k8s::ObjectPtr& obj) {
    std::lock_guard l(deliver_mu_);
    if (!delivered_) return;
    std::string name = k8s::meta::key(*obj);
    inflight_.erase(name);
    reported_rv_.erase(name);
    last_ok_.erase(name);
    sink_->apply({{tls::CertChange::Kind::Remove, name, {}, {}}}, false);
}

// Called by the CertStore inside apply(), i.e. on the thread that holds deliver_mu_ (this
// source is the only one feeding that store), so the maps need no further locking.
void SecretCertSource::on_result(const std::string& name, const tls::EntryResult& r) {
    auto it = inflight_.find(name);
    if (it == inflight_.end()) return;
    const k8s::json& obj = *it->second;
    std::string rv = k8s::meta::resource_version(obj);
    auto& reported = reported_rv_[name];
    if (reported == rv) return;  // one Event per resourceVersion (rescans deliver it again)
    reported = rv;
    auto prev_ok = last_ok_.find(name);
    // Same bytes as already served under a new resourceVersion (a label or annotation edit):
    // nothing new was loaded, unless it recovers from a rejected version.
    if (r.ok && r.unchanged && prev_ok != last_ok_.end() && prev_ok->second) return;
    last_ok_[name] = r.ok;
    if (!events_) return;
    if (r.ok) {
        std::string msg = "serving certificate serial " + r.serial + " for " +
                          std::to_string(r.names) + (r.names == 1 ? " name" : " names") +
                          ", notAfter " +
                          k8s::format_time(std::chrono::system_clock::from_time_t(r.not_after));
        events_->record(obj, k8s::resources::Secret, "Normal", "Loaded", msg);
    } else {
        events_->record(obj, k8s::resources::Secret, "Warning", "Rejected",
                        r.error + "; the last good certificate (if any) keeps being served");
    }
}

void SecretCertSource::stop() {
    for (auto& inf : informers_) inf->stop();
}

}  // namespace edgecert::app
