#include "app/status_table.h"

#include <ctime>
#include <vector>

namespace edgecert::app::status {
namespace {

constexpr const char* kReset = "\x1b[0m";
constexpr const char* kBold = "\x1b[1m";
constexpr const char* kRed = "\x1b[31m";
constexpr const char* kGreen = "\x1b[32m";
constexpr const char* kYellow = "\x1b[33m";
constexpr const char* kDim = "\x1b[2m";

// How wide the free-text column may get without -o wide.
constexpr size_t kMessageWidth = 72;

struct Cell {
    std::string text;  // sanitized
    const char* colour = nullptr;
};

std::string utc_minutes(SystemTime t) {
    std::time_t tt = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M", &tm);
    return buf;
}

const char* ready_colour(const std::string& r) {
    return r == "True" ? kGreen : r == "False" ? kRed : kYellow;
}

std::string join(const std::vector<std::string>& v, const char* sep) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : sep) + s;
    return out;
}

std::string problems_text(const CertRow& c) {
    std::string out;
    for (Problem p : c.problems) out += (out.empty() ? "" : ",") + std::string(to_string(p));
    return out;
}

// The free-text part of STATUS: the last failure, else why it is not Ready.
std::string detail_text(const CertRow& c, SystemTime now) {
    std::string f = failure_summary(c, now);
    if (!f.empty()) return f;
    if (c.ready != "True" && (!c.ready_reason.empty() || !c.ready_message.empty()))
        return c.ready_reason + (c.ready_message.empty() ? "" : ": " + c.ready_message);
    return {};
}

std::string served_text(const CertRow& c, bool wide) {
    std::string st = served_state(c);
    if (st == "mismatch") {
        size_t bad = 0;
        for (const auto& s : c.served)
            if (served_state(s, c) == "mismatch") ++bad;
        st = "MISMATCH " + std::to_string(bad) + "/" + std::to_string(c.served.size());
    }
    if (!wide) return st;
    std::vector<std::string> parts;
    for (const auto& s : c.served)
        parts.push_back(!s.error.empty() ? "unreachable" : !s.found ? "-" : s.serial);
    return st + " [" + join(parts, " ") + "]";
}

void render(std::string& out, const std::vector<std::string>& header,
            const std::vector<std::vector<Cell>>& rows, bool colour) {
    std::vector<size_t> w(header.size(), 0);
    for (size_t i = 0; i < header.size(); ++i) w[i] = display_width(header[i]);
    for (const auto& r : rows)
        for (size_t i = 0; i < r.size(); ++i) w[i] = std::max(w[i], display_width(r[i].text));
    auto line = [&](const std::vector<Cell>& cells, bool head) {
        std::string l;
        for (size_t i = 0; i < cells.size(); ++i) {
            const bool last = i + 1 == cells.size();
            const char* c = colour ? (head ? kBold : cells[i].colour) : nullptr;
            if (c) l += c;
            l += cells[i].text;
            if (c) l += kReset;
            if (!last) l += std::string(w[i] - display_width(cells[i].text) + 2, ' ');
        }
        while (!l.empty() && l.back() == ' ') l.pop_back();
        out += l + "\n";
    };
    std::vector<Cell> h;
    for (const auto& s : header) h.push_back({s, nullptr});
    line(h, true);
    for (const auto& r : rows) line(r, false);
}

}  // namespace

size_t display_width(std::string_view s) {
    size_t n = 0;
    for (size_t i = 0; i < s.size(); ++i) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c == 0x1b && i + 1 < s.size() && s[i + 1] == '[') {
            i += 2;
            while (i < s.size() && s[i] != 'm') ++i;
            continue;
        }
        if ((c & 0xC0) != 0x80) ++n;  // count lead bytes only
    }
    return n;
}

std::string sanitize(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if (c == '\n' || c == '\t' || c == '\r') {
            out += ' ';
        } else if (c < 0x20 || c == 0x7f) {
            out += '?';
        } else if (c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
                   static_cast<unsigned char>(s[i + 1]) <= 0x9f) {
            out += '?';  // U+0080..U+009F: C1 controls (CSI is U+009B)
            ++i;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out;
}

std::string truncate(std::string_view s, size_t width) {
    if (display_width(s) <= width) return std::string(s);
    if (width <= 3) return std::string(width, '.');
    std::string out;
    size_t n = 0;
    for (size_t i = 0; i < s.size(); ++i) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        if ((c & 0xC0) != 0x80) {
            if (n == width - 3) break;
            ++n;
        }
        out += s[i];
    }
    return out + "...";
}

std::string not_after_text(SystemTime t, SystemTime now) {
    return utc_minutes(t) + " (" + relative_time(t, now) + ")";
}

