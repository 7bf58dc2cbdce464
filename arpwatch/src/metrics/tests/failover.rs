//! Failover history: the gaps of owner changes per pool, owner changes per pool, and the current
//! owner of each pool IP as an info series, through the real pipeline (engine, annotator with a
//! cluster snapshot, metrics).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use arpwatch_core::cluster::{ClusterInputs, ClusterSnapshot, Inventory, NodeInfo};

const TWO_POOLS: &str = r#"
[[pools]]
name = "vips"
cidrs = ["192.0.2.240/28"]
[[pools]]
name = "other"
cidrs = ["198.51.100.0/28"]
[thresholds]
concurrency_window = "10s"
"#;

fn ms(secs: u64, millis: u64) -> Timestamp {
    at(secs).saturating_add(Duration::from_millis(millis))
}

/// A gratuitous ARP from `mac` for `ip` at `ts`: a failover announcement.
fn announce(ts: Timestamp, ip: Ipv4Addr, mac: MacAddr) -> Frame {
    Frame::at(ts).on(eth("eth0")).announce(ArpOp::Request, mac, ip)
}

/// The sample lines of `metric` (exactly that name, then its labels).
fn samples<'a>(text: &'a str, metric: &str) -> Vec<&'a str> {
    let prefix = format!("{metric}{{");
    text.lines().filter(|l| l.starts_with(&prefix)).collect()
}

fn owner(ip: &str, mac: &str, node: &str) -> String {
    format!(
        "arpwatch_pool_ip_owner{{pool=\"vips\",ip=\"{ip}\",mac=\"{mac}\",owner_node=\"{node}\"}}"
    )
}

fn bucket(pool: &str, le: &str) -> String {
    format!("arpwatch_failover_gap_seconds_bucket{{le=\"{le}\",pool=\"{pool}\"}}")
}

