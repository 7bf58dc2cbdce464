//! The status API and `arpwatch status` against the running binary in namespace labs, during the
//! incidents of SPEC §1 with the kernel's own ARP: what `/api/v1/ips/{vip}` and `arpwatch status
//! VIP` (run inside the lab, against the agent's default address 127.0.0.1:9851) say during an
//! IPVS-without-strictARP multi-responder, a failover and an unanswered VIP, compared with the
//! events the binary printed; `/api/v1/events?since=`; limits and errors; `--api off`. Every wait
//! polls with a deadline. Needs root; fails, never skips, without it.

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Output;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arpwatch_core::testkit::frames::{ip_bytes, mac_bytes, ArpFrame};
use serde_json::Value;
use support::lab::{
    arpwatch_bin, cluster, get, hold_vip_like_ipvs, Arpwatch, Finished, Netns, TempConfig, METRICS,
};

const VIP: &str = "192.0.2.100";

/// arpwatch watching the lab's client with the VIP as a pool, serving on [`METRICS`].
fn start(client: &Netns, config: &TempConfig, extra: &[&str]) -> Arpwatch {
    let mut args = vec![
        "watch",
        "--iface",
        "eth0",
        "--format",
        "json",
        "--config",
        config.arg(),
        "--metrics-addr",
        METRICS,
        // An upper bound only: each test stops it with SIGINT once it has seen enough.
        "--duration",
        "60",
    ];
    args.extend_from_slice(extra);
    let mut watch = Arpwatch::start(Some(client), &args);
    watch.wait_attached(&["eth0"]);
    watch.wait_for_stderr("serving metrics", Duration::from_secs(10));
    watch
}

fn vip_pool() -> TempConfig {
    TempConfig::new(&format!("[[pools]]\nname = \"vips\"\ncidrs = [\"{VIP}/32\"]\n"))
}

fn stop(watch: Arpwatch) -> Finished {
    watch.signal(libc::SIGINT);
    let done = watch.finish(Duration::from_secs(30));
    assert!(done.status.success(), "arpwatch failed: {}\n{}", done.status, done.stderr);
    done
}

/// `method path` on the agent inside `ns`: (status, JSON body, `null` if not JSON).
fn call(ns: &Netns, method: &str, path: &str) -> (u16, Value) {
    let (method, path) = (method.to_owned(), path.to_owned());
    ns.run_inside(move || {
        let mut stream = TcpStream::connect(METRICS).expect("connect to the agent");
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: arpwatch\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("an answer within 5 s");
        let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status");
        let body = response.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    })
}

fn get_json(ns: &Netns, path: &str) -> Value {
    let (status, body) = call(ns, "GET", path);
    assert_eq!(status, 200, "GET {path}: {body}");
    assert_eq!(body["api_version"], 1, "{body}");
    body
}

