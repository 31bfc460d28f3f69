#include "app/k8s_challenge_source.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>

#include "edgecert/base/ip.h"
#include "edgecert/k8s/object.h"

namespace edgecert::app {
namespace {

std::string str_field(const k8s::json& o, const char* k) {
    auto it = o.find(k);
    return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool presented(const k8s::json& obj) {
    auto st = obj.find("status");
    if (st == obj.end() || !st->is_object()) return false;
    auto p = st->find("presented");
    return p != st->end() && p->is_boolean() && p->get<bool>();
}

}  // namespace

std::optional<ChallengeAnswer> parse_challenge(const k8s::json& obj, std::string& why) {
    auto sp = obj.find("spec");
    if (sp == obj.end() || !sp->is_object()) {
        why = "no spec";
        return std::nullopt;
    }
    std::string type = str_field(*sp, "type");
    ChallengeAnswer a;
    a.key_authorization = str_field(*sp, "key");
    if (type == "dns-01") {
        why = "dns-01 (presented by the controller)";
        return std::nullopt;
    }
    // RFC 8555 §8.1: keyAuthorization = token || '.' || base64url(thumbprint): printable, bounded.
    if (a.key_authorization.empty() || a.key_authorization.size() > 512 ||
        !std::all_of(a.key_authorization.begin(), a.key_authorization.end(),
                     [](unsigned char c) { return c > 0x20 && c < 0x7f; })) {
        why = "spec.key is missing or not a key authorization";
        return std::nullopt;
    }
    if (type == "http-01") {
        a.type = ChallengeAnswer::Type::Http01;
        a.lookup = str_field(*sp, "token");
        if (!tls::valid_token(a.lookup)) {
            why = "spec.token is not a valid ACME token";
            return std::nullopt;
        }
        return a;
    }
    if (type == "tls-alpn-01") {
        a.type = ChallengeAnswer::Type::TlsAlpn01;
        a.lookup = str_field(*sp, "dnsName");
        std::transform(a.lookup.begin(), a.lookup.end(), a.lookup.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        if (!a.lookup.empty() && a.lookup.back() == '.') a.lookup.pop_back();
        // An IP identifier (RFC 8738) carries the address here, answered under its canonical text.
        if (auto ip = IpAddress::parse(a.lookup))
            a.lookup = ip->to_string();
        else if (!tls::valid_domain(a.lookup)) {
            why = "spec.dnsName is not a DNS name or IP address";
            return std::nullopt;
        }
        return a;
    }
    why = "unknown spec.type '" + type + "'";
    return std::nullopt;
}

K8sChallengeSource::K8sChallengeSource(k8s::Client& client, tls::MemoryChallengeSource& target,
                                       Clock& clock, ChallengeSourceOptions opts)
    : client_(client),
      target_(target),
      opts_(std::move(opts)),
      queue_(clock, k8s::WorkQueue::Options{opts_.patch_backoff_initial, opts_.patch_backoff_max}) {
}

Result<std::unique_ptr<K8sChallengeSource>> K8sChallengeSource::create(
    k8s::Client& client, tls::MemoryChallengeSource& target, Clock& clock,
    ChallengeSourceOptions opts) {
    std::unique_ptr<K8sChallengeSource> s(
        new K8sChallengeSource(client, target, clock, std::move(opts)));
    std::vector<std::string> nss = s->opts_.namespaces;
    if (nss.empty()) nss.push_back("");
    for (const auto& ns : nss) {
        k8s::ReflectorOptions ro{kChallengeType};
        ro.ns = ns;
        auto inf = std::make_unique<k8s::Informer>(client, ro);
        inf->set_transform(k8s::meta::strip_managed_fields);
        inf->set_error_handler(
            [](const Error& e) { spdlog::warn("challenges: list/watch: {}", e.message); });
        K8sChallengeSource* self = s.get();
        inf->add_handlers(k8s::upsert_delete_handlers([self](const k8s::ObjectPtr& o) { self->on_upsert(o); },
                                                      [self](const k8s::ObjectPtr& o) { self->on_delete(o); }));
        s->informers_.push_back(std::move(inf));
    }
    return s;
}

K8sChallengeSource::~K8sChallengeSource() {
    stop();
}

Status K8sChallengeSource::start() {
    for (auto& inf : informers_) inf->start();
    patcher_ = std::thread([this] { patch_loop(); });
    auto deadline = std::chrono::steady_clock::now() + opts_.sync_timeout;
    for (auto& inf : informers_) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (!inf->wait_for_sync(std::max(left, std::chrono::milliseconds(0)))) {
            stop();
            return Error(ErrorCode::Transient,
                         "listing " + kChallengeType.qualified_plural() +
                             ": no answer from the API server within " +
                             std::to_string(opts_.sync_timeout.count() / 1000) +
                             " s (is the Challenge CRD installed?)");
        }
    }
    return {};
}

void K8sChallengeSource::stop() {
    for (auto& inf : informers_) inf->stop();
    queue_.shutdown();
    if (patcher_.joinable()) patcher_.join();
}

// Removes what `key` made us answer; another Challenge for the same token/domain (two orders for
// one name) takes over its slot rather than leaving it empty.
void K8sChallengeSource::unload_locked(const std::string& key) {
    auto it = loaded_.find(key);
    if (it == loaded_.end()) return;
    ChallengeAnswer old = std::move(it->second);
    loaded_.erase(it);
    const ChallengeAnswer* other = nullptr;
    for (auto& [k, a] : loaded_)
        if (a.type == old.type && a.lookup == old.lookup) other = &a;
    bool http = old.type == ChallengeAnswer::Type::Http01;
    if (other) {
        if (http)
            target_.set_http01(other->lookup, other->key_authorization);
        else
            target_.set_tls_alpn01(other->lookup, other->key_authorization);
    } else if (http) {
        target_.remove_http01(old.lookup);
    } else {
        target_.remove_tls_alpn01(old.lookup);
    }
}

void K8sChallengeSource::on_upsert(const k8s::ObjectPtr& obj) {
    std::string key = k8s::meta::key(*obj);
    std::string why;
    auto a = parse_challenge(*obj, why);
    std::lock_guard l(mu_);
    if (!a) {
        if (loaded_.count(key))
            spdlog::info("challenge {}: no longer answered: {}", key, why);
        else
            spdlog::debug("challenge {}: ignored: {}", key, why);
        unload_locked(key);
        return;
    }
    auto it = loaded_.find(key);
    bool same = it != loaded_.end() && it->second.type == a->type &&
                it->second.lookup == a->lookup &&
                it->second.key_authorization == a->key_authorization;
    if (!same) {
        unload_locked(key);
        bool http = a->type == ChallengeAnswer::Type::Http01;
        if (http)
            target_.set_http01(a->lookup, a->key_authorization);
        else
            target_.set_tls_alpn01(a->lookup, a->key_authorization);
        // The token and the name are public (the CA fetches them); the key authorization is too,
        // but there is no reason to print it.
        spdlog::info("challenge {}: answering {} for {}", key, http ? "http-01" : "tls-alpn-01",
                     http ? "token " + a->lookup : a->lookup);
        loaded_[key] = std::move(*a);
    }
    if (!presented(*obj)) queue_.add(key);
}

void K8sChallengeSource::on_delete(const k8s::ObjectPtr& obj) {
    std::string key = k8s::meta::key(*obj);
    std::lock_guard l(mu_);
    if (loaded_.count(key)) spdlog::info("challenge {}: deleted, no longer answered", key);
    unload_locked(key);
}

k8s::ObjectPtr K8sChallengeSource::lookup(const std::string& key) const {
    for (auto& inf : informers_)
        if (auto o = inf->store().get(key)) return o;
    return nullptr;
}

void K8sChallengeSource::patch_loop() {
    while (auto key = queue_.get()) {
        auto obj = lookup(*key);
        bool loaded;
        {
            std::lock_guard l(mu_);
            loaded = loaded_.count(*key) > 0;
        }
        // Re-read state, never act on why we were queued: gone, already presented or no longer
        // answered → nothing to do.
        if (!obj || !loaded || presented(*obj)) {
            queue_.forget(*key);
            queue_.done(*key);
            continue;
        }
        k8s::PatchOptions po;
        po.subresource = "status";
        auto r =
            client_.patch(kChallengeType, k8s::meta::namespace_(*obj), k8s::meta::name(*obj),
                          k8s::PatchType::Merge, k8s::json{{"status", {{"presented", true}}}}, po);
        if (r.ok() || r.error().code == ErrorCode::NotFound) {
            if (r.ok()) spdlog::info("challenge {}: status.presented set", *key);
            queue_.forget(*key);
        } else {
            spdlog::warn("challenge {}: setting status.presented failed: {}; retrying in {} ms",
                         *key, r.error().message, queue_.when(*key).count());
            queue_.add_rate_limited(*key);
        }
        queue_.done(*key);
    }
}

}  // namespace edgecert::app
