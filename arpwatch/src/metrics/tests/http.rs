//! The metrics endpoint over real HTTP on loopback: `/metrics`, `/healthz`, `/readyz`, the values
//! after frames went through the pipeline, readiness turning, and bounded label cardinality under
//! thousands of random IPs and MACs.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{SystemTime, UNIX_EPOCH};

use super::*;
use crate::metrics::{MetricsServer, CONTENT_TYPE};

const CONFIG: &str = r#"
[[pools]]
name = "metallb-default"
cidrs = ["10.20.0.0/16"]
[[pools]]
name = "control-plane"
cidrs = ["192.0.2.10"]
"#;

struct Reply {
    status: u16,
    content_type: String,
    body: String,
}

/// One GET (or another method) with a fresh connection, the way Prometheus and the kubelet ask.
fn http(addr: SocketAddr, method: &str, path: &str) -> Reply {
    let mut stream = TcpStream::connect(addr).expect("connect to the metrics server");
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read the response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let content_type = lines
        .filter_map(|l| l.split_once(": "))
        .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.to_owned())
        .unwrap_or_default();
    Reply { status, content_type, body: body.to_owned() }
}

fn get(addr: SocketAddr, path: &str) -> Reply {
    http(addr, "GET", path)
}

/// Serves the lab's metrics on 127.0.0.1 with a port the kernel picks, from a thread of its own.
fn serve(lab: &Lab) -> SocketAddr {
    let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap()).expect("bind");
    let addr = server.local_addr();
    let exporter = lab.exporter.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(server.run(exporter, None)).unwrap();
    });
    addr
}

fn now() -> Timestamp {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    Timestamp::from_nanos(since_epoch.as_nanos() as u64)
}

fn random_mac(n: u64) -> MacAddr {
    let b = n.to_be_bytes();
    MacAddr([0x02, b[3], b[4], b[5], b[6], b[7]])
}

