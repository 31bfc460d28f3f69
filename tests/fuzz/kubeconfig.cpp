// kubeconfig YAML and exec-plugin output (k8s/config.cpp): parse_kubeconfig and
// parse_exec_credential.
//
// Input: one byte (even: kubeconfig, odd: ExecCredential JSON), then the text. A kubeconfig that
// would run an exec plugin (any "exec" key) or read a file outside an empty scratch directory
// (an absolute path or "..") is skipped: the fuzzer must not run commands or read this machine's
// files. Invariants: never throws; the server has no trailing '/'; a client certificate always
// comes with a key; no token, key or base64 data from the input appears in an error message.
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <cstring>
#include <optional>

#include "edgecert/k8s/config.h"
#include "tests/fuzz/fuzz_util.h"

using namespace edgecert;
using namespace edgecert::k8s;

namespace {

// True when the document asks for something the fuzzer must not do, or yaml-cpp cannot load it
// (parse_kubeconfig reports that itself; it is still run).
bool unsafe(const YAML::Node& n, int depth = 0) {
    if (depth > 200) return true;
    if (n.IsScalar()) {
        const std::string& s = n.Scalar();
        return (!s.empty() && s[0] == '/') || s.find("..") != std::string::npos;
    }
    if (n.IsSequence())
        for (const auto& c : n)
            if (unsafe(c, depth + 1)) return true;
    if (n.IsMap())
        for (const auto& kv : n)
            if ((kv.first.IsScalar() && kv.first.Scalar() == "exec") ||
                unsafe(kv.first, depth + 1) || unsafe(kv.second, depth + 1))
                return true;
    return false;
}

// A value that follows a credential key in the input and also shows up in the error message is
// only a leak if it came from that field: the text can equally be a kind, a URL or another field
// that happens to hold the same characters (the fuzzer found "kind": "token:ExecCredential", whose
// "ExecCredential" every such error names). So the value at that spot is replaced by a sentinel of
// the same length and the input parsed again: a leak is the sentinel in the new error message.
template <typename Parse>
void check_no_secret(const std::string& msg, const std::string& text, Parse parse) {
    for (const char* key : {"token:", "client-key-data:", "\"token\":", "\"clientKeyData\":"}) {
        for (size_t p = text.find(key); p != std::string::npos; p = text.find(key, p + 1)) {
            size_t b = text.find_first_not_of(" \t\"", p + std::strlen(key));
            if (b == std::string::npos) continue;
            size_t e = text.find_first_of(" \t\"\r\n,}", b);
            if (e == std::string::npos) e = text.size();
            std::string v = text.substr(b, e - b);
            if (v.size() < 12 || msg.find(v) == std::string::npos) continue;
            std::string sentinel;
            while (sentinel.size() < v.size()) sentinel += "Zq7x";
            sentinel.resize(v.size());
            if (text.find(sentinel) != std::string::npos) continue;
            std::string swapped = text;
            swapped.replace(b, v.size(), sentinel);
            std::optional<std::string> again = parse(swapped);
            FUZZ_CHECK(!again || again->find(sentinel) == std::string::npos,
                       "a credential in an error message");
        }
    }
}

// The error message of each parser, or nothing when it succeeds.
std::optional<std::string> exec_error(const std::string& text) {
    auto c = parse_exec_credential(text);
    if (c) return std::nullopt;
    return c.error().message;
}

std::optional<std::string> kubeconfig_error(const std::string& text) {
    FakeClock clock;
    KubeconfigOptions opts;
    opts.clock = &clock;
    auto cfg = parse_kubeconfig(text, fuzz::scratch_dir(), opts);
    if (cfg) return std::nullopt;
    return cfg.error().message;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    fuzz::scratch_dir();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    fuzz::Reader r(fuzz::as_view(data, size));
    bool exec = r.u8() & 1;
    std::string text(r.rest());
    if (exec) {
        auto c = parse_exec_credential(text);
        if (!c) {
            check_no_secret(c.error().message, text, exec_error);
            return 0;
        }
        FUZZ_CHECK(!c->token.empty() || !c->client_certificate_pem.empty(),
                   "credential without anything");
        FUZZ_CHECK(c->client_certificate_pem.empty() || !c->client_key_pem.empty(),
                   "certificate without key");
        return 0;
    }
    try {
        if (unsafe(YAML::Load(text))) return 0;
    } catch (const YAML::Exception&) {
        // parse_kubeconfig must turn the same failure into an error.
    }
    FakeClock clock;
    KubeconfigOptions opts;
    opts.clock = &clock;
    auto cfg = parse_kubeconfig(text, fuzz::scratch_dir(), opts);
    if (!cfg) {
        FUZZ_CHECK(cfg.error().code == ErrorCode::InvalidConfig, "unexpected error code");
        check_no_secret(cfg.error().message, text, kubeconfig_error);
        return 0;
    }
    FUZZ_CHECK(!cfg->server.empty() && cfg->server.back() != '/', "server %s", cfg->server.c_str());
    FUZZ_CHECK(cfg->client_certificate_pem.empty() || !cfg->client_key_pem.empty(),
               "certificate without key");
    return 0;
}
