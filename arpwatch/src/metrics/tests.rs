use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use arpwatch_core::config::Config;
use arpwatch_core::engine::Evictions;
use arpwatch_core::event::{
    Announced, Condition, ConditionState, Detail, Lifecycle, Requester, ResponderForm, Seen,
    StormScope,
};
use arpwatch_core::observation::{MacAddr, VlanTags};
use arpwatch_core::testkit::observations::{Frame, T0_SECS};

const POOL_CONFIG: &str = r#"
[[pools]]
name = "vips"
cidrs = ["192.0.2.240/28"]
[thresholds]
concurrency_window = "10s"
"#;

fn metrics(config: &str) -> Metrics {
    Metrics::new(&Config::from_toml(config).unwrap(), &MetricsOptions::default())
}

fn mac(last: u8) -> MacAddr {
    MacAddr([2, 0, 0, 0, 0, last])
}

fn at(secs: u64) -> Timestamp {
    Timestamp::from_secs(T0_SECS + secs)
}

const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);

/// A reply from `from` for `ip` to the client (`mac(0x99)` at 192.0.2.99), on `iface` at `ts`.
fn reply(iface: &Arc<str>, ts: Timestamp, ip: Ipv4Addr, from: MacAddr) -> Frame {
    Frame::at(ts).on(iface.clone()).reply(from, ip).to(mac(0x99), CLIENT_IP)
}

/// The client asking for `ip`, broadcast.
fn request(iface: &Arc<str>, ts: Timestamp, ip: Ipv4Addr) -> Frame {
    Frame::at(ts).on(iface.clone()).request(mac(0x99), CLIENT_IP).asking(ip)
}

/// The value of the one sample line that starts with `series` (name and labels, exactly).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

/// An event about `ip` seen on eth0 at `at(0)`.
fn event(ip: Ipv4Addr, detail: Detail) -> Event {
    let seen =
        Seen { iface: "eth0".into(), vlan: VlanTags::NONE, direction: Some(Direction::Ingress) };
    Event::new(at(0), ip, seen, None, detail)
}

fn owner_change(ip: Ipv4Addr) -> Event {
    let detail = Detail::OwnerChange {
        old_mac: mac(1),
        new_mac: mac(2),
        announced: Announced::Gratuitous,
        gap_ms: None,
    };
    event(ip, detail)
}

fn condition_event(kind: EventKind, ip: Ipv4Addr, state: ConditionState) -> Event {
    let condition = match kind {
        EventKind::MultiResponder => {
            Condition::MultiResponder { form: ResponderForm::Sustained, requester: None }
        }
        EventKind::Flapping => Condition::Flapping { old_mac: mac(1), new_mac: mac(2) },
        EventKind::Unanswered => Condition::Unanswered {
            mac: None,
            requester: Requester { mac: mac(0x99), ip: Ipv4Addr::new(192, 0, 2, 99) },
        },
        EventKind::Storm => Condition::Storm { scope: StormScope::Iface, mac: None, rate: 600 },
        other => panic!("{other:?} is not a lasting condition"),
    };
    let lifecycle =
        Lifecycle { state, count: 1, first_seen: at(0), last_seen: at(0), macs: Vec::new() };
    event(ip, Detail::Lasting { lifecycle, condition })
}

const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 240);

