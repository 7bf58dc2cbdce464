//! The status page at `/` of the metrics listener: what the agent knows right now, for a human
//! with a browser. Server-rendered HTML5 from a [`StatusView`]: no JavaScript, no external asset
//! (the CSS is inline, no font or CDN), so it works offline, behind a `kubectl port-forward` and
//! on a phone. It refreshes itself every [`REFRESH_SECS`] seconds.
//!
//! Everything that comes from the network or the cluster (interface and node names, Services,
//! pools, event fields) is escaped by [`Esc`]; MACs and IPs go through it too. `docs/status-page.md`
//! describes the page.

use std::fmt::{self, Display, Write as _};
use std::time::Duration;

use arpwatch_core::event::Severity;
use arpwatch_core::observation::{MacAddr, Timestamp};
use arpwatch_core::status::{
    Claimant, DirectionCounters, IpStatus, OpenCondition, RequestStats, StatusView,
    REQUEST_WINDOW_SECS,
};
use serde_json::Value;

/// The page reloads itself this often (`<meta http-equiv="refresh">`).
pub const REFRESH_SECS: u32 = 5;

/// At most this many of the view's recent events are shown, newest first.
pub const MAX_EVENTS: usize = 50;

/// Writes to a `String`, which cannot fail.
macro_rules! w {
    ($out:expr, $($arg:tt)*) => {{
        let _ = write!($out, $($arg)*);
    }};
}

/// HTML-escapes what `T` displays: `&`, `<`, `>`, `"` and `'`, so that the result is safe both as
/// element text and inside a double- or single-quoted attribute.
pub struct Esc<T>(pub T);

impl<T: Display> Display for Esc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Escaper<'a, 'b>(&'a mut fmt::Formatter<'b>);
        impl fmt::Write for Escaper<'_, '_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                let mut rest = s;
                while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
                    self.0.write_str(&rest[..at])?;
                    self.0.write_str(match rest.as_bytes()[at] {
                        b'&' => "&amp;",
                        b'<' => "&lt;",
                        b'>' => "&gt;",
                        b'"' => "&quot;",
                        _ => "&#39;",
                    })?;
                    rest = &rest[at + 1..];
                }
                self.0.write_str(rest)
            }
        }
        write!(Escaper(f), "{}", self.0)
    }
}

/// `s`, HTML-escaped.
pub fn escape(s: &str) -> String {
    Esc(s).to_string()
}

const STYLE: &str = "\
:root{--fg:#1b1f24;--muted:#5c6570;--bg:#fff;--line:#d8dde3;--head:#f3f5f7;\
--crit:#b42318;--crit-bg:#fde8e6;--warn:#8a5300;--warn-bg:#fff3d6;--ok:#1a7f37}\
@media (prefers-color-scheme:dark){:root{--fg:#e6e8eb;--muted:#9aa4ae;--bg:#14171a;\
--line:#343a40;--head:#1e2226;--crit:#ff8a80;--crit-bg:#3d1612;--warn:#ffc266;\
--warn-bg:#3a2a0c;--ok:#6fdd8b}}\
*{box-sizing:border-box}\
body{margin:0;padding:1rem;font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;\
color:var(--fg);background:var(--bg)}\
header,main,footer{max-width:1400px;margin:0 auto}\
h1{font-size:1.4rem;margin:0 0 .25rem}h2{font-size:1.1rem;margin:1.5rem 0 .5rem}\
p{margin:.25rem 0}.muted,small{color:var(--muted)}\
code,.mac,.ip{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.92em}\
.mac,.nowrap{white-space:nowrap}\
.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;font-size:.94em}\
th,td{text-align:left;vertical-align:top;padding:.35rem .45rem;border-bottom:1px solid var(--line)}\
th{background:var(--head);font-weight:600;white-space:nowrap}\
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}\
tr.crit>td{background:var(--crit-bg)}tr.crit>td:first-child{box-shadow:inset 4px 0 var(--crit)}\
tr.warn>td{background:var(--warn-bg)}tr.warn>td:first-child{box-shadow:inset 4px 0 var(--warn)}\
.badge{display:inline-block;padding:0 .4rem;border-radius:.6rem;font-size:.85em;font-weight:600;\
white-space:nowrap;border:1px solid currentColor}\
.badge.crit,.crit-text{color:var(--crit)}.badge.warn,.warn-text{color:var(--warn)}\
.badge.info{color:var(--muted)}.ok{color:var(--ok)}\
.mac.multi{color:var(--crit);font-weight:700;background:var(--crit-bg);padding:0 .2rem;\
border-radius:.2rem}\
.note{padding:.5rem .75rem;border-left:4px solid var(--warn);background:var(--warn-bg);margin:.75rem 0}\
ul.plain{list-style:none;margin:0;padding:0}\
footer{margin-top:2rem;font-size:.85em;color:var(--muted)}\
@media (max-width:760px){body{padding:.5rem;font-size:14px}\
table.stack thead{display:none}table.stack,table.stack tbody,table.stack tr,table.stack td{display:block;width:100%}\
table.stack tr{border:1px solid var(--line);border-radius:.4rem;margin:0 0 .75rem;overflow:hidden}\
table.stack td{border:0;border-bottom:1px solid var(--line);position:relative;\
padding-left:9.5rem;min-height:2rem;text-align:left}\
table.stack td::before{content:attr(data-label);position:absolute;left:.5rem;width:8.5rem;\
font-weight:600;color:var(--muted)}\
table.stack td.n{text-align:left}}";