/// Polls `GET path` until `done(body)`; panics with the last body after `timeout`.
fn poll(ns: &Netns, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let body = get_json(ns, path);
        if done(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{what} not seen within 15 s: {body:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `arpwatch status ARGS` run inside `ns` (it asks 127.0.0.1:9851 there by default).
fn status_cmd(ns: &Netns, args: &[&str]) -> Output {
    let out = ns.command(arpwatch_bin()).arg("status").args(args).output().expect("run status");
    assert!(out.status.code().is_some(), "arpwatch status was killed");
    out
}

fn status_json(ns: &Netns, args: &[&str]) -> Value {
    let mut full = args.to_vec();
    full.extend(["--format", "json"]);
    let out = status_cmd(ns, &full);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("status --format json prints JSON")
}

fn macs(values: &Value, key: &str) -> BTreeSet<String> {
    values.as_array().into_iter().flatten().map(|v| v[key].as_str().unwrap().to_owned()).collect()
}

fn now_rfc3339() -> String {
    let ns = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i128;
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ns).unwrap();
    t.format(&time::format_description::well_known::Rfc3339).unwrap()
}

#[test]
fn during_ipvs_without_strict_arp_the_vip_shows_both_claimants_and_the_open_multi_responder() {
    let lan = cluster("api", 2);
    let (client, nodes) = (&lan.hosts[0], &lan.hosts[1..]);
    for node in nodes {
        hold_vip_like_ipvs(node, VIP, false);
    }
    let node_macs: BTreeSet<String> = nodes.iter().map(|n| n.mac("eth0")).collect();
    let config = vip_pool();
    let before = now_rfc3339();
    let watch = start(client, &config, &[]);

    client.udp_to(VIP);
    client.udp_to("192.0.2.11"); // a second owned IP, for the pages
    let path = format!("/api/v1/ips/{VIP}");
    let body = poll(client, &path, "two claimants and an open multi_responder", |b| {
        b["ip"]["claims"].as_array().is_some_and(|c| c.len() == 2)
            && b["ip"]["conditions"].as_array().is_some_and(|c| !c.is_empty())
    });
    let st = &body["ip"];
    assert_eq!(macs(&st["claims"], "mac"), node_macs, "{st:#}");
    assert_eq!(st["pool"], "vips");
    let condition = &st["conditions"][0];
    assert_eq!(condition["event"], "multi_responder");
    let involved: BTreeSet<String> = condition["macs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(involved, node_macs);
    let conditions = get_json(client, "/api/v1/conditions");
    assert!(conditions["conditions"].as_array().unwrap().contains(condition), "{conditions:#}");

    // `arpwatch status VIP`, inside the lab: the same, as JSON and as a table.
    let report = status_json(client, &[VIP]);
    let shown = &report["ips"][0];
    assert_eq!(shown["ip"], VIP);
    assert_eq!(macs(&shown["claims"], "mac"), node_macs);
    assert_eq!(shown["conditions"][0]["event"], "multi_responder");
    let out = status_cmd(client, &[VIP, "--format", "text"]);
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    for mac in &node_macs {
        assert!(table.contains(mac.as_str()), "{mac} not in\n{table}");
    }
    assert!(table.contains("multi_responder since"), "{table}");

    // Pages and limits.
    // (The nodes may have asked for the client by now, making its IP owned too.)
    let all = get_json(client, "/api/v1/ips?limit=5000");
    let listed = |page: &Value| -> Vec<String> {
        page["ips"].as_array().unwrap().iter().map(|s| s["ip"].as_str().unwrap().into()).collect()
    };
    let every = listed(&all);
    assert!(every.contains(&VIP.to_owned()) && every.contains(&"192.0.2.11".to_owned()));
    assert_eq!(all["total"].as_u64(), Some(every.len() as u64));
    let mut paged = Vec::new();
    let mut page = get_json(client, "/api/v1/ips?limit=1");
    loop {
        assert_eq!(page["ips"].as_array().unwrap().len(), 1);
        paged.extend(listed(&page));
        match page["next"].as_str() {
            Some(next) => {
                assert_eq!(page["truncated"], true);
                page = get_json(client, next);
            }
            None => break,
        }
    }
    assert_eq!(paged, every, "the pages add up to the whole list");
    // A CIDR, filtered by the client over the pages.
    let report = status_json(client, &["192.0.2.96/28"]);
    assert_eq!(report["ips"].as_array().unwrap().len(), 1);
    assert_eq!(report["ips"][0]["ip"], VIP);

    // Errors, in JSON.
    for (method, path, code) in [
        ("GET", "/api/v1/ips/192.0.2.300", 400),
        ("GET", "/api/v1/ips?limit=0", 400),
        ("GET", "/api/v1/events?since=yesterday", 400),
        ("GET", "/api/v1/ips/203.0.113.9", 404),
        ("GET", "/api/v1/nothing", 404),
        ("POST", "/api/v1/ips", 405),
        ("PUT", &path, 405),
    ] {
        let (status, body) = call(client, method, path);
        assert_eq!(status, code, "{method} {path}: {body}");
        assert_eq!(body["api_version"], 1);
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
    }
    let unknown = status_json(client, &["203.0.113.9"]);
    assert_eq!(unknown["unknown"], serde_json::json!(["203.0.113.9"]));
    let (status, page) = get(client, "/");
    assert_eq!(status, 200);
    assert!(page.contains("<html"), "{page}");

    // The events the API had are the lines the binary printed, from the start.
    let events = get_json(client, &format!("/api/v1/events?since={before}"));
    let events = events["events"].as_array().unwrap().clone();
    let done = stop(watch);
    let printed = done.json_lines();
    assert!(events.iter().any(|e| e["event"] == "multi_responder"), "{events:#?}");
    assert_eq!(events[..], printed[..events.len()], "the API's events are the printed lines");
}

/// A speaker's gratuitous announcement of the VIP, MetalLB style: a request and a reply at once.
fn announce(node: &Netns) {
    let mac = mac_bytes(&node.mac("eth0"));
    let frames = [1, 2].map(|op| ArpFrame::gratuitous(op, mac, ip_bytes(VIP)).bytes());
    node.send_frames("eth0", &frames);
}

#[test]
fn after_a_failover_the_last_owner_change_and_its_gap_are_the_owner_change_events() {
    let lan = cluster("apifo", 2);
    let (client, a, b) = (&lan.hosts[0], &lan.hosts[1], &lan.hosts[2]);
    a.add_addr("eth0", &format!("{VIP}/32"));
    let (mac_a, mac_b) = (a.mac("eth0"), b.mac("eth0"));
    let config = vip_pool();
    let watch = start(client, &config, &[]);

    client.udp_to(VIP); // A answers: A owns the VIP
    let path = format!("/api/v1/ips/{VIP}");
    poll(client, &path, "A as the owner", |b| b["ip"]["owner"]["mac"] == mac_a.as_str());
    a.ip(&["addr", "del", &format!("{VIP}/32"), "dev", "eth0"]);
    b.add_addr("eth0", &format!("{VIP}/32"));
    announce(b);
    let body = poll(client, &path, "the owner change", |b| !b["ip"]["last_owner_change"].is_null());
    let change = body["ip"]["last_owner_change"].clone();
    assert_eq!(
        (change["old_mac"].as_str(), change["new_mac"].as_str()),
        (Some(&*mac_a), Some(&*mac_b))
    );
    assert_eq!(change["reported"], true);
    assert_eq!(body["ip"]["owner"]["mac"], mac_b.as_str());
    assert_eq!(body["ip"]["owner"]["since"], change["at"]);
    let report = status_json(client, &[VIP]);
    assert_eq!(report["ips"][0]["last_owner_change"], change);
    let table = String::from_utf8(status_cmd(client, &[VIP, "--format", "text"]).stdout).unwrap();
    assert!(table.contains(&format!("-> {mac_b}")), "{table}");

    let done = stop(watch);
    let events = done.events("owner_change", VIP);
    assert_eq!(events.len(), 1, "{}", done.stdout);
    let event = &events[0];
    assert_eq!(change["gap_ms"], event["gap_ms"], "the gap is the event's: {event}");
    assert!(change["gap_ms"].as_u64().is_some());
    assert_eq!(change["at"], event["ts"]);
    assert_eq!((&event["old_mac"], &event["new_mac"]), (&change["old_mac"], &change["new_mac"]));
}

#[test]
fn an_unanswered_vip_shows_requests_seen_and_none_answered() {
    let lan = cluster("apiun", 1);
    let client = &lan.hosts[0];
    let config = vip_pool();
    let watch = start(client, &config, &[]);

    // Nobody holds the VIP: the client's kernel asks three times, a second apart.
    client.udp_to(VIP);
    let path = format!("/api/v1/ips/{VIP}");
    let body = poll(client, &path, "unanswered requests", |b| {
        b["ip"]["requests"]["unanswered"].as_u64().is_some_and(|n| n >= 2)
    });
    let st = &body["ip"];
    let r = &st["requests"];
    assert!(r["seen"].as_u64().unwrap() >= 2, "{r}");
    assert_eq!(r["answered"], 0);
    assert!(st["owner"].is_null() && st["claims"].as_array().unwrap().is_empty(), "{st:#}");
    let open: Vec<&str> =
        st["conditions"].as_array().unwrap().iter().map(|c| c["event"].as_str().unwrap()).collect();
    assert_eq!(open, ["unanswered"]);
    let table = String::from_utf8(status_cmd(client, &[VIP, "--format", "text"]).stdout).unwrap();
    assert!(table.contains("seen, 0 answered"), "{table}");
    assert!(table.contains("unanswered since"), "{table}");

    let done = stop(watch);
    assert!(!done.events("unanswered", VIP).is_empty(), "{}", done.stdout);
}

#[test]
fn with_api_off_nothing_answers_but_the_metrics_and_status_says_so() {
    let lan = cluster("apioff", 1);
    let client = &lan.hosts[0];
    let config = vip_pool();
    let watch = start(client, &config, &["--api", "off"]);
    for path in ["/", "/api/v1/ips", &format!("/api/v1/ips/{VIP}")] {
        assert_eq!(get(client, path).0, 404, "{path}");
    }
    assert_eq!(get(client, "/metrics").0, 200);
    let out = status_cmd(client, &[VIP]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("does not serve the status API"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    stop(watch);

    // No agent at all: exit 1, one sentence. Bad usage: exit 2.
    let out = status_cmd(client, &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("arpwatch: cannot reach the agent at 127.0.0.1:9851"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    for args in [&["192.0.2.300"][..], &["--server", "nowhere"], &["--format", "yaml"]] {
        assert_eq!(status_cmd(client, args).status.code(), Some(2), "{args:?}");
    }
}
