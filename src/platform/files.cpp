#include "platform/files.h"

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

Status replace_files(std::vector<PreparedFile> files) {
    struct Kept {
        std::string path, keep;  // keep empty: there was nothing at path before
    };
    std::vector<Kept> done;
    auto restore = [&] {
        for (auto it = done.rbegin(); it != done.rend(); ++it) {
            if (it->keep.empty())
                ::unlink(it->path.c_str());
            else
                ::rename(it->keep.c_str(), it->path.c_str());
        }
    };
    for (size_t i = 0; i < files.size(); ++i) {
        PreparedFile& f = files[i];
        Kept k{f.path(), {}};
        if (i + 1 < files.size()) {  // nothing to put back after the last one
            std::string keep = f.path() + ".prev-" + std::to_string(::getpid());
            ::unlink(keep.c_str());
            if (::link(f.path().c_str(), keep.c_str()) == 0)
                k.keep = std::move(keep);
            else if (errno != ENOENT) {
                Error e = sys_error("cannot keep the previous", f.path());
                restore();
                return e;
            }
        }
        if (auto st = f.commit(); !st) {
            if (!k.keep.empty()) ::unlink(k.keep.c_str());
            restore();
            return st;
        }
        done.push_back(std::move(k));
    }
    for (const Kept& k : done)
        if (!k.keep.empty()) ::unlink(k.keep.c_str());
    return {};
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