/// The status page for `view`.
pub fn render(view: &StatusView) -> String {
    let mut html = String::with_capacity(16 * 1024 + view.ips.len() * 1024);
    let node = view.node.as_deref();
    html.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    html.push_str(
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"color-scheme\" content=\"light dark\">\n",
    );
    w!(html, "<meta http-equiv=\"refresh\" content=\"{REFRESH_SECS}\">\n");
    match node {
        Some(node) => w!(html, "<title>arpwatch · {}</title>\n", Esc(node)),
        None => w!(html, "<title>arpwatch</title>\n"),
    }
    w!(html, "<style>{STYLE}</style>\n</head>\n<body>\n");
    header(&mut html, view);
    html.push_str("<main>\n");
    conditions(&mut html, view);
    ips(&mut html, view);
    events(&mut html, view);
    kernel(&mut html, view);
    html.push_str("</main>\n");
    html.push_str(
        "<footer>arpwatch is passive: this page shows what it observed and sends nothing on the \
         network segment. The same data as JSON: <a href=\"/api/v1/ips\">/api/v1/ips</a>, \
         <a href=\"/api/v1/conditions\">/api/v1/conditions</a>, \
         <a href=\"/api/v1/events\">/api/v1/events</a>; metrics at \
         <a href=\"/metrics\">/metrics</a>.</footer>\n</body>\n</html>\n",
    );
    html
}

fn header(html: &mut String, view: &StatusView) {
    html.push_str("<header>\n");
    match view.node.as_deref() {
        Some(node) => {
            w!(html, "<h1>arpwatch on <span id=\"node\">{}</span></h1>\n", Esc(node));
        }
        None => w!(html, "<h1>arpwatch</h1>\n"),
    }
    w!(
        html,
        "<p class=\"muted\">Generated <time id=\"generated\" datetime=\"{0}\">{1}</time> UTC; \
         refreshes every {REFRESH_SECS} s.</p>\n",
        Esc(view.generated.to_rfc3339()),
        Esc(clock(view.generated)),
    );
    let (critical, warning) = severities(&view.conditions);
    w!(html, "<p id=\"summary\">{} watched IP{}; ", view.ips.len(), plural(view.ips.len()));
    if critical + warning == 0 {
        html.push_str("<span class=\"ok\">no open condition</span>");
    } else {
        let mut parts = Vec::new();
        if critical > 0 {
            parts.push(format!("<span class=\"crit-text\"><b>{critical} critical</b></span>"));
        }
        if warning > 0 {
            parts.push(format!("<span class=\"warn-text\"><b>{warning} warning</b></span>"));
        }
        w!(html, "{} open condition{}", parts.join(" and "), plural(critical + warning));
    }
    html.push_str(".</p>\n");
    if view.truncated {
        html.push_str(
            "<p class=\"note\" id=\"truncated\">This view is truncated: some watched IPs or events \
             were left out to keep the page bounded. Ask the JSON API (paginated) for all of \
             them.</p>\n",
        );
    }
    html.push_str("</header>\n");
}