bool colour_wanted(bool stdout_is_tty, const char* no_color_env, const char* term_env) {
    if (!stdout_is_tty) return false;
    if (no_color_env && *no_color_env) return false;
    if (term_env && std::string_view(term_env) == "dumb") return false;
    return true;
}

std::string render_table(const Report& r, const TableOptions& o) {
    const SystemTime now = r.generated_at;
    std::string out;
    if (r.certificates.empty()) {
        out = "No certificates in " + sanitize(r.source) + ".\n";
    } else {
        const bool served = !r.terminators.empty();
        std::vector<std::string> header = {"NAME",  "DNS NAMES", "ISSUER",
                                           "READY", "NOT AFTER", "RENEWAL"};
        if (o.wide) header.insert(header.end(), {"SERIAL", "FAILURES"});
        if (served) header.push_back("SERVED");
        header.push_back("STATUS");
        std::vector<std::vector<Cell>> rows;
        for (const auto& c : r.certificates) {
            std::vector<Cell> cells;
            cells.push_back({sanitize(c.key()), nullptr});
            std::string dns = c.dns_names.empty() ? "-" : c.dns_names.front();
            if (o.wide)
                dns = c.dns_names.empty() ? "-" : join(c.dns_names, ",");
            else if (c.dns_names.size() > 1)
                dns += " +" + std::to_string(c.dns_names.size() - 1);
            cells.push_back({sanitize(dns), nullptr});
            std::string iss = c.issuer_name.empty() ? "-" : c.issuer_name;
            if (o.wide || c.issuer_kind == "ClusterIssuer") iss = c.issuer_kind + "/" + iss;
            cells.push_back({sanitize(iss), nullptr});
            cells.push_back({sanitize(c.ready), ready_colour(c.ready)});
            const bool expired = c.not_after && *c.not_after <= now && !c.serial.empty();
            const bool renew_due = c.renewal_time && *c.renewal_time <= now;
            cells.push_back({c.not_after ? (o.wide ? rfc3339(*c.not_after) + " (" +
                                                         relative_time(*c.not_after, now) + ")"
                                                   : not_after_text(*c.not_after, now))
                                         : "-",
                             expired     ? kRed
                             : renew_due ? kYellow
                                         : nullptr});
            cells.push_back({c.renewal_time
                                 ? (o.wide ? rfc3339(*c.renewal_time) + " (" +
                                                 relative_time(*c.renewal_time, now) + ")"
                                           : relative_time(*c.renewal_time, now))
                                 : "-",
                             renew_due ? kYellow : nullptr});
            if (o.wide) {
                cells.push_back({c.serial.empty() ? "-" : c.serial, nullptr});
                cells.push_back(
                    {std::to_string(c.failed_attempts), c.failed_attempts ? kRed : nullptr});
            }
            if (served) {
                std::string st = served_state(c);
                cells.push_back({sanitize(served_text(c, o.wide)), st == "ok"     ? kGreen
                                                                   : st == "none" ? kDim
                                                                                  : kRed});
            }
            std::string status = c.problems.empty() ? "OK" : problems_text(c);
            std::string detail = sanitize(detail_text(c, now));
            if (!detail.empty())
                status += ": " + (o.wide ? detail : truncate(detail, kMessageWidth));
            cells.push_back({status, c.problems.empty() ? kGreen : kRed});
            rows.push_back(std::move(cells));
        }
        render(out, header, rows, o.colour);
    }
    // Below the table: what could not be asked, Issuers that are not Ready, one summary line.
    for (const auto& w : r.warnings) out += "warning: " + sanitize(w) + "\n";
    for (const auto& t : r.terminators)
        if (!t.error.empty())
            out += "terminator " + sanitize(t.url) + ": " + sanitize(t.error) + "\n";
    for (const auto& i : r.issuers) {
        if (i.ready == "True") continue;
        out += sanitize(i.kind + " " + (i.namespace_.empty() ? "" : i.namespace_ + "/") + i.name) +
               " is not Ready" + (i.reason.empty() ? "" : ": " + sanitize(i.reason)) +
               (i.message.empty()
                    ? ""
                    : ": " + sanitize(o.wide ? i.message : truncate(i.message, kMessageWidth))) +
               "\n";
    }
    size_t bad = 0;
    for (const auto& c : r.certificates)
        if (!c.problems.empty()) ++bad;
    std::string summary = std::to_string(r.certificates.size()) + " certificate" +
                          (r.certificates.size() == 1 ? "" : "s") + ", " + std::to_string(bad) +
                          " with problems";
    if (bad) summary += " (exit " + std::to_string(exit_code(r)) + ")";
    if (o.colour) summary = std::string(bad ? kRed : kGreen) + summary + kReset;
    out += summary + "\n";
    return out;
}

}  // namespace edgecert::app::status
