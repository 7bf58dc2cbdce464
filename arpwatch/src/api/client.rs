//! `arpwatch status`: asks a running agent's status API over plain HTTP/1.1 (a few lines over a
//! `TcpStream`, one request per connection) and prints what it knows per watched IP, as a table
//! on a terminal and as JSON otherwise. It talks to the agent's metrics address only, never to
//! the network segment.
//!
//! Exit status: 0 when the agent answered (IPs it does not know are said so), 1 when it cannot
//! be reached or does not serve the API, 2 for bad usage (clap and the plan).

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use ipnet::IpNet;
use serde_json::{json, Value};

use crate::output::Format;
use crate::plan::StatusPlan;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest response read (a page of 1000 IPs is well under it).
const MAX_RESPONSE: u64 = 64 << 20;
/// IPs per page when listing.
const PAGE: usize = 1000;

pub fn main(plan: &StatusPlan) -> ExitCode {
    let report = match collect(plan) {
        Ok(report) => report,
        Err(err) => {
            eprintln!("arpwatch: {err}");
            return ExitCode::from(1);
        }
    };
    let mut text = match plan.format {
        Format::Json => {
            let mut line = serde_json::to_string_pretty(&report).unwrap_or_default();
            line.push('\n');
            line
        }
        Format::Text => table(&report),
    };
    if text.is_empty() {
        text.push('\n');
    }
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("arpwatch: cannot write to stdout: {err}");
            ExitCode::from(1)
        }
    }
}

/// What the agent said: `{"api_version", "server", "node", "generated", "ips": [...],
/// "unknown": [IPs it does not know]}`.
pub(super) fn collect(plan: &StatusPlan) -> Result<Value, String> {
    let server = &plan.server;
    let mut ips = Vec::new();
    let mut unknown = Vec::new();
    let mut head = Value::Null;
    let single: Vec<IpAddr> = plan
        .targets
        .iter()
        .filter(|n| n.prefix_len() == n.max_prefix_len())
        .map(IpNet::addr)
        .collect();
    let nets: Vec<&IpNet> =
        plan.targets.iter().filter(|n| n.prefix_len() != n.max_prefix_len()).collect();
    for ip in &single {
        let (status, body) = get(server, &format!("/api/v1/ips/{ip}"))?;
        match status {
            200 => {
                ips.push(body["ip"].clone());
                head = body;
            }
            404 if body["api_version"].is_number() => {
                unknown.push(json!(ip.to_string()));
                head = body;
            }
            _ => return Err(refused(server, status, &body)),
        }
    }
    if plan.targets.is_empty() || !nets.is_empty() {
        let mut path = format!("/api/v1/ips?limit={PAGE}");
        loop {
            let (status, body) = get(server, &path)?;
            if status != 200 {
                return Err(refused(server, status, &body));
            }
            for st in body["ips"].as_array().into_iter().flatten() {
                let ip: Option<IpAddr> = st["ip"].as_str().and_then(|s| s.parse().ok());
                let wanted =
                    nets.is_empty() || ip.is_some_and(|ip| nets.iter().any(|n| n.contains(&ip)));
                if wanted && !ip.is_some_and(|ip| single.contains(&ip)) {
                    ips.push(st.clone());
                }
            }
            let next = body["next"].as_str().map(str::to_owned);
            head = body;
            match next {
                Some(next) => path = next,
                None => break,
            }
        }
    }
    ips.sort_by_key(|st| st["ip"].as_str().and_then(|s| s.parse::<IpAddr>().ok()));
    Ok(json!({
        "api_version": head["api_version"],
        "server": server,
        "node": head["node"],
        "generated": head["generated"],
        "ips": ips,
        "unknown": unknown,
    }))
}

fn refused(server: &str, status: u16, body: &Value) -> String {
    match body["error"].as_str() {
        Some(error) => format!("the agent at {server} answered {status}: {error}"),
        None => format!(
            "the agent at {server} does not serve the status API (HTTP {status}; is it running \
             with --api off, or is this not arpwatch's metrics address?)"
        ),
    }
}