fn conditions(html: &mut String, view: &StatusView) {
    html.push_str("<section id=\"conditions\">\n<h2>Open conditions</h2>\n");
    if view.conditions.is_empty() {
        html.push_str("<p class=\"ok\">No open condition.</p>\n</section>\n");
        return;
    }
    html.push_str(
        "<div class=\"scroll\"><table class=\"stack\">\n<thead><tr><th>Severity</th><th>Condition</th><th>IP</th>\
         <th>Since</th><th>Last evidence</th><th class=\"n\">Count</th><th>MACs</th>\
         <th>Interface</th><th>Pool</th></tr></thead>\n<tbody>\n",
    );
    // Critical first, then the oldest start first.
    let mut open: Vec<&OpenCondition> = view.conditions.iter().collect();
    open.sort_by_key(|c| (std::cmp::Reverse(c.event.severity()), c.first_seen));
    for c in open {
        let severity = c.event.severity();
        w!(html, "<tr class=\"{}\">", row_class(severity));
        w!(html, "<td data-label=\"Severity\">{}</td>", severity_badge(severity));
        w!(
            html,
            "<td data-label=\"Condition\"><b>{}</b> <small>{}</small></td>",
            c.event.as_str(),
            c.state.as_str()
        );
        w!(html, "<td data-label=\"IP\"><span class=\"ip\">{}</span></td>", Esc(c.ip));
        w!(html, "<td data-label=\"Since\">{}</td>", when(c.first_seen, view.generated));
        w!(html, "<td data-label=\"Last evidence\">{}</td>", when(c.last_seen, view.generated));
        w!(html, "<td data-label=\"Count\" class=\"n\">{}</td>", c.count);
        w!(html, "<td data-label=\"MACs\">{}</td>", mac_list(&c.macs, c.macs.len() > 1));
        w!(html, "<td data-label=\"Interface\">{}</td>", Esc(&c.iface));
        w!(html, "<td data-label=\"Pool\">{}</td></tr>\n", opt(c.pool.as_deref()));
    }
    html.push_str("</tbody>\n</table></div>\n</section>\n");
}

fn ips(html: &mut String, view: &StatusView) {
    html.push_str("<section id=\"ips\">\n<h2>Watched IPs</h2>\n");
    if view.ips.is_empty() {
        html.push_str(
            "<p class=\"muted\">No watched IP yet: no pool IP is configured and no IP has an owner \
             so far.</p>\n</section>\n",
        );
        return;
    }
    w!(
        html,
        "<p class=\"muted\">Claimants: the MACs that claimed the IP within the concurrency window \
         (several at once are highlighted). Requests: counted over the last {}–{} minutes.</p>\n",
        REQUEST_WINDOW_SECS / 60,
        2 * REQUEST_WINDOW_SECS / 60
    );
    html.push_str(
        "<div class=\"scroll\"><table class=\"stack\">\n<thead><tr><th>IP</th><th>Services</th>\
         <th>Owner MAC</th><th>Node</th><th>Interface</th><th>Owner since</th><th>Claimants</th>\
         <th>Last owner change</th><th>Requests</th><th>Open conditions</th>\
         </tr></thead>\n<tbody>\n",
    );
    for ip in &view.ips {
        ip_row(html, ip, view.generated);
    }
    html.push_str("</tbody>\n</table></div>\n</section>\n");
}

fn ip_row(html: &mut String, ip: &IpStatus, now: Timestamp) {
    let worst = ip.conditions.iter().map(|c| c.event.severity()).max();
    w!(html, "<tr class=\"{}\">", worst.map_or("", row_class));
    w!(
        html,
        "<td data-label=\"IP\"><span class=\"ip\">{}</span> <small>{}</small>",
        Esc(ip.ip),
        ip.proto.as_str()
    );
    if let Some(pool) = ip.pool.as_deref() {
        w!(html, "<br><small>pool</small> {}", Esc(pool));
    }
    html.push_str("</td>");
    html.push_str("<td data-label=\"Services\">");
    if ip.services.is_empty() {
        html.push_str("<span class=\"muted\">–</span>");
    } else {
        let services: Vec<String> = ip.services.iter().map(|s| escape(s)).collect();
        html.push_str(&services.join("<br>"));
    }
    html.push_str("</td>");
    match &ip.owner {
        Some(owner) => {
            let multi = ip.claims.len() > 1;
            w!(html, "<td data-label=\"Owner MAC\">{}</td>", mac(owner.mac, multi));
            w!(html, "<td data-label=\"Node\">{}</td>", opt(owner.node.as_deref()));
            w!(html, "<td data-label=\"Interface\">{}</td>", opt(owner.iface.as_deref()));
            w!(html, "<td data-label=\"Owner since\">{}</td>", when(owner.since, now));
        }
        None => {
            html.push_str("<td data-label=\"Owner MAC\"><span class=\"muted\">none</span></td>");
            html.push_str("<td data-label=\"Node\"></td><td data-label=\"Interface\"></td>");
            html.push_str("<td data-label=\"Owner since\"></td>");
        }
    }
    w!(html, "<td data-label=\"Claimants\">{}</td>", claimants(&ip.claims));
    match &ip.last_owner_change {
        Some(change) => {
            w!(
                html,
                "<td data-label=\"Last owner change\">{} → {}<br>{}",
                mac_with_node(change.old_mac, change.old_node.as_deref()),
                mac_with_node(change.new_mac, change.new_node.as_deref()),
                when(change.at, now),
            );
            if let Some(ms) = change.gap_ms {
                w!(html, "<br>gap <b class=\"gap\">{}</b>", gap(Duration::from_millis(ms)));
            }
            if !change.reported {
                html.push_str("<br><small>within a multi_responder, not an owner_change</small>");
            }
            html.push_str("</td>");
        }
        None => {
            html.push_str("<td data-label=\"Last owner change\"><span class=\"muted\">none</span>");
            html.push_str("</td>");
        }
    }
    w!(html, "<td data-label=\"Requests\">{}</td>", requests(&ip.requests, now));
    html.push_str("<td data-label=\"Open conditions\">");
    if ip.conditions.is_empty() {
        html.push_str("<span class=\"muted\">none</span>");
    }
    for c in &ip.conditions {
        let severity = c.event.severity();
        w!(
            html,
            "<div><span class=\"badge {}\">{}</span> since {}</div>",
            badge_class(severity),
            c.event.as_str(),
            when(c.first_seen, now)
        );
    }
    html.push_str("</td></tr>\n");
}

