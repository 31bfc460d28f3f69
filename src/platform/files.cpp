#include "platform/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

namespace edgecert::platform {
namespace {
Error sys_error(const std::string& what, const std::string& path) {
    // A full or read-only disk is an outage that ends when the operator frees space or remounts:
    // retried soon (Transient), not after the hour-long backoff of a Permanent failure.
    ErrorCode code = (errno == ENOENT)                     ? ErrorCode::NotFound
                     : (errno == EACCES || errno == EPERM) ? ErrorCode::Permanent
                                                           : ErrorCode::Transient;
    return Error(code, what + " " + path + ": " + std::strerror(errno));
}
std::string dirname_of(const std::string& p) {
    auto s = p.rfind('/');
    if (s == std::string::npos) return ".";
    if (s == 0) return "/";
    return p.substr(0, s);
}
}  // namespace

bool file_exists(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
}

Status make_dirs(const std::string& path, mode_t mode) {
    if (path.empty() || file_exists(path)) return {};
    EC_TRY(make_dirs(dirname_of(path), mode));
    if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST)
        return sys_error("cannot create directory", path);
    return {};
}

Status sync_dir(const std::string& dir) {
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return sys_error("cannot open directory", dir);
    int rc = ::fsync(dfd);
    ::close(dfd);
    if (rc != 0) return sys_error("cannot sync directory", dir);
    return {};
}

Result<PreparedFile> PreparedFile::create(const std::string& path, std::string_view data,
                                          mode_t mode, Durability d) {
    std::string dir = dirname_of(path);
    EC_TRY(make_dirs(dir, 0700));
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    std::string tmp = path + ".tmp-" + std::to_string(rng() % 1'000'000'000);
    // O_EXCL + explicit mode: the key is never readable by others, not even for a moment.
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) return sys_error("cannot create", tmp);
    ::fchmod(fd, mode);  // umask must not widen or narrow what we asked for
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::write(fd, data.data() + off, data.size() - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            Error e = sys_error("cannot write", tmp);
            ::close(fd);
            ::unlink(tmp.c_str());
            return e;
        }
        off += static_cast<size_t>(n);
    }
    if ((d != Durability::None && ::fsync(fd) != 0) || ::close(fd) != 0) {
        Error e = sys_error("cannot flush", tmp);
        ::unlink(tmp.c_str());
        return e;
    }
    return PreparedFile(path, std::move(tmp));
}

PreparedFile::~PreparedFile() {
    if (!tmp_.empty()) ::unlink(tmp_.c_str());
}

Status PreparedFile::commit() {
    if (tmp_.empty()) return remove_file(path_);
    if (::rename(tmp_.c_str(), path_.c_str()) != 0) return sys_error("cannot rename into", path_);
    tmp_.clear();
    return {};
}

namespace {

int crash_point = -1;  // set_replace_crash_point_for_test

constexpr std::string_view kIntentPrefix = ".replace-";

// One line per file: "w" (write) or "r" (removal), the path, the temporary (empty for a removal).
// The previous content is kept at `<path>.prev-<token>`. Paths hold no tab or newline: they
// are built from validated names (store/dir_store.cpp).
std::string intent_text(const std::vector<PreparedFile>& files) {
    std::string t;
    for (const auto& f : files) t += (f.tmp().empty() ? "r\t" : "w\t") + f.path() + "\t" + f.tmp() + "\n";
    return t;
}

struct IntentEntry {
    bool removal = false;
    std::string path, tmp;
};

std::vector<IntentEntry> parse_intent(const std::string& text) {
    std::vector<IntentEntry> out;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t nl = text.find('\n', pos);
        if (nl == std::string::npos) break;  // a torn last line: written before any rename
        std::string line = text.substr(pos, nl - pos);
        pos = nl + 1;
        size_t a = line.find('\t'), b = a == std::string::npos ? a : line.find('\t', a + 1);
        if (b == std::string::npos || (line[0] != 'w' && line[0] != 'r')) return {};
        out.push_back({line[0] == 'r', line.substr(a + 1, b - a - 1), line.substr(b + 1)});
    }
    return out;
}

}  // namespace

void set_replace_crash_point_for_test(int changes) { crash_point = changes; }

