#pragma once
// The Kubernetes challenge solver: for each authorization, one `Challenge` object
// (edgecert.io/v1alpha1) in the Certificate's namespace. Every terminator watches Challenges and
// answers them itself (http-01 on :80, tls-alpn-01 on :443), then sets status.presented = true.
// present() returns only once a terminator says so: the CA is asked to validate only when an
// answer is actually being served, without a hairpin self-check through the network (which
// breaks behind NAT, split DNS or PROXY-protocol load balancers). cleanup() deletes the object.
#include <atomic>
#include <chrono>
#include <string>

#include "controller/context.h"
#include "edgecert/acme/order.h"

namespace edgecert::controller {

struct ChallengeOwner {
    std::string namespace_;
    std::string certificate_name;
    std::string certificate_uid;  // ownerReference, so deleting the Certificate deletes them
    std::string issuer_name, issuer_kind;
};

class ChallengePublisher final : public acme::ChallengeSolver {
  public:
    ChallengePublisher(ControllerContext& ctx, ChallengeOwner owner, std::vector<std::string> types,
                       std::chrono::milliseconds present_timeout, const std::atomic<bool>* cancel = nullptr)
        : ctx_(ctx), owner_(std::move(owner)), types_(std::move(types)),
          timeout_(present_timeout), cancel_(cancel) {}

    std::vector<std::string> supported_types() const override { return types_; }
    Status present(const std::string& domain, const acme::Challenge& ch,
                   const std::string& key_authorization) override;
    void cleanup(const std::string& domain, const acme::Challenge& ch) noexcept override;

    // Deterministic object name for a challenge token: a retried present() (resumed order,
    // restarted controller) finds the same object instead of creating another.
    static std::string object_name(const std::string& certificate_name, const std::string& token);

  private:
    ControllerContext& ctx_;
    ChallengeOwner owner_;
    std::vector<std::string> types_;
    std::chrono::milliseconds timeout_;
    const std::atomic<bool>* cancel_;
};

}  // namespace edgecert::controller