/// `GET path` from `server`: the status code and the JSON body (`null` when it is not JSON).
pub(super) fn get(server: &str, path: &str) -> Result<(u16, Value), String> {
    let unreachable = |err: &dyn std::fmt::Display| {
        format!(
            "cannot reach the agent at {server}: {err} (is `arpwatch watch --metrics-addr {server}` running?)"
        )
    };
    let addrs: Vec<_> = server.to_socket_addrs().map_err(|err| unreachable(&err))?.collect();
    let mut last_err = None;
    let mut stream = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, CONNECT_TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(err) => last_err = Some(err),
        }
    }
    let Some(mut stream) = stream else {
        return Err(match last_err {
            Some(err) => unreachable(&err),
            None => unreachable(&"the name has no address"),
        });
    };
    let io = |err: std::io::Error| unreachable(&err);
    stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {server}\r\nAccept: application/json\r\nUser-Agent: arpwatch/{}\r\nConnection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut response = Vec::new();
    stream.take(MAX_RESPONSE).read_to_end(&mut response).map_err(io)?;
    let (status, body) = parse_response(&response)
        .ok_or_else(|| format!("the agent at {server} sent a response that is not HTTP/1.1"))?;
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// The status code and the body (de-chunked) of an HTTP/1.1 response read to its end.
fn parse_response(response: &[u8]) -> Option<(u16, Vec<u8>)> {
    let split = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&response[..split]).ok()?;
    let body = &response[split + 4..];
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok()?;
    let chunked = lines.any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.eq_ignore_ascii_case("transfer-encoding") && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    if !chunked {
        return Some((status, body.to_vec()));
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_field = std::str::from_utf8(&rest[..end]).ok()?;
        let size = usize::from_str_radix(size_field.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[end + 2..];
        if size == 0 {
            return Some((status, out));
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

/// The report as a table: one row per IP, multi-valued cells on several lines.
pub(super) fn table(report: &Value) -> String {
    let generated = report["generated"].as_str().and_then(parse_time);
    let mut rows = vec![[
        "IP",
        "OWNER",
        "SINCE",
        "CLAIMS (window)",
        "LAST OWNER CHANGE",
        "OPEN CONDITIONS",
        "REQUESTS",
    ]
    .map(|h| vec![h.to_owned()])];
    for st in report["ips"].as_array().into_iter().flatten() {
        rows.push(row(st, generated));
    }
    let mut out = String::new();
    let node = report["node"].as_str().unwrap_or("?");
    let _ = writeln!(
        out,
        "arpwatch on {node} ({}), {}",
        report["server"].as_str().unwrap_or("?"),
        report["generated"].as_str().unwrap_or("?")
    );
    if rows.len() == 1 {
        out.push_str("no watched IPs\n");
    } else {
        render(&rows, &mut out);
    }
    for ip in report["unknown"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{}: not known to the agent (in no pool, never seen claimed)",
            ip.as_str().unwrap_or("?")
        );
    }
    out
}

fn row(st: &Value, now: Option<i128>) -> [Vec<String>; 7] {
    let mut ip = vec![st["ip"].as_str().unwrap_or("?").to_owned()];
    if let Some(pool) = st["pool"].as_str() {
        ip.push(format!("pool {pool}"));
    }
    for service in st["services"].as_array().into_iter().flatten() {
        ip.push(format!("svc {}", service.as_str().unwrap_or("?")));
    }
    let owner = &st["owner"];
    let (owner_cell, since) = if owner.is_null() {
        (vec!["none".to_owned()], vec!["-".to_owned()])
    } else {
        let mut cell = vec![owner["mac"].as_str().unwrap_or("?").to_owned()];
        if let Some(place) = place(owner) {
            cell.push(place);
        }
        (cell, vec![ago(owner["since"].as_str(), now)])
    };
    let mut claims: Vec<String> = st["claims"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let mut line = format!(
                "{} x{} last {}",
                c["mac"].as_str().unwrap_or("?"),
                c["count"],
                ago(c["last"].as_str(), now)
            );
            if let Some(node) = c["node"].as_str() {
                let _ = write!(line, " ({node})");
            }
            line
        })
        .collect();
    if claims.is_empty() {
        claims.push("-".into());
    }
    let change = &st["last_owner_change"];
    let change_cell = if change.is_null() {
        vec!["-".to_owned()]
    } else {
        let gap = match change["gap_ms"].as_u64() {
            Some(ms) => format!("gap {ms} ms"),
            None => "gap unknown".to_owned(),
        };
        let node = |k: &str| change[k].as_str().map(|n| format!(" ({n})")).unwrap_or_default();
        vec![
            format!("{}{}", change["old_mac"].as_str().unwrap_or("?"), node("old_node")),
            format!("-> {}{}", change["new_mac"].as_str().unwrap_or("?"), node("new_node")),
            format!("{}, {gap}", ago(change["at"].as_str(), now)),
        ]
    };
    let mut conditions: Vec<String> = st["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let macs: Vec<&str> =
                c["macs"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            let mut line = format!(
                "{} since {}",
                c["event"].as_str().unwrap_or("?"),
                ago(c["first_seen"].as_str(), now)
            );
            if !macs.is_empty() {
                let _ = write!(line, " [{}]", macs.join(", "));
            }
            line
        })
        .collect();
    if conditions.is_empty() {
        conditions.push("-".into());
    }
    let r = &st["requests"];
    let mut requests = vec![format!(
        "{} seen, {} answered",
        r["seen"].as_u64().unwrap_or(0),
        r["answered"].as_u64().unwrap_or(0)
    )];
    let (unanswered, waiting) =
        (r["unanswered"].as_u64().unwrap_or(0), r["waiting"].as_u64().unwrap_or(0));
    if unanswered > 0 || waiting > 0 {
        requests.push(format!("{unanswered} unanswered, {waiting} waiting"));
    }
    [ip, owner_cell, since, claims, change_cell, conditions, requests]
}

/// "node-a eth0", "node-a", or nothing.
fn place(v: &Value) -> Option<String> {
    let node = v["node"].as_str()?;
    Some(match v["iface"].as_str() {
        Some(iface) => format!("{node} {iface}"),
        None => node.to_owned(),
    })
}

/// Nanoseconds since the epoch of an RFC 3339 time.
fn parse_time(s: &str) -> Option<i128> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp_nanos())
}