#[test]
fn failover_gaps_and_owner_changes_are_counted_per_pool_from_owner_change_events() {
    let mut lab = Lab::detect(TWO_POOLS);

    // Every configured pool is exported from the start, at zero.
    let text = lab.text();
    for pool in ["vips", "other"] {
        let changes = format!("arpwatch_pool_owner_changes_total{{pool=\"{pool}\"}}");
        assert_eq!(value(&text, &changes), Some(0.0), "{text}");
        assert_eq!(
            value(&text, &format!("arpwatch_failover_gap_seconds_count{{pool=\"{pool}\"}}")),
            Some(0.0)
        );
        assert_eq!(value(&text, &bucket(pool, "+Inf")), Some(0.0), "{text}");
    }
    assert!(text.contains("# TYPE arpwatch_failover_gap_seconds histogram\n"), "{text}");

    // A keepalived-style handover: A answers, B announces 300 ms later (gap 0.3 s); then A
    // takes the VIP back 15 s after B's last claim (gap 15 s).
    lab.feed(reply(&eth("eth0"), at(0), VIP, mac(1)));
    lab.feed(announce(ms(0, 300), VIP, mac(2)));
    lab.feed(announce(ms(15, 300), VIP, mac(1)));
    // Another IP of the pool fails over after 2.5 s, and an IP outside every pool does too.
    let second = Ipv4Addr::new(192, 0, 2, 241);
    let outside = Ipv4Addr::new(203, 0, 113, 1);
    for ip in [second, outside] {
        lab.feed(reply(&eth("eth0"), at(100), ip, mac(3)));
        lab.feed(announce(ms(102, 500), ip, mac(4)));
    }

    let text = lab.text();
    assert_eq!(lab.printed(EventKind::OwnerChange), 4, "{}", events_printed(&lab).len());
    let gaps: Vec<u64> = events_printed(&lab)
        .iter()
        .filter(|e| e["event"] == "owner_change" && e["pool"] == "vips")
        .map(|e| e["gap_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(gaps, [300, 15_000, 2_500]);

    assert_eq!(value(&text, r#"arpwatch_pool_owner_changes_total{pool="vips"}"#), Some(3.0));
    assert_eq!(value(&text, r#"arpwatch_pool_owner_changes_total{pool="other"}"#), Some(0.0));
    assert_eq!(value(&text, r#"arpwatch_failover_gap_seconds_count{pool="vips"}"#), Some(3.0));
    let sum = value(&text, r#"arpwatch_failover_gap_seconds_sum{pool="vips"}"#).unwrap();
    assert!((sum - 17.8).abs() < 1e-9, "{sum}");
    // Cumulative buckets: 0.3 s, 2.5 s and 15 s.
    for (le, n) in [
        ("0.1", 0.0),
        ("0.25", 0.0),
        ("0.5", 1.0),
        ("1.0", 1.0),
        ("2.0", 1.0),
        ("5.0", 2.0),
        ("10.0", 2.0),
        ("30.0", 3.0),
        ("60.0", 3.0),
        ("300.0", 3.0),
        ("+Inf", 3.0),
    ] {
        assert_eq!(value(&text, &bucket("vips", le)), Some(n), "le={le}\n{text}");
    }
    assert_eq!(samples(&text, "arpwatch_failover_gap_seconds_bucket").len(), 22);
    // The per-IP counter still counts each IP's own.
    assert_eq!(
        value(&text, r#"arpwatch_pool_ip_owner_changes_total{pool="vips",ip="192.0.2.240"}"#),
        Some(2.0)
    );
    assert!(!text.contains("203.0.113.1"), "{text}");
}

#[test]
fn the_owner_info_series_follows_the_owner_one_series_per_pool_ip() {
    let mut lab = Lab::detect(POOL_CONFIG);
    let eth0 = eth("eth0");
    // A request names no owner and makes no series.
    lab.feed(request(&eth0, at(0), VIP));
    assert!(samples(&lab.text(), "arpwatch_pool_ip_owner").is_empty());

    // The first claim makes the owner; without a cluster context its node is unknown.
    lab.feed(reply(&eth0, at(1), VIP, mac(1)));
    let text = lab.text();
    assert_eq!(value(&text, &owner("192.0.2.240", "02:00:00:00:00:01", "")), Some(1.0));
    assert_eq!(samples(&text, "arpwatch_pool_ip_owner").len(), 1, "{text}");

    // The owner's later claims change nothing; an owner change replaces the series.
    lab.feed(reply(&eth0, at(2), VIP, mac(1)));
    lab.feed(announce(at(20), VIP, mac(2)));
    let text = lab.text();
    assert_eq!(
        samples(&text, "arpwatch_pool_ip_owner"),
        [format!("{} 1", owner("192.0.2.240", "02:00:00:00:00:02", ""))]
    );

    // A second MAC answering the same request (a multi-responder) is no owner change: the
    // owner stays, and the IP keeps one series.
    lab.feed(reply(&eth0, at(40), VIP, mac(2)));
    lab.feed(reply(&eth0, at(40), VIP, mac(3)));
    assert_eq!(lab.printed(EventKind::MultiResponder), 1);
    let text = lab.text();
    assert_eq!(samples(&text, "arpwatch_pool_ip_owner").len(), 1, "{text}");
    assert_eq!(value(&text, &owner("192.0.2.240", "02:00:00:00:00:02", "")), Some(1.0));

    // Inside the open incident, claims alternating between its MACs move the owner without an
    // owner_change: the series follows the engine's owner all the same.
    let changes = lab.printed(EventKind::OwnerChange);
    lab.feed(announce(at(41), VIP, mac(3)));
    assert_eq!(lab.printed(EventKind::OwnerChange), changes, "a move within the incident");
    let text = lab.text();
    assert_eq!(samples(&text, "arpwatch_pool_ip_owner").len(), 1, "{text}");
    assert_eq!(value(&text, &owner("192.0.2.240", "02:00:00:00:00:03", "")), Some(1.0));

    // IPs outside every pool get none.
    lab.feed(reply(&eth0, at(50), Ipv4Addr::new(203, 0, 113, 1), mac(4)));
    assert!(!lab.text().contains("203.0.113.1"));
}

#[test]
fn owner_series_are_capped_with_the_other_pool_ip_series() {
    let options = MetricsOptions { max_ips_per_pool: 2, ..MetricsOptions::default() };
    let mut lab = Lab::with(POOL_CONFIG, &options, true);
    for last in 0..4u8 {
        let ip = Ipv4Addr::new(192, 0, 2, 240 + last);
        lab.feed(reply(&eth("eth0"), at(0), ip, mac(1)));
        lab.feed(announce(at(30), ip, mac(2)));
    }
    let text = lab.text();
    let owners = samples(&text, "arpwatch_pool_ip_owner");
    assert_eq!(owners.len(), 2, "{text}");
    assert!(owners.iter().all(|l| l.contains("02:00:00:00:00:02")), "{owners:?}");
    // Refused: two claims (claimants) and one owner change each for the two IPs beyond the cap.
    assert_eq!(value(&text, "arpwatch_pool_ip_series_dropped_total"), Some(6.0));
    // The pool's own series count every IP's failover, capped or not.
    assert_eq!(value(&text, r#"arpwatch_pool_owner_changes_total{pool="vips"}"#), Some(4.0));
    assert_eq!(value(&text, r#"arpwatch_failover_gap_seconds_count{pool="vips"}"#), Some(4.0));
}

/// Node-a owns `mac(1)` and node-b `mac(2)`, by their Leases.
fn two_nodes() -> Arc<ClusterSnapshot> {
    let node = |name: &str, last: u8| NodeInfo {
        name: name.into(),
        addresses: vec![Ipv4Addr::new(192, 0, 2, last).into()],
        ..NodeInfo::default()
    };
    let inventory = |name: &str, last: u8| Inventory {
        node: name.into(),
        interfaces: vec![("eth0".into(), mac(last))],
        renewed: at(0),
        duration: Duration::from_secs(3600),
    };
    let inputs = ClusterInputs {
        nodes: vec![node("node-a", 1), node("node-b", 2)],
        inventories: vec![inventory("node-a", 1), inventory("node-b", 2)],
        ..ClusterInputs::default()
    };
    Arc::new(ClusterSnapshot::build(&inputs, None, at(0)))
}

#[test]
fn the_owner_series_names_the_node_of_the_owners_mac_from_the_cluster_context() {
    let mut lab = Lab::detect(POOL_CONFIG);
    lab.pipeline.follow_cluster(Config::from_toml(POOL_CONFIG).unwrap(), None);
    lab.pipeline.set_cluster(Some(two_nodes()));
    let eth0 = eth("eth0");

    // node-a's first claim: its new_binding names node-a.
    lab.feed(reply(&eth0, at(1), VIP, mac(1)));
    let text = lab.text();
    assert_eq!(
        samples(&text, "arpwatch_pool_ip_owner"),
        [format!("{} 1", owner("192.0.2.240", "02:00:00:00:00:01", "node-a"))]
    );

    // Failover to node-b.
    lab.feed(announce(at(20), VIP, mac(2)));
    let text = lab.text();
    assert_eq!(
        samples(&text, "arpwatch_pool_ip_owner"),
        [format!("{} 1", owner("192.0.2.240", "02:00:00:00:00:02", "node-b"))]
    );

    // A MAC of no known node: the label is empty.
    lab.feed(announce(at(40), VIP, mac(9)));
    let text = lab.text();
    assert_eq!(
        samples(&text, "arpwatch_pool_ip_owner"),
        [format!("{} 1", owner("192.0.2.240", "02:00:00:00:00:09", ""))]
    );

    // An owner first seen asking from the IP (a weak claim: new_binding "request", no owner),
    // then answering: the owner is known at once, its node as soon as an event names it (here
    // its gratuitous ARP).
    let second = Ipv4Addr::new(192, 0, 2, 241);
    lab.feed(Frame::at(at(50)).on(eth0.clone()).request(mac(1), second).asking(CLIENT_IP));
    lab.feed(reply(&eth0, at(51), second, mac(1)));
    let ip = "192.0.2.241";
    assert_eq!(value(&lab.text(), &owner(ip, "02:00:00:00:00:01", "")), Some(1.0));
    lab.feed(announce(at(52), second, mac(1)));
    let text = lab.text();
    assert_eq!(value(&text, &owner(ip, "02:00:00:00:00:01", "node-a")), Some(1.0));
    assert_eq!(samples(&text, "arpwatch_pool_ip_owner").len(), 2, "{text}");
}

#[test]
fn a_reload_removes_the_series_of_pools_that_are_gone() {
    let mut lab = Lab::detect(TWO_POOLS);
    let other = Ipv4Addr::new(198, 51, 100, 1);
    for ip in [VIP, other] {
        lab.feed(reply(&eth("eth0"), at(0), ip, mac(1)));
        lab.feed(announce(at(30), ip, mac(2)));
    }
    let text = lab.text();
    assert_eq!(samples(&text, "arpwatch_pool_ip_owner").len(), 2, "{text}");
    assert_eq!(value(&text, r#"arpwatch_pool_owner_changes_total{pool="other"}"#), Some(1.0));

    // "other" is gone: its owner, gap and change series go; "vips" keeps its counts.
    lab.pipeline.reconfigure(&Config::from_toml(POOL_CONFIG).unwrap());
    let text = lab.text();
    assert!(!text.contains("pool=\"other\""), "{text}");
    assert_eq!(value(&text, r#"arpwatch_pool_owner_changes_total{pool="vips"}"#), Some(1.0));
    assert_eq!(value(&text, r#"arpwatch_failover_gap_seconds_count{pool="vips"}"#), Some(1.0));
    assert_eq!(value(&text, &owner("192.0.2.240", "02:00:00:00:00:02", "")), Some(1.0));
}
