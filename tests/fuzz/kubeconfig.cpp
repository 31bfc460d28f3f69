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

void check_no_secret(const std::string& msg, const std::string& text) {
    // Any token-like run of 12+ base64 characters from the input that shows up in the message.
    for (const char* key : {"token:", "client-key-data:", "\"token\":", "\"clientKeyData\":"}) {
        size_t p = text.find(key);
        if (p == std::string::npos) continue;
        size_t b = text.find_first_not_of(" \t\"", p + std::strlen(key));
        if (b == std::string::npos) continue;
        size_t e = text.find_first_of(" \t\"\r\n,}", b);
        std::string v = text.substr(b, e == std::string::npos ? std::string::npos : e - b);
        if (v.size() >= 12)
            FUZZ_CHECK(msg.find(v) == std::string::npos, "a credential in an error message");
    }
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
            check_no_secret(c.error().message, text);
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
        check_no_secret(cfg.error().message, text);
        return 0;
    }
    FUZZ_CHECK(!cfg->server.empty() && cfg->server.back() != '/', "server %s", cfg->server.c_str());
    FUZZ_CHECK(cfg->client_certificate_pem.empty() || !cfg->client_key_pem.empty(),
               "certificate without key");
    return 0;
}
