#include "app/flags.h"

#include <sstream>

#include "controller/renewal.h"

namespace edgecert::app {

Flags::Flags(std::string command, std::string usage, std::string description)
    : command_(std::move(command)), usage_(std::move(usage)), description_(std::move(description)) {}

Flags& Flags::add(std::string name, std::string metavar, std::string help, std::string def) {
    specs_.push_back({std::move(name), std::move(metavar), std::move(help), std::move(def), false});
    return *this;
}

Flags& Flags::add_bool(std::string name, std::string help) {
    specs_.push_back({std::move(name), "", std::move(help), "", true});
    return *this;
}

const Flags::Spec* Flags::find(const std::string& name) const {
    for (const auto& s : specs_)
        if (s.name == name) return &s;
    return nullptr;
}

Status Flags::parse(int argc, char** argv) {
    for (int i = 0; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "-h" || a == "--help") {
            help_ = true;
            continue;
        }
        if (a == "--") {
            for (++i; i < argc; ++i) positional_.push_back(argv[i]);
            break;
        }
        if (a.rfind("--", 0) != 0) {
            positional_.push_back(a);
            continue;
        }
        std::string name = a.substr(2), value;
        bool inline_value = false;
        if (auto eq = name.find('='); eq != std::string::npos) {
            value = name.substr(eq + 1);
            name = name.substr(0, eq);
            inline_value = true;
        }
        const Spec* s = find(name);
        if (!s)
            return Error(ErrorCode::InvalidConfig,
                         "unknown flag --" + name + " (see 'edgecert " + command_ + " --help')");
        if (s->is_bool) {
            if (inline_value && value != "true" && value != "false")
                return Error(ErrorCode::InvalidConfig, "--" + name + " takes no value");
            values_[name].push_back(inline_value ? value : "true");
            continue;
        }
        if (!inline_value) {
            if (i + 1 >= argc)
                return Error(ErrorCode::InvalidConfig, "--" + name + " needs a value (" + s->metavar + ")");
            value = argv[++i];
        }
        values_[name].push_back(value);
    }
    return {};
}

bool Flags::has(const std::string& name) const { return values_.count(name) > 0; }

Status Flags::set_from_file(const std::string& name, const std::string& value) {
    if (!find(name)) return Error(ErrorCode::InvalidConfig, "unknown setting '" + name + "'");
    auto& v = values_[name];
    v.insert(v.begin(), value);
    return {};
}

std::string Flags::get(const std::string& name) const {
    auto it = values_.find(name);
    if (it != values_.end() && !it->second.empty()) return it->second.back();
    const Spec* s = find(name);
    return s ? s->def : "";
}

std::vector<std::string> Flags::get_all(const std::string& name) const {
    auto it = values_.find(name);
    return it == values_.end() ? std::vector<std::string>{} : it->second;
}

bool Flags::get_bool(const std::string& name) const { return get(name) == "true"; }

Result<long> Flags::get_int(const std::string& name, long min, long max) const {
    std::string v = get(name);
    try {
        size_t pos = 0;
        long n = std::stol(v, &pos);
        if (pos != v.size()) throw std::invalid_argument("trailing");
        if (n < min || n > max)
            return Error(ErrorCode::InvalidConfig, "--" + name + " must be between " +
                                                       std::to_string(min) + " and " + std::to_string(max));
        return n;
    } catch (const std::exception&) {
        return Error(ErrorCode::InvalidConfig, "--" + name + ": '" + v + "' is not a number");
    }
}

Result<std::chrono::milliseconds> Flags::get_duration(const std::string& name, bool allow_zero) const {
    // The same grammar as durations in Issuer/Certificate specs (Go's), plus a bare number = seconds.
    std::string v = get(name);
    bool bare = !v.empty() && v.find_first_not_of("0123456789.") == std::string::npos;
    auto d = controller::parse_go_duration(bare ? v + "s" : v);
    if (!d)
        return Error(ErrorCode::InvalidConfig,
                     "--" + name + ": '" + v + "' is not a duration (e.g. 250ms, 10s, 5m, 12h)");
    if (d->count() < 0 || (!allow_zero && d->count() == 0))
        return Error(ErrorCode::InvalidConfig, "--" + name + (allow_zero ? " must not be negative" : " must be positive"));
    return std::chrono::duration_cast<std::chrono::milliseconds>(*d);
}

std::string Flags::help_text() const {
    std::ostringstream o;
    o << "Usage: edgecert " << command_ << " " << usage_ << "\n\n" << description_ << "\n\nFlags:\n";
    for (const auto& s : specs_) {
        std::string left = "  --" + s.name + (s.is_bool ? "" : " " + s.metavar);
        o << left;
        if (left.size() < 30) o << std::string(30 - left.size(), ' ');
        else o << "\n" << std::string(30, ' ');
        o << s.help;
        if (!s.def.empty()) o << " (default " << s.def << ")";
        o << "\n";
    }
    o << "  --help                      show this help\n";
    return o.str();
}

bool has_any_flag(int argc, char** argv, std::initializer_list<const char*> long_names,
                  std::string_view short_letters) {
    for (int i = 0; i < argc; ++i) {
        std::string_view a = argv[i];
        for (std::string_view p : long_names)
            if (a.substr(0, p.size()) == p && (a.size() == p.size() || a[p.size()] == '=')) return true;
        if (a.size() >= 2 && a[0] == '-' && a[1] != '-' && short_letters.find(a[1]) != std::string_view::npos)
            return true;
    }
    return false;
}

std::vector<std::string> expand_kubectl_flags(int argc, char** argv,
                                              const std::map<char, std::string>& with_value) {
    std::vector<std::string> out;
    for (int i = 0; i < argc; ++i) {
        std::string a = argv[i];
        auto letter = a.size() >= 2 && a[0] == '-' && a[1] != '-' ? with_value.find(a[1]) : with_value.end();
        if (a == "-A") {
            out.push_back("--all-namespaces");
        } else if (letter != with_value.end()) {
            out.push_back("--" + letter->second);
            if (a.size() > 2) out.push_back(a.substr(a[2] == '=' ? 3 : 2));
        } else {
            out.push_back(a);
        }
    }
    return out;
}

}  // namespace edgecert::app
