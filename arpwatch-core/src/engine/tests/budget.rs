//! The budget of informational events per interface: beyond it they are summarised in the
//! interface's storm; anomalies and events about pool IPs never are.

use super::*;

/// The engine with a budget of `burst` informational events at once, `rate` a second after.
fn budget(rate: u32, burst: u32) -> EngineConfig {
    let mut cfg = pool_config(vip_pool());
    cfg.thresholds.info_rate_per_iface = rate;
    cfg.thresholds.info_burst_per_iface = burst;
    cfg
}

/// The `n`th host outside every pool: its MAC and its IP.
fn host(n: u8) -> (String, String) {
    (format!("02:00:00:00:01:{n:02x}"), format!("198.51.100.{n}"))
}

/// Host `n` announcing its address at `t`: a `new_binding` and a `gratuitous`.
fn announcement(t: f64, n: u8) -> Frame {
    let (m, a) = host(n);
    frame(t).announce(ArpOp::Reply, &m, &a)
}

/// The interface storms among `events`.
fn iface_storms(events: &[Event]) -> Vec<Record<'_>> {
    let mut storms = of(events, EventKind::Storm);
    storms.retain(|s| s.scope == Some(StormScope::Iface));
    storms
}

fn informational(events: &[Event]) -> usize {
    events.iter().filter(|e| e.severity() == crate::event::Severity::Info).count()
}

#[test]
fn beyond_the_budget_informational_events_are_summarised_in_the_interface_storm() {
    let mut h = Harness::with(budget(1, 3));
    // Ten hosts announcing within 10 ms: 20 informational events, 3 within the burst.
    let events = h.feed_all((1..=10).map(|n| announcement(f64::from(n) * 0.001, n)));
    assert_eq!(informational(&events), 3);
    let bindings = of(&events, EventKind::NewBinding);
    assert_eq!(
        bindings.iter().map(|e| e.mac).collect::<Vec<_>>(),
        [host(1), host(2)].map(|h| Some(mac(&h.0)))
    );

    // The storm starts with the first event summarised (host 2's announcement), far below the
    // frame-rate threshold: an interface over its budget is storming as far as the log goes.
    let storms = of(&events, EventKind::Storm);
    assert_eq!(storms.len(), 1, "{storms:?}");
    let start = storms[0];
    assert_eq!(
        (start.state, start.scope, start.iface),
        (Some(ConditionState::Start), Some(StormScope::Iface), "eth0")
    );
    assert_eq!(start.ts, at(0.002));
    assert_eq!(start.count, Some(1));
    let summary = start.summarised.expect("the start carries the summary");
    assert_eq!(
        (summary.since, summary.new_binding, summary.gratuitous, summary.probe),
        (at(0.002), 0, 1, 0)
    );
    assert_eq!(summary.sample_macs, [mac(&host(2).0)]);

    let stats = h.engine.stats();
    assert_eq!(stats.summarised_of(EventKind::NewBinding), 8);
    assert_eq!(stats.summarised_of(EventKind::Gratuitous), 9);
    assert_eq!(stats.summarised_of(EventKind::Probe), 0);
    assert_eq!(stats.events_of(EventKind::NewBinding), 2, "summarised events are not emitted");

    // The end, a quiet window later, carries the totals and at most 8 sample MACs.
    let end = h.tick(0.010 + 30.0);
    let ended = of(&end, EventKind::Storm);
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].state, Some(ConditionState::End));
    assert_eq!(ended[0].count, Some(9), "one per frame summarised");
    let totals = ended[0].summarised.unwrap();
    assert_eq!((totals.since, totals.new_binding, totals.gratuitous), (at(0.002), 8, 9));
    let first_eight: Vec<MacAddr> = (2..=9).map(|n| mac(&host(n).0)).collect();
    assert_eq!(totals.sample_macs, first_eight);

    // As schema v1 writes them, additive fields only.
    let defs = serde_json::from_str::<serde_json::Value>(include_str!(
        "../../../../docs/schema/arpwatch-events.schema.json"
    ))
    .unwrap()["$defs"]
        .clone();
    let annotator = Annotator::new("node-a");
    for mut e in events.iter().chain(&end).cloned() {
        annotator.annotate(&mut e);
        check_against(&serde_json::to_value(Record::of(&e)).unwrap(), &defs["event"], &defs);
    }
    let line = serde_json::to_value(Record::of(&end[0])).unwrap();
    assert_eq!(line["summarised_new_binding"], 8);
    assert_eq!(line["summarised_gratuitous"], 9);
    assert_eq!(line["summarised_probe"], 0);
    assert_eq!(line["sample_macs"].as_array().unwrap().len(), 8);
}

