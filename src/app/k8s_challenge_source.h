#pragma once
// --challenge-source kubernetes: edgecert.io/v1alpha1 Challenge objects (written by the
// controller) fill a tls::MemoryChallengeSource: http-01 token → key authorization, tls-alpn-01
// dnsName (a DNS name, or an IP address for an RFC 8738 identifier) → key authorization; dns-01 is
// the controller's own business and is ignored. Once an answer is loaded, the Challenge's
// status.presented is set (merge patch on the status subresource) so the controller knows a
// terminator can answer before it asks the CA to validate. Patches run on their own thread with
// per-key backoff: a slow or failing API server never holds up the informer, and so never delays
// loading the next answer.
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "edgecert/base/clock.h"
#include "edgecert/k8s/client.h"
#include "edgecert/k8s/informer.h"
#include "edgecert/k8s/workqueue.h"
#include "tls/challenge_source.h"

namespace edgecert::app {

inline constexpr k8s::ResourceType kChallengeType{"edgecert.io", "v1alpha1", "challenges",
                                                  "Challenge", true};

struct ChallengeSourceOptions {
    std::vector<std::string> namespaces;  // empty: all namespaces
    std::chrono::milliseconds sync_timeout{30'000};
    std::chrono::milliseconds patch_backoff_initial{200};
    std::chrono::milliseconds patch_backoff_max{30'000};
};

// What one Challenge asks the terminator to answer (exposed for unit tests).
struct ChallengeAnswer {
    enum class Type { Http01, TlsAlpn01 };
    Type type = Type::Http01;
    std::string lookup;  // http-01: token; tls-alpn-01: lowercase dnsName or canonical IP
    std::string key_authorization;
};
// nullopt with `why` set when the object is not one we answer (dns-01, malformed fields).
std::optional<ChallengeAnswer> parse_challenge(const k8s::json& obj, std::string& why);

class K8sChallengeSource {
  public:
    // target is what the TLS/HTTP listeners consult; it must outlive this object.
    static Result<std::unique_ptr<K8sChallengeSource>> create(k8s::Client& client,
                                                              tls::MemoryChallengeSource& target,
                                                              Clock& clock,
                                                              ChallengeSourceOptions opts);
    ~K8sChallengeSource();

    // Starts the informers and the status patcher; waits (bounded) for the first list.
    Status start();
    void stop();

  private:
    K8sChallengeSource(k8s::Client& client, tls::MemoryChallengeSource& target, Clock& clock,
                       ChallengeSourceOptions opts);
    void on_upsert(const k8s::ObjectPtr& obj);
    void on_delete(const k8s::ObjectPtr& obj);
    void unload_locked(const std::string& key);
    void patch_loop();
    k8s::ObjectPtr lookup(const std::string& key) const;

    k8s::Client& client_;
    tls::MemoryChallengeSource& target_;
    ChallengeSourceOptions opts_;
    std::vector<std::unique_ptr<k8s::Informer>> informers_;
    k8s::WorkQueue queue_;  // Challenge keys whose status.presented should be set
    std::thread patcher_;

    std::mutex mu_;  // informer threads (one per namespace) share the answer table
    std::map<std::string, ChallengeAnswer> loaded_;  // "ns/name" → what we serve for it
};

}  // namespace edgecert::app
