#pragma once
// CertStore: the CertSink that validates PEM pairs and publishes snapshots. It keeps the last
// good entry per name: a bad or half-written pair is logged (never the key), counted, and the
// previous certificate keeps being served until the files change again.
#include <atomic>
#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "edgecert/base/clock.h"
#include "tls/cert_snapshot.h"
#include "tls/cert_source.h"

namespace edgecert::tls {

// What apply() concluded for one upserted name, for sources that report per object (the
// Kubernetes Secret source turns it into Loaded/Rejected Events). Holds no key material.
struct EntryResult {
    bool ok = false;
    bool unchanged = false;  // ok, and identical to what was already served: nothing published
    std::string error;       // !ok: why the pair was rejected (the last good one stays)
    std::string serial;      // ok: lowercase hex
    size_t names = 0;        // ok: DNS names and IP addresses the certificate serves
    std::time_t not_after = 0;
};
// Runs on the thread calling apply(), inside it: must be quick and must not call apply().
using EntryResultCallback = std::function<void(const std::string& name, const EntryResult& result)>;

struct CertStoreOptions {
    std::string default_name;  // --default-cert
    bool strict_sni = false;
};

class CertStore final : public CertSink {
public:
    CertStore(CertStoreOptions opts, const Clock& clock, SnapshotHolder& holder);

    void apply(std::vector<CertChange> changes, bool full) override;
    // Optional; set before any source starts.
    void set_result_callback(EntryResultCallback cb) { on_result_ = std::move(cb); }

    uint64_t reloads_ok() const { return ok_.load(std::memory_order_relaxed); }
    uint64_t reloads_error() const { return err_.load(std::memory_order_relaxed); }
    bool loaded() const { return loaded_.load(std::memory_order_acquire); }  // first full set in
    // Milliseconds the last apply() took (parse + validate + build + publish).
    double last_apply_ms() const { return last_ms_.load(std::memory_order_relaxed); }
    // Last error per name ("" when the current files are good), for logs and tests.
    std::map<std::string, std::string> errors() const;

private:
    CertStoreOptions opts_;
    const Clock& clock_;
    SnapshotHolder& holder_;
    mutable std::mutex mu_;  // serialises apply(); sources may call from different threads
    std::shared_ptr<const CertSnapshot> snap_;  // the last published (last good) set
    std::map<std::string, std::string> errors_;
    std::atomic<uint64_t> ok_{0}, err_{0};
    std::atomic<bool> loaded_{false};
    std::atomic<double> last_ms_{0};
    EntryResultCallback on_result_;
};

}  // namespace edgecert::tls
