#pragma once
// CertSource: where certificate PEM pairs come from (a directory today; Kubernetes Secrets with
// the controller issue). A source reads files / API objects on its own control-plane thread and
// hands named PEM pairs to a CertSink; it never parses certificates itself.
#include <string>
#include <vector>

#include "edgecert/base/result.h"
#include "edgecert/base/secret.h"

namespace edgecert::tls {

struct CertChange {
    enum class Kind { Upsert, Remove };
    Kind kind = Kind::Upsert;
    std::string name;      // stable source name: folder name, or "namespace/name" of a Secret
    std::string cert_pem;  // tls.crt (leaf + chain)
    SecretBytes key_pem;   // tls.key
};

class CertSink {
public:
    virtual ~CertSink() = default;
    // A batch of changes; applied as one new snapshot. `full` says the batch is the complete
    // set (initial load or full rescan): names not in it are removed.
    virtual void apply(std::vector<CertChange> changes, bool full) = 0;
};

class CertSource {
public:
    virtual ~CertSource() = default;
    // Delivers the complete current set synchronously (so readiness can follow the first full
    // load), then keeps watching on a background thread.
    virtual Status start(CertSink& sink) = 0;
    virtual void request_full_rescan() = 0;  // SIGHUP
    virtual void stop() = 0;
};

}  // namespace edgecert::tls