#[test]
fn anomalies_and_events_about_pool_ips_are_never_summarised_nor_spend_the_budget() {
    let mut h = Harness::with(budget(1, 2));
    // The pool's VIP announced by A, taken over by B, probed by C: all printed, none spent.
    let pool = h.feed_all([
        frame(0.0).announce(ArpOp::Reply, A, VIP),
        frame(0.1).announce(ArpOp::Reply, B, VIP),
        frame(0.2).probe(C, "192.0.2.11"),
    ]);
    assert_eq!(of(&pool, EventKind::NewBinding).len(), 2);
    assert_eq!(of(&pool, EventKind::Gratuitous).len(), 2);
    assert_eq!(of(&pool, EventKind::Probe).len(), 1);
    assert_eq!(of(&pool, EventKind::OwnerChange).len(), 1);
    assert!(of(&pool, EventKind::Storm).is_empty());

    // The budget is whole: host 1's two events are printed, host 2's summarised.
    let hosts = h.feed_all([announcement(0.3, 1), announcement(0.4, 2)]);
    assert_eq!(informational(&hosts), 2);
    assert_eq!(of(&hosts, EventKind::Storm)[0].summarised.unwrap().new_binding, 1);

    // Over the budget, every anomaly is still reported one by one: an owner change, a
    // multi-responder, a probe conflict, a sender mismatch, and the pool's own events.
    let (m1, ip1) = host(1);
    let anomalies = h.feed_all([
        frame(0.5).announce(ArpOp::Reply, B, &ip1),
        frame(0.6).reply(&m1, &ip1).to(CLIENT, CLIENT_IP),
        frame(0.6).reply(B, &ip1).to(CLIENT, CLIENT_IP),
        frame(0.7).probe(C, &ip1),
        frame(0.8).reply(&m1, &ip1).to(CLIENT, CLIENT_IP).eth_src(C),
        frame(0.9).announce(ArpOp::Reply, A, VIP),
    ]);
    for kind in [
        EventKind::OwnerChange,
        EventKind::MultiResponder,
        EventKind::ProbeConflict,
        EventKind::SenderMismatch,
        EventKind::Gratuitous,
    ] {
        assert!(!of(&anomalies, kind).is_empty(), "{} {anomalies:?}", kind.as_str());
    }
    assert_eq!(of(&anomalies, EventKind::Gratuitous)[0].ip, ip(VIP), "only the VIP's");
    assert_eq!(h.engine.stats().summarised_of(EventKind::Gratuitous), 2, "host 2's and B's on ip1");
}

#[test]
fn the_budget_refills_at_its_rate_up_to_its_burst_per_interface() {
    let mut h = Harness::with(budget(2, 2));
    let binding = |t: f64, n: u8, iface: &str| {
        let (m, a) = host(n);
        frame(t).request(&m, &a).asking(CLIENT_IP).on(iface)
    };
    let bindings = |events: &[Event]| of(events, EventKind::NewBinding).len();
    assert_eq!(bindings(&h.feed_all((1..=4).map(|n| binding(0.0, n, "eth0")))), 2);
    // Another interface has its own budget.
    assert_eq!(bindings(&h.feed_all((5..=7).map(|n| binding(0.0, n, "eth1")))), 2);
    // Half a second at 2 a second is one more.
    assert_eq!(bindings(&h.feed_all((8..=9).map(|n| binding(0.5, n, "eth0")))), 1);
    // Ten seconds later the bucket is full again, and holds no more than the burst.
    assert_eq!(bindings(&h.feed_all((10..=13).map(|n| binding(10.5, n, "eth0")))), 2);
    assert_eq!(h.engine.stats().summarised_of(EventKind::NewBinding), 2 + 1 + 1 + 2);
}

