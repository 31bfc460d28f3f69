#include "app/status_page.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <vector>

#include "edgecert/base/version.h"
#include "platform/admin_server.h"

namespace edgecert::app::status {
namespace {

using std::chrono::hours;
using std::chrono::seconds;

// Inline: the page must work offline and under CSP default-src 'none' (style-src 'unsafe-inline').
constexpr const char* kCss = R"CSS(
:root{--bg:#f4f6fa;--card:#fff;--ink:#1c2433;--muted:#667085;--line:#e4e7ec;--ok:#12b76a;--okbg:#ecfdf3;
--warn:#f79009;--warnbg:#fffaeb;--bad:#d92d20;--badbg:#fef3f2;--now:#2e6ee6;--bar:#32d583}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
header{background:#101828;color:#fff;padding:18px 28px;display:flex;flex-wrap:wrap;align-items:center;gap:10px 24px}
header h1{font-size:20px;margin:0;font-weight:650;letter-spacing:.2px}
header h1 span{color:#98a2b3;font-weight:400}
header .meta{color:#98a2b3;font-size:13px}
header .pills{margin-left:auto;display:flex;gap:8px}
.pill{border-radius:999px;padding:3px 12px;font-size:13px;font-weight:600;background:#344054;color:#fff}
.pill.bad{background:var(--bad)}.pill.ok{background:var(--ok)}
main{padding:22px 28px;max-width:1500px;margin:0 auto}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px 20px;margin-bottom:20px;box-shadow:0 1px 2px rgba(16,24,40,.05)}
.card h2{font-size:15px;margin:0 0 12px;font-weight:650}
table{border-collapse:collapse;width:100%}
th{text-align:left;font-size:12px;text-transform:uppercase;letter-spacing:.4px;color:var(--muted);font-weight:600;padding:8px 10px;border-bottom:1px solid var(--line)}
td{padding:9px 10px;border-bottom:1px solid var(--line);vertical-align:top}
tr:last-child td{border-bottom:0}
tr.problem td:first-child{box-shadow:inset 3px 0 0 var(--bad)}
tr.ok td:first-child{box-shadow:inset 3px 0 0 var(--ok)}
.name{font-weight:600;word-break:break-all}.ns{color:var(--muted);font-weight:400}
.mono{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,monospace;font-size:12.5px}
.muted{color:var(--muted)}.small{font-size:12px}.nowrap{white-space:nowrap}
.badge{display:inline-block;border-radius:6px;padding:1px 8px;font-size:12px;font-weight:600;margin:0 4px 3px 0;white-space:nowrap}
.badge.ok{background:var(--okbg);color:#027a48}.badge.bad{background:var(--badbg);color:#b42318}
.badge.warn{background:var(--warnbg);color:#b54708}.badge.unknown{background:#f2f4f7;color:#475467}
.detail{color:#475467;font-size:12.5px;word-break:break-word;max-width:560px}
.tl{display:grid;grid-template-columns:minmax(150px,240px) 1fr 130px;align-items:center;column-gap:14px}
.tl .axis{grid-column:2;position:relative;height:24px;border-bottom:1px solid var(--line)}
.tick{position:absolute;bottom:4px;transform:translateX(-50%);font-size:11px;color:var(--muted);white-space:nowrap}
.tick.now{color:var(--now);font-weight:700}
.tl-label{padding:7px 0;font-size:13px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.tl-track{position:relative;height:32px}
.tl-track::before{content:"";position:absolute;left:0;right:0;top:14px;height:4px;border-radius:2px;background:#f2f4f7}
.tl-bar{position:absolute;top:8px;height:16px;border-radius:5px;background:var(--bar);min-width:3px}
.tl-bar.due{background:linear-gradient(90deg,var(--bar),var(--warn))}
.tl-bar.expired{background:#fda29b}
.tl-bar.failing{outline:2px solid var(--bad);outline-offset:1px}
.tl-renew{position:absolute;top:4px;width:3px;height:24px;margin-left:-1px;background:#101828;border-radius:2px}
.tl-now{position:absolute;top:0;bottom:0;width:2px;margin-left:-1px;background:var(--now)}
.tl-none{position:absolute;top:8px;left:8px;font-size:12px;color:var(--bad);font-style:italic}
.tl-when{font-size:12px;color:var(--muted);white-space:nowrap}
.tl-when.bad{color:var(--bad);font-weight:600}
.legend{display:flex;gap:18px;margin-top:12px;font-size:12px;color:var(--muted);flex-wrap:wrap}
.legend i{display:inline-block;width:18px;height:10px;border-radius:3px;margin-right:6px;vertical-align:-1px}
footer{color:var(--muted);font-size:12px;text-align:center;padding:4px 0 24px}
footer a{color:var(--now)}
.empty{color:var(--muted);font-style:italic}
.card.warning{background:var(--warnbg);border-color:#fedf89;color:#93370d;padding:10px 16px}
)CSS";

std::string esc(std::string_view s) {
    return html_escape(s);
}

std::string pct(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.3f%%", std::clamp(v, 0.0, 100.0));
    return b;
}

std::string utc(SystemTime t, const char* fmt) {
    std::time_t tt = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[48];
    std::strftime(buf, sizeof buf, fmt, &tm);
    return buf;
}

// The time axis shared by every bar: from the earliest notBefore to the latest notAfter, "now"
// always inside, with a little room on both sides.
struct Axis {
    SystemTime start, end;
    double at(SystemTime t) const {
        double span = std::chrono::duration<double>(end - start).count();
        return span <= 0 ? 0 : 100.0 * std::chrono::duration<double>(t - start).count() / span;
    }
};

Axis make_axis(const Report& r) {
    SystemTime lo = r.generated_at, hi = r.generated_at;
    for (const auto& c : r.certificates) {
        if (c.not_before) lo = std::min(lo, *c.not_before);
        if (c.not_after) hi = std::max(hi, *c.not_after);
    }
    if (hi - lo < hours(2)) {
        lo -= hours(1);
        hi += hours(1);
    }
    auto pad = (hi - lo) / 25;
    return {lo - pad, hi + pad};
}

void ticks(std::string& out, const Axis& ax, SystemTime now) {
    static const std::pair<seconds, const char*> kSteps[] = {{seconds(600), "%H:%M"},
                                                             {seconds(3600), "%H:%M"},
                                                             {seconds(6 * 3600), "%b %d %H:%M"},
                                                             {seconds(86400), "%b %d"},
                                                             {seconds(7 * 86400), "%b %d"},
                                                             {seconds(30 * 86400), "%b %d"},
                                                             {seconds(91 * 86400), "%b %Y"},
                                                             {seconds(365 * 86400), "%Y"}};
    const auto span = std::chrono::duration_cast<seconds>(ax.end - ax.start);
    auto step = kSteps[std::size(kSteps) - 1];
    for (const auto& s : kSteps)
        if (span / s.first <= 7) {
            step = s;
            break;
        }
    // Aligned to whole steps since the epoch (midnight UTC for day steps).
    auto first = std::chrono::ceil<seconds>(ax.start.time_since_epoch());
    first = (first + step.first - seconds(1)) / step.first * step.first;
    for (SystemTime t{first}; t < ax.end; t += step.first) {
        double x = ax.at(t), xn = ax.at(now);
        if (std::abs(x - xn) < 6) continue;  // keep the "now" label readable
        out += "<span class=\"tick\" style=\"left:" + pct(x) + "\">" + esc(utc(t, step.second)) +
               "</span>";
    }
    out += "<span class=\"tick now\" style=\"left:" + pct(ax.at(now)) + "\">now</span>";
}

const char* ready_badge(const std::string& r) {
    return r == "True" ? "ok" : r == "False" ? "bad" : "unknown";
}

std::string name_html(const CertRow& c) {
    std::string s = "<span class=\"name\">";
    if (!c.namespace_.empty()) s += "<span class=\"ns\">" + esc(c.namespace_) + "/</span>";
    return s + esc(c.name) + "</span>";
}

std::string time_cell(const std::optional<SystemTime>& t, SystemTime now) {
    if (!t) return "<span class=\"muted\">&ndash;</span>";
    return "<div>" + esc(relative_time(*t, now)) +
           "</div><div class=\"muted small nowrap\" title=\"" + esc(rfc3339(*t)) + "\">" +
           esc(utc(*t, "%Y-%m-%d %H:%M UTC")) + "</div>";
}

void timeline(std::string& out, const Report& r) {
    const SystemTime now = r.generated_at;
    const Axis ax = make_axis(r);
    out +=
        "<section class=\"card\"><h2>Expiry timeline</h2><div class=\"tl\" id=\"timeline\">"
        "<div></div><div class=\"axis\">";
    ticks(out, ax, now);
    out += "</div><div></div>";
    for (const auto& c : r.certificates) {
        const bool bad = !c.problems.empty();
        out += "<div class=\"tl-label\" title=\"" + esc(c.key()) + "\">" + name_html(c) + "</div>";
        out += "<div class=\"tl-track\" data-key=\"" + esc(c.key()) + "\">";
        if (c.not_before && c.not_after && !c.serial.empty()) {
            std::string cls = "tl-bar";
            if (*c.not_after <= now)
                cls += " expired";
            else if (c.renewal_time && *c.renewal_time <= now)
                cls += " due";
            if (bad) cls += " failing";
            double x0 = ax.at(*c.not_before), x1 = ax.at(*c.not_after);
            out += "<div class=\"" + cls + "\" data-key=\"" + esc(c.key()) +
                   "\" style=\"left:" + pct(x0) + ";width:" + pct(x1 - x0) + "\" title=\"" +
                   esc(rfc3339(*c.not_before) + " to " + rfc3339(*c.not_after)) + "\"></div>";
            if (c.renewal_time)
                out += "<div class=\"tl-renew\" style=\"left:" + pct(ax.at(*c.renewal_time)) +
                       "\" title=\"renewal " + esc(rfc3339(*c.renewal_time)) + "\"></div>";
        } else {
            // Still a bar element (empty) so the timeline has one per certificate.
            out += "<div class=\"tl-bar none\" data-key=\"" + esc(c.key()) +
                   "\" style=\"display:none\"></div><span class=\"tl-none\">no certificate "
                   "stored</span>";
        }
        out += "<div class=\"tl-now\" style=\"left:" + pct(ax.at(now)) + "\"></div></div>";
        std::string when = c.not_after ? (*c.not_after <= now ? "expired " : "expires ") +
                                             relative_time(*c.not_after, now)
                                       : "";
        out += "<div class=\"tl-when" +
               std::string(c.not_after && *c.not_after <= now ? " bad" : "") + "\">" + esc(when) +
               "</div>";
    }
    out +=
        "</div><div class=\"legend\"><span><i style=\"background:var(--bar)\"></i>valid</span>"
        "<span><i style=\"background:linear-gradient(90deg,var(--bar),var(--warn))\"></i>renewal "
        "due</span>"
        "<span><i style=\"background:#fda29b\"></i>expired</span>"
        "<span><i style=\"background:#fff;outline:2px solid var(--bad)\"></i>has problems</span>"
        "<span><i style=\"width:3px;background:#101828\"></i>renewal time</span>"
        "<span><i style=\"width:2px;background:var(--now)\"></i>now</span></div></section>";
}

void cert_table(std::string& out, const Report& r) {
    const SystemTime now = r.generated_at;
    const bool served = !r.terminators.empty();
    out += "<section class=\"card\"><h2>Certificates</h2>";
    if (r.certificates.empty()) {
        out += "<p class=\"empty\">No certificates.</p></section>";
        return;
    }
    out +=
        "<table id=\"certificates\"><thead><tr><th>Certificate</th><th>DNS "
        "names</th><th>Issuer</th>"
        "<th>Ready</th><th>Not after</th><th>Renewal</th>";
    if (served) out += "<th>Served</th>";
    out += "<th>Status</th></tr></thead><tbody>";
    for (const auto& c : r.certificates) {
        const bool bad = !c.problems.empty();
        out += std::string("<tr class=\"") + (bad ? "problem" : "ok") + "\" data-key=\"" +
               esc(c.key()) + "\">";
        out += "<td>" + name_html(c) + "<div class=\"muted small mono\">" +
               esc(c.serial.empty() ? "no certificate stored" : "serial " + c.serial) +
               "</div></td>";
        out += "<td class=\"small\">";
        for (const auto& n : c.dns_names) out += "<div>" + esc(n) + "</div>";
        out += "</td><td>" + esc(c.issuer_name) + "<div class=\"muted small\">" +
               esc(c.issuer_kind) + "</div></td>";
        out += std::string("<td><span class=\"badge ") + ready_badge(c.ready) + "\">" +
               esc(c.ready) + "</span>";
        if (!c.ready_reason.empty())
            out += "<div class=\"muted small\">" + esc(c.ready_reason) + "</div>";
        out += "</td><td>" + time_cell(c.not_after, now) + "</td><td>" +
               time_cell(c.renewal_time, now) + "</td>";
        if (served) {
            out += "<td>";
            for (const auto& s : c.served) {
                const std::string st = served_state(s, c);
                const char* cls = st == "ok"                                ? "ok"
                                  : st == "mismatch" || st == "unreachable" ? "bad"
                                                                            : "unknown";
                out += std::string("<div><span class=\"badge ") + cls + "\" title=\"" +
                       esc(s.terminator) + "\">" + esc(st) + "</span>";
                if (st == "mismatch")
                    out += "<span class=\"mono small\">" + esc(s.serial) + "</span>";
                out += "</div>";
            }
            out += "</td>";
        }
        out += "<td>";
        if (!bad) out += "<span class=\"badge ok\">OK</span>";
        for (Problem p : c.problems) {
            const char* cls = p == Problem::Failing || p == Problem::NotServed ? "warn" : "bad";
            out +=
                std::string("<span class=\"badge ") + cls + "\">" + esc(to_string(p)) + "</span>";
        }
        std::string detail = failure_summary(c, now);
        if (detail.empty() && c.ready != "True" && !c.ready_message.empty())
            detail = c.ready_message;
        if (!detail.empty()) out += "<div class=\"detail\">" + esc(detail) + "</div>";
        out += "</td></tr>";
    }
    out += "</tbody></table></section>";
}

void issuer_table(std::string& out, const Report& r) {
    if (r.issuers.empty()) return;
    out +=
        "<section class=\"card\"><h2>Issuers</h2><table "
        "id=\"issuers\"><thead><tr><th>Issuer</th><th>Kind</th>"
        "<th>Ready</th><th>Reason</th><th>Message</th></tr></thead><tbody>";
    for (const auto& i : r.issuers) {
        out +=
            std::string("<tr class=\"") + (i.ready == "True" ? "ok" : "problem") +
            "\"><td><span class=\"name\">" +
            (i.namespace_.empty() ? "" : "<span class=\"ns\">" + esc(i.namespace_) + "/</span>") +
            esc(i.name) + "</span></td><td>" + esc(i.kind) + "</td><td><span class=\"badge " +
            ready_badge(i.ready) + "\">" + esc(i.ready) + "</span></td><td>" + esc(i.reason) +
            "</td><td class=\"detail\">" + esc(i.message) + "</td></tr>";
    }
    out += "</tbody></table></section>";
}

}  // namespace

std::string html_escape(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 16);
    for (char c : s) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            case '\'':
                out += "&#39;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

std::string render_page(const Report& r, const PageOptions& o) {
    size_t bad = 0;
    for (const auto& c : r.certificates)
        if (!c.problems.empty()) ++bad;
    std::string out;
    out.reserve(8192 + r.certificates.size() * 1500);
    out +=
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src "
        "'unsafe-inline'\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">";
    if (o.refresh_seconds > 0)
        out +=
            "<meta http-equiv=\"refresh\" content=\"" + std::to_string(o.refresh_seconds) + "\">";
    out += "<title>" + esc(o.title) + " status</title><style>" + kCss + "</style></head><body>";
    out += "<header><h1>" + esc(o.title) + " <span>status</span></h1><div class=\"meta\">" +
           esc(r.source) + " &middot; " + esc(utc(r.generated_at, "%Y-%m-%d %H:%M:%S UTC")) +
           "</div><div class=\"pills\">";
    out += "<span class=\"pill\" id=\"count\">" + std::to_string(r.certificates.size()) +
           " certificate" + (r.certificates.size() == 1 ? "" : "s") + "</span>";
    out += std::string("<span class=\"pill ") + (bad ? "bad" : "ok") + "\" id=\"problems\">" +
           (bad ? std::to_string(bad) + " with problems" : "all fine") +
           "</span></div></header><main>";
    for (const auto& w : r.warnings) out += "<div class=\"card warning\">" + esc(w) + "</div>";
    timeline(out, r);
    cert_table(out, r);
    issuer_table(out, r);
    out += "</main><footer>edgecert " + esc(kVersion) +
           " &middot; <a href=\"status.json\">status.json</a> &middot; <a "
           "href=\"metrics\">metrics</a></footer>"
           "</body></html>\n";
    return out;
}

void add_status_handlers(platform::AdminServer& admin, std::function<Report()> collect,
                         PageOptions opts) {
    auto html = [collect, opts](const std::string&, const std::string&, int&, std::string& ct,
                                std::string& body) {
        Report r = collect();
        evaluate(r);
        ct = "text/html; charset=utf-8";
        body = render_page(r, opts);
    };
    admin.add_handler("/", html);
    admin.add_handler("/status", html);
    admin.add_handler("/status.json", [collect](const std::string&, const std::string&, int&,
                                                std::string& ct, std::string& body) {
        Report r = collect();
        evaluate(r);
        ct = "application/json";
        body = to_json(r).dump(2) + "\n";
    });
}

}  // namespace edgecert::app::status
