// Test driver for the k8s client library against a real API server (the in-repo fake), used by
// tests/integration/test_k8s_client.py and bench/k8s. Prints one JSON object per line.
//
//   k8s_driver (--kubeconfig F [--context C] | --in-cluster DIR) COMMAND ...
//     get RES NS NAME                 one GET; exit 0 on success
//     repl                            stdin lines "get RES NS NAME" → one result line each
//     informer RES NS [--page-size N]  run an informer; events as lines; stdin
//     "dump"/"stats"/"quit" bump NS CONFIGMAP               retry_on_conflict: data.counter += 1
//     elect NS LEASE ID [--lease-duration-ms N --renew-deadline-ms N --retry-period-ms N]
//                                     contend for a Lease until SIGTERM (then release)
//     events RES NS NAME N            record N identical Warning + 30 distinct Normal events
//   k8s_driver bench-decode N          in-process: N watch events through framing, decoding,
//                                      the store and a handler (no network, no API server)
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "edgecert/k8s/client.h"
#include "edgecert/k8s/config.h"
#include "edgecert/k8s/event_recorder.h"
#include "edgecert/k8s/informer.h"
#include "edgecert/k8s/leader_election.h"
#include "src/platform/curl_http.h"

using namespace edgecert;
using namespace edgecert::k8s;

namespace {

std::mutex out_mu;
void emit(const json& j) {
    std::lock_guard l(out_mu);
    std::cout << j.dump() << std::endl;
}

std::atomic<bool> g_stop{false};
void on_signal(int) {
    g_stop.store(true);
}

const ResourceType* resource(const std::string& name) {
    static const std::map<std::string, const ResourceType*> m = {
        {"secrets", &resources::Secret},    {"configmaps", &resources::ConfigMap},
        {"leases", &resources::Lease},      {"events", &resources::Event},
        {"ingresses", &resources::Ingress}, {"namespaces", &resources::Namespace},
        {"gateways", &resources::Gateway},
    };
    auto it = m.find(name);
    return it == m.end() ? nullptr : it->second;
}

json error_json(const Error& e) {
    return {{"ok", false},
            {"code", std::string(to_string(e.code))},
            {"message", e.message},
            {"http_status", e.http_status}};
}

int usage() {
    std::cerr
        << "usage: k8s_driver (--kubeconfig F [--context C] | --in-cluster DIR) COMMAND ...\n";
    return 2;
}

json do_get(Client& c, const std::string& res, const std::string& ns, const std::string& name) {
    const ResourceType* rt = resource(res);
    if (!rt) return {{"ok", false}, {"code", "InvalidConfig"}, {"message", "unknown resource"}};
    auto r = c.get(*rt, ns, name);
    if (!r.ok()) return error_json(r.error());
    return {{"ok", true}, {"rv", meta::resource_version(*r)}, {"name", meta::name(*r)}};
}

// Serves one empty list and then one watch stream made of `body`, in 16 KiB chunks.
class ReplayHttp final : public HttpClient {
  public:
    explicit ReplayHttp(std::string body) : body_(std::move(body)) {}
    Result<HttpResponse> send(const HttpRequest&) override {
        HttpResponse r;
        r.status = 200;
        r.body = R"({"kind":"SecretList","metadata":{"resourceVersion":"1"},"items":[]})";
        return r;
    }
    Result<HttpResponse> stream(const HttpRequest&,
                                const std::function<bool(std::string_view)>& on_data) override {
        std::string_view b(body_);
        for (size_t off = 0; off < b.size(); off += 16384)
            if (!on_data(b.substr(off, 16384))) break;
        HttpResponse r;
        r.status = 200;
        return r;
    }

