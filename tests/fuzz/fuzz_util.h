#pragma once
// Shared helpers for the libFuzzer targets in tests/fuzz (docs/fuzzing.md).
//
// Every target defines LLVMFuzzerTestOneInput. Built with -DEDGECERT_FUZZ=ON (clang) it links
// libFuzzer; in the normal build it links replay_main.cpp instead, which runs each file of the
// committed corpus once (ctest fuzz_corpus_<target>), so a fixed crash stays fixed in every build.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

// An invariant of the code under test does not hold: print it and abort, which libFuzzer
// reports as a crash and saves the input.
#define FUZZ_CHECK(cond, ...)                                                                    \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            std::fprintf(stderr, "FUZZ_CHECK failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            std::fprintf(stderr, "  " __VA_ARGS__);                                              \
            std::fprintf(stderr, "\n");                                                          \
            std::abort();                                                                        \
        }                                                                                        \
    } while (0)

namespace edgecert::fuzz {

// Warnings about bad input are the point of the exercise: keep them off the fuzzer's output.
inline const bool kQuietLogs = (spdlog::set_level(spdlog::level::off), true);

inline std::string_view as_view(const uint8_t* data, size_t size) {
    return {reinterpret_cast<const char*>(data), size};
}

// Takes structured values off the front of the input; past the end everything is zero/empty, so
// any input is a valid program for the target (libFuzzer's FuzzedDataProvider does the same,
// but it is a clang-only header and the replay build uses g++).
class Reader {
  public:
    explicit Reader(std::string_view in) : in_(in) {}
    uint8_t u8() {
        if (in_.empty()) return 0;
        uint8_t v = static_cast<uint8_t>(in_[0]);
        in_.remove_prefix(1);
        return v;
    }
    uint16_t u16() { return static_cast<uint16_t>(u8() << 8 | u8()); }
    uint32_t u32() { return static_cast<uint32_t>(u16()) << 16 | u16(); }
    bool flag() { return u8() & 1; }
    std::string_view bytes(size_t n) {
        n = std::min(n, in_.size());
        std::string_view v = in_.substr(0, n);
        in_.remove_prefix(n);
        return v;
    }
    // A string of at most `max` bytes, length in the first byte (max <= 255) or two bytes.
    std::string_view str(size_t max) {
        return bytes(std::min<size_t>(max, max <= 255 ? u8() : u16()));
    }
    // Up to the next '\n' (consumed, not returned), or the rest.
    std::string_view line() {
        size_t nl = in_.find('\n');
        std::string_view v = in_.substr(0, nl);
        in_.remove_prefix(nl == std::string_view::npos ? in_.size() : nl + 1);
        return v;
    }
    std::string_view rest() {
        std::string_view v = in_;
        in_ = {};
        return v;
    }
    bool empty() const { return in_.empty(); }

  private:
    std::string_view in_;
};

// True when `inner` points into `outer` (a view the parser returned must not escape its input).
inline bool within(std::string_view inner, std::string_view outer) {
    if (inner.empty()) return true;
    return inner.data() >= outer.data() &&
           inner.data() + inner.size() <= outer.data() + outer.size();
}

// A private, initially empty directory for this process, removed at exit: the only place a target
// lets the code under test read or write files its input names.
inline const std::string& scratch_dir() {
    static const std::string* dir = [] {
        char tmpl[] = "/tmp/edgecert-fuzz-XXXXXX";
        if (!mkdtemp(tmpl)) std::abort();
        auto* d = new std::string(tmpl);
        std::atexit([] { std::filesystem::remove_all(scratch_dir()); });
        return d;
    }();
    return *dir;
}

inline bool one_line(std::string_view s) {
    return s.find_first_of("\r\n") == std::string_view::npos;
}

}  // namespace edgecert::fuzz