/// `12:00:01Z (5s ago)`: the time of day in UTC and how long before `now`.
fn ago(at: Option<&str>, now: Option<i128>) -> String {
    let Some(at) = at else {
        return "-".to_owned();
    };
    let clock = at.split_once('T').map_or(at, |(_, t)| t);
    let clock = match clock.split_once('.') {
        Some((hms, _)) => format!("{hms}Z"),
        None => clock.to_owned(),
    };
    let Some(secs) = parse_time(at).zip(now).map(|(t, now)| (now - t) / 1_000_000_000) else {
        return clock;
    };
    let secs = secs.max(0);
    let span = match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        7200..=172_799 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    };
    format!("{clock} ({span} ago)")
}

/// Columns padded to their widest line, rows separated by their first line.
fn render(rows: &[[Vec<String>; 7]], out: &mut String) {
    let widths: Vec<usize> = (0..7)
        .map(|c| {
            rows.iter().flat_map(|r| r[c].iter()).map(|l| l.chars().count()).max().unwrap_or(0)
        })
        .collect();
    for row in rows {
        let height = row.iter().map(Vec::len).max().unwrap_or(1);
        for line in 0..height {
            let mut text = String::new();
            for (c, cell) in row.iter().enumerate() {
                let value = cell.get(line).map(String::as_str).unwrap_or("");
                if c + 1 == row.len() {
                    text.push_str(value);
                } else {
                    let _ = write!(text, "{value:<width$}  ", width = widths[c]);
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_read_plain_or_chunked() {
        let plain = b"HTTP/1.1 404 Not Found\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_response(plain), Some((404, b"{}".to_vec())));
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(parse_response(chunked), Some((200, b"{\"a\":1}".to_vec())));
        assert_eq!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n"), None);
    }

    #[test]
    fn the_table_shows_owner_claims_change_conditions_and_requests() {
        let view = serde_json::to_value(arpwatch_core::status::sample()).unwrap();
        let report = json!({
            "server": "127.0.0.1:9851", "node": "node-a", "generated": view["generated"],
            "ips": view["ips"], "unknown": ["203.0.113.9"],
        });
        let text = table(&report);
        for expected in [
            "arpwatch on node-a (127.0.0.1:9851)",
            "192.0.2.10",
            "svc shop/web",
            "node-b eth0",
            "02:00:00:00:00:0a x6 last 14:16:00Z (1s ago) (node-a)",
            "-> 02:00:00:00:00:0b (node-b)",
            "gap 1500 ms",
            "multi_responder since 14:15:00Z (61s ago) [02:00:00:00:00:0a, 02:00:00:00:00:0b]",
            "40 seen, 38 answered",
            "2 unanswered, 0 waiting",
            "192.0.2.11",
            "203.0.113.9: not known to the agent",
        ] {
            assert!(text.contains(expected), "{expected:?} not in\n{text}");
        }
    }
}