Status replace_files(std::vector<PreparedFile> files) {
    if (files.empty()) return {};
    struct Kept {
        std::string path, keep;  // keep empty: there was nothing at path before
    };
    std::vector<Kept> done;
    int changes = 0;
    // Stop as a SIGKILL would (tests): nothing cleaned up, temporaries left where they are.
    auto killed = [&] {
        if (crash_point < 0 || changes++ < crash_point) return false;
        for (auto& f : files) f.abandon_for_test();
        return true;
    };
    static thread_local std::mt19937_64 rng{std::random_device{}()};
    const std::string token = std::to_string(rng() % 1'000'000'000);
    const std::string intent = dirname_of(files.front().path()) + "/" + std::string(kIntentPrefix) + token;
    EC_TRY(write_file_atomic(intent, intent_text(files), 0600, Durability::FileOnly));
    if (killed()) return {};
    auto restore = [&] {
        for (auto it = done.rbegin(); it != done.rend(); ++it) {
            if (it->keep.empty())
                ::unlink(it->path.c_str());
            else
                ::rename(it->keep.c_str(), it->path.c_str());
        }
        ::unlink(intent.c_str());
    };
    for (size_t i = 0; i < files.size(); ++i) {
        PreparedFile& f = files[i];
        Kept k{f.path(), {}};
        std::string keep = f.path() + ".prev-" + token;
        if (::link(f.path().c_str(), keep.c_str()) == 0) {
            k.keep = std::move(keep);
            if (killed()) return {};
        } else if (errno != ENOENT) {
            Error e = sys_error("cannot keep the previous", f.path());
            restore();
            return e;
        }
        if (auto st = f.commit(); !st) {
            if (!k.keep.empty()) ::unlink(k.keep.c_str());
            restore();
            return st;
        }
        done.push_back(std::move(k));
        if (killed()) return {};
    }
    for (const Kept& k : done)
        if (!k.keep.empty()) {
            ::unlink(k.keep.c_str());
            if (killed()) return {};
        }
    ::unlink(intent.c_str());
    return {};
}

Result<std::vector<std::string>> recover_replacements(const std::string& dir, std::chrono::seconds stale) {
    std::vector<std::string> did;
    DIR* d = ::opendir(dir.c_str());
    if (!d) {
        if (errno == ENOENT) return did;
        return sys_error("cannot open directory", dir);
    }
    std::vector<std::string> intents, temps;
    while (dirent* e = ::readdir(d)) {
        std::string_view n = e->d_name;
        if (n.substr(0, kIntentPrefix.size()) == kIntentPrefix && n.find(".tmp-") == std::string_view::npos)
            intents.emplace_back(n);
        else if (n.find(".tmp-") != std::string_view::npos)
            temps.emplace_back(n);
    }
    ::closedir(d);
    for (const std::string& name : intents) {
        const std::string path = dir + "/" + name;
        const std::string token = name.substr(kIntentPrefix.size());
        auto text = read_file(path);
        if (!text) return text.error();
        std::vector<IntentEntry> es = parse_intent(*text);
        // Was the last write renamed into place? Its temporary is gone only then (a rename is
        // the one thing that removes it while the intent file exists). A removal counts as done
        // once its path is gone.
        bool forward = true;
        for (auto it = es.rbegin(); it != es.rend(); ++it) {
            forward = it->removal ? !file_exists(it->path) : !file_exists(it->tmp);
            if (!it->removal) break;
        }
        for (auto it = es.rbegin(); it != es.rend(); ++it) {
            std::string keep = it->path + ".prev-" + token;
            bool kept = file_exists(keep);
            bool committed = it->removal ? !file_exists(it->path) : !file_exists(it->tmp);
            if (!it->removal && !committed) ::unlink(it->tmp.c_str());
            if (forward || !committed) {
                if (kept) ::unlink(keep.c_str());  // the path holds what it should
            } else if (kept) {
                if (::rename(keep.c_str(), it->path.c_str()) != 0) return sys_error("cannot put back", it->path);
            } else if (!it->removal) {
                ::unlink(it->path.c_str());  // new file where there was none before
            }
        }
        did.push_back(std::string(forward ? "finished" : "undid") + " an interrupted replacement of " +
                      std::to_string(es.size()) + " file(s) in " + dir);
        ::unlink(path.c_str());
    }
    const auto now = std::chrono::system_clock::now();
    for (const std::string& name : temps) {
        const std::string path = dir + "/" + name;
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0) continue;  // removed above
        auto mtime = std::chrono::system_clock::time_point(std::chrono::seconds(st.st_mtim.tv_sec));
        if (now - mtime < stale) continue;  // possibly another process's write in progress
        if (::unlink(path.c_str()) == 0) did.push_back("removed the stale temporary " + path);
    }
    return did;
}

Status write_file_atomic(const std::string& path, std::string_view data, mode_t mode,
                         Durability d) {
    EC_TRY_ASSIGN(PreparedFile f, PreparedFile::create(path, data, mode, d));
    EC_TRY(f.commit());
    if (d == Durability::Full) return sync_dir(dirname_of(path));
    return {};
}

Result<std::string> read_file(const std::string& path, size_t max_bytes) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return sys_error("cannot open", path);
    std::string out;
    char buf[16384];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            Error e = sys_error("cannot read", path);
            ::close(fd);
            return e;
        }
        if (n == 0) break;
        out.append(buf, static_cast<size_t>(n));
        if (out.size() > max_bytes) {
            ::close(fd);
            return Error(ErrorCode::InvalidConfig,
                         path + " is larger than " + std::to_string(max_bytes) + " bytes");
        }
    }
    ::close(fd);
    return out;
}

Result<SecretBytes> read_secret_file(const std::string& path, size_t max_bytes) {
    EC_TRY_ASSIGN(std::string s, read_file(path, max_bytes));
    SecretBytes b(std::move(s));
    return b;
}

Status remove_file(const std::string& path) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return sys_error("cannot remove", path);
    return {};
}

}  // namespace edgecert::platform