  private:
    std::string body_;
};

int bench_decode(int n) {
    std::string payload(1200, 'x');  // about the size of a base64 ECDSA cert + key
    std::string body;
    for (int i = 0; i < n; ++i) {
        json ev = {{"type", "ADDED"},
                   {"object",
                    {{"kind", "Secret"},
                     {"apiVersion", "v1"},
                     {"metadata",
                      {{"name", "s-" + std::to_string(i)},
                       {"namespace", "bench"},
                       {"uid", "00000000-0000-0000-0000-" + std::to_string(100000000000 + i)},
                       {"resourceVersion", std::to_string(2 + i)},
                       {"labels", {{"edgecert.io/managed", "true"}}}}},
                     {"type", "kubernetes.io/tls"},
                     {"data", {{"tls.crt", payload}, {"tls.key", payload.substr(0, 300)}}}}}};
        body += ev.dump();
        body += '\n';
    }
    ReplayHttp http(body);
    Client client(http, ClientOptions{"http://replay", nullptr});
    ReflectorOptions ro;
    ro.type = resources::Secret;
    Informer inf(client, ro);
    std::atomic<int> seen{0};
    inf.add_handlers(EventHandlers{[&](const ObjectPtr&) { ++seen; }, nullptr, nullptr});
    inf.reflector().step();  // list
    auto t0 = std::chrono::steady_clock::now();
    inf.reflector().step();  // the whole stream
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    emit({{"events", seen.load()},
          {"bytes", body.size()},
          {"seconds", secs},
          {"events_per_second", seen.load() / secs},
          {"mib_per_second", body.size() / secs / (1 << 20)}});
    return seen.load() == n ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (args.size() == 2 && args[0] == "bench-decode") return bench_decode(std::stoi(args[1]));
    std::string kubeconfig, context, in_cluster;
    std::map<std::string, long> num = {{"--lease-duration-ms", 15000},
                                       {"--renew-deadline-ms", 10000},
                                       {"--retry-period-ms", 2000},
                                       {"--page-size", 500},
                                       {"--keep-managed-fields", 0}};
    std::vector<std::string> pos;
    for (size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        auto next = [&]() -> std::string {
            return i + 1 < args.size() ? args[++i] : std::string();
        };
        if (a == "--kubeconfig")
            kubeconfig = next();
        else if (a == "--context")
            context = next();
        else if (a == "--in-cluster")
            in_cluster = next();
        else if (num.count(a))
            num[a] = std::stol(next());
        else
            pos.push_back(a);
    }
    if (pos.empty() || (kubeconfig.empty() && in_cluster.empty())) return usage();

    Result<Config> cfg = Error(ErrorCode::InvalidConfig, "no config");
    if (!kubeconfig.empty()) {
        KubeconfigOptions ko;
        ko.context = context;
        cfg = load_kubeconfig(kubeconfig, ko);
    } else {
        InClusterOptions io;
        io.dir = in_cluster;
        cfg = in_cluster_config(io);
    }
    if (!cfg.ok()) {
        emit({{"ok", false},
              {"stage", "config"},
              {"code", std::string(to_string(cfg.error().code))},
              {"message", cfg.error().message}});
        return 1;
    }
    platform::CurlOptions co;
    co.ca_pem = cfg->ca_pem;
    co.client_cert_pem = cfg->client_certificate_pem;
    co.client_key_pem = cfg->client_key_pem;
    co.insecure_skip_verify = cfg->insecure_skip_tls_verify;
    auto http = platform::CurlHttpClient::create(std::move(co));
    if (!http.ok()) {
        emit(error_json(http.error()));
        return 1;
    }
    Client client(**http, *cfg);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);

