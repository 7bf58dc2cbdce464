//! The status page at `/`: a placeholder until the status page (issue 14, part 2) replaces this
//! file with the real one. Server-rendered HTML, no JavaScript, no external assets.

use std::fmt::Write as _;

use arpwatch_core::status::StatusView;

/// The page for `view`.
pub fn render(view: &StatusView) -> String {
    let mut html = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>arpwatch</title></head><body>\n",
    );
    let _ = writeln!(html, "<h1>arpwatch</h1><p>{} watched IPs, {} open conditions; the API is at <a href=\"/api/v1/ips\">/api/v1/ips</a>.</p>", view.ips.len(), view.conditions.len());
    html.push_str("</body></html>\n");
    html
}
