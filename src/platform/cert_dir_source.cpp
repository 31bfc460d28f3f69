#include "platform/cert_dir_source.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <optional>

namespace edgecert::platform {
namespace {

constexpr size_t kMaxFile = 1 << 20;
constexpr uint32_t kFolderMask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE |
                                 IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;
constexpr uint32_t kRootMask = IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_ONLYDIR;

// Reads a whole file (following symlinks, as the ..data layout needs), bounded.
std::optional<std::string> read_pair_file(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    std::string out;
    char buf[16384];
    while (true) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            ::close(fd);
            return std::nullopt;
        }
        if (n == 0) break;
        out.append(buf, static_cast<size_t>(n));
        if (out.size() > kMaxFile) break;
    }
    OPENSSL_cleanse(buf, sizeof buf);
    ::close(fd);
    return out;
}

bool is_dir(const std::string& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string fingerprint(const std::string& crt, std::string_view key) {
    unsigned char md[32];
    unsigned int len = 0;
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
    EVP_DigestUpdate(ctx, crt.data(), crt.size());
    EVP_DigestUpdate(ctx, "\0", 1);
    EVP_DigestUpdate(ctx, key.data(), key.size());
    EVP_DigestFinal_ex(ctx, md, &len);
    EVP_MD_CTX_free(ctx);
    return std::string(reinterpret_cast<char*>(md), len);
}

}  // namespace

Result<std::unique_ptr<CertDirSource>> CertDirSource::create(CertDirOptions opts) {
    if (opts.dir.empty()) return Error(ErrorCode::InvalidConfig, "--cert-dir is empty");
    if (!is_dir(opts.dir)) return Error(ErrorCode::InvalidConfig, "--cert-dir " + opts.dir + ": not a directory");
    std::unique_ptr<CertDirSource> s(new CertDirSource(std::move(opts)));
    s->ino_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    s->wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->ino_ < 0 || s->wake_fd_ < 0) return Error(ErrorCode::Permanent, std::string("inotify: ") + strerror(errno));
    s->root_wd_ = inotify_add_watch(s->ino_, s->opts_.dir.c_str(), kRootMask);
    if (s->root_wd_ < 0) return Error(ErrorCode::Permanent, "inotify_add_watch " + s->opts_.dir + ": " + strerror(errno));
    return s;
}

CertDirSource::~CertDirSource() {
    stop();
    if (ino_ >= 0) ::close(ino_);
    if (wake_fd_ >= 0) ::close(wake_fd_);
}

Status CertDirSource::start(tls::CertSink& sink) {
    sink_ = &sink;
    scan_all(true);
    thread_ = std::thread([this] { run(); });
    return {};
}

void CertDirSource::wake() {
    uint64_t one = 1;
    [[maybe_unused]] auto r = ::write(wake_fd_, &one, sizeof one);
}

void CertDirSource::request_full_rescan() {
    rescan_req_.store(true);
    wake();
}

void CertDirSource::stop() {
    if (!thread_.joinable()) return;
    stop_.store(true);
    wake();
    thread_.join();
}

void CertDirSource::watch_folder(const std::string& name) {
    if (name_to_wd_.count(name)) return;
    int wd = inotify_add_watch(ino_, (opts_.dir + "/" + name).c_str(), kFolderMask);
    if (wd < 0) {
        if (!watch_limit_logged_) {
            spdlog::warn("cert-dir: cannot watch {}: {}; relying on the periodic rescan", name, strerror(errno));
            watch_limit_logged_ = true;
        }
        return;
    }
    wd_to_name_[wd] = name;
    name_to_wd_[name] = wd;
}

void CertDirSource::scan_all(bool force) {
    std::set<std::string> names;
    if (DIR* d = ::opendir(opts_.dir.c_str())) {
        while (dirent* e = ::readdir(d)) {
            if (e->d_name[0] == '.') continue;  // ".", "..", kubelet's "..data" and hidden temp dirs
            std::string n = e->d_name;
            if (is_dir(opts_.dir + "/" + n)) names.insert(n);
        }
        ::closedir(d);
    } else {
        spdlog::warn("cert-dir {}: {}", opts_.dir, strerror(errno));
        return;  // keep serving what we have
    }
    for (const auto& [n, fp] : fingerprints_) names.insert(n);  // so vanished folders are removed
    if (force) fingerprints_.clear();
    std::vector<tls::CertChange> changes;
    for (const auto& n : names) {
        std::string path = opts_.dir + "/" + n;
        if (!is_dir(path)) {
            if (fingerprints_.erase(n) || force) changes.push_back({tls::CertChange::Kind::Remove, n, {}, {}});
            continue;
        }
        watch_folder(n);
        auto crt = read_pair_file(path + "/tls.crt");
        auto key = read_pair_file(path + "/tls.key");
        if (!crt || !key) continue;  // incomplete folder: nothing to deliver yet
        SecretBytes keyb(std::move(*key));
        std::string fp = fingerprint(*crt, keyb.reveal());
        auto it = fingerprints_.find(n);
        if (it != fingerprints_.end() && it->second == fp) continue;
        fingerprints_[n] = fp;
        changes.push_back({tls::CertChange::Kind::Upsert, n, std::move(*crt), std::move(keyb)});
    }
    if (force) {
        // A full batch: the sink drops every name missing from it.
        std::vector<tls::CertChange> all;
        for (auto& c : changes)
            if (c.kind == tls::CertChange::Kind::Upsert) all.push_back(std::move(c));
        sink_->apply(std::move(all), true);
        return;
    }
    if (!changes.empty()) sink_->apply(std::move(changes), false);
}

