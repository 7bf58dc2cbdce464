//! The metrics as the pipeline feeds them: frames in, the engine's decisions read out. Every test
//! drives a real [`Pipeline`] (engine, annotator, metrics) and reads the exported text.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

mod documented;
mod failover;
mod http;

use super::*;
use crate::output::{Format, Mode, Pipeline};
use arpwatch_core::config::Config;
use arpwatch_core::enrich::Annotator;
use arpwatch_core::event::EventKind;
use arpwatch_core::observation::{ArpOp, MacAddr};
use arpwatch_core::testkit::observations::{Frame, T0_SECS};

const POOL_CONFIG: &str = r#"
[[pools]]
name = "vips"
cidrs = ["192.0.2.240/28"]
[thresholds]
concurrency_window = "10s"
"#;

/// A pipeline that detects with `config`, its metrics' read side and the watch loop's handle.
struct Lab {
    pipeline: Pipeline<Vec<u8>>,
    exporter: Exporter,
    health: Health,
}

/// The JSON events the pipeline printed so far.
fn events_printed(lab: &Lab) -> Vec<serde_json::Value> {
    let out = std::str::from_utf8(lab.pipeline.output()).unwrap();
    out.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

impl Lab {
    fn detect(config: &str) -> Lab {
        Self::with(config, &MetricsOptions::default(), true)
    }

    fn raw(config: &str) -> Lab {
        Self::with(config, &MetricsOptions::default(), false)
    }

    fn with(config: &str, options: &MetricsOptions, detect: bool) -> Lab {
        let config = Config::from_toml(config).unwrap();
        let metrics = Metrics::new(&config, options);
        let (exporter, health) = (metrics.exporter(), metrics.health());
        let mode = if detect {
            let engine = Box::new(Engine::new(&config.engine));
            Mode::Detect { engine, annotator: Annotator::new("node-a") }
        } else {
            Mode::Raw
        };
        let pipeline = Pipeline::new(mode, Format::Json, Vec::new(), Some(metrics));
        Lab { pipeline, exporter, health }
    }

    fn feed(&mut self, frame: Frame) {
        self.pipeline.observe(&frame).unwrap();
    }

    fn tick(&mut self, ts: Timestamp) {
        self.pipeline.tick(ts).unwrap();
    }

    /// The exported text after the pipeline flushed (the watch loop flushes after each drain).
    fn text(&mut self) -> String {
        self.pipeline.flush().unwrap();
        self.exporter.encode()
    }

    /// The events the pipeline printed so far, by kind.
    fn printed(&self, kind: EventKind) -> usize {
        let needle = format!("\"event\":\"{}\"", kind.as_str());
        let out = std::str::from_utf8(self.pipeline.output()).unwrap();
        out.lines().filter(|l| l.contains(&needle)).count()
    }
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

const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 240);
const CLAIMANTS: &str = r#"arpwatch_pool_ip_claimants{pool="vips",ip="192.0.2.240"}"#;

fn eth(name: &str) -> Arc<str> {
    name.into()
}

#[test]
fn frames_are_counted_per_interface_direction_and_op() {
    let mut lab = Lab::raw("");
    for _ in 0..3 {
        lab.feed(request(&eth("eth0"), at(0), VIP));
    }
    lab.feed(reply(&eth("eth1"), at(0), VIP, mac(1)));
    lab.feed(reply(&eth("eth0"), at(0), VIP, mac(1)).egress());
    // A different Arc with the same name is the same interface.
    lab.feed(request(&eth("eth0"), at(0), VIP));

    let text = lab.text();
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
    // Without the engine there are no events to count and no claimants to read.
    assert!(!text.contains("arpwatch_events_total"), "{text}");
}

#[test]
fn frames_the_kernel_folded_into_an_observation_are_counted() {
    let mut lab = Lab::detect("");
    lab.feed(reply(&eth("eth0"), at(0), VIP, mac(1)).repeats(4));
    let series = r#"arpwatch_arp_frames_total{iface="eth0",direction="ingress",op="reply"}"#;
    assert_eq!(value(&lab.text(), series), Some(5.0));
}

#[test]
fn every_event_kind_is_exported_from_the_start_and_counted_as_the_engine_reports_it() {
    let mut lab = Lab::detect(POOL_CONFIG);
    let text = lab.exporter.encode();
    for kind in EventKind::ALL {
        let series = format!(
            "arpwatch_events_total{{event=\"{}\",severity=\"{}\"}}",
            kind.as_str(),
            kind.severity().as_str()
        );
        assert_eq!(value(&text, &series), Some(0.0), "{series}");
    }
    // Two MACs answering the client's one request: two bindings, a strong multi-responder.
    lab.feed(reply(&eth("eth0"), at(0), VIP, mac(1)));
    lab.feed(reply(&eth("eth0"), at(0), VIP, mac(2)));
    let text = lab.text();
    for kind in [EventKind::NewBinding, EventKind::MultiResponder] {
        let series = format!(
            "arpwatch_events_total{{event=\"{}\",severity=\"{}\"}}",
            kind.as_str(),
            kind.severity().as_str()
        );
        let printed = lab.printed(kind);
        assert!(printed > 0, "{}", kind.as_str());
        assert_eq!(value(&text, &series), Some(printed as f64), "{series}");
    }
}

#[test]
fn informational_events_beyond_the_budget_are_counted_as_summarised_per_kind() {
    let mut lab = Lab::detect("[thresholds]\ninfo_rate_per_iface = 1\ninfo_burst_per_iface = 2\n");
    let summarised = |text: &str, kind: EventKind| {
        value(text, &format!("arpwatch_events_summarised_total{{event=\"{}\"}}", kind.as_str()))
    };
    let text = lab.exporter.encode();
    for kind in [EventKind::NewBinding, EventKind::Gratuitous, EventKind::Probe] {
        assert_eq!(summarised(&text, kind), Some(0.0), "{}", kind.as_str());
    }
    // Five hosts answering at once: two bindings printed, three summarised.
    for host in 1..=5 {
        lab.feed(reply(&eth("eth0"), at(0), Ipv4Addr::new(198, 51, 100, host), mac(host)));
    }
    let text = lab.text();
    assert_eq!(lab.printed(EventKind::NewBinding), 2);
    assert_eq!(summarised(&text, EventKind::NewBinding), Some(3.0));
    assert_eq!(summarised(&text, EventKind::Gratuitous), Some(0.0));
    assert_eq!(summarised(&text, EventKind::MultiResponder), None, "only informational kinds");
}

#[test]
fn claimants_are_the_engines_within_the_concurrency_window() {
    let mut lab = Lab::detect(POOL_CONFIG);
    let eth0 = eth("eth0");

    // A request alone makes no series.
    lab.feed(request(&eth0, at(0), VIP));
    assert_eq!(value(&lab.text(), CLAIMANTS), None);

    lab.feed(reply(&eth0, at(0), VIP, mac(1)));
    lab.feed(reply(&eth0, at(1), VIP, mac(2)));
    lab.feed(reply(&eth0, at(2), VIP, mac(1)));
    assert_eq!(value(&lab.text(), CLAIMANTS), Some(2.0));

    // mac(2) claimed last at 1 s: gone from the window after 11 s; mac(1) (2 s) stays to 12 s.
    lab.tick(at(11).saturating_add(Duration::from_millis(500)));
    assert_eq!(value(&lab.text(), CLAIMANTS), Some(1.0));
    lab.tick(at(13));
    assert_eq!(value(&lab.text(), CLAIMANTS), Some(0.0));

    // A gratuitous request (SPA = TPA) is a claim too.
    lab.feed(Frame::at(at(14)).announce(ArpOp::Request, mac(3), VIP));
    assert_eq!(value(&lab.text(), CLAIMANTS), Some(1.0));
}

#[test]
fn claimants_are_capped_at_max_macs_per_ip() {
    let mut lab = Lab::detect(&format!("{POOL_CONFIG}[caps]\nmax_macs_per_ip = 4\n"));
    for last in 1..=20 {
        lab.feed(reply(&eth("eth0"), at(0), VIP, mac(last)));
    }
    assert_eq!(value(&lab.text(), CLAIMANTS), Some(4.0));
}

#[test]
fn local_replies_count_this_nodes_egress_replies_per_interface() {
    let mut lab = Lab::detect(POOL_CONFIG);
    for (iface, n) in [("eth0", 3), ("eth1", 2)] {
        for i in 0..n {
            lab.feed(reply(&eth(iface), at(i), VIP, mac(1)).egress());
        }
    }
    // Ingress replies (other hosts') and egress requests are not this node's replies.
    lab.feed(reply(&eth("eth0"), at(5), VIP, mac(2)));
    lab.feed(request(&eth("eth0"), at(5), VIP).egress());

    let text = lab.text();
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
fn owner_changes_and_conditions_follow_the_engines_events_about_pool_ips() {
    let mut lab = Lab::detect(&format!("full_view = true\n{POOL_CONFIG}quiet_window = \"5s\"\n"));
    let eth0 = eth("eth0");
    let outside = Ipv4Addr::new(198, 51, 100, 1);
    let series = |condition: &str| {
        format!("arpwatch_pool_ip_condition{{pool=\"vips\",ip=\"192.0.2.240\",condition=\"{condition}\"}}")
    };
    let changes = r#"arpwatch_pool_ip_owner_changes_total{pool="vips",ip="192.0.2.240"}"#;

    // Owner changes of the VIP 15 s apart (no multi-responder), and of an IP outside the pool.
    for (i, ip) in [VIP, outside].into_iter().enumerate() {
        let t = i as u64 * 100;
        lab.feed(reply(&eth0, at(t), ip, mac(1)));
        lab.feed(reply(&eth0, at(t + 15), ip, mac(2)));
        lab.feed(reply(&eth0, at(t + 30), ip, mac(1)));
    }
    let text = lab.text();
    assert_eq!(value(&text, changes), Some(2.0));
    assert_eq!(lab.printed(EventKind::OwnerChange), 4);
    assert!(!text.contains("198.51.100.1"), "{text}");
    for condition in ["multi_responder", "flapping", "unanswered"] {
        assert_eq!(value(&text, &series(condition)), Some(0.0));
    }

    // Two MACs answering one request: a multi-responder, active until the quiet window passes.
    lab.feed(reply(&eth0, at(300), VIP, mac(1)));
    lab.feed(reply(&eth0, at(300), VIP, mac(2)));
    assert_eq!(value(&lab.text(), &series("multi_responder")), Some(1.0));
    lab.tick(at(306));
    assert_eq!(lab.printed(EventKind::MultiResponder), 2, "start and end");
    assert_eq!(value(&lab.text(), &series("multi_responder")), Some(0.0));

    // Requests nobody answers (full view): unanswered, until a claim answers them.
    for t in [400, 401, 402] {
        lab.feed(request(&eth0, at(t), VIP));
    }
    lab.tick(at(404));
    assert_eq!(value(&lab.text(), &series("unanswered")), Some(1.0));
    lab.feed(reply(&eth0, at(405), VIP, mac(1)));
    assert_eq!(value(&lab.text(), &series("unanswered")), Some(0.0));
}

#[test]
fn pool_ip_series_are_capped_per_pool_and_drops_counted() {
    let config =
        "[[pools]]\nname = \"big\"\ncidrs = [\"10.0.0.0/16\"]\n[[pools]]\nname = \"small\"\ncidrs = [\"192.0.2.240/28\"]\n";
    let options = MetricsOptions { max_ips_per_pool: 10, ..MetricsOptions::default() };
    let mut lab = Lab::with(config, &options, true);
    for i in 0..100u16 {
        let [hi, lo] = i.to_be_bytes();
        lab.feed(reply(&eth("eth0"), at(0), Ipv4Addr::new(10, 0, hi, lo), mac(1)));
    }
    // The full pool does not take the other pool's room.
    lab.feed(reply(&eth("eth0"), at(0), VIP, mac(1)));
    let text = lab.text();
    let claimant_series = |pool: &str| {
        text.lines()
            .filter(|l| l.starts_with(&format!("arpwatch_pool_ip_claimants{{pool=\"{pool}\"")))
            .count()
    };
    assert_eq!(claimant_series("big"), 10);
    assert_eq!(claimant_series("small"), 1);
    assert_eq!(value(&text, "arpwatch_pool_ip_series_dropped_total"), Some(90.0));
    // The IPs that have series keep being updated.
    lab.feed(reply(&eth("eth0"), at(1), Ipv4Addr::new(10, 0, 0, 0), mac(2)));
    assert_eq!(
        value(&lab.text(), r#"arpwatch_pool_ip_claimants{pool="big",ip="10.0.0.0"}"#),
        Some(2.0)
    );
}

#[test]
fn readings_appear_once_read_and_cover_every_direction_and_eviction_kind() {
    let config = "[caps]\nmax_tracked_ips = 1\n";
    let mut lab = Lab::raw(config);
    let text = lab.text();
    assert!(!text.contains("arpwatch_kernel_frames"), "{text}");
    assert!(!text.contains("arpwatch_tracked_ips"), "{text}");

    lab.health.set_kernel(&CounterTotals::default());
    let mut lab_detect = Lab::detect(config);
    lab_detect.health.set_kernel(&CounterTotals::default());
    // Two IPs where one fits: the first is evicted.
    lab_detect.feed(reply(&eth("eth0"), at(0), VIP, mac(1)));
    lab_detect.feed(reply(&eth("eth0"), at(1), Ipv4Addr::new(192, 0, 2, 241), mac(1)));
    for text in [lab.text(), lab_detect.text()] {
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
    }
    let text = lab_detect.text();
    assert_eq!(value(&text, "arpwatch_tracked_ips"), Some(1.0));
    assert_eq!(value(&text, "arpwatch_tracked_macs"), Some(1.0));
    for (kind, n) in [
        ("ips", 1.0),
        ("macs", 0.0),
        ("senders", 0.0),
        ("interfaces", 0.0),
        ("pending_requests", 0.0),
        ("conditions", 0.0),
    ] {
        let series = format!("arpwatch_evictions_total{{kind=\"{kind}\"}}");
        assert_eq!(value(&text, &series), Some(n), "{series}");
    }
}

#[test]
fn readiness_needs_an_attached_program_and_a_recent_drain() {
    let lab = Lab::raw("");
    let (health, exporter) = (&lab.health, &lab.exporter);
    let staleness = MetricsOptions::default().ready_staleness;
    let err = exporter.readiness(at(100)).unwrap_err();
    assert!(err.contains("no arpwatch program"), "{err}");
    health.set_attached(2);
    let err = exporter.readiness(at(100)).unwrap_err();
    assert!(err.contains("not been drained"), "{err}");
    health.drained(at(100));
    assert_eq!(exporter.readiness(at(100).saturating_add(staleness)), Ok(()));
    let err = exporter.readiness(at(101).saturating_add(staleness)).unwrap_err();
    assert!(err.contains("last drained 11.0 s ago (limit 10.0 s)"), "{err}");
    assert!(!err.contains('\n'));
    health.set_attached(0);
    assert!(exporter.readiness(at(100)).is_err());

    let text = exporter.encode();
    assert_eq!(value(&text, "arpwatch_attached_interfaces"), Some(0.0));
    assert_eq!(
        value(&text, "arpwatch_last_ring_drain_timestamp_seconds"),
        Some(at(100).as_nanos() as f64 / 1e9)
    );
}

#[test]
fn no_label_holds_a_mac_but_the_owner_of_a_pool_ip() {
    let config = format!("{POOL_CONFIG}\n[[pools]]\nname = \"gw\"\ncidrs = [\"192.0.2.1/32\"]\nmacs = [\"02:00:00:00:00:01\"]\n");
    let mut lab = Lab::detect(&config);
    lab.feed(reply(&eth("eth0"), at(0), VIP, mac(0xab)));
    lab.feed(reply(&eth("eth0"), at(0), Ipv4Addr::new(192, 0, 2, 1), mac(0xab)));
    lab.feed(reply(&eth("eth0"), at(0), Ipv4Addr::new(198, 51, 100, 7), mac(0xcd)));
    assert_eq!(lab.printed(EventKind::UnknownResponder), 1);
    let text = lab.text();
    let with_mac: Vec<&str> = text.lines().filter(|l| l.contains("02:00:00:00:00:")).collect();
    // One series per pool IP, the owner's info series; none for the IP outside the pools.
    assert_eq!(with_mac.len(), 2, "{text}");
    assert!(with_mac.iter().all(|l| l.starts_with("arpwatch_pool_ip_owner{")), "{with_mac:?}");
    assert!(!text.contains("02:00:00:00:00:cd"), "{text}");
}
