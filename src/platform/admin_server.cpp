// cpprest headers come first: they must be parsed before anything pulls in fmt/spdlog (their `U`
// macro is disabled by _TURN_OFF_PLATFORM_STRING, set on every target by edgecert_options).
#include <cpprest/http_listener.h>
#include <pplx/threadpool.h>

#include "platform/admin_server.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <dirent.h>
#include <netdb.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include <spdlog/spdlog.h>

#include "edgecert/base/version.h"

namespace edgecert::platform {

namespace http = web::http;
using web::http::experimental::listener::http_listener;

namespace {

// ---- /proc/self readers (run at scrape time only) -------------------------------------------

struct ProcStat {
    double cpu_seconds = 0;
    double start_ticks = 0;
    double vsize = 0;
    double rss_pages = 0;
    bool ok = false;
};

ProcStat read_proc_stat() {
    ProcStat st;
    std::ifstream f("/proc/self/stat");
    std::string line;
    if (!std::getline(f, line)) return st;
    // Field 2 (comm) is in parentheses and may itself contain spaces or ')': skip to the last ')'.
    auto close = line.rfind(')');
    if (close == std::string::npos) return st;
    std::istringstream in(line.substr(close + 2));
    std::vector<std::string> fields;  // fields[0] is field 3 (state)
    for (std::string w; in >> w;) fields.push_back(w);
    if (fields.size() < 22) return st;
    auto field = [&](int n) { return std::strtod(fields[static_cast<size_t>(n - 3)].c_str(), nullptr); };
    double tck = static_cast<double>(sysconf(_SC_CLK_TCK));
    st.cpu_seconds = (field(14) + field(15)) / tck;  // utime + stime
    st.start_ticks = field(22) / tck;                // starttime, seconds after boot
    st.vsize = field(23);                            // bytes
    st.rss_pages = field(24);                        // pages
    st.ok = true;
    return st;
}

std::optional<double> boot_time() {
    std::ifstream f("/proc/stat");
    for (std::string line; std::getline(f, line);)
        if (line.rfind("btime ", 0) == 0) return std::strtod(line.c_str() + 6, nullptr);
    return std::nullopt;
}

std::optional<double> open_fds() {
    DIR* d = opendir("/proc/self/fd");
    if (!d) return std::nullopt;
    double n = 0;
    while (dirent* e = readdir(d))
        if (e->d_name[0] != '.') ++n;
    closedir(d);
    return n - 1;  // the descriptor opendir itself holds
}

// ---- listen address ----------------------------------------------------------------------------

struct HostPort {
    std::string host;
    int port = 0;
};

Result<HostPort> parse_listen(const std::string& s) {
    auto bad = [&](const char* why) {
        return Error(ErrorCode::InvalidConfig, "admin listen address \"" + s + "\": " + why);
    };
    HostPort hp;
    // cpprestsdk 2.10's listener splits "[v6]:port" at the wrong colon ("resolve: Service not
    // found"), so IPv6 literals are refused here with a clear message instead.
    if (!s.empty() && s[0] == '[')
        return bad("IPv6 literals are not supported by the admin server; use an IPv4 address, "
                   "0.0.0.0 or a host name");
    auto c = s.rfind(':');
    if (c == std::string::npos || s.find(':') != c) return bad("expected host:port");
    hp.host = s.substr(0, c);
    std::string port = s.substr(c + 1);
    if (hp.host.empty()) return bad("empty host (use 0.0.0.0 to listen on every address)");
    if (port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string::npos)
        return bad("port must be a number");
    hp.port = std::stoi(port);
    if (hp.port > 65535) return bad("port out of range");
    return hp;
}

// Finds a free port on `host` by binding port 0 and reading the kernel's choice. The socket is
// closed before cpprestsdk binds the port (its listener cannot report the port it got), so another
// process could take it in between: start() retries with a fresh port if that happens.
Result<int> pick_free_port(const std::string& host) {
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    addrinfo* res = nullptr;
    int rc = getaddrinfo(host.c_str(), "0", &hints, &res);
    if (rc != 0)
        return Error(ErrorCode::InvalidConfig,
                     "admin server: resolving " + host + ": " + gai_strerror(rc));
    std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(res, freeaddrinfo);
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return Error(ErrorCode::Transient, std::string("admin server: socket: ") + strerror(errno));
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
        int e = errno;
        close(fd);
        return Error(ErrorCode::Transient,
                     "admin server: binding " + host + ":0: " + strerror(e));
    }
    close(fd);
    // A host name may resolve to ::1 first; the port field sits at the same place either way.
    return ss.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port)
                                    : ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
}

// cpprestsdk's shared pool defaults to 40 threads; the admin port needs a handful. Only the
// first call in the process can size it (it throws afterwards), so try once. The pool threads are
// created with every signal blocked: they inherit the creator's mask, and a SIGTERM delivered to
// one of them would bypass the signal handling of the role (sigwait loop, drain), whichever order
// the caller set its own mask in.
void size_cpprest_pool() {
    static std::once_flag once;
    std::call_once(once, [] {
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old);
        try {
            crossplat::threadpool::initialize_with_threads(4);
        } catch (...) {
            // Already initialised by an earlier user: keep its size.
        }
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
    });
}

