//! The metrics endpoint over real HTTP on loopback: `/metrics`, `/healthz`, `/readyz`, values
//! after observations and events went through the API, readiness turning, and bounded label
//! cardinality under thousands of random IPs and MACs.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arpwatch::metrics::{Metrics, MetricsOptions, MetricsServer, CONTENT_TYPE};
use arpwatch_core::config::Config;
use arpwatch_core::event::{
    Announced, Condition, ConditionState, Detail, Event, Lifecycle, ResponderForm, Seen,
};
use arpwatch_core::observation::{Direction, MacAddr, Observation, Timestamp, VlanTags};
use arpwatch_core::testkit::observations::Frame;

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

/// Serves `metrics` on 127.0.0.1 with a port the kernel picks, from a thread of its own.
fn serve(metrics: &Metrics) -> SocketAddr {
    let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap()).expect("bind");
    let addr = server.local_addr();
    let exporter = metrics.exporter();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(server.run(exporter)).unwrap();
    });
    addr
}

fn now() -> Timestamp {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    Timestamp::from_nanos(since_epoch.as_nanos() as u64)
}

fn mac(n: u64) -> MacAddr {
    let b = n.to_be_bytes();
    MacAddr([0x02, b[3], b[4], b[5], b[6], b[7]])
}

/// A reply from `from` for `ip`, to 10.20.255.1, seen now on `eth0` in `direction`.
fn reply(direction: Direction, ip: Ipv4Addr, from: MacAddr) -> Observation {
    Frame::at(now())
        .reply(from, ip)
        .to(mac(0x99), Ipv4Addr::new(10, 20, 255, 1))
        .direction(direction)
        .build()
}

/// Where an event was seen: eth0, ingress, untagged.
fn seen() -> Seen {
    Seen { iface: "eth0".into(), vlan: VlanTags::NONE, direction: Some(Direction::Ingress) }
}

/// The value of the sample `series` (metric name and labels exactly as exported).
fn value(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
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
    let mut metrics = Metrics::new(&Config::from_toml(CONFIG).unwrap(), &MetricsOptions::default());
    let addr = serve(&metrics);

    let health = get(addr, "/healthz");
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));

    let ready = get(addr, "/readyz");
    assert_eq!(ready.status, 503);
    assert_eq!(ready.body, "not ready: no XDP program is attached to any interface\n");
    metrics.set_attached(2);
    let ready = get(addr, "/readyz");
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (503, "not ready: the ring buffer has not been drained yet\n")
    );
    metrics.drained(now());
    let ready = get(addr, "/readyz");
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    // A drain loop that stopped: stale after the configured 10 s.
    let long_ago = Timestamp::from_nanos(now().as_nanos() - 60_000_000_000);
    metrics.drained(long_ago);
    let ready = get(addr, "/readyz");
    assert_eq!(ready.status, 503);
    assert!(
        ready.body.starts_with("not ready: the ring buffer was last drained 6"),
        "{}",
        ready.body
    );
    assert_eq!(ready.body.lines().count(), 1);
    metrics.drained(now());
    assert_eq!(get(addr, "/readyz").status, 200);

    // A multi-responder as the pipeline would pass it on: two MACs answer a VIP, this node
    // answers it itself on egress, the engine reports the condition.
    let vip = Ipv4Addr::new(192, 0, 2, 10);
    metrics.observe(&reply(Direction::Ingress, vip, mac(1)));
    metrics.observe(&reply(Direction::Ingress, vip, mac(2)));
    metrics.observe(&reply(Direction::Egress, vip, mac(3)));
    let lifecycle = Lifecycle {
        state: ConditionState::Start,
        count: 1,
        first_seen: now(),
        last_seen: now(),
        macs: vec![mac(1), mac(2)],
    };
    let condition = Condition::MultiResponder { form: ResponderForm::Sustained, requester: None };
    let start = Event::new(now(), vip, seen(), None, Detail::Lasting { lifecycle, condition });
    metrics.event(&start);

    let scrape = get(addr, "/metrics");
    assert_eq!(scrape.status, 200);
    assert_eq!(scrape.content_type, CONTENT_TYPE);
    let body = &scrape.body;
    assert!(body.ends_with("# EOF\n"), "{body}");
    let expect = [
        (r#"arpwatch_arp_frames_total{iface="eth0",direction="ingress",op="reply"}"#, 2.0),
        (r#"arpwatch_arp_frames_total{iface="eth0",direction="egress",op="reply"}"#, 1.0),
        (r#"arpwatch_events_total{event="multi_responder",severity="critical"}"#, 1.0),
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

    let mut end = start.clone();
    if let Detail::Lasting { lifecycle, .. } = &mut end.detail {
        lifecycle.state = ConditionState::End;
    }
    metrics.event(&end);
    let body = get(addr, "/metrics").body;
    assert_eq!(
        value(
            &body,
            r#"arpwatch_pool_ip_condition{pool="control-plane",ip="192.0.2.10",condition="multi_responder"}"#
        ),
        Some(0.0)
    );

    assert_eq!(get(addr, "/").status, 404);
    let post = http(addr, "POST", "/metrics");
    assert_eq!(post.status, 405);
    let head = http(addr, "HEAD", "/healthz");
    assert_eq!((head.status, head.body.as_str()), (200, ""));
}

#[test]
fn cardinality_stays_bounded_under_thousands_of_random_ips() {
    let cap = 64;
    let options = MetricsOptions { max_ips_per_pool: cap, ..MetricsOptions::default() };
    let mut metrics = Metrics::new(&Config::from_toml(CONFIG).unwrap(), &options);
    let addr = serve(&metrics);
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let (mut in_pool, mut outside) = (0, 0);
    // The first `cap` distinct pool IPs get series; every later update of another is refused.
    let mut with_series = std::collections::HashSet::new();
    let mut refused = 0;
    for _ in 0..20_000 {
        let r = random.next();
        let ip = if r & 1 == 0 {
            // Anywhere in the /16 pool.
            in_pool += 1;
            let ip = Ipv4Addr::new(10, 20, (r >> 8) as u8, (r >> 16) as u8);
            if with_series.len() < cap {
                with_series.insert(ip);
            }
            if !with_series.contains(&ip) {
                // Its claim and its event.
                refused += 2;
            }
            ip
        } else {
            // Anywhere outside both pools.
            outside += 1;
            Ipv4Addr::new(100, (r >> 8) as u8, (r >> 16) as u8, (r >> 24) as u8)
        };
        let direction = if r & 2 == 0 { Direction::Ingress } else { Direction::Egress };
        metrics.observe(&reply(direction, ip, mac(r >> 32)));
        let detail = Detail::OwnerChange {
            old_mac: mac(1),
            new_mac: mac(r >> 32),
            announced: Announced::Gratuitous,
            gap_ms: None,
        };
        metrics.event(&Event::new(now(), ip, seen(), None, detail));
    }
    assert!(in_pool > 9_000 && outside > 9_000);

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
    assert_eq!(value(&body, "arpwatch_pool_ip_series_dropped_total"), Some(f64::from(refused)));
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