fn claimants(claims: &[Claimant]) -> String {
    if claims.is_empty() {
        return "<span class=\"muted\">none</span>".to_owned();
    }
    let multi = claims.len() > 1;
    let mut out = String::new();
    if multi {
        w!(out, "<b class=\"crit-text\">{} MACs</b>", claims.len());
    }
    out.push_str("<ul class=\"plain\">");
    for c in claims {
        w!(out, "<li><span class=\"nowrap\">{} ×{}</span>", mac(c.mac, multi), c.count);
        if let Some(node) = c.node.as_deref() {
            w!(out, " <small>{}", Esc(node));
            if let Some(iface) = c.iface.as_deref() {
                w!(out, " · {}", Esc(iface));
            }
            out.push_str("</small>");
        }
        out.push_str("</li>");
    }
    out.push_str("</ul>");
    out
}

fn requests(r: &RequestStats, now: Timestamp) -> String {
    let mut out = if r.seen == 0 && r.waiting == 0 {
        "<span class=\"muted\">none seen</span>".to_owned()
    } else {
        format!("{} seen, {} answered", r.seen, r.answered)
    };
    if r.unanswered > 0 {
        w!(out, ", <b class=\"warn-text\">{} unanswered</b>", r.unanswered);
    }
    if r.waiting > 0 {
        w!(out, ", {} waiting", r.waiting);
    }
    if let Some(last) = r.last_request {
        w!(out, "<br><small>last request {}</small>", age(last, now));
    }
    if let Some(last) = r.last_answer {
        w!(out, "<br><small>last claim {}</small>", age(last, now));
    }
    out
}

fn events(html: &mut String, view: &StatusView) {
    html.push_str("<section id=\"events\">\n<h2>Recent events</h2>\n");
    if view.recent_events.is_empty() {
        html.push_str("<p class=\"muted\">No event yet.</p>\n</section>\n");
        return;
    }
    let total = view.recent_events.len();
    let shown = total.min(MAX_EVENTS);
    if shown < total {
        w!(html, "<p class=\"muted\">Newest first; the latest {shown} of {total}.</p>\n");
    } else {
        html.push_str("<p class=\"muted\">Newest first.</p>\n");
    }
    html.push_str(
        "<div class=\"scroll\"><table class=\"stack\">\n<thead><tr><th>Time (UTC)</th><th>Severity</th><th>Event</th>\
         <th>IP</th><th>MACs</th><th>Nodes</th><th>Interface</th><th>Pool / Services</th>\
         </tr></thead>\n<tbody>\n",
    );
    // The view lists them oldest first, as they were written.
    for event in view.recent_events.iter().rev().take(MAX_EVENTS) {
        event_row(html, event, view.generated);
    }
    html.push_str("</tbody>\n</table></div>\n</section>\n");
}