    const std::string& cmd = pos[0];
    if (cmd == "get" && pos.size() == 4) {
        json r = do_get(client, pos[1], pos[2], pos[3]);
        r["namespace_default"] = cfg->namespace_;
        emit(r);
        return r["ok"].get<bool>() ? 0 : 1;
    }
    if (cmd == "repl") {
        std::string line;
        while (std::getline(std::cin, line)) {
            std::vector<std::string> w;
            size_t p = 0;
            while (p < line.size()) {
                size_t sp = line.find(' ', p);
                if (sp == std::string::npos) sp = line.size();
                if (sp > p) w.push_back(line.substr(p, sp - p));
                p = sp + 1;
            }
            if (w.size() == 4 && w[0] == "get")
                emit(do_get(client, w[1], w[2], w[3]));
            else if (!w.empty() && w[0] == "quit")
                break;
            else
                emit({{"ok", false}, {"message", "bad command"}});
        }
        return 0;
    }
    if (cmd == "informer" && pos.size() == 3) {
        const ResourceType* rt = resource(pos[1]);
        if (!rt) return usage();
        ReflectorOptions ro;
        ro.type = *rt;
        ro.ns = pos[2];
        ro.page_size = num["--page-size"];
        Informer inf(client, ro);
        if (!num["--keep-managed-fields"]) inf.set_transform(meta::strip_managed_fields);
        inf.add_handlers(EventHandlers{
            [](const ObjectPtr& o) {
                emit({{"ev", "add"}, {"key", meta::key(*o)}, {"rv", meta::resource_version(*o)}});
            },
            [](const ObjectPtr& old, const ObjectPtr& o) {
                emit({{"ev", "update"},
                      {"key", meta::key(*o)},
                      {"rv", meta::resource_version(*o)},
                      {"old_rv", meta::resource_version(*old)}});
            },
            [](const ObjectPtr& o, bool unknown) {
                emit({{"ev", "delete"},
                      {"key", meta::key(*o)},
                      {"rv", meta::resource_version(*o)},
                      {"unknown", unknown}});
            }});
        inf.set_error_handler([](const Error& e) {
            emit({{"ev", "error"},
                  {"code", std::string(to_string(e.code))},
                  {"message", e.message}});
        });
        inf.start();
        std::atomic<bool> done{false};
        std::thread synced([&] {
            while (!done.load())
                if (inf.wait_for_sync(std::chrono::milliseconds(50))) {
                    emit({{"ev", "synced"}});
                    return;
                }
        });
        std::string line;
        while (!g_stop.load() && std::getline(std::cin, line)) {
            if (line == "dump") {
                json d = json::object();
                for (auto& o : inf.store().list()) d[meta::key(*o)] = meta::resource_version(*o);
                emit({{"dump", d}, {"rv", inf.reflector().resource_version()}});
            } else if (line == "stats") {
                auto s = inf.reflector().stats();
                emit({{"stats",
                       {{"lists", s.lists},
                        {"watches", s.watches},
                        {"relists_after_gone", s.relists_after_gone},
                        {"backoffs", s.backoffs},
                        {"decode_errors", s.decode_errors},
                        {"last_watch_timeout_s", s.last_watch_timeout_s}}}});
            } else if (line == "quit") {
                break;
            }
        }
        done = true;
        synced.join();
        inf.stop();
        return 0;
    }
    if (cmd == "bump" && pos.size() == 3) {
        int attempts = 0;
        auto r = retry_on_conflict([&]() -> Result<json> {
            ++attempts;
            EC_TRY_ASSIGN(json cm, client.get(resources::ConfigMap, pos[1], pos[2]));
            int n = 0;
            if (cm.contains("data") && cm["data"].contains("counter"))
                n = std::stoi(cm["data"]["counter"].get<std::string>());
            cm["data"]["counter"] = std::to_string(n + 1);
            return client.update(resources::ConfigMap, cm);
        });
        if (!r.ok()) {
            json e = error_json(r.error());
            e["attempts"] = attempts;
            emit(e);
            return 1;
        }
        emit({{"ok", true}, {"attempts", attempts}, {"counter", (*r)["data"]["counter"]}});
        return 0;
    }
    if (cmd == "elect" && pos.size() == 4) {
        LeaderElectionConfig lc;
        lc.lease_namespace = pos[1];
        lc.lease_name = pos[2];
        lc.identity = pos[3];
        lc.lease_duration = std::chrono::milliseconds(num["--lease-duration-ms"]);
        lc.renew_deadline = std::chrono::milliseconds(num["--renew-deadline-ms"]);
        lc.retry_period = std::chrono::milliseconds(num["--retry-period-ms"]);
        lc.on_started_leading = [] { emit({{"ev", "leading"}}); };
        lc.on_stopped_leading = [] { emit({{"ev", "stopped"}}); };
        lc.on_new_leader = [](const std::string& id) { emit({{"ev", "new-leader"}, {"id", id}}); };
        auto el = LeaderElector::create(client, lc);
        if (!el.ok()) {
            emit(error_json(el.error()));
            return 2;
        }
        emit({{"ev", "started"}});
        std::thread t([&] { (*el)->run(); });
        while (!g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        (*el)->stop();
        t.join();
        emit({{"ev", "exit"}});
        return 0;
    }
    if (cmd == "events" && pos.size() == 5) {
        const ResourceType* rt = resource(pos[1]);
        if (!rt) return usage();
        auto obj = client.get(*rt, pos[2], pos[3]);
        if (!obj.ok()) {
            emit(error_json(obj.error()));
            return 1;
        }
        EventRecorder rec(client, EventRecorderOptions{"edgecert-test"});
        int n = std::stoi(pos[4]);
        for (int i = 0; i < n; ++i)
            rec.record(*obj, *rt, "Warning", "Failed", "the same thing went wrong");
        for (int i = 0; i < 30; ++i)
            rec.record(*obj, *rt, "Normal", "Step", "distinct " + std::to_string(i));
        rec.flush(std::chrono::seconds(60));
        auto s = rec.stats();
        emit({{"ok", true},
              {"created", s.created},
              {"patched", s.patched},
              {"dropped_spam", s.dropped_spam},
              {"failed", s.failed}});
        return 0;
    }
    return usage();
}