void CertDirSource::scan_names(const std::set<std::string>& names) {
    std::vector<tls::CertChange> changes;
    for (const auto& n : names) {
        std::string path = opts_.dir + "/" + n;
        if (!is_dir(path)) {
            if (fingerprints_.erase(n)) changes.push_back({tls::CertChange::Kind::Remove, n, {}, {}});
            if (auto it = name_to_wd_.find(n); it != name_to_wd_.end()) {
                inotify_rm_watch(ino_, it->second);
                wd_to_name_.erase(it->second);
                name_to_wd_.erase(it);
            }
            continue;
        }
        watch_folder(n);
        auto crt = read_pair_file(path + "/tls.crt");
        auto key = read_pair_file(path + "/tls.key");
        if (!crt || !key) continue;
        SecretBytes keyb(std::move(*key));
        std::string fp = fingerprint(*crt, keyb.reveal());
        auto it = fingerprints_.find(n);
        if (it != fingerprints_.end() && it->second == fp) continue;
        fingerprints_[n] = fp;
        changes.push_back({tls::CertChange::Kind::Upsert, n, std::move(*crt), std::move(keyb)});
    }
    if (!changes.empty()) sink_->apply(std::move(changes), false);
}

void CertDirSource::run() {
    using clock = std::chrono::steady_clock;
    std::set<std::string> dirty;
    bool dirty_all = false;
    clock::time_point first_dirty{}, last_event{};
    auto next_rescan = clock::now() + opts_.rescan;
    alignas(inotify_event) char buf[16384];
    while (!stop_.load()) {
        auto now = clock::now();
        auto deadline = next_rescan;
        if (!dirty.empty() || dirty_all) {
            // Debounce: wait for a quiet period, but never longer than 4× the debounce.
            auto quiet = last_event + opts_.debounce;
            auto cap = first_dirty + 4 * opts_.debounce;
            deadline = std::min(quiet, cap);
        }
        int timeout = static_cast<int>(std::max<long>(
            0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1));
        pollfd pfd[2] = {{ino_, POLLIN, 0}, {wake_fd_, POLLIN, 0}};
        int n = ::poll(pfd, 2, timeout);
        now = clock::now();
        if (n > 0 && (pfd[1].revents & POLLIN)) {
            uint64_t v;
            [[maybe_unused]] auto r = ::read(wake_fd_, &v, sizeof v);
        }
        if (stop_.load()) break;
        if (rescan_req_.exchange(false)) {
            spdlog::info("cert-dir: full reload requested");
            scan_all(true);
            dirty.clear();
            dirty_all = false;
            next_rescan = now + opts_.rescan;
            continue;
        }
        if (n > 0 && (pfd[0].revents & POLLIN)) {
            while (true) {
                ssize_t len = ::read(ino_, buf, sizeof buf);
                if (len <= 0) break;
                for (char* p = buf; p < buf + len;) {
                    auto* ev = reinterpret_cast<inotify_event*>(p);
                    p += sizeof(inotify_event) + ev->len;
                    if (ev->mask & IN_Q_OVERFLOW) {
                        dirty_all = true;
                    } else if (ev->wd == root_wd_) {
                        if (ev->len && ev->name[0] != '.') dirty.insert(ev->name);
                    } else if (auto it = wd_to_name_.find(ev->wd); it != wd_to_name_.end()) {
                        dirty.insert(it->second);
                        if (ev->mask & IN_IGNORED) {  // folder deleted / moved away: watch is gone
                            name_to_wd_.erase(it->second);
                            wd_to_name_.erase(it);
                        }
                    }
                    last_event = now;
                }
            }
            if ((!dirty.empty() || dirty_all) && first_dirty == clock::time_point{}) first_dirty = now;
        }
        if ((!dirty.empty() || dirty_all) && (now >= last_event + opts_.debounce || now >= first_dirty + 4 * opts_.debounce)) {
            if (dirty_all) scan_all(false);
            else scan_names(dirty);
            dirty.clear();
            dirty_all = false;
            first_dirty = {};
            continue;
        }
        if (now >= next_rescan) {
            scan_all(false);
            next_rescan = now + opts_.rescan;
        }
    }
}

}  // namespace edgecert::platform