#[test]
fn probes_are_summarised_like_the_other_informational_events() {
    let mut h = Harness::with(budget(1, 1));
    let events = h.feed_all((1..=3).map(|n| {
        let (m, a) = host(n);
        frame(0.0).probe(&m, &a)
    }));
    assert_eq!(of(&events, EventKind::Probe).len(), 1);
    let start = of(&events, EventKind::Storm)[0].summarised.unwrap();
    assert_eq!((start.probe, start.new_binding, start.since), (1, 0, at(0.0)));
    assert_eq!(h.engine.stats().summarised_of(EventKind::Probe), 2);
}

#[test]
fn a_summary_beginning_in_an_open_frame_rate_storm_is_reported_at_once() {
    let mut h = Harness::with(budget(1, 1));
    // 600 requests in a second from A, its one binding within the budget: an interface storm
    // (and one of A), nothing summarised.
    let events = h.feed_all((0..600u32).map(|i| {
        let target = format!("10.0.{}.{}", i / 256, i % 256);
        frame(f64::from(i) * 0.001).request(A, "10.9.9.9").asking(&target)
    }));
    let started = iface_storms(&events);
    assert_eq!(started.len(), 1);
    assert_eq!(started[0].summarised, None);
    // The first binding beyond the budget: an `ongoing` now, not a report interval later.
    let events = h.feed(frame(0.7).request(B, "10.0.0.2").asking("10.0.0.1"));
    let ongoing = iface_storms(&events);
    assert_eq!(ongoing.len(), 1);
    assert_eq!(ongoing[0].state, Some(ConditionState::Ongoing));
    assert_eq!(ongoing[0].summarised.unwrap().sample_macs, [mac(B)]);
    assert_eq!(ongoing[0].count, started[0].count.map(|c| c + 100), "the frame counted once");
}

#[test]
fn a_rate_of_0_turns_the_budget_off() {
    let mut h = Harness::with(budget(0, 1));
    let events = h.feed_all((1..=200).map(|n| announcement(f64::from(n) * 0.001, n)));
    assert_eq!(informational(&events), 400);
    assert!(of(&events, EventKind::Storm).is_empty());
    assert_eq!(h.engine.stats().summarised, EngineStats::default().summarised);
}

#[test]
fn the_default_budget_prints_a_busy_segment_in_full_and_a_flood_in_a_few_lines() {
    // 400 hosts announcing within a second (a segment learnt at start): all printed.
    let mut h = Harness::new();
    let events = h.feed_all((0..400u32).map(|n| {
        let m = format!("02:00:00:00:{:02x}:{:02x}", n / 256, n % 256);
        let a = format!("10.1.{}.{}", n / 256, n % 256);
        frame(f64::from(n) * 0.0025).request(&m, &a).asking("10.1.255.254")
    }));
    assert_eq!(of(&events, EventKind::NewBinding).len(), 400);
    assert!(of(&events, EventKind::Storm).is_empty());

    // 20 000 spoofed announcements in 2 s: the burst, 20 a second, and the storm.
    let mut h = Harness::new();
    let events = h.feed_all((0..20_000u32).map(|n| {
        let m = format!("02:00:00:{:02x}:{:02x}:{:02x}", n >> 16, (n >> 8) & 255, n & 255);
        let a = format!("10.2.{}.{}", n >> 8, n & 255);
        frame(f64::from(n) * 0.0001).announce(ArpOp::Reply, &m, &a)
    }));
    let info = informational(&events);
    assert!((500..=500 + 2 * 20 + 1).contains(&info), "{info}");
    assert_eq!(events.len() - info, 1, "the storm's start: {:?}", alarms(&events));
}