// process_* collectors are registered once per registry, however many servers share it.
struct ProcessCollectors {
    int refs = 0;
    std::vector<int> ids;
};
// Leaked on purpose (like the bound-address set below): an AdminServer with static storage
// duration may be destroyed after this file's globals.
std::mutex g_proc_mu;
auto& g_proc = *new std::map<metrics::Registry*, ProcessCollectors>();

void acquire_process_collectors(metrics::Registry& r) {
    std::lock_guard lk(g_proc_mu);
    auto& pc = g_proc[&r];
    if (pc.refs++ == 0) pc.ids = register_process_collectors(r);
}

void release_process_collectors(metrics::Registry& r) {
    std::lock_guard lk(g_proc_mu);
    auto it = g_proc.find(&r);
    if (it == g_proc.end()) return;
    if (--it->second.refs == 0) {
        for (int id : it->second.ids) r.remove_collector(id);
        g_proc.erase(it);
    }
}

// cpprestsdk keeps one acceptor per "host:port" for the whole process and treats a second
// listener on the same key as another path on the first; when that registration fails, its
// cleanup also tears down the first listener. So in-process duplicates are refused here, before
// cpprestsdk sees them.
std::mutex g_bound_mu;
auto& g_bound = *new std::set<std::string>();

constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";
constexpr const char* kTextContentType = "text/plain; charset=utf-8";

}  // namespace

std::vector<int> register_process_collectors(metrics::Registry& r) {
    using S = metrics::Registry::Sample;
    std::vector<int> ids;
    ids.push_back(r.add_collector("process_cpu_seconds_total",
                                  "Total user and system CPU time spent in seconds.", "counter",
                                  [](std::vector<S>& out) {
                                      auto st = read_proc_stat();
                                      if (st.ok) out.push_back({{}, st.cpu_seconds});
                                  }));
    ids.push_back(r.add_collector("process_resident_memory_bytes", "Resident memory size in bytes.",
                                  "gauge", [](std::vector<S>& out) {
                                      auto st = read_proc_stat();
                                      if (st.ok)
                                          out.push_back({{}, st.rss_pages * static_cast<double>(
                                                                                sysconf(_SC_PAGESIZE))});
                                  }));
    ids.push_back(r.add_collector("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                                  "gauge", [](std::vector<S>& out) {
                                      auto st = read_proc_stat();
                                      if (st.ok) out.push_back({{}, st.vsize});
                                  }));
    ids.push_back(r.add_collector("process_start_time_seconds",
                                  "Start time of the process since unix epoch in seconds.", "gauge",
                                  [](std::vector<S>& out) {
                                      auto st = read_proc_stat();
                                      auto bt = boot_time();
                                      if (st.ok && bt) out.push_back({{}, *bt + st.start_ticks});
                                  }));
    ids.push_back(r.add_collector("process_open_fds", "Number of open file descriptors.", "gauge",
                                  [](std::vector<S>& out) {
                                      if (auto n = open_fds()) out.push_back({{}, *n});
                                  }));
    ids.push_back(r.add_collector("process_max_fds", "Maximum number of open file descriptors.",
                                  "gauge", [](std::vector<S>& out) {
                                      rlimit rl{};
                                      if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
                                          out.push_back({{}, static_cast<double>(rl.rlim_cur)});
                                  }));
    return ids;
}

struct AdminServer::Impl {
    HostPort addr;
    metrics::Registry* registry = nullptr;
    std::function<bool()> ready;
    std::mutex mu;  // handlers, listener, bound_port
    std::map<std::string, Handler> handlers;
    std::unique_ptr<http_listener> listener;
    int bound_port = 0;
    std::string bound_key;  // entry in g_bound while listening

    void serve(http::http_request req) noexcept;
    void dispatch(const std::string& method, const std::string& path, const std::string& query,
                  int& status, std::string& ct, std::string& body);
};

void AdminServer::Impl::dispatch(const std::string& method, const std::string& path,
                                 const std::string& query, int& status, std::string& ct,
                                 std::string& body) {
    status = 200;
    ct = kTextContentType;
    Handler extra;
    {
        std::lock_guard lk(mu);
        auto it = handlers.find(path);
        if (it != handlers.end()) extra = it->second;
    }
    bool known = extra || path == "/healthz" || path == "/readyz" || path == "/metrics" ||
                 path == "/version";
    if (!known) {
        status = 404;
        body = "not found\n";
        return;
    }
    if (method != "GET") {
        status = 405;
        body = "method not allowed\n";
        return;
    }
    if (extra) {
        extra(path, query, status, ct, body);
    } else if (path == "/healthz") {
        body = "ok";
    } else if (path == "/readyz") {
        bool is_ready = ready ? ready() : true;
        status = is_ready ? 200 : 503;
        body = is_ready ? "ready" : "not ready";
    } else if (path == "/metrics") {
        ct = kMetricsContentType;
        body = registry->render();
    } else if (path == "/version") {
        ct = "application/json";
        body = std::string("{\"version\":\"") + kVersion + "\"}\n";
    }
}

