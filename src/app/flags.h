#pragma once
// A small declarative flag parser shared by every subcommand: `--name value`, `--name=value`,
// boolean `--name`, repeated flags, and a generated --help. Unknown flags are an error.
#include <chrono>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "edgecert/base/result.h"

namespace edgecert::app {

class Flags {
public:
    Flags(std::string command, std::string usage, std::string description);

    // Registers a flag. For value flags, `metavar` names the argument in --help.
    Flags& add(std::string name, std::string metavar, std::string help, std::string def = "");
    Flags& add_bool(std::string name, std::string help);

    // Parses argv (after the subcommand). Returns InvalidConfig with a one-line message on error.
    Status parse(int argc, char** argv);

    bool help_requested() const { return help_; }
    std::string help_text() const;

    bool has(const std::string& name) const;           // given on the command line
    std::string get(const std::string& name) const;    // value or default
    std::vector<std::string> get_all(const std::string& name) const;
    bool get_bool(const std::string& name) const;
    Result<long> get_int(const std::string& name, long min, long max) const;
    // "250ms", "10s", "5m", "12h"; a bare number is seconds. Negative is refused, and zero too
    // unless allow_zero.
    Result<std::chrono::milliseconds> get_duration(const std::string& name, bool allow_zero = true) const;
    const std::vector<std::string>& positional() const { return positional_; }
    // Values from a config file: taken as if given before every command-line flag, so the
    // command line wins. Call after parse(). InvalidConfig names an unknown key.
    Status set_from_file(const std::string& name, const std::string& value);
    bool knows(const std::string& name) const { return find(name) != nullptr; }
    bool is_bool(const std::string& name) const { const Spec* s = find(name); return s && s->is_bool; }

private:
    struct Spec {
        std::string name, metavar, help, def;
        bool is_bool = false;
    };
    std::string command_, usage_, description_;
    std::vector<Spec> specs_;
    std::map<std::string, std::vector<std::string>> values_;
    std::vector<std::string> positional_;
    bool help_ = false;
    const Spec* find(const std::string& name) const;
};

// Whether argv holds one of these long flags (as "--name" or "--name=value") or, with
// `short_letters`, a single-dash flag starting with one of those letters ("-n", "-nNS", "-A").
bool has_any_flag(int argc, char** argv, std::initializer_list<const char*> long_names,
                  std::string_view short_letters = "");

// kubectl's short spellings, rewritten to long flags: -A is --all-namespaces, and each letter of
// `with_value` takes a value as "-x V", "-xV" or "-x=V" (e.g. {'n', "namespace"}).
std::vector<std::string> expand_kubectl_flags(int argc, char** argv,
                                              const std::map<char, std::string>& with_value);

}  // namespace edgecert::app