fn event_row(html: &mut String, e: &Value, now: Timestamp) {
    let severity = match e["severity"].as_str() {
        Some("critical") => Some(Severity::Critical),
        Some("warning") => Some(Severity::Warning),
        Some("info") => Some(Severity::Info),
        _ => None,
    };
    // An `end` clears its condition: not highlighted, though it keeps the kind's severity.
    let ended = e["state"] == "end";
    let class = severity.filter(|_| !ended).map_or("", row_class);
    w!(html, "<tr class=\"{class}\">");
    // `2026-11-21T10:00:00.4Z` as `2026-11-21 10:00:00`, or `10:00:00` on the day of `now`.
    let today = clock(now);
    let ts = e["ts"].as_str().map(|t| {
        let t = t.split(['.', 'Z']).next().unwrap_or(t).replacen('T', " ", 1);
        match t.split_once(' ') {
            Some((day, time)) if today.starts_with(day) => time.to_owned(),
            _ => t,
        }
    });
    w!(html, "<td data-label=\"Time (UTC)\">{}</td>", opt(ts.as_deref()));
    w!(
        html,
        "<td data-label=\"Severity\">{}</td>",
        severity.map(severity_badge).unwrap_or_default()
    );
    w!(html, "<td data-label=\"Event\"><b>{}</b>", opt(e["event"].as_str()));
    if let Some(state) = e["state"].as_str() {
        w!(html, " <small>{}</small>", Esc(state));
    }
    if let Some(gap) = e["gap_ms"].as_u64() {
        w!(html, " <small>gap {}</small>", gap_text(gap));
    }
    html.push_str("</td>");
    w!(html, "<td data-label=\"IP\"><span class=\"ip\">{}</span></td>", opt(e["ip"].as_str()));
    // The MACs: the list of a lasting condition, or the move, or the one MAC.
    let list: Vec<&str> =
        e["macs"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let macs = if !list.is_empty() {
        let multi = list.len() > 1 && e["event"] == "multi_responder";
        let class = if multi { "mac multi" } else { "mac" };
        list.iter()
            .map(|m| format!("<span class=\"{class}\">{}</span>", Esc(m)))
            .collect::<Vec<_>>()
            .join(" ")
    } else if let (Some(old), Some(new)) = (e["old_mac"].as_str(), e["new_mac"].as_str()) {
        format!("<span class=\"mac\">{}</span> → <span class=\"mac\">{}</span>", Esc(old), Esc(new))
    } else {
        e["mac"]
            .as_str()
            .map(|m| format!("<span class=\"mac\">{}</span>", Esc(m)))
            .unwrap_or_default()
    };
    w!(html, "<td data-label=\"MACs\">{macs}</td>");
    let mut nodes: Vec<&str> = Vec::new();
    for key in ["mac_node", "old_node", "new_node"] {
        nodes.extend(e[key].as_str());
    }
    if let Some(map) = e["mac_nodes"].as_object() {
        nodes.extend(map.values().filter_map(Value::as_str));
    }
    nodes.dedup();
    let nodes: Vec<String> = nodes.iter().map(|n| escape(n)).collect();
    w!(html, "<td data-label=\"Nodes\">{}</td>", nodes.join(", "));
    w!(html, "<td data-label=\"Interface\">{}</td>", Esc(e["iface"].as_str().unwrap_or_default()));
    let mut where_: Vec<String> = Vec::new();
    where_.extend(e["pool"].as_str().map(escape));
    where_.extend(
        e["services"].as_array().into_iter().flatten().filter_map(Value::as_str).map(escape),
    );
    w!(html, "<td data-label=\"Pool / Services\">{}</td></tr>\n", where_.join(", "));
}

fn kernel(html: &mut String, view: &StatusView) {
    html.push_str("<section id=\"kernel\">\n<h2>Kernel counters</h2>\n");
    let Some(k) = &view.kernel else {
        html.push_str(
            "<p class=\"muted\">No kernel counters: the agent is not watching live interfaces.</p>\n\
             </section>\n",
        );
        return;
    };
    html.push_str(
        "<p class=\"muted\">Since the programs were loaded. Ring-full drops are frames the kernel \
         saw but user space had no room for: arpwatch missed them.</p>\n\
         <div class=\"scroll\"><table class=\"stack\">\n<thead><tr><th>Direction</th><th class=\"n\">Frames</th>\
         <th class=\"n\">ARP</th><th class=\"n\">NDP</th><th class=\"n\">Malformed</th>\
         <th class=\"n\">Ring-full drops</th><th class=\"n\">Suppressed</th></tr></thead>\n<tbody>\n",
    );
    for (name, c) in [("ingress", &k.ingress), ("egress", &k.egress)] {
        direction_row(html, name, c);
    }
    html.push_str("</tbody>\n</table></div>\n</section>\n");
}

fn direction_row(html: &mut String, name: &str, c: &DirectionCounters) {
    let class = if c.ring_full_drops > 0 { "warn" } else { "" };
    w!(html, "<tr class=\"{class}\"><td data-label=\"Direction\">{name}</td>");
    w!(html, "<td data-label=\"Frames\" class=\"n\">{}</td>", c.frames);
    w!(html, "<td data-label=\"ARP\" class=\"n\">{}</td>", c.arp);
    w!(html, "<td data-label=\"NDP\" class=\"n\">{}</td>", c.ndp);
    w!(html, "<td data-label=\"Malformed\" class=\"n\">{}</td>", c.malformed);
    let drops = if c.ring_full_drops > 0 {
        format!("<b class=\"warn-text\">{}</b>", c.ring_full_drops)
    } else {
        "0".to_owned()
    };
    w!(html, "<td data-label=\"Ring-full drops\" class=\"n\" id=\"ring-full-{name}\">{drops}</td>");
    w!(html, "<td data-label=\"Suppressed\" class=\"n\">{}</td></tr>\n", c.suppressed);
}

/// The number of critical and of warning conditions.
fn severities(conditions: &[OpenCondition]) -> (usize, usize) {
    let count = |s| conditions.iter().filter(|c| c.event.severity() == s).count();
    (count(Severity::Critical), count(Severity::Warning))
}

fn row_class(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "crit",
        Severity::Warning => "warn",
        Severity::Info => "",
    }
}

