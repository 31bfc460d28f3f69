#pragma once
// SourceController: annotated Ingresses and Gateways → Certificates, through ONE code path for
// both kinds (DESIGN.md): the informers enqueue "Ingress/<ns>/<name>" or "Gateway/<ns>/<name>";
// reconcile() reads the source from the cache, asks the pure shim (shim.h) what it wants, and
// creates / updates / deletes Certificates until the cluster matches. It never touches a
// Certificate's status (the issuance side owns it) and never writes when nothing changed: a
// Certificate status update enqueues its source again, and that reconcile must be a no-op.
//
// What enqueues a source:
//   - its own add / update / delete;
//   - a change to a Certificate that carries its edgecert.io/source-* label and annotations
//     (someone edited or deleted a Certificate we made: put it back);
//   - a ReferenceGrant change: every Gateway in the namespaces the grant lets in (old and new).
//
// Events on the source (component edgecert-controller): Normal CreateCertificate /
// UpdateCertificate / DeleteCertificate when we write; Warning BadConfig (bad annotations,
// reconcile returns InvalidConfig so the runner does not retry it); Warning Skipped for each
// tls entry / listener / host the shim could not use and for a Certificate of that name that
// another source owns or a user made. Warnings are emitted when they first appear for a source
// (remembered per source), so a reconcile triggered by our own writes repeats none of them.
#include <map>
#include <mutex>
#include <set>
#include <string>

#include "controller/context.h"
#include "controller/runner.h"

namespace edgecert::controller {

class SourceController {
  public:
    // Runner options: name defaults to "shim".
    SourceController(ControllerContext& ctx, Runner::Options opts);
    SourceController(const SourceController&) = delete;
    SourceController& operator=(const SourceController&) = delete;

    // Adds the informer handlers. Call before the informers start.
    void register_handlers();
    // Starts / stops the workers (only while leading). One-shot, see Runner.
    void start() { runner_.start(); }
    void stop() { runner_.stop(); }

    // One level-triggered pass for "Ingress/ns/name" or "Gateway/ns/name". Public for tests.
    Result<Requeue> reconcile(const std::string& key);

    Runner& runner() { return runner_; }

    // "Ingress/ns/name" for a source object of that kind.
    static std::string source_key(std::string_view kind, const json& obj);

  private:
    struct Key {
        std::string kind, ns, name;
    };
    static std::optional<Key> parse_key(const std::string& key);

    void enqueue_for_certificate(const json& cert);
    void enqueue_for_grant(const json& grant);

    Status reconcile_gone(const Key& k);
    // Creates or updates one desired Certificate. Returns false (with `conflict` filled) when a
    // Certificate of that name exists that this source does not own.
    Result<bool> apply_certificate(const json& source, const k8s::ResourceType& rt,
                                   const DesiredCertificate& want, std::string& conflict);

    // Records the warnings of this pass that were not already reported for this source.
    void warn_new(const std::string& key, const json& source, const k8s::ResourceType& rt,
                  const std::vector<std::pair<std::string, std::string>>& warnings);
    void forget_warnings(const std::string& key);

    ControllerContext& ctx_;
    Runner runner_;
    std::mutex warn_mu_;
    // source key → (reason, message) of the Warnings reported by its last reconcile.
    std::map<std::string, std::set<std::pair<std::string, std::string>>> warned_;
};

}  // namespace edgecert::controller