// Runs on a cpprestsdk pool thread. Nothing may escape: an exception here would be lost in a
// pplx task, and an unobserved failed task calls std::terminate.
void AdminServer::Impl::serve(http::http_request req) noexcept {
    int status = 500;
    std::string ct = kTextContentType, body;
    std::string method;
    try {
        method = req.method();
        const auto& uri = req.request_uri();
        dispatch(method, uri.path(), uri.query(), status, ct, body);
    } catch (const std::exception& e) {
        // The detail goes to the log, not to whoever asked.
        spdlog::warn("admin server: {} {}: handler failed: {}", method, req.request_uri().path(),
                     e.what());
        status = 500;
        ct = kTextContentType;
        body = "internal error\n";
    } catch (...) {
        spdlog::warn("admin server: {} {}: handler failed", method, req.request_uri().path());
        status = 500;
        ct = kTextContentType;
        body = "internal error\n";
    }
    try {
        http::http_response resp(static_cast<http::status_code>(status));
        if (status == 405) resp.headers().add("Allow", "GET");
        resp.headers().add("Cache-Control", "no-store");
        if (method != "HEAD") resp.set_body(std::move(body), ct);
        req.reply(resp).then([](pplx::task<void> t) {
            try {
                t.get();
            } catch (...) {
                // Client went away before the reply was written: nothing to do.
            }
        });
    } catch (...) {
    }
}

AdminServer::AdminServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<AdminServer>> AdminServer::create(Options opts, metrics::Registry& registry,
                                                         std::function<bool()> ready) {
    EC_TRY_ASSIGN(auto addr, parse_listen(opts.listen));
    auto impl = std::make_unique<Impl>();
    impl->addr = std::move(addr);
    impl->registry = &registry;
    impl->ready = std::move(ready);
    registry.gauge("edgecert_build_info", "edgecert build information; the value is always 1.",
                   {{"version", kVersion}})
        ->set(1);
    acquire_process_collectors(registry);
    return std::unique_ptr<AdminServer>(new AdminServer(std::move(impl)));
}

AdminServer::~AdminServer() {
    stop();
    release_process_collectors(*impl_->registry);
}

void AdminServer::add_handler(const std::string& path, Handler h) {
    std::lock_guard lk(impl_->mu);
    impl_->handlers[path] = std::move(h);
}

Status AdminServer::start() {
    std::lock_guard lk(impl_->mu);
    if (impl_->listener) return make_error(ErrorCode::Permanent, "admin server already started");
    size_cpprest_pool();
    const bool pick = impl_->addr.port == 0;
    std::string last_err;
    // Port 0: the free port found by pick_free_port() can be taken by someone else before the
    // listener binds it; a few fresh attempts make that race harmless in practice.
    for (int attempt = 0; attempt < (pick ? 5 : 1); ++attempt) {
        int port = impl_->addr.port;
        if (pick) {
            EC_TRY_ASSIGN(port, pick_free_port(impl_->addr.host));
        }
        std::string hostport = impl_->addr.host + ":" + std::to_string(port);
        {
            std::lock_guard blk(g_bound_mu);
            if (!g_bound.insert(hostport).second) {
                last_err = "already served by another admin server in this process";
                continue;
            }
        }
        try {
            auto l = std::make_unique<http_listener>("http://" + hostport + "/");
            Impl* self = impl_.get();
            l->support([self](http::http_request req) { self->serve(std::move(req)); });
            l->open().wait();
            impl_->listener = std::move(l);
            impl_->bound_port = port;
            impl_->bound_key = hostport;
            return ok_status();
        } catch (const std::exception& e) {
            last_err = e.what();
        } catch (...) {
            last_err = "unknown error";
        }
        std::lock_guard blk(g_bound_mu);
        g_bound.erase(hostport);
    }
    return make_error(ErrorCode::Transient, "admin server: cannot listen on " + impl_->addr.host +
                                                ":" + std::to_string(impl_->addr.port) + ": " +
                                                last_err);
}

int AdminServer::port() const {
    std::lock_guard lk(impl_->mu);
    return impl_->bound_port;
}

void AdminServer::stop() {
    std::unique_ptr<http_listener> l;
    std::string key;
    {
        std::lock_guard lk(impl_->mu);
        l = std::move(impl_->listener);
        key = std::move(impl_->bound_key);
        impl_->bound_key.clear();
        impl_->bound_port = 0;
    }
    if (!l) return;
    try {
        l->close().wait();
    } catch (...) {
        // Closing failed (already closed, or a connection error): the listener is gone anyway.
    }
    std::lock_guard blk(g_bound_mu);
    g_bound.erase(key);
}

}  // namespace edgecert::platform
