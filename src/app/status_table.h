#pragma once
// The terminal table of `edgecert status` (and `-o wide`): aligned columns, optional ANSI
// colour, problems first (the Report is sorted by status::evaluate). Everything that came from
// users (names, failure messages) is stripped of control characters first, so a message cannot
// move the cursor or recolour the terminal.
#include <string>
#include <string_view>

#include "app/status_model.h"

namespace edgecert::app::status {

struct TableOptions {
    bool colour = false;
    bool wide = false;
};

std::string render_table(const Report& r, const TableOptions& opts);

// Helpers, exposed for tests.
// Printable width: UTF-8 code points, skipping ANSI SGR sequences ("\x1b[...m").
size_t display_width(std::string_view s);
// Control characters (C0, DEL, and the C1 range as UTF-8) become '?'; newlines and tabs a space.
std::string sanitize(std::string_view s);
// At most `width` code points; a cut string ends in "...".
std::string truncate(std::string_view s, size_t width);
// "2025-05-01 12:00 (in 23d)"
std::string not_after_text(SystemTime t, SystemTime now);
// Colour decision for `--color auto`: stdout is a terminal and NO_COLOR is unset or empty
// (no-color.org), and TERM is not "dumb".
bool colour_wanted(bool stdout_is_tty, const char* no_color_env, const char* term_env);

}  // namespace edgecert::app::status
