#include "tls/challenge_source.h"

#include <fcntl.h>
#include <unistd.h>

#include <cctype>
#include <mutex>

#include "edgecert/base/ip.h"

namespace edgecert::tls {
namespace {

std::optional<std::string> read_small(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    std::string out;
    char buf[1024];
    while (out.size() <= 4096) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        out.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    if (out.size() > 4096) return std::nullopt;
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r' || out.back() == ' ')) out.pop_back();
    if (out.empty()) return std::nullopt;
    return out;
}

// tls-alpn-01 answers are keyed by identifier: a DNS name lower-cased without a trailing dot, an
// IP address (RFC 8738) in canonical text, whichever spelling the writer used.
std::string identifier_key(std::string_view s) {
    if (auto ip = IpAddress::parse(s)) return ip->to_string();
    std::string o(s);
    for (auto& c : o) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (!o.empty() && o.back() == '.') o.pop_back();
    return o;
}

}  // namespace

bool valid_token(std::string_view t) {
    if (t.empty() || t.size() > 256) return false;
    for (char c : t)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
    return true;
}

bool valid_domain(std::string_view d) {
    if (d.empty() || d.size() > 253 || d.front() == '.' || d.find("..") != std::string_view::npos) return false;
    for (char c : d)
        if (!std::islower(static_cast<unsigned char>(c)) && !std::isdigit(static_cast<unsigned char>(c)) &&
            c != '-' && c != '.')
            return false;
    return true;
}

void MemoryChallengeSource::set_http01(std::string token, std::string ka) {
    std::unique_lock l(mu_);
    http_[std::move(token)] = std::move(ka);
}
void MemoryChallengeSource::remove_http01(const std::string& token) {
    std::unique_lock l(mu_);
    http_.erase(token);
}
void MemoryChallengeSource::set_tls_alpn01(std::string domain, std::string ka) {
    std::unique_lock l(mu_);
    alpn_[identifier_key(domain)] = std::move(ka);
}
void MemoryChallengeSource::remove_tls_alpn01(const std::string& domain) {
    std::unique_lock l(mu_);
    alpn_.erase(identifier_key(domain));
}
std::optional<std::string> MemoryChallengeSource::http01(std::string_view token) const {
    std::shared_lock l(mu_);
    auto it = http_.find(token);
    if (it == http_.end()) return std::nullopt;
    return it->second;
}
std::optional<std::string> MemoryChallengeSource::tls_alpn01(std::string_view domain) const {
    std::string d = identifier_key(domain);
    std::shared_lock l(mu_);
    auto it = alpn_.find(d);
    if (it == alpn_.end()) return std::nullopt;
    return it->second;
}

std::optional<std::string> DirChallengeSource::http01(std::string_view token) const {
    if (!valid_token(token)) return std::nullopt;
    return read_small(dir_ + "/" + std::string(token));
}
std::optional<std::string> DirChallengeSource::tls_alpn01(std::string_view domain) const {
    std::string d = identifier_key(domain);
    if (!valid_domain(d) && !IpAddress::parse(d)) return std::nullopt;
    return read_small(dir_ + "/tls-alpn-01/" + d);
}

std::optional<std::string> ChainChallengeSource::http01(std::string_view token) const {
    for (int i = 0; i < n_ && i < 4; ++i)
        if (auto v = srcs_[i]->http01(token)) return v;
    return std::nullopt;
}
std::optional<std::string> ChainChallengeSource::tls_alpn01(std::string_view domain) const {
    for (int i = 0; i < n_ && i < 4; ++i)
        if (auto v = srcs_[i]->tls_alpn01(domain)) return v;
    return std::nullopt;
}

}  // namespace edgecert::tls