/// xorshift64: random addresses without a dependency, the same every run.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn health_readiness_and_metrics_are_served() {
    let mut lab = Lab::detect(CONFIG);
    let addr = serve(&lab);

    let health = get(addr, "/healthz");
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));

    let ready = get(addr, "/readyz");
    assert_eq!(ready.status, 503);
    assert_eq!(ready.body, "not ready: no arpwatch program is attached to any interface\n");
    lab.health.set_attached(2);
    let ready = get(addr, "/readyz");
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (503, "not ready: the ring buffer has not been drained yet\n")
    );
    lab.health.drained(now());
    let ready = get(addr, "/readyz");
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    // A drain loop that stopped: stale after the configured 10 s.
    let long_ago = Timestamp::from_nanos(now().as_nanos() - 60_000_000_000);
    lab.health.drained(long_ago);
    let ready = get(addr, "/readyz");
    assert_eq!(ready.status, 503);
    assert!(
        ready.body.starts_with("not ready: the ring buffer was last drained 6"),
        "{}",
        ready.body
    );
    assert_eq!(ready.body.lines().count(), 1);
    lab.health.drained(now());
    assert_eq!(get(addr, "/readyz").status, 200);

    // Two MACs answer the client's request for a VIP and this node answers it itself on egress:
    // a multi-responder with three claimants.
    let vip = Ipv4Addr::new(192, 0, 2, 10);
    let t = now();
    let eth0 = eth("eth0");
    lab.feed(reply(&eth0, t, vip, mac(1)));
    lab.feed(reply(&eth0, t, vip, mac(2)));
    lab.feed(reply(&eth0, t, vip, mac(3)).egress());
    lab.pipeline.flush().unwrap();
    let multi = lab.printed(EventKind::MultiResponder);
    assert!(multi >= 1);

    let scrape = get(addr, "/metrics");
    assert_eq!(scrape.status, 200);
    assert_eq!(scrape.content_type, CONTENT_TYPE);
    let body = &scrape.body;
    assert!(body.ends_with("# EOF\n"), "{body}");
    let expect = [
        (r#"arpwatch_arp_frames_total{iface="eth0",direction="ingress",op="reply"}"#, 2.0),
        (r#"arpwatch_arp_frames_total{iface="eth0",direction="egress",op="reply"}"#, 1.0),
        (r#"arpwatch_events_total{event="multi_responder",severity="critical"}"#, multi as f64),
        (r#"arpwatch_events_total{event="owner_change",severity="warning"}"#, 0.0),
        (r#"arpwatch_pool_ip_claimants{pool="control-plane",ip="192.0.2.10"}"#, 3.0),
        (
            r#"arpwatch_pool_ip_local_replies_total{pool="control-plane",ip="192.0.2.10",iface="eth0"}"#,
            1.0,
        ),
        (
            r#"arpwatch_pool_ip_condition{pool="control-plane",ip="192.0.2.10",condition="multi_responder"}"#,
            1.0,
        ),
        ("arpwatch_attached_interfaces", 2.0),
    ];
    for (series, want) in expect {
        assert_eq!(value(body, series), Some(want), "{series} in\n{body}");
    }
    let version = format!("arpwatch_build_info{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"));
    assert_eq!(value(body, &version), Some(1.0));

    // Quiet for the quiet window (30 s): the condition ends, and so does its series.
    lab.tick(t.saturating_add(Duration::from_secs(31)));
    lab.pipeline.flush().unwrap();
    let body = get(addr, "/metrics").body;
    assert_eq!(
        value(
            &body,
            r#"arpwatch_pool_ip_condition{pool="control-plane",ip="192.0.2.10",condition="multi_responder"}"#
        ),
        Some(0.0)
    );
    assert_eq!(value(&body, CLAIMANTS_CONTROL_PLANE), Some(0.0));

    assert_eq!(get(addr, "/").status, 404);
    let post = http(addr, "POST", "/metrics");
    assert_eq!(post.status, 405);
    let head = http(addr, "HEAD", "/healthz");
    assert_eq!((head.status, head.body.as_str()), (200, ""));
}

const CLAIMANTS_CONTROL_PLANE: &str =
    r#"arpwatch_pool_ip_claimants{pool="control-plane",ip="192.0.2.10"}"#;

#[test]
fn cardinality_stays_bounded_under_thousands_of_random_ips() {
    let cap = 64;
    let options = MetricsOptions { max_ips_per_pool: cap, ..MetricsOptions::default() };
    let mut lab = Lab::with(CONFIG, &options, true);
    let addr = serve(&lab);
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let (mut in_pool, mut outside) = (0, 0);
    // The first `cap` distinct pool IPs get series; every later update of another is refused.
    let mut with_series = HashSet::new();
    let mut refused_claims = 0;
    let start = now();
    for i in 0..20_000u64 {
        let r = random.next();
        let ip = if r & 1 == 0 {
            // Anywhere in the /16 pool.
            in_pool += 1;
            let ip = Ipv4Addr::new(10, 20, (r >> 8) as u8, (r >> 16) as u8);
            if with_series.len() < cap {
                with_series.insert(ip);
            }
            refused_claims += u32::from(!with_series.contains(&ip));
            ip
        } else {
            // Anywhere outside both pools.
            outside += 1;
            Ipv4Addr::new(100, (r >> 8) as u8, (r >> 16) as u8, (r >> 24) as u8)
        };
        // 20 s apart: an IP claimed again by another MAC is an owner change, never a
        // multi-responder.
        let ts = start.saturating_add(Duration::from_secs(20 * i));
        let frame = reply(&eth("eth0"), ts, ip, random_mac(r >> 32));
        lab.feed(if r & 2 == 0 { frame } else { frame.egress() });
    }
    assert!(in_pool > 9_000 && outside > 9_000);
    lab.pipeline.flush().unwrap();
    // Owner changes the engine reported about pool IPs that had no series are refused too.
    let refused_events = events_printed(&lab)
        .iter()
        .filter(|e| e["event"] == "owner_change")
        .filter_map(|e| e["ip"].as_str()?.parse::<Ipv4Addr>().ok())
        .filter(|ip| ip.octets()[..2] == [10, 20] && !with_series.contains(ip))
        .count();

    let body = get(addr, "/metrics").body;
    let ips_of = |metric: &str| {
        let mut ips: Vec<&str> = body
            .lines()
            .filter(|l| l.starts_with(metric))
            .filter_map(|l| l.split("ip=\"").nth(1)?.split('"').next())
            .collect();
        ips.sort_unstable();
        ips.dedup();
        ips
    };
    let claimed = ips_of("arpwatch_pool_ip_claimants{");
    assert_eq!(claimed.len(), cap);
    assert!(claimed.iter().all(|ip| ip.starts_with("10.20.")), "{claimed:?}");
    assert_eq!(ips_of("arpwatch_pool_ip_owner_changes_total{"), claimed);
    assert_eq!(ips_of("arpwatch_pool_ip_condition{"), claimed);
    assert!(ips_of("arpwatch_pool_ip_local_replies_total{").len() <= cap);
    assert!(!body.contains("ip=\"100."), "IPs outside every pool must have no series");

    let mut expected: Vec<String> = with_series.iter().map(Ipv4Addr::to_string).collect();
    expected.sort_unstable();
    assert_eq!(claimed, expected);
    assert_eq!(
        value(&body, "arpwatch_pool_ip_series_dropped_total"),
        Some(f64::from(refused_claims) + refused_events as f64)
    );
    // 20,000 random MACs and no label carries one.
    assert!(!body.lines().any(|l| l.contains("02:")), "a MAC made it into a label");
    // The whole exposition stays small: a fixed set plus at most 5 + interfaces series per IP.
    let samples = body.lines().filter(|l| !l.starts_with('#')).count();
    assert!(samples < 40 + cap * 6, "{samples} samples");
}

#[test]
fn a_busy_address_is_an_error_at_bind() {
    let first = MetricsServer::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let err = MetricsServer::bind(first.local_addr()).err().expect("the port is taken");
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
}

/// Connections that send nothing, or a byte at a time, the way a slowloris client (or a stuck
/// scanner) does.
fn slow_connections(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|i| {
            let mut stream = TcpStream::connect(addr).expect("open a slow connection");
            if i % 2 == 0 {
                // Half of them start a request and never finish it.
                stream.write_all(b"G").unwrap();
            }
            stream
        })
        .collect()
}

/// One GET with a deadline: the status, or `None` if no answer came in time.
fn get_within(addr: SocketAddr, path: &str, deadline: Duration) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, deadline).ok()?;
    stream.set_read_timeout(Some(deadline)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).ok()?;
    raw.split(' ').nth(1)?.parse().ok()
}

/// How soon a probe or scrape must be answered while slow clients hold connections.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

#[test]
fn probes_and_scrapes_are_answered_under_200_slow_connections() {
    let lab = Lab::detect(CONFIG);
    let addr = serve(&lab);
    let mut slow = slow_connections(addr, 200);
    let mut worst = Duration::ZERO;
    for round in 0..10 {
        for path in ["/healthz", "/metrics", "/readyz"] {
            let started = std::time::Instant::now();
            // Answers take milliseconds; the bound leaves room for a loaded 2-core machine running
            // the other tests at once, and is still far below the > 10 s the slow clients caused.
            let status = get_within(addr, path, ANSWER_WITHIN);
            let took = started.elapsed();
            assert!(
                status.is_some(),
                "{path} unanswered within {ANSWER_WITHIN:?} under 200 slow connections (round {round})"
            );
            worst = worst.max(took);
        }
        // The slow clients keep going: one more byte on each connection still open, and new
        // connections for those the server closed.
        for stream in &mut slow {
            if stream.write_all(b"E").is_err() {
                *stream = TcpStream::connect(addr).expect("reopen a slow connection");
            }
        }
    }
    eprintln!("slowest answer under 200 slow connections: {worst:?}");
}
