#pragma once
// --cert-dir DIR: one folder per certificate with tls.crt and tls.key (what `edgecert issue`
// writes and what a mounted kubernetes.io/tls Secret looks like, including kubelet's atomic
// `..data` symlink swap). Watched with inotify on the directory and on every folder (the
// `..data` rename shows up as IN_MOVED_TO in the folder, which a watch on the file path never
// sees), debounced, plus a periodic rescan as a fallback for missed events and watch limits.
// Only folders whose bytes changed are handed to the sink; parsing happens in the sink, on this
// thread, never on an event loop.
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "edgecert/base/result.h"
#include "tls/cert_source.h"

namespace edgecert::platform {

struct CertDirOptions {
    std::string dir;
    std::chrono::milliseconds debounce{50};   // coalesce a burst of writes to one reload
    std::chrono::milliseconds rescan{10'000}; // periodic full compare (fallback)
};

class CertDirSource final : public tls::CertSource {
public:
    static Result<std::unique_ptr<CertDirSource>> create(CertDirOptions opts);
    ~CertDirSource() override;

    Status start(tls::CertSink& sink) override;
    void request_full_rescan() override;
    void stop() override;

private:
    explicit CertDirSource(CertDirOptions opts) : opts_(std::move(opts)) {}
    void run();
    // Reads every folder and delivers what changed; `force` re-delivers everything (SIGHUP).
    void scan_all(bool force);
    void scan_names(const std::set<std::string>& names);
    void watch_folder(const std::string& name);
    void wake();

    CertDirOptions opts_;
    tls::CertSink* sink_ = nullptr;
    int ino_ = -1, wake_fd_ = -1, root_wd_ = -1;
    std::map<int, std::string> wd_to_name_;
    std::map<std::string, int> name_to_wd_;
    std::map<std::string, std::string> fingerprints_;  // name → SHA-256 of tls.crt ‖ tls.key
    std::atomic<bool> stop_{false}, rescan_req_{false};
    std::thread thread_;
    bool watch_limit_logged_ = false;
};

}  // namespace edgecert::platform
