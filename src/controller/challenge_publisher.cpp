#include "controller/challenge_publisher.h"

#include <spdlog/spdlog.h>

#include <thread>

#include "controller/resources.h"
#include "edgecert/acme/crypto.h"
#include "edgecert/base/encoding.h"

namespace edgecert::controller {

std::string ChallengePublisher::object_name(const std::string& certificate_name, const std::string& token) {
    std::string h = enc::hex(acme::sha256(token)).substr(0, 10);
    std::string base = certificate_name;
    if (base.size() > 253 - 11) base.resize(253 - 11);
    while (!base.empty() && (base.back() == '-' || base.back() == '.')) base.pop_back();
    return base + "-" + h;
}

Status ChallengePublisher::present(const std::string& domain, const acme::Challenge& ch,
                                   const std::string& key_authorization) {
    const std::string name = object_name(owner_.certificate_name, ch.token);
    json obj = {
        {"apiVersion", "edgecert.io/v1alpha1"},
        {"kind", "Challenge"},
        {"metadata",
         {{"name", name},
          {"namespace", owner_.namespace_},
          {"labels", {{"edgecert.io/certificate-name", owner_.certificate_name}}}}},
        {"spec",
         {{"type", ch.type},
          {"dnsName", domain},
          {"token", ch.token},
          {"key", key_authorization},
          {"wildcard", false},
          {"url", ch.url},
          {"issuerRef", {{"name", owner_.issuer_name}, {"kind", owner_.issuer_kind}, {"group", "edgecert.io"}}}}}};
    if (!owner_.certificate_uid.empty()) {
        obj["metadata"]["ownerReferences"] = json::array({{{"apiVersion", "edgecert.io/v1alpha1"},
                                                           {"kind", "Certificate"},
                                                           {"name", owner_.certificate_name},
                                                           {"uid", owner_.certificate_uid},
                                                           {"controller", true},
                                                           {"blockOwnerDeletion", true}}});
    }
    k8s::WriteOptions wo{.field_manager = ctx_.field_manager};
    auto r = ctx_.client.create(resources::Challenge, owner_.namespace_, obj, wo);
    if (!r && r.error().code == ErrorCode::AlreadyExists) {
        // Left by an earlier attempt for the same token (restart, resumed order): same content by
        // construction; re-read it so we wait on its real status.
        auto cur = ctx_.client.get(resources::Challenge, owner_.namespace_, name);
        if (!cur) return cur.error();
        r = std::move(cur);
    }
    if (!r) {
        Error e = r.error();
        e.context("creating Challenge " + owner_.namespace_ + "/" + name);
        return e;
    }
    spdlog::info("certificate {}/{}: published {} Challenge {} for {}", owner_.namespace_, owner_.certificate_name,
                 ch.type, name, domain);

    // Wait for a terminator's acknowledgement, from the informer cache (no API polling).
    const std::string key = owner_.namespace_ + "/" + name;
    auto deadline = std::chrono::steady_clock::now() + timeout_;
    while (true) {
        if (ctx_.informers.challenges) {
            auto o = ctx_.informers.challenges->store().get(key);
            if (o && o->contains("status") && (*o)["status"].is_object() &&
                (*o)["status"].value("presented", false))
                return Status{};
        } else {
            auto o = ctx_.client.get(resources::Challenge, owner_.namespace_, name);
            if (o && o->contains("status") && (*o)["status"].is_object() && (*o)["status"].value("presented", false))
                return Status{};
        }
        if (cancel_ && cancel_->load()) return Error(ErrorCode::Transient, "cancelled");
        if (std::chrono::steady_clock::now() >= deadline)
            return Error(ErrorCode::Transient,
                         "no terminator presented Challenge " + key + " within " +
                             std::to_string(timeout_.count() / 1000) +
                             " s (are terminators running with --challenge-source=kubernetes?)");
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
}

void ChallengePublisher::cleanup(const std::string& /*domain*/, const acme::Challenge& ch) noexcept {
    try {
        const std::string name = object_name(owner_.certificate_name, ch.token);
        auto st = ctx_.client.remove(resources::Challenge, owner_.namespace_, name);
        if (!st && st.error().code != ErrorCode::NotFound)
            spdlog::warn("could not delete Challenge {}/{}: {}", owner_.namespace_, name, st.error().message);
    } catch (...) {
    }
}

}  // namespace edgecert::controller
