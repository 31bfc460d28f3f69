#pragma once
// The status page of the admin port (`edgecert run`, `edgecert controller`): GET / and /status
// serve one self-contained HTML document (inline CSS, no script, no external asset, so it works
// offline and under a strict Content-Security-Policy), GET /status.json the same Report as
// `edgecert status -o json`. The page has a table and an expiry timeline (a bar per certificate
// from notBefore to notAfter, the renewal point and "now" marked), problems first. Every string
// from users goes through html_escape.
#include <functional>
#include <string>
#include <string_view>

#include "app/status_model.h"

namespace edgecert::platform {
class AdminServer;
}

namespace edgecert::app::status {

// & < > " ' → entities: safe in element content and in double- or single-quoted attributes.
std::string html_escape(std::string_view s);

struct PageOptions {
    std::string title = "edgecert";  // e.g. "edgecert run", "edgecert controller"
    int refresh_seconds = 30;        // <meta http-equiv=refresh>; 0: none
};
std::string render_page(const Report& r, const PageOptions& opts);

// Registers GET /, /status (HTML) and /status.json on `admin`; `collect` runs on a listener
// thread for each request and must be thread-safe. The Report is evaluated (sorted) here.
void add_status_handlers(platform::AdminServer& admin, std::function<Report()> collect,
                         PageOptions opts);

}  // namespace edgecert::app::status
