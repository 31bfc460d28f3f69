#pragma once
// --cert-source kubernetes: kubernetes.io/tls Secrets as a tls::CertSource. One k8s::Informer
// per watched namespace (or one across all namespaces) feeds the CertStore: the complete set
// once every informer has synced, then each add/update/delete as a delta. Per-Secret outcomes of
// the CertStore become Events on the Secret (Loaded / Rejected), one per resourceVersion.
// Lives in src/app because it joins k8s/ and src/tls, which must not see each other.
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "edgecert/k8s/client.h"
#include "edgecert/k8s/event_recorder.h"
#include "edgecert/k8s/informer.h"
#include "tls/cert_source.h"
#include "tls/cert_store.h"

namespace edgecert::app {

struct SecretSourceOptions {
    // Label selector; "" or "all": every Secret of type kubernetes.io/tls (field selector).
    std::string selector = "edgecert.io/managed=true";
    std::vector<std::string> namespaces;  // empty: all namespaces
    std::chrono::milliseconds sync_timeout{30'000};
};

// Splits "a, b,,c" into {"a","b","c"}.
std::vector<std::string> split_list(const std::string& s);

class SecretCertSource final : public tls::CertSource {
  public:
    // `events` may be null (no Events are recorded). client and events must outlive the source.
    static Result<std::unique_ptr<SecretCertSource>> create(k8s::Client& client,
                                                            k8s::EventRecorder* events,
                                                            SecretSourceOptions opts);
    ~SecretCertSource() override;

    Status start(tls::CertSink& sink) override;
    void request_full_rescan() override;
    void stop() override;

    // Wire to tls::CertStore::set_result_callback: turns per-entry results into Events.
    void on_result(const std::string& name, const tls::EntryResult& r);

    // Outcome of converting one Secret object (exposed for unit tests).
    struct Converted {
        bool usable = false;
        std::string skip_reason;  // !usable: why (never key bytes)
        tls::CertChange change;
    };
    static Converted convert(const k8s::json& secret);

  private:
    SecretCertSource(k8s::Client& client, k8s::EventRecorder* events, SecretSourceOptions opts)
        : client_(client), events_(events), opts_(std::move(opts)) {}
    // Delivery (all under deliver_mu_, so the sink sees changes in store order).
    void on_upsert(const k8s::ObjectPtr& obj);
    void on_delete(const k8s::ObjectPtr& obj);
    void deliver_full_locked();
    bool accept_locked(const k8s::ObjectPtr& obj, tls::CertChange& out);

    k8s::Client& client_;
    k8s::EventRecorder* events_;
    SecretSourceOptions opts_;
    std::vector<std::unique_ptr<k8s::Informer>> informers_;
    tls::CertSink* sink_ = nullptr;

    std::mutex deliver_mu_;
    bool delivered_ = false;  // the first full set went out: handlers deliver deltas from now on
    // name → the Secret whose content is being / was last handed to the sink (for on_result).
    std::map<std::string, k8s::ObjectPtr> inflight_;
    // name → resourceVersion already reported (Event or skip log): one report per version.
    std::map<std::string, std::string> reported_rv_;
    std::map<std::string, bool> last_ok_;  // name → was the last reported outcome Loaded
};

}  // namespace edgecert::app
