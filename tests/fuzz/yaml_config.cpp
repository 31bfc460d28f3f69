// The YAML configuration (src/app/run_config.cpp, flag_file.cpp): yaml_to_json, the `edgecert run`
// file (parse_run_config, with the CRD validators behind it) and `--config` flag files.
//
// Input: the YAML text. Files the config names (caBundleFile, keySecretFile) resolve in an empty
// scratch directory; inputs naming an absolute path or ".." are skipped, so the fuzzer reads no
// file of this machine.
// Invariants: yaml_to_json is deterministic and its JSON, read back as YAML (JSON is YAML 1.2),
// gives the same document; parse_run_config errors are one line, name a field, and never throw.
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "app/flag_file.h"
#include "app/run_config.h"
#include "tests/fuzz/fuzz_util.h"

using namespace edgecert;
using namespace edgecert::app;

namespace {

bool names_outside_paths(const nlohmann::json& j) {
    if (j.is_string()) {
        const auto& s = j.get_ref<const std::string&>();
        return (!s.empty() && s[0] == '/') || s.find("..") != std::string::npos;
    }
    if (j.is_structured())
        for (const auto& v : j)
            if (names_outside_paths(v)) return true;
    if (j.is_object())
        for (const auto& [k, v] : j.items())
            if (!k.empty() && k[0] == '/') return true;
    return false;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    fuzz::scratch_dir();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string text(fuzz::as_view(data, size));
    auto doc = yaml_to_json(text);
    auto doc2 = yaml_to_json(text);
    FUZZ_CHECK(doc.ok() == doc2.ok(), "yaml_to_json is not deterministic");
    if (!doc) {
        FUZZ_CHECK(doc.error().code == ErrorCode::InvalidConfig, "unexpected error code");
        return 0;
    }
    FUZZ_CHECK(*doc == *doc2, "yaml_to_json is not deterministic");
    std::string dumped = doc->dump();
    auto again = yaml_to_json(dumped);
    FUZZ_CHECK(again.ok(), "yaml_to_json refuses its own JSON: %s", dumped.c_str());
    FUZZ_CHECK(*again == *doc, "JSON read back as YAML differs: %s vs %s", dumped.c_str(),
               again->dump().c_str());

    if (names_outside_paths(*doc)) return 0;
    auto cfg = parse_run_config(*doc, fuzz::scratch_dir());
    if (!cfg) FUZZ_CHECK(fuzz::one_line(cfg.error().message), "multi-line config error");

    // The same text as a `--config` file of a command with value, list and boolean flags.
    std::string path = fuzz::scratch_dir() + "/flags.yaml";
    {
        std::ofstream f(path, std::ios::binary | std::ios::trunc);
        f << text;
    }
    Flags f("terminator", "[flags]", "fuzz");
    f.add("listen", "ADDR:PORT", "TLS listener", "0.0.0.0:443");
    f.add("alpn", "LIST", "ALPN protocols", "h2,http/1.1");
    f.add("cert-dir", "DIR", "certificates");
    f.add("drain-timeout", "DURATION", "drain", "10s");
    f.add_bool("strict-sni", "strict SNI");
    f.add("config", "FILE", "this file");
    char* argv[] = {nullptr};
    FUZZ_CHECK(f.parse(0, argv).ok(), "empty command line refused");
    Status st = apply_flag_file(f, path);
    if (st.ok()) {
        (void)f.get_duration("drain-timeout");
        (void)f.get_all("alpn");
    }
    return 0;
}