fn badge_class(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "crit",
        Severity::Warning => "warn",
        Severity::Info => "info",
    }
}

fn severity_badge(severity: Severity) -> String {
    format!("<span class=\"badge {}\">{}</span>", badge_class(severity), severity.as_str())
}

fn mac(mac: MacAddr, multi: bool) -> String {
    let class = if multi { "mac multi" } else { "mac" };
    format!("<span class=\"{class}\">{}</span>", Esc(mac))
}

fn mac_list(macs: &[MacAddr], multi: bool) -> String {
    macs.iter().map(|m| mac(*m, multi)).collect::<Vec<_>>().join(" ")
}

fn mac_with_node(m: MacAddr, node: Option<&str>) -> String {
    match node {
        Some(node) => format!("{} <small>({})</small>", mac(m, false), Esc(node)),
        None => mac(m, false),
    }
}

/// `value` escaped, or a muted dash.
fn opt(value: Option<&str>) -> String {
    match value {
        Some(v) => escape(v),
        None => "<span class=\"muted\">–</span>".to_owned(),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `ts` as `YYYY-MM-DD HH:MM:SS` (UTC).
fn clock(ts: Timestamp) -> String {
    let full = ts.to_rfc3339();
    let seconds = full.split(['.', 'Z']).next().unwrap_or(&full);
    seconds.replacen('T', " ", 1)
}

/// `ts` as a `<time>` (its time of day only when it is on the day of `now`) with how long before
/// `now` it was.
fn when(ts: Timestamp, now: Timestamp) -> String {
    let full = clock(ts);
    let shown = match full.split_once(' ') {
        Some((day, time)) if clock(now).starts_with(day) => time,
        _ => &full,
    };
    format!(
        "<time datetime=\"{}\">{}</time> <small>({})</small>",
        Esc(ts.to_rfc3339()),
        Esc(shown),
        age(ts, now)
    )
}

/// How long before `now` `ts` was, roughly: `12 s ago`, `3 min ago`, `2 h 5 min ago`, `4 d ago`.
fn age(ts: Timestamp, now: Timestamp) -> String {
    let s = now.saturating_since(ts).as_secs();
    match s {
        0..60 => format!("{s} s ago"),
        60..3600 => format!("{} min ago", s / 60),
        3600..86400 => format!("{} h {} min ago", s / 3600, s % 3600 / 60),
        _ => format!("{} d ago", s / 86400),
    }
}

fn gap(d: Duration) -> String {
    gap_text(d.as_millis().min(u64::MAX as u128) as u64)
}

/// A failover gap: `850 ms`, `1.5 s`, `42 s`.
fn gap_text(ms: u64) -> String {
    match ms {
        0..1000 => format!("{ms} ms"),
        1000..10_000 => format!("{}.{} s", ms / 1000, ms % 1000 / 100),
        _ => format!("{} s", ms / 1000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arpwatch_core::event::{ConditionState, EventKind};
    use arpwatch_core::status::{sample, KernelCounters};

    fn empty() -> StatusView {
        StatusView {
            generated: Timestamp::from_secs(1_790_000_000),
            node: None,
            ips: Vec::new(),
            conditions: Vec::new(),
            recent_events: Vec::new(),
            kernel: None,
            truncated: false,
        }
    }

    /// The text of the page without its tags and with the escaper's entities decoded, roughly
    /// what a browser shows.
    fn text(html: &str) -> String {
        let mut out = String::new();
        let mut in_tag = false;
        for c in html.chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                c if !in_tag => out.push(c),
                _ => {}
            }
        }
        [("&lt;", "<"), ("&gt;", ">"), ("&quot;", "\""), ("&#39;", "'"), ("&amp;", "&")]
            .iter()
            .fold(out, |text, (entity, c)| text.replace(entity, c))
    }

    #[test]
    fn the_escaper_escapes_the_five_characters_and_nothing_else() {
        assert_eq!(escape(""), "");
        assert_eq!(escape("eth0"), "eth0");
        assert_eq!(
            escape(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        assert_eq!(escape("&amp;"), "&amp;amp;", "escaping twice is visible, never undone");
        assert_eq!(escape("veth\\xff·é"), "veth\\xff·é", "non-ASCII passes through");
        assert_eq!(Esc(MacAddr([2, 0, 0, 0, 0, 0xa])).to_string(), "02:00:00:00:00:0a");
    }

    #[test]
    fn hostile_names_are_escaped_everywhere() {
        let evil = r#"<img src=x onerror="alert(1)">"#;
        let mut view = sample();
        view.node = Some(evil.into());
        let ip = &mut view.ips[0];
        ip.pool = Some(evil.into());
        ip.services = vec![evil.into()];
        let owner = ip.owner.as_mut().unwrap();
        owner.node = Some(evil.into());
        owner.iface = Some(evil.into());
        for c in &mut ip.claims {
            c.node = Some(evil.into());
            c.iface = Some(evil.into());
        }
        ip.conditions[0].iface = evil.into();
        view.conditions[0].iface = evil.into();
        view.conditions[0].pool = Some(evil.into());
        view.recent_events.push(serde_json::json!({
            "ts": evil, "event": evil, "severity": evil, "ip": evil, "state": evil,
            "mac": evil, "mac_node": evil, "iface": evil, "pool": evil, "services": [evil],
        }));
        view.recent_events.push(serde_json::json!({
            "event": "owner_change", "severity": "warning", "old_mac": evil, "new_mac": evil,
            "mac_nodes": {"02:00:00:00:00:0a": evil}, "macs": [evil, evil],
        }));
        let html = render(&view);
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("onerror=\""), "{html}");
        let escaped = escape(evil);
        assert!(html.matches(&escaped).count() >= 15, "{html}");
        assert!(text(&html).contains(evil), "the browser shows the name as it is");
    }

    #[test]
    fn the_page_is_self_contained_html5_without_javascript() {
        let html = render(&sample());
        assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
        assert!(html.ends_with("</html>\n"));
        assert!(html.contains("<meta charset=\"utf-8\">"));
        assert!(html.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
        assert!(html.contains("name=\"viewport\""));
        for external in ["<script", "<link", "src=", "@import", "url(", "http://", "https://"] {
            assert!(!html.contains(external), "{external} in the page");
        }
        // Every element opened by the renderer is closed (a coarse balance check).
        for tag in ["table", "tr", "td", "section", "ul", "li", "span", "p", "small", "b"] {
            let open = html.matches(&format!("<{tag}>")).count()
                + html.matches(&format!("<{tag} ")).count();
            assert_eq!(open, html.matches(&format!("</{tag}>")).count(), "<{tag}>");
        }
    }

    #[test]
    fn the_sample_shows_owner_node_services_claimants_change_requests_and_counters() {
        let view = sample();
        let html = render(&view);
        let text = text(&html);
        assert!(html.contains("<h1>arpwatch on <span id=\"node\">node-a</span></h1>"));
        assert!(text.contains("2026-09-21 14:16:01"), "the generation time: {text}");
        assert!(text.contains("2 watched IPs; 1 critical open condition."), "{text}");
        for needle in [
            "192.0.2.10",
            "192.0.2.11",
            "shop/web",
            "vips",
            "node-b",
            "eth0",
            "2 MACs",
            "02:00:00:00:00:0a ×6",
            "02:00:00:00:00:0b ×6",
            "1.5 s",
            "40 seen, 38 answered, 2 unanswered",
            "last claim 1 s ago",
            "multi_responder",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from {text}");
        }
        // An event of the day of the view shows its time of day only.
        assert!(html.contains("<td data-label=\"Time (UTC)\">13:49:20</td>"), "{html}");
        // The two claimants are highlighted, and so is the owner among them.
        assert_eq!(html.matches("<span class=\"mac multi\">02:00:00:00:00:0a</span>").count(), 3);
        // The IP with a critical condition is a red row, the quiet one is not highlighted.
        let row_of = |ip: &str| {
            let at = html.find(&format!("<span class=\"ip\">{ip}</span>")).unwrap();
            html[..at].rfind("<tr").map(|s| html[s..at].to_owned()).unwrap()
        };
        assert!(row_of("192.0.2.10").starts_with("<tr class=\"crit\">"));
        assert!(row_of("192.0.2.11").starts_with("<tr class=\"\">"));
        // The kernel counters, the ring-full drops flagged.
        assert!(html.contains("id=\"ring-full-ingress\"><b class=\"warn-text\">3</b>"), "{html}");
        assert!(html.contains("id=\"ring-full-egress\">0</td>"));
        assert!(!html.contains("id=\"truncated\""));
    }

    #[test]
    fn conditions_are_red_when_critical_amber_when_warning_critical_first() {
        let mut view = sample();
        let mut storm = view.conditions[0].clone();
        storm.event = EventKind::Storm;
        storm.state = ConditionState::Start;
        storm.ip = [0, 0, 0, 0].into();
        storm.first_seen = Timestamp::from_secs(1_790_000_001);
        view.conditions.insert(0, storm.clone());
        view.ips[1].conditions.push(storm);
        let html = render(&view);
        let section =
            &html[html.find("id=\"conditions\"").unwrap()..html.find("id=\"ips\"").unwrap()];
        let crit = section.find("<tr class=\"crit\">").expect("a red row");
        let warn = section.find("<tr class=\"warn\">").expect("an amber row");
        assert!(crit < warn, "critical first: {section}");
        assert!(text(section).contains("storm start"), "{section}");
        assert!(text(&html).contains("1 critical and 1 warning open conditions."));
        // The quiet IP now has a warning: an amber row with its condition and start.
        assert!(html.contains("<span class=\"badge warn\">storm</span> since"), "{html}");
        assert!(
            html.contains("<tr class=\"warn\"><td data-label=\"IP\"><span class=\"ip\">192.0.2.11")
        );
    }

    #[test]
    fn the_empty_view_says_so_in_every_section() {
        let html = render(&empty());
        let text = text(&html);
        assert!(html.contains("<title>arpwatch</title>"));
        assert!(html.contains("<h1>arpwatch</h1>"));
        assert!(text.contains("0 watched IPs; no open condition."), "{text}");
        assert!(text.contains("No open condition."));
        assert!(text.contains("No watched IP yet"));
        assert!(text.contains("No event yet."));
        assert!(text.contains("No kernel counters"));
        assert!(!html.contains("<table"));
    }

    #[test]
    fn a_truncated_view_carries_a_note() {
        let view = StatusView { truncated: true, ..empty() };
        assert!(render(&view).contains("<p class=\"note\" id=\"truncated\">This view is truncated"));
    }

    #[test]
    fn events_are_newest_first_and_bounded() {
        let mut view = empty();
        view.kernel = Some(KernelCounters::default());
        view.recent_events = (0..MAX_EVENTS + 20)
            .map(|n| {
                serde_json::json!({"ts": format!("2026-09-21T13:{:02}:{:02}Z", n / 60, n % 60),
                    "event": "new_binding", "severity": "info", "ip": format!("192.0.2.{n}"),
                    "mac": "02:00:00:00:00:01"})
            })
            .collect();
        let html = render(&view);
        let text = text(&html);
        assert!(text.contains(&format!("the latest {MAX_EVENTS} of {}", MAX_EVENTS + 20)));
        let newest = text.find("192.0.2.69").expect("the newest event");
        let older = text.find("192.0.2.20").expect("the oldest shown");
        assert!(newest < older);
        assert!(!text.contains("192.0.2.19<"), "older ones are left out");
        assert_eq!(html.matches("<td data-label=\"Time (UTC)\">").count(), MAX_EVENTS);
    }

    #[test]
    fn an_ended_condition_event_is_not_highlighted() {
        let mut view = empty();
        view.recent_events = vec![
            serde_json::json!({"event": "flapping", "severity": "critical", "state": "start"}),
            serde_json::json!({"event": "flapping", "severity": "critical", "state": "end"}),
        ];
        let html = render(&view);
        let rows: Vec<&str> = html.split("<tr").skip(2).collect();
        assert!(rows[0].starts_with(" class=\"\">"), "the end, newest: {}", rows[0]);
        assert!(rows[1].starts_with(" class=\"crit\">"), "the start: {}", rows[1]);
    }

    #[test]
    fn ages_and_gaps_read_naturally() {
        let now = Timestamp::from_secs(100_000);
        assert_eq!(age(Timestamp::from_secs(99_988), now), "12 s ago");
        assert_eq!(age(Timestamp::from_secs(99_800), now), "3 min ago");
        assert_eq!(age(Timestamp::from_secs(100_000 - 7500), now), "2 h 5 min ago");
        assert_eq!(age(Timestamp::from_secs(1), now), "1 d ago");
        assert_eq!(age(Timestamp::from_secs(100_001), now), "0 s ago", "a clock step back");
        assert_eq!(gap_text(850), "850 ms");
        assert_eq!(gap_text(1500), "1.5 s");
        assert_eq!(gap_text(42_000), "42 s");
        assert_eq!(clock(Timestamp::from_nanos(1_790_000_000_123_456_789)), "2026-09-21 14:13:20");
    }
}