#[test]
fn frames_are_counted_per_interface_direction_and_op() {
    let mut m = metrics("");
    let eth0: Arc<str> = "eth0".into();
    let eth1: Arc<str> = "eth1".into();
    for _ in 0..3 {
        m.observe(&request(&eth0, at(0), VIP));
    }
    m.observe(&reply(&eth1, at(0), VIP, mac(1)));
    m.observe(&reply(&eth0, at(0), VIP, mac(1)).egress());
    // A different Arc with the same name is the same interface.
    m.observe(&request(&"eth0".into(), at(0), VIP));

    let text = m.encode();
    let frames = |labels: &str| value(&text, &format!("arpwatch_arp_frames_total{{{labels}}}"));
    assert_eq!(frames(r#"iface="eth0",direction="ingress",op="request""#), Some(4.0));
    assert_eq!(frames(r#"iface="eth0",direction="ingress",op="reply""#), Some(0.0));
    assert_eq!(frames(r#"iface="eth0",direction="egress",op="reply""#), Some(1.0));
    assert_eq!(frames(r#"iface="eth1",direction="ingress",op="reply""#), Some(1.0));
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(
        value(&text, &format!("arpwatch_build_info{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"))),
        Some(1.0)
    );
}

#[test]
fn frames_the_kernel_folded_into_an_observation_are_counted() {
    let mut m = metrics("");
    let eth0: Arc<str> = "eth0".into();
    m.observe(&reply(&eth0, at(0), VIP, mac(1)).repeats(4));
    let series = r#"arpwatch_arp_frames_total{iface="eth0",direction="ingress",op="reply"}"#;
    assert_eq!(value(&m.encode(), series), Some(5.0));
}

#[test]
fn every_event_kind_is_exported_from_the_start_and_counted() {
    let mut m = metrics("");
    let text = m.encode();
    for kind in EventKind::ALL {
        let series = format!(
            "arpwatch_events_total{{event=\"{}\",severity=\"{}\"}}",
            kind.as_str(),
            kind.severity().as_str()
        );
        assert_eq!(value(&text, &series), Some(0.0), "{series}");
    }
    m.event(&event(VIP, Detail::NewBinding { mac: mac(1), announced: Announced::Reply }));
    m.event(&condition_event(EventKind::Storm, Ipv4Addr::UNSPECIFIED, ConditionState::Start));
    m.event(&condition_event(EventKind::Storm, Ipv4Addr::UNSPECIFIED, ConditionState::End));
    let text = m.encode();
    assert_eq!(
        value(&text, r#"arpwatch_events_total{event="new_binding",severity="info"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(&text, r#"arpwatch_events_total{event="storm",severity="warning"}"#),
        Some(2.0)
    );
}

#[test]
fn claimants_count_distinct_macs_within_the_concurrency_window() {
    let mut m = metrics(POOL_CONFIG);
    let eth0: Arc<str> = "eth0".into();
    let claimants = r#"arpwatch_pool_ip_claimants{pool="vips",ip="192.0.2.240"}"#;

    // A request alone makes no series.
    m.observe(&request(&eth0, at(0), VIP));
    assert_eq!(value(&m.encode(), claimants), None);

    m.observe(&reply(&eth0, at(0), VIP, mac(1)));
    m.observe(&reply(&eth0, at(1), VIP, mac(2)));
    m.observe(&reply(&eth0, at(2), VIP, mac(1)));
    assert_eq!(value(&m.encode(), claimants), Some(2.0));

    // mac(2) claimed last at 1 s: gone from the window after 11 s; mac(1) (2 s) stays to 12 s.
    m.tick(at(11).saturating_add(Duration::from_millis(500)));
    assert_eq!(value(&m.encode(), claimants), Some(1.0));
    m.tick(at(13));
    assert_eq!(value(&m.encode(), claimants), Some(0.0));

    // A gratuitous request (SPA = TPA) is a claim too.
    m.observe(&Frame::at(at(14)).announce(ArpOp::Request, mac(3), VIP));
    assert_eq!(value(&m.encode(), claimants), Some(1.0));
}

#[test]
fn claimants_are_capped_at_max_macs_per_ip() {
    let mut m = metrics(&format!("{POOL_CONFIG}[caps]\nmax_macs_per_ip = 4\n"));
    let eth0: Arc<str> = "eth0".into();
    for last in 1..=20 {
        m.observe(&reply(&eth0, at(0), VIP, mac(last)));
    }
    assert_eq!(
        value(&m.encode(), r#"arpwatch_pool_ip_claimants{pool="vips",ip="192.0.2.240"}"#),
        Some(4.0)
    );
}

#[test]
fn local_replies_count_this_nodes_egress_replies_per_interface() {
    let mut m = metrics(POOL_CONFIG);
    for (iface, n) in [("eth0", 3), ("eth1", 2)] {
        let iface: Arc<str> = iface.into();
        for i in 0..n {
            m.observe(&reply(&iface, at(i), VIP, mac(1)).egress());
        }
    }
    // Ingress replies (other hosts') and egress requests are not this node's replies.
    m.observe(&reply(&"eth0".into(), at(5), VIP, mac(2)));
    m.observe(&request(&"eth0".into(), at(5), VIP).egress());

    let text = m.encode();
    let replies = |iface: &str| {
        value(
            &text,
            &format!(
                "arpwatch_pool_ip_local_replies_total{{pool=\"vips\",ip=\"192.0.2.240\",iface=\"{iface}\"}}"
            ),
        )
    };
    assert_eq!(replies("eth0"), Some(3.0));
    assert_eq!(replies("eth1"), Some(2.0));
}

#[test]
fn owner_changes_and_conditions_follow_the_events_of_pool_ips() {
    let mut m = metrics(POOL_CONFIG);
    let outside = Ipv4Addr::new(198, 51, 100, 1);
    for ip in [VIP, VIP, outside] {
        m.event(&owner_change(ip));
    }
    let series = |condition: &str| {
        format!("arpwatch_pool_ip_condition{{pool=\"vips\",ip=\"192.0.2.240\",condition=\"{condition}\"}}")
    };
    let text = m.encode();
    assert_eq!(
        value(&text, r#"arpwatch_pool_ip_owner_changes_total{pool="vips",ip="192.0.2.240"}"#),
        Some(2.0)
    );
    assert!(!text.contains("198.51.100.1"), "{text}");
    for condition in ["multi_responder", "flapping", "unanswered"] {
        assert_eq!(value(&text, &series(condition)), Some(0.0));
    }

    let kinds = [EventKind::MultiResponder, EventKind::Flapping, EventKind::Unanswered];
    for kind in kinds {
        m.event(&condition_event(kind, VIP, ConditionState::Start));
    }
    m.event(&condition_event(EventKind::Flapping, VIP, ConditionState::Ongoing));
    let text = m.encode();
    for kind in kinds {
        assert_eq!(value(&text, &series(kind.as_str())), Some(1.0), "{}", kind.as_str());
    }
    m.event(&condition_event(EventKind::MultiResponder, VIP, ConditionState::End));
    let text = m.encode();
    assert_eq!(value(&text, &series("multi_responder")), Some(0.0));
    assert_eq!(value(&text, &series("flapping")), Some(1.0));
}

#[test]
fn pool_ip_series_are_capped_per_pool_and_drops_counted() {
    let config = Config::from_toml(
        "[[pools]]\nname = \"big\"\ncidrs = [\"10.0.0.0/16\"]\n[[pools]]\nname = \"small\"\ncidrs = [\"192.0.2.240/28\"]\n",
    )
    .unwrap();
    let options = MetricsOptions { max_ips_per_pool: 10, ..MetricsOptions::default() };
    let mut m = Metrics::new(&config, &options);
    let eth0: Arc<str> = "eth0".into();
    for i in 0..100u16 {
        let [hi, lo] = i.to_be_bytes();
        m.observe(&reply(&eth0, at(0), Ipv4Addr::new(10, 0, hi, lo), mac(1)));
    }
    // The full pool does not take the other pool's room.
    m.observe(&reply(&eth0, at(0), VIP, mac(1)));
    let text = m.encode();
    let claimant_series = |pool: &str| {
        text.lines()
            .filter(|l| l.starts_with(&format!("arpwatch_pool_ip_claimants{{pool=\"{pool}\"")))
            .count()
    };
    assert_eq!(claimant_series("big"), 10);
    assert_eq!(claimant_series("small"), 1);
    assert_eq!(value(&text, "arpwatch_pool_ip_series_dropped_total"), Some(90.0));
    // The IPs that have series keep being updated.
    m.observe(&reply(&eth0, at(1), Ipv4Addr::new(10, 0, 0, 0), mac(2)));
    assert_eq!(
        value(&m.encode(), r#"arpwatch_pool_ip_claimants{pool="big",ip="10.0.0.0"}"#),
        Some(2.0)
    );
}

#[test]
fn readings_appear_once_read_and_cover_every_direction_and_eviction_kind() {
    let m = metrics("");
    let text = m.encode();
    assert!(!text.contains("arpwatch_kernel_frames"), "{text}");
    assert!(!text.contains("arpwatch_tracked_ips"), "{text}");

    m.set_kernel(&CounterTotals::default());
    let stats = EngineStats {
        tracked_ips: 7,
        tracked_macs: 9,
        evictions: Evictions {
            ips: 1,
            macs: 2,
            senders: 3,
            interfaces: 4,
            pending_requests: 5,
            conditions: 6,
        },
        ..EngineStats::default()
    };
    m.set_engine(&stats);
    let text = m.encode();
    for name in [
        "arpwatch_kernel_frames_total",
        "arpwatch_kernel_arp_frames_total",
        "arpwatch_kernel_malformed_frames_total",
        "arpwatch_ring_full_drops_total",
    ] {
        for direction in ["ingress", "egress"] {
            let series = format!("{name}{{direction=\"{direction}\"}}");
            assert_eq!(value(&text, &series), Some(0.0), "{series}");
        }
    }
    assert!(text.contains("# TYPE arpwatch_ring_full_drops counter\n"), "{text}");
    assert_eq!(value(&text, "arpwatch_tracked_ips"), Some(7.0));
    assert_eq!(value(&text, "arpwatch_tracked_macs"), Some(9.0));
    for (kind, n) in [
        ("ips", 1.0),
        ("macs", 2.0),
        ("senders", 3.0),
        ("interfaces", 4.0),
        ("pending_requests", 5.0),
        ("conditions", 6.0),
    ] {
        let series = format!("arpwatch_evictions_total{{kind=\"{kind}\"}}");
        assert_eq!(value(&text, &series), Some(n), "{series}");
    }
}

#[test]
fn readiness_needs_an_attached_program_and_a_recent_drain() {
    let m = metrics("");
    let staleness = MetricsOptions::default().ready_staleness;
    let err = m.readiness(at(100)).unwrap_err();
    assert!(err.contains("no XDP program"), "{err}");
    m.set_attached(2);
    let err = m.readiness(at(100)).unwrap_err();
    assert!(err.contains("not been drained"), "{err}");
    m.drained(at(100));
    assert_eq!(m.readiness(at(100).saturating_add(staleness)), Ok(()));
    let err = m.readiness(at(101).saturating_add(staleness)).unwrap_err();
    assert!(err.contains("last drained 11.0 s ago (limit 10.0 s)"), "{err}");
    assert!(!err.contains('\n'));
    m.set_attached(0);
    assert!(m.readiness(at(100)).is_err());

    let text = m.encode();
    assert_eq!(value(&text, "arpwatch_attached_interfaces"), Some(0.0));
    assert_eq!(
        value(&text, "arpwatch_last_ring_drain_timestamp_seconds"),
        Some(at(100).as_nanos() as f64 / 1e9)
    );
}

#[test]
fn no_label_holds_a_mac() {
    let mut m = metrics(POOL_CONFIG);
    let eth0: Arc<str> = "eth0".into();
    m.observe(&reply(&eth0, at(0), VIP, mac(0xab)));
    m.event(&event(
        VIP,
        Detail::UnknownResponder { mac: mac(0xab), announced: Announced::Reply, count: 1 },
    ));
    assert!(!m.encode().contains("02:00:00:00:00:ab"));
}
