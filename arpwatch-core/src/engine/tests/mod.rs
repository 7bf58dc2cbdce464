//! Engine tests with a fake clock: every timestamp is a plain number of seconds.

use super::*;
use crate::config::{Caps, Pool};
use crate::enrich::{Annotator, LocalMacs};
use crate::event::ConditionState;
use crate::observation::{ArpOp, VlanTags};
use crate::testkit::observations::{at, frame, ip, mac, Frame};
use crate::testkit::schema::check_against;
use crate::wire::{RawLine, Record};

const A: &str = "02:00:00:00:00:0a";
const B: &str = "02:00:00:00:00:0b";
const C: &str = "02:00:00:00:00:0c";
const CLIENT: &str = "02:00:00:00:00:99";
const VIP: &str = "192.0.2.10";
const CLIENT_IP: &str = "192.0.2.99";

struct Harness {
    engine: Engine,
}

impl Harness {
    fn new() -> Self {
        Self::with(EngineConfig::default())
    }
    fn with(config: EngineConfig) -> Self {
        Harness { engine: Engine::new(&config) }
    }
    fn feed(&mut self, frame: Frame) -> Vec<Event> {
        let mut out = Vec::new();
        self.engine.observe(&frame.0, &mut out);
        out
    }
    fn feed_all(&mut self, frames: impl IntoIterator<Item = Frame>) -> Vec<Event> {
        let mut out = Vec::new();
        for f in frames {
            self.engine.observe(&f.0, &mut out);
        }
        out
    }
    fn tick(&mut self, secs: f64) -> Vec<Event> {
        let mut out = Vec::new();
        self.engine.tick(at(secs), &mut out);
        out
    }
}

/// The events of `kind`, each as the flat record of the output, for assertions field by field.
fn of(events: &[Event], kind: EventKind) -> Vec<Record<'_>> {
    events.iter().filter(|e| e.kind() == kind).map(Record::of).collect()
}

fn states(events: &[Event], kind: EventKind) -> Vec<ConditionState> {
    of(events, kind).iter().filter_map(|e| e.state).collect()
}

/// The kinds of the events that are not info, for "nothing alarming happened" checks.
fn alarms(events: &[Event]) -> Vec<&'static str> {
    events
        .iter()
        .filter(|e| e.severity() != crate::event::Severity::Info)
        .map(|e| e.kind().as_str())
        .collect()
}

fn macs(list: &[&str]) -> Vec<MacAddr> {
    list.iter().map(|s| mac(s)).collect()
}

fn pool_config(pool: Pool) -> EngineConfig {
    EngineConfig { pools: vec![pool], ..EngineConfig::default() }
}

fn vip_pool() -> Pool {
    Pool {
        name: "vips".into(),
        cidrs: vec!["192.0.2.0/28".parse().unwrap()],
        interfaces: vec!["eth0".into()],
        macs: macs(&[A, B]),
        ..Pool::default()
    }
}

// ---------------------------------------------------------------- bindings and classification

#[test]
fn new_binding_once_per_ip_and_mac_and_requests_are_weak_claims() {
    let mut h = Harness::new();
    let events = h.feed_all([
        frame(0.0).request(A, VIP).asking(CLIENT_IP),
        frame(1.0).request(A, VIP).asking(CLIENT_IP),
        frame(2.0).request(B, VIP).asking(CLIENT_IP),
    ]);
    let bindings = of(&events, EventKind::NewBinding);
    assert_eq!(bindings.len(), 2);
    assert_eq!(bindings[0].mac, Some(mac(A)));
    assert_eq!(bindings[0].announced, Some(Announced::Request));
    assert_eq!(bindings[1].mac, Some(mac(B)));
    // Two MACs sending requests from one IP never own it: no owner change, no conflict.
    assert!(alarms(&events).is_empty(), "{events:?}");
}

#[test]
fn announcements_and_probes_are_classified_per_frame() {
    let mut h = Harness::new();
    let events = h.feed_all([
        frame(0.0).probe(A, VIP),
        frame(1.0).announce(ArpOp::Request, A, VIP),
        frame(2.0).announce(ArpOp::Reply, A, VIP),
    ]);
    assert_eq!(of(&events, EventKind::Probe).len(), 1);
    assert_eq!(of(&events, EventKind::Probe)[0].mac, Some(mac(A)));
    assert_eq!(of(&events, EventKind::Gratuitous).len(), 2);
    assert_eq!(of(&events, EventKind::NewBinding)[0].announced, Some(Announced::Gratuitous));
    assert!(alarms(&events).is_empty());
}

#[test]
fn dhcp_probes_from_a_fresh_host_are_probes_only() {
    // RFC 5227: three probes a second apart, then two announcements two seconds apart.
    let mut h = Harness::new();
    let mut frames: Vec<Frame> = (0..3).map(|i| frame(i as f64).probe(C, "192.0.2.50")).collect();
    frames.push(frame(3.0).announce(ArpOp::Request, C, "192.0.2.50"));
    frames.push(frame(5.0).announce(ArpOp::Request, C, "192.0.2.50"));
    let events = h.feed_all(frames);
    assert_eq!(of(&events, EventKind::Probe).len(), 3);
    assert_eq!(of(&events, EventKind::Gratuitous).len(), 2);
    assert!(alarms(&events).is_empty(), "{events:?}");
}

#[test]
fn probe_for_an_ip_bound_to_another_mac_is_a_conflict() {
    let mut h = Harness::new();
    h.feed(frame(0.0).reply(A, VIP).to(CLIENT, CLIENT_IP));
    let events = h.feed(frame(5.0).probe(B, VIP));
    assert_eq!(alarms(&events), ["probe_conflict"]);
    let e = Record::of(&events[0]);
    assert_eq!((e.mac, e.old_mac), (Some(mac(B)), Some(mac(A))));
    assert_eq!(e.last_seen, Some(at(0.0)));
    assert!(of(&events, EventKind::Probe).is_empty(), "a conflicting probe is reported once");
    // The holder probing its own address again is no conflict.
    assert_eq!(alarms(&h.feed(frame(6.0).probe(A, VIP))), Vec::<&str>::new());
}

#[test]
fn windows_hosts_probing_then_announcing_raise_no_conflict() {
    // wireshark_smb-on-windows-10_probes.pcapng, frames 27..72: the host asks for its gateway
    // with its new address between the second and third probe, then announces.
    const WIN: &str = "00:0c:29:61:f5:5f";
    const GW: &str = "00:50:56:c0:00:01";
    let mut h = Harness::with(EngineConfig { full_view: true, ..EngineConfig::default() });
    let events = h.feed_all([
        frame(0.0).probe(WIN, "192.168.199.133"),
        frame(1.0).probe(WIN, "192.168.199.133"),
        frame(1.256).request(WIN, "192.168.199.133").asking("192.168.199.1"),
        frame(1.256).reply(GW, "192.168.199.1").to(WIN, "192.168.199.133"),
        frame(2.0).probe(WIN, "192.168.199.133"),
        frame(3.0).announce(ArpOp::Request, WIN, "192.168.199.133"),
    ]);
    assert_eq!(of(&events, EventKind::Probe).len(), 3);
    assert_eq!(of(&events, EventKind::Gratuitous).len(), 1);
    assert!(alarms(&events).is_empty(), "{events:?}");
}

#[test]
fn a_scanner_asking_for_its_own_ip_is_not_someone_elses_announcement() {
    // sgr_hs-arpScan.pcap: one MAC sweeps 10.0.0.0/24 from 10.0.0.128, including .128 itself.
    const SCANNER: &str = "00:0c:29:20:a8:7f";
    let mut cfg = EngineConfig { full_view: true, ..EngineConfig::default() };
    cfg.thresholds.storm_rate_per_mac = 1_000; // the sweep's rate is tested with storms
    cfg.thresholds.storm_rate_per_iface = 1_000;
    let mut h = Harness::with(cfg);
    let frames = (0..=255u32).map(|i| {
        frame(f64::from(i) * 0.002).request(SCANNER, "10.0.0.128").asking(&format!("10.0.0.{i}"))
    });
    let mut events = h.feed_all(frames);
    events.extend(h.tick(10.0));
    assert!(alarms(&events).is_empty(), "{:?}", alarms(&events));
    assert_eq!(of(&events, EventKind::NewBinding).len(), 1);
    // SPA == TPA is by definition an announcement; it is the scanner's own address.
    let grat = of(&events, EventKind::Gratuitous);
    assert_eq!(grat.len(), 1);
    assert_eq!((grat[0].ip, grat[0].mac), (ip("10.0.0.128"), Some(mac(SCANNER))));
}

// ---------------------------------------------------------------- owner changes

#[test]
fn owner_change_is_reported_on_the_new_owners_first_claim_with_the_gap() {
    let mut h = Harness::new();
    h.feed(frame(0.0).reply(A, VIP).to(CLIENT, CLIENT_IP));
    h.feed(frame(2.0).reply(A, VIP).to(CLIENT, CLIENT_IP));
    let events = h.feed(frame(5.5).announce(ArpOp::Request, B, VIP));
    let change = of(&events, EventKind::OwnerChange);
    assert_eq!(change.len(), 1);
    let e = change[0];
    assert_eq!((e.old_mac, e.new_mac), (Some(mac(A)), Some(mac(B))));
    assert_eq!(e.announced, Some(Announced::Gratuitous));
    assert_eq!(e.gap_ms, Some(3500));
    assert_eq!(e.ts, at(5.5));
    assert_eq!(e.severity, crate::event::Severity::Warning);

    let events = h.feed(frame(30.0).reply(A, VIP).to(CLIENT, CLIENT_IP));
    assert_eq!(of(&events, EventKind::OwnerChange)[0].announced, Some(Announced::Reply));
}

#[test]
fn clean_handover_is_an_owner_change_and_never_a_multi_responder() {
    let mut h = Harness::new();
    let a = (0..10).map(|i| frame(f64::from(i)).reply(A, VIP).to(CLIENT, CLIENT_IP));
    let b = (0..20).map(|i| frame(10.5 + f64::from(i)).reply(B, VIP).to(CLIENT, CLIENT_IP));
    let mut events = h.feed_all(a.chain(b));
    events.extend(h.tick(100.0));
    assert_eq!(alarms(&events), ["owner_change"]);
    assert_eq!(of(&events, EventKind::OwnerChange)[0].gap_ms, Some(1500));
    // And a clean failback: A answers again once B has stopped.
    let back = (0..10).map(|i| frame(101.0 + f64::from(i)).reply(A, VIP).to(CLIENT, CLIENT_IP));
    let mut events = h.feed_all(back);
    events.extend(h.tick(200.0));
    assert_eq!(alarms(&events), ["owner_change"]);
}

#[test]
fn metallb_failover_gives_exactly_one_owner_change() {
    // The new speaker sends a gratuitous request and reply at once, then every 1.1 s for 5 s.
    let mut h = Harness::new();
    let mut frames = vec![frame(0.0).reply(A, VIP).to(CLIENT, CLIENT_IP)];
    for i in 0..=4 {
        let t = 3.0 + 1.1 * f64::from(i);
        frames.push(frame(t).announce(ArpOp::Request, B, VIP));
        frames.push(frame(t).announce(ArpOp::Reply, B, VIP));
    }
    frames.push(frame(20.0).reply(B, VIP).to(CLIENT, CLIENT_IP));
    let mut events = h.feed_all(frames);
    events.extend(h.tick(200.0));
    assert_eq!(alarms(&events), ["owner_change"], "{events:?}");
    assert_eq!(of(&events, EventKind::OwnerChange)[0].gap_ms, Some(3000));
    assert_eq!(of(&events, EventKind::Gratuitous).len(), 10);
}

#[test]
fn kube_vip_leader_renewing_every_3s_gives_no_owner_change_after_the_first() {
    let mut h = Harness::new();
    let mut frames = vec![frame(0.0).announce(ArpOp::Request, A, VIP)];
    for i in 0..40 {
        let op = if i % 2 == 0 { ArpOp::Request } else { ArpOp::Reply };
        frames.push(frame(10.0 + 3.0 * f64::from(i)).announce(op, B, VIP));
    }
    let mut events = h.feed_all(frames);
    events.extend(h.tick(500.0));
    assert_eq!(alarms(&events), ["owner_change"], "{events:?}");
}

#[test]
fn vrrp_and_hsrp_virtual_macs_moving_between_routers_are_benign() {
    const VRRP: &str = "00:00:5e:00:01:07";
    const R1: &str = "02:00:00:00:01:01";
    const R2: &str = "02:00:00:00:01:02";
    let mut h = Harness::new();
    let mut events = h.feed_all([
        frame(0.0).announce(ArpOp::Request, VRRP, "192.0.2.1").eth_src(R1),
        frame(1.0).announce(ArpOp::Request, VRRP, "192.0.2.1").eth_src(R1),
        // Failover: the same virtual MAC, now sent by the other router.
        frame(5.0).announce(ArpOp::Request, VRRP, "192.0.2.1").eth_src(R2),
        frame(6.0).reply(VRRP, "192.0.2.1").to(CLIENT, CLIENT_IP).eth_src(R2),
    ]);
    // packetlife_gratuitous_arp_hsrp.pcap: HSRP announces every 3 s to broadcast and multicast.
    for i in 0..3 {
        let t = 10.0 + 3.0 * f64::from(i);
        events.extend(h.feed(frame(t).announce(ArpOp::Reply, "00:00:0c:07:ac:01", "10.0.0.6")));
        events.extend(h.feed(frame(t + 0.016).announce(
            ArpOp::Reply,
            "00:00:0c:07:ac:01",
            "10.0.0.6",
        )));
    }
    events.extend(h.tick(100.0));
    assert!(alarms(&events).is_empty(), "{events:?}");
    // Without the default exemption the same frames would be sender mismatches.
    let mut cfg = EngineConfig::default();
    cfg.exemptions.ha_mac_prefixes.clear();
    let mut h = Harness::with(cfg);
    let events = h.feed(frame(0.0).announce(ArpOp::Request, VRRP, "192.0.2.1").eth_src(R1));
    assert_eq!(alarms(&events), ["sender_mismatch"]);
}

// ---------------------------------------------------------------- multi-responder

#[test]
fn strong_multi_responder_is_reported_on_the_second_reply_and_grows_at_once() {
    // kube-proxy IPVS without strictARP: every node answers one `who-has VIP`.
    let mut h = Harness::new();
    let first = h.feed(frame(0.0).reply(A, VIP).to(CLIENT, CLIENT_IP));
    assert!(alarms(&first).is_empty());
    let second = h.feed(frame(0.0004).reply(B, VIP).to(CLIENT, CLIENT_IP));
    let mr = of(&second, EventKind::MultiResponder);
    assert_eq!(mr.len(), 1);
    let e = mr[0];
    assert_eq!(e.state, Some(ConditionState::Start));
    assert_eq!(e.macs, macs(&[A, B]));
    assert_eq!(e.form, Some(ResponderForm::Strong));
    assert_eq!((e.requester_mac, e.requester_ip), (Some(mac(CLIENT)), Some(ip(CLIENT_IP))));
    assert_eq!(e.iface, "eth0");
    assert_eq!(e.severity, crate::event::Severity::Critical);
    // The requester keeps the first answer (ARP locktime): a late reply is no owner change.
    assert!(of(&second, EventKind::OwnerChange).is_empty());

    let third = h.feed(frame(0.0009).reply(C, VIP).to(CLIENT, CLIENT_IP));
    let mr = of(&third, EventKind::MultiResponder);
    assert_eq!(mr.len(), 1);
    assert_eq!(mr[0].state, Some(ConditionState::Ongoing));
    assert_eq!(mr[0].macs, macs(&[A, B, C]));
    assert_eq!(alarms(&third), ["multi_responder"]);
}

#[test]
fn replies_to_different_requesters_or_outside_the_reply_window_are_not_the_strong_form() {
    let mut h = Harness::new();
    let events = h.feed_all([
        frame(0.0).reply(A, VIP).to(CLIENT, CLIENT_IP),
        frame(0.1).reply(B, VIP).to("02:00:00:00:00:98", "192.0.2.98"),
    ]);
    assert!(of(&events, EventKind::MultiResponder).is_empty());
    let mut h = Harness::new();
    let events = h.feed_all([
        frame(0.0).reply(A, VIP).to(CLIENT, CLIENT_IP),
        frame(1.5).reply(B, VIP).to(CLIENT, CLIENT_IP),
    ]);
    assert!(of(&events, EventKind::MultiResponder).is_empty());
    assert_eq!(of(&events, EventKind::OwnerChange).len(), 1);
}

#[test]
fn sustained_multi_responder_needs_claims_that_keep_alternating_within_the_window() {
    // A, B, A: one failover and one failback, both announced. At no moment did two MACs hold
    // the IP: two owner changes, no multi-responder.
    let mut h = Harness::new();
    let events = h.feed_all([
        frame(0.0).announce(ArpOp::Reply, A, VIP),
        frame(4.0).announce(ArpOp::Reply, B, VIP),
        frame(9.0).announce(ArpOp::Reply, A, VIP),
    ]);
    assert_eq!(alarms(&events), ["owner_change", "owner_change"], "{events:?}");
    // B claims again after A's return: both keep claiming (A, B, A, B).
    let events = h.feed(frame(12.0).announce(ArpOp::Reply, B, VIP));
    let mr = of(&events, EventKind::MultiResponder);
    assert_eq!(mr.len(), 1, "{events:?}");
    assert_eq!((mr[0].ts, mr[0].state), (at(12.0), Some(ConditionState::Start)));
    assert_eq!(mr[0].form, Some(ResponderForm::Sustained));
    assert_eq!(mr[0].macs, macs(&[A, B]));

    // Each MAC's claims must be within the concurrency window of its own previous one.
    let mut h = Harness::new();
    let events = h.feed_all([
        frame(0.0).announce(ArpOp::Reply, A, VIP),
        frame(4.0).announce(ArpOp::Reply, B, VIP),
        frame(9.0).announce(ArpOp::Reply, A, VIP),
        frame(14.5).announce(ArpOp::Reply, B, VIP),
    ]);
    assert!(of(&events, EventKind::MultiResponder).is_empty(), "B's claims are 10.5 s apart");

    // A MAC that only answered in between (plain replies, no takeover announced) was answering
    // while the other held the IP: A's next claim shows both, the first time.
    let mut h = Harness::new();
    let events = h.feed_all([
        frame(0.0).announce(ArpOp::Reply, A, VIP),
        frame(4.0).reply(B, VIP).to(CLIENT, CLIENT_IP),
        frame(5.0).announce(ArpOp::Reply, A, VIP),
    ]);
    let mr = of(&events, EventKind::MultiResponder);
    assert_eq!(mr.len(), 1, "{events:?}");
    assert_eq!((mr[0].ts, mr[0].form), (at(5.0), Some(ResponderForm::Sustained)));
    assert_eq!(mr[0].macs, macs(&[A, B]), "A claimed first");
}

/// keepalived's announcements when `by` becomes MASTER at `at` s (with the default settings).
fn keepalived_takeover(at: f64, by: &str) -> Vec<Frame> {
    // garp_master_repeat 5, back to back; garp_master_delay 5 s: a second burst 5 s later. A
    // master that loses the VIP before then removes it and sends no second burst.
    let burst = |t: f64| (0..5).map(move |i| frame(t + 0.001 * f64::from(i)));
    burst(at).chain(burst(at + 5.0)).map(|f| f.announce(ArpOp::Request, by, VIP)).collect()
}

#[test]
fn keepalived_restart_failover_and_preemptive_failback_is_two_owner_changes() {
    // The master (A) answers the client, then restarts at 1.0: the backup (B) takes the VIP
    // 0.7 s later (a burst; its second burst would come at 6.7) and answers the client; A comes
    // back and preempts 4 s after B's takeover (a burst, and its second one 5 s later). B's
    // second burst is never sent: it left MASTER and removed the VIP. Claims A, B, A within the
    // concurrency window, but one hand-back each way.
    let mut h = Harness::new();
    let mut frames = vec![frame(0.0).reply(A, VIP).to(CLIENT, CLIENT_IP)];
    frames.extend(keepalived_takeover(1.7, B).into_iter().take(5));
    frames.push(frame(3.0).reply(B, VIP).to(CLIENT, CLIENT_IP));
    frames.extend(keepalived_takeover(5.7, A));
    frames.push(frame(12.0).reply(A, VIP).to(CLIENT, CLIENT_IP));
    frames.sort_by_key(|f| f.ts);
    let mut events = h.feed_all(frames);
    events.extend(h.tick(100.0));
    assert_eq!(alarms(&events), ["owner_change", "owner_change"], "{events:?}");
    let changes = of(&events, EventKind::OwnerChange);
    assert_eq!((changes[0].new_mac, changes[0].ts), (Some(mac(B)), at(1.7)));
    assert_eq!((changes[1].new_mac, changes[1].ts), (Some(mac(A)), at(5.7)));
    assert!(changes.iter().all(|c| c.announced == Some(Announced::Gratuitous)));
}

#[test]
fn keepalived_takeover_and_its_garp_master_delay_burst_are_one_owner_change() {
    let mut h = Harness::new();
    let mut frames = vec![frame(0.0).reply(A, VIP).to(CLIENT, CLIENT_IP)];
    frames.extend(keepalived_takeover(3.0, B));
    let mut events = h.feed_all(frames);
    events.extend(h.tick(100.0));
    assert_eq!(alarms(&events), ["owner_change"], "{events:?}");
    assert_eq!(of(&events, EventKind::Gratuitous).len(), 10);
}

#[test]
fn metallb_failover_and_failback_are_two_owner_changes() {
    // Each new leader announces at once and every 1.1 s for 5 s (a request and a reply each
    // time). B leads from 3 s, A again from 9 s: A's claims at 0 and 9 bracket B's, within the
    // concurrency window, but B stopped when A took over.
    let mut h = Harness::new();
    let lead = |start: f64, who: &'static str| {
        (0..=4).flat_map(move |i| {
            let t = start + 1.1 * f64::from(i);
            [ArpOp::Request, ArpOp::Reply].map(|op| frame(t).announce(op, who, VIP))
        })
    };
    let mut frames = vec![frame(0.0).reply(A, VIP).to(CLIENT, CLIENT_IP)];
    frames.extend(lead(3.0, B));
    frames.extend(lead(9.0, A));
    let mut events = h.feed_all(frames);
    events.extend(h.tick(100.0));
    assert_eq!(alarms(&events), ["owner_change", "owner_change"], "{events:?}");
}

#[test]
fn kube_vip_failover_and_failback_are_two_owner_changes() {
    // The leader renews every 3 s, alternating request and reply; B leads 8-11 s, A again from
    // 13 s, 7 s after its last renewal before.
    let mut h = Harness::new();
    let renew = |times: &[f64], who: &'static str| -> Vec<Frame> {
        let op = |i: usize| if i.is_multiple_of(2) { ArpOp::Request } else { ArpOp::Reply };
        times.iter().enumerate().map(|(i, t)| frame(*t).announce(op(i), who, VIP)).collect()
    };
    let mut frames = renew(&[0.0, 3.0, 6.0], A);
    frames.extend(renew(&[8.0, 11.0], B));
    frames.extend(renew(&[13.0, 16.0, 19.0, 22.0, 25.0], A));
    let mut events = h.feed_all(frames);
    events.extend(h.tick(100.0));
    assert_eq!(alarms(&events), ["owner_change", "owner_change"], "{events:?}");
}

#[test]
fn arpspoof_gateway_oneway_capture() {
    // arpspoof_gateway_oneway.pcap, times relative to frame 1 (1512101660.629169).
    // The attacker (60:67:…) claims 192.168.6.1 to .117 every 2 s; the real gateway (bc:d1:…)
    // answers the attacker's own request once, at 1.709 s. The IP moves at frame 4 (attacker to
    // gateway, a plain reply, 1709 ms after the attacker's claim: an owner change) and back at
    // frame 5 (293 ms after the gateway's). Frames 1, 4, 5 are claims A, B, A within 2.003 s,
    // inside the 10 s concurrency window, and B never announced a takeover, it answered while A
    // held the IP: a genuine sustained multi-responder, reported on frame 5, whose move back to
    // the attacker is that incident's first evidence rather than a second owner change. The
    // replies went to different requesters, so there is no strong form; the attacker alone
    // claims after frame 5, so the condition ends 30 s (quiet window) after it.
    const ATK: &str = "60:67:20:77:15:22";
    const GW: &str = "bc:d1:77:09:14:15";
    const VICTIM: &str = "00:1f:16:2d:98:49";
    let spoof = |t: f64| frame(t).reply(ATK, "192.168.6.1").to(VICTIM, "192.168.6.117");
    let own_request = |t: f64| {
        let mut f = frame(t).request(ATK, "192.168.6.115").asking("192.168.6.1");
        f.0.tha = mac(ATK);
        f.0.eth_dst = mac(ATK);
        f
    };
    let frames = vec![
        spoof(0.0),
        own_request(0.687457),
        frame(1.707491).request(ATK, "192.168.6.115").asking("192.168.6.1"),
        frame(1.709174).reply(GW, "192.168.6.1").to(ATK, "192.168.6.115"),
        spoof(2.002787),
        spoof(4.004773),
        spoof(6.010540),
        own_request(7.194167),
        spoof(8.020522),
        own_request(8.192100),
        own_request(9.191133),
    ];
    let mut h = Harness::with(EngineConfig { full_view: true, ..EngineConfig::default() });
    let mut per_frame = Vec::new();
    for f in frames {
        per_frame.push(h.feed(f));
    }
    let changes: Vec<(usize, Record<'_>)> = per_frame
        .iter()
        .enumerate()
        .flat_map(|(i, evs)| of(evs, EventKind::OwnerChange).into_iter().map(move |e| (i + 1, e)))
        .collect();
    assert_eq!(changes.len(), 1, "{changes:?}");
    let (frame4, e4) = changes[0];
    assert_eq!(frame4, 4);
    assert_eq!((e4.old_mac, e4.new_mac), (Some(mac(ATK)), Some(mac(GW))));
    assert_eq!((e4.announced, e4.gap_ms), (Some(Announced::Reply), Some(1709)));

    // Frame 5 moves the IP back to the attacker, and that move is the incident's first
    // evidence: one story, a multi-responder, not another owner change beside it.
    let mr = of(&per_frame[4], EventKind::MultiResponder);
    assert_eq!(mr.len(), 1, "frame 5 completes A, B, A with B only answering");
    assert_eq!(
        (mr[0].state, mr[0].form),
        (Some(ConditionState::Start), Some(ResponderForm::Sustained))
    );
    assert_eq!(mr[0].macs, macs(&[ATK, GW]), "in the order of their first claims");
    assert!(of(&per_frame[4], EventKind::OwnerChange).is_empty());
    let all: Vec<Event> = per_frame.concat();
    // The attacker's unicast requests to itself (frames 2, 8, 10, 11) are answered by the next
    // claim or never time out twice in a row before the capture ends: no `unanswered`.
    assert_eq!(alarms(&all), ["owner_change", "multi_responder"]);
    assert!(of(&all, EventKind::Flapping).is_empty(), "two owner changes are not a flap");
    // The attacker's MAC holds two IPs: two bindings, no conflict between them.
    let atk_bindings: Vec<IpAddr> = of(&all, EventKind::NewBinding)
        .iter()
        .filter(|e| e.mac == Some(mac(ATK)))
        .map(|e| e.ip)
        .collect();
    assert_eq!(atk_bindings, [ip("192.168.6.1"), ip("192.168.6.115")]);

    let end = h.tick(2.002787 + 30.0);
    assert_eq!(states(&end, EventKind::MultiResponder), [ConditionState::End]);
}

#[test]
fn multi_responder_lifecycle_start_ongoing_rate_limited_end_after_quiet() {
    let mut h = Harness::new();
    // A and B both keep claiming, alternating every second, for 150 s.
    let frames = (0..150).map(|i| {
        let who = if i % 2 == 0 { A } else { B };
        frame(f64::from(i)).announce(ArpOp::Reply, who, VIP)
    });
    let events = h.feed_all(frames);
    let mr = of(&events, EventKind::MultiResponder);
    assert_eq!(
        states(&events, EventKind::MultiResponder),
        [ConditionState::Start, ConditionState::Ongoing, ConditionState::Ongoing]
    );
    assert_eq!(mr[0].ts, at(3.0), "A, B, A, B: B claims again after A's return");
    assert_eq!(mr[1].ts, at(63.0), "ongoing once the report interval has passed");
    assert_eq!(mr[2].ts, at(123.0));
    assert_eq!(mr[1].first_seen, Some(at(3.0)));
    assert_eq!(mr[2].count, Some(121));

    assert!(h.tick(149.0 + 29.9).is_empty(), "not quiet for the whole window yet");
    let end = h.tick(149.0 + 60.0);
    let ended = of(&end, EventKind::MultiResponder);
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].state, Some(ConditionState::End));
    assert_eq!(ended[0].ts, at(179.0), "end is dated when the quiet window elapsed");
    assert_eq!((ended[0].first_seen, ended[0].last_seen), (Some(at(3.0)), Some(at(149.0))));
    assert_eq!(ended[0].count, Some(147));
    assert_eq!(ended[0].macs, macs(&[A, B]));
    assert_eq!(h.engine.stats().active_conditions, 0);

    // Alternating again after the end is a new start.
    let again = h.feed_all([
        frame(300.0).announce(ArpOp::Reply, A, VIP),
        frame(301.0).announce(ArpOp::Reply, B, VIP),
        frame(302.0).announce(ArpOp::Reply, A, VIP),
        frame(303.0).announce(ArpOp::Reply, B, VIP),
    ]);
    assert_eq!(states(&again, EventKind::MultiResponder), [ConditionState::Start]);
}

#[test]
fn moves_among_the_macs_of_an_open_multi_responder_are_that_incident_not_new_alarms() {
    // `arping -c 5` meets two responders: both answer the broadcast request (strong form), then
    // the follow-up requests are answered by one or the other. The IP moves between them each
    // time; those moves are the incident's evidence, not owner changes piling up into flapping.
    let mut h = Harness::new();
    let answer = |t: f64, who: &str| frame(t).reply(who, VIP).to(CLIENT, CLIENT_IP);
    let mut events = h.feed_all([answer(0.0003, A), answer(0.0005, B)]);
    // Each follow-up reply more than the reply window after the previous one.
    for (i, who) in [B, A, B, A].into_iter().enumerate() {
        events.extend(h.feed(answer(1.05 * (1 + i) as f64, who)));
    }
    assert_eq!(alarms(&events), ["multi_responder"], "{events:?}");
    // Someone else taking the IP over is news, incident or not.
    let takeover = h.feed(frame(6.0).announce(ArpOp::Request, C, VIP));
    assert_eq!(alarms(&takeover), ["owner_change"]);
    assert_eq!(of(&takeover, EventKind::OwnerChange)[0].old_mac, Some(mac(A)));
    let end = h.tick(100.0);
    let ended = of(&end, EventKind::MultiResponder);
    assert_eq!(ended[0].state, Some(ConditionState::End));
    assert_eq!(ended[0].count, Some(5), "the second reply and the four moves");
    assert_eq!(ended[0].macs, macs(&[A, B]));
    assert!(of(&end, EventKind::Flapping).is_empty());
}

#[test]
fn a_multi_responder_incident_keeps_the_form_it_started_with() {
    // Spoofing the gateway: the attacker (B) and the gateway (A) both answer the victim's
    // request (strong), then the attacker keeps re-ARPing (gratuitous) and the gateway keeps
    // answering its clients: further evidence of other forms, one incident, one story.
    let mut h = Harness::new();
    let mut events = h.feed_all([
        frame(0.0).reply(A, VIP).to(CLIENT, CLIENT_IP),
        frame(0.0002).reply(B, VIP).to(CLIENT, CLIENT_IP),
    ]);
    for i in 0..40 {
        let t = 2.0 + 2.0 * f64::from(i);
        events.extend(h.feed(frame(t).announce(ArpOp::Reply, B, VIP)));
        events.extend(h.feed(frame(t + 1.0).reply(A, VIP).to("02:00:00:00:00:98", "192.0.2.98")));
    }
    // A third MAC answering with the attacker is reported at once, as the incident it joins.
    events.extend(h.feed(frame(82.5).reply(B, VIP).to(CLIENT, CLIENT_IP)));
    events.extend(h.feed(frame(82.5002).reply(C, VIP).to(CLIENT, CLIENT_IP)));
    events.extend(h.tick(200.0));
    let mr = of(&events, EventKind::MultiResponder);
    assert_eq!(
        states(&events, EventKind::MultiResponder),
        [
            ConditionState::Start,
            ConditionState::Ongoing,
            ConditionState::Ongoing,
            ConditionState::End
        ],
        "{mr:?}"
    );
    for e in &mr {
        assert_eq!(e.form, Some(ResponderForm::Strong), "{e:?}");
        assert_eq!((e.requester_mac, e.requester_ip), (Some(mac(CLIENT)), Some(ip(CLIENT_IP))));
    }
    assert_eq!(mr[2].macs, macs(&[A, B, C]));
    let others: Vec<_> = alarms(&events).into_iter().filter(|k| *k != "multi_responder").collect();
    assert!(others.is_empty(), "{others:?}");
    assert_eq!(mr[3].count, Some(83), "the second reply, 80 moves, the attacker's and C's");
}

const GW: &str = "02:00:00:00:00:01";
const GW_IP: &str = "192.0.2.1";
const VICTIM: &str = "02:00:00:00:00:20";
const VICTIM_IP: &str = "192.0.2.20";
const ATTACKER: &str = "02:00:00:00:00:66";

#[test]
fn a_claim_contradicting_the_requests_its_ip_keeps_sending_is_a_multi_responder() {
    // Half a man-in-the-middle: the attacker tells the gateway, every 2 s, that the victim's IP
    // is at the attacker's MAC, while the victim keeps sending requests from that IP with its
    // own MAC. The gateway takes either for the victim's IP by turns.
    let mut h = Harness::new();
    let mut events = h.feed_all([
        frame(0.0).request(VICTIM, VICTIM_IP).asking(GW_IP),
        frame(0.001).reply(GW, GW_IP).to(VICTIM, VICTIM_IP),
    ]);
    let poison = |t: f64| frame(t).reply(ATTACKER, VICTIM_IP).to(GW, GW_IP);
    events.extend(h.feed_all([poison(1.0), poison(3.0)]));
    assert!(alarms(&events).is_empty(), "one claim of the victim's IP so far: {events:?}");
    let contradiction = h.feed(frame(4.0).request(VICTIM, VICTIM_IP).asking(GW_IP));
    let mr = of(&contradiction, EventKind::MultiResponder);
    assert_eq!(mr.len(), 1, "{contradiction:?}");
    let e = mr[0];
    assert_eq!((e.state, e.ts, e.ip), (Some(ConditionState::Start), at(4.0), ip(VICTIM_IP)));
    assert_eq!(e.form, Some(ResponderForm::Sender));
    assert_eq!(e.mac, Some(mac(VICTIM)), "the MAC whose requests contradict the claims");
    assert_eq!(e.macs, macs(&[VICTIM, ATTACKER]), "the victim was seen with the IP first");
    assert_eq!(e.severity, crate::event::Severity::Critical);
    assert_eq!((e.requester_mac, e.requester_ip), (None, None));

    // The rest of the incident: more poison, more requests, the victim answering the gateway
    // (the IP moves to it) and the poison taking it back. One story.
    let mut rest = Vec::new();
    for i in 0..5 {
        let t = 5.0 + 2.0 * f64::from(i);
        rest.extend(h.feed(poison(t)));
        rest.extend(h.feed(frame(t + 0.5).request(VICTIM, VICTIM_IP).asking(GW_IP)));
    }
    rest.extend(h.feed(frame(15.0).request(GW, GW_IP).asking(VICTIM_IP)));
    rest.extend(h.feed(frame(15.001).reply(VICTIM, VICTIM_IP).to(GW, GW_IP)));
    rest.extend(h.feed(poison(16.0)));
    rest.extend(h.tick(100.0));
    assert_eq!(alarms(&rest), ["multi_responder"], "only the end: {rest:?}");
    let end = of(&rest, EventKind::MultiResponder);
    assert_eq!((end[0].state, end[0].count), (Some(ConditionState::End), Some(1 + 5 + 2)));
    assert_eq!(end[0].form, Some(ResponderForm::Sender));
}

#[test]
fn a_request_contradicts_only_a_claim_within_the_concurrency_window() {
    // A recycled address: its previous holder answered for it a minute before; the new holder
    // (a DHCP client that does not probe) sends requests from it.
    let run = |asked: f64| {
        let mut h = Harness::new();
        let mut events = h.feed(frame(0.0).reply(A, "192.0.2.50").to(CLIENT, CLIENT_IP));
        events.extend(h.feed(frame(asked).request(C, "192.0.2.50").asking(GW_IP)));
        events.extend(h.tick(200.0));
        alarms(&events)
    };
    assert!(run(60.0).is_empty());
    assert!(run(10.5).is_empty(), "the default concurrency window is 10 s");
    assert_eq!(run(9.5), ["multi_responder", "multi_responder"], "start and end");
}

#[test]
fn dhcp_clients_announcing_then_asking_raise_no_conflict() {
    // RFC 5227: three probes a second apart, two announcements two seconds apart, then the
    // host talks: its requests carry the address it just announced, with its own MAC.
    let mut h = Harness::with(EngineConfig { full_view: true, ..EngineConfig::default() });
    let mut frames: Vec<Frame> = (0..3).map(|i| frame(i as f64).probe(C, "192.0.2.50")).collect();
    frames.push(frame(3.0).announce(ArpOp::Request, C, "192.0.2.50"));
    frames.push(frame(5.0).announce(ArpOp::Request, C, "192.0.2.50"));
    frames.push(frame(5.5).request(C, "192.0.2.50").asking(GW_IP));
    frames.push(frame(5.501).reply(GW, GW_IP).to(C, "192.0.2.50"));
    frames.push(frame(7.0).request(GW, GW_IP).asking("192.0.2.50"));
    frames.push(frame(7.001).reply(C, "192.0.2.50").to(GW, GW_IP));
    let mut events = h.feed_all(frames);
    events.extend(h.tick(100.0));
    assert!(alarms(&events).is_empty(), "{events:?}");
}

#[test]
fn vrrp_and_hsrp_routers_asking_from_their_virtual_ip_raise_no_conflict() {
    // The virtual MAC owns the virtual IP (its announcements); the master router asks for hosts
    // from the virtual IP with its own MAC, as some implementations do.
    const VRRP: &str = "00:00:5e:00:01:07";
    const HSRP: &str = "00:00:0c:07:ac:01";
    const R1: &str = "02:00:00:00:01:01";
    let mut h = Harness::new();
    let mut events = Vec::new();
    for (vmac, vip) in [(VRRP, "192.0.2.1"), (HSRP, "192.0.2.2")] {
        events.extend(h.feed(frame(0.0).announce(ArpOp::Request, vmac, vip).eth_src(R1)));
        events.extend(h.feed(frame(1.0).reply(vmac, vip).to(CLIENT, CLIENT_IP).eth_src(R1)));
        events.extend(h.feed(frame(2.0).request(R1, vip).asking(CLIENT_IP)));
    }
    events.extend(h.tick(100.0));
    assert!(alarms(&events).is_empty(), "{events:?}");
}

#[test]
fn a_proxy_arp_router_answering_for_hosts_that_ask_themselves_is_no_conflict() {
    // One MAC answering for many IPs (local proxy ARP between isolated ports): the router
    // answers the client for each host, and each host asks the router with its own MAC.
    const ROUTER: &str = "02:00:00:00:00:fe";
    let host = |i: u32| (format!("02:00:00:00:02:{i:02x}"), format!("192.0.2.{}", 100 + i));
    let mut h = Harness::new();
    let mut events = Vec::new();
    for i in 0..8 {
        let (_, host_ip) = host(i);
        let t = f64::from(i) * 0.1;
        events.extend(h.feed(frame(t).request(CLIENT, CLIENT_IP).asking(&host_ip)));
        events.extend(h.feed(frame(t + 0.001).reply(ROUTER, &host_ip).to(CLIENT, CLIENT_IP)));
    }
    for i in 0..8 {
        let (host_mac, host_ip) = host(i);
        events.extend(
            h.feed(frame(1.0 + f64::from(i) * 0.1).request(&host_mac, &host_ip).asking(GW_IP)),
        );
    }
    events.extend(h.tick(100.0));
    assert!(alarms(&events).is_empty(), "{:?}", alarms(&events));
    // A MAC answering for a few IPs is no proxy: a man-in-the-middle poisoning both ends.
    let mut h = Harness::new();
    let events = h.feed_all([
        frame(0.0).reply(ATTACKER, "192.0.2.66").to(CLIENT, CLIENT_IP),
        frame(0.1).reply(ATTACKER, VICTIM_IP).to(GW, GW_IP),
        frame(0.2).reply(ATTACKER, GW_IP).to(VICTIM, VICTIM_IP),
        frame(1.0).request(GW, GW_IP).asking(VICTIM_IP),
    ]);
    assert_eq!(alarms(&events), ["multi_responder"]);
}

// ---------------------------------------------------------------- flapping

#[test]
fn flapping_starts_at_the_nth_owner_change_within_the_window_and_ends_after_quiet() {
    let mut h = Harness::new();
    // Owner changes at 11, 22, 33, 44 s: far enough apart that no claims interleave within 10 s.
    let frames = (0..5).map(|i| {
        let who = if i % 2 == 0 { A } else { B };
        frame(11.0 * f64::from(i)).announce(ArpOp::Request, who, VIP)
    });
    let events = h.feed_all(frames);
    assert_eq!(of(&events, EventKind::OwnerChange).len(), 4);
    assert!(of(&events, EventKind::MultiResponder).is_empty());
    let flaps = of(&events, EventKind::Flapping);
    assert_eq!(flaps.len(), 1, "one start; the fourth change is within the report interval");
    assert_eq!(flaps[0].state, Some(ConditionState::Start));
    assert_eq!(flaps[0].ts, at(33.0));
    assert_eq!(flaps[0].count, Some(3));
    assert_eq!(flaps[0].macs, macs(&[A, B]), "the third change, A to B");
    let end = h.tick(44.0 + 30.0);
    let ended = of(&end, EventKind::Flapping);
    assert_eq!(ended.len(), 1);
    assert_eq!((ended[0].state, ended[0].count), (Some(ConditionState::End), Some(4)));
}

#[test]
fn owner_changes_spread_beyond_the_flap_window_are_not_flapping() {
    let mut h = Harness::new();
    let frames = (0..4).map(|i| {
        let who = if i % 2 == 0 { A } else { B };
        frame(31.0 * f64::from(i)).announce(ArpOp::Request, who, VIP)
    });
    let events = h.feed_all(frames);
    assert_eq!(of(&events, EventKind::OwnerChange).len(), 3);
    assert!(of(&events, EventKind::Flapping).is_empty(), "changes at 31, 62, 93 s span 62 s");
}

// ---------------------------------------------------------------- pools

#[test]
fn unknown_responder_for_a_pool_ip_is_critical_and_repeats_at_most_per_interval() {
    let mut h = Harness::with(pool_config(vip_pool()));
    let allowed = h.feed(frame(0.0).reply(A, VIP).to(CLIENT, CLIENT_IP));
    assert!(of(&allowed, EventKind::UnknownResponder).is_empty());
    let foreign = h.feed(frame(20.0).reply(C, VIP).to(CLIENT, CLIENT_IP));
    let unknown = of(&foreign, EventKind::UnknownResponder);
    assert_eq!(unknown.len(), 1);
    assert_eq!(unknown[0].mac, Some(mac(C)));
    assert_eq!(unknown[0].pool, Some("vips"));
    assert_eq!(unknown[0].count, Some(1));
    assert_eq!(unknown[0].severity, crate::event::Severity::Critical);
    for i in 1..10 {
        let again = h.feed(frame(20.0 + f64::from(i)).reply(C, VIP).to(CLIENT, CLIENT_IP));
        assert!(of(&again, EventKind::UnknownResponder).is_empty());
    }
    let later = h.feed(frame(80.0).reply(C, VIP).to(CLIENT, CLIENT_IP));
    assert_eq!(of(&later, EventKind::UnknownResponder)[0].count, Some(10));
    // Outside the pool, any MAC may answer.
    let outside = h.feed(frame(81.0).reply(C, "198.51.100.1").to(CLIENT, CLIENT_IP));
    assert!(of(&outside, EventKind::UnknownResponder).is_empty());
}

#[test]
fn a_pool_ip_claimed_on_an_interface_outside_the_pool_is_unexpected() {
    let mut h = Harness::with(pool_config(vip_pool()));
    let good = h.feed(frame(0.0).reply(A, VIP).to(CLIENT, CLIENT_IP));
    assert!(alarms(&good).is_empty());
    let bad = h.feed(frame(1.0).reply(A, VIP).to(CLIENT, CLIENT_IP).on("eth1"));
    let e = of(&bad, EventKind::UnexpectedInterface);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].iface, "eth1");
    assert_eq!(e[0].allowed_ifaces, vec![Arc::<str>::from("eth0")]);
    assert_eq!(e[0].mac, Some(mac(A)));
    assert_eq!(e[0].direction, Some(Direction::Ingress));
    let repeat = h.feed(frame(2.0).reply(A, VIP).to(CLIENT, CLIENT_IP).on("eth1"));
    assert!(of(&repeat, EventKind::UnexpectedInterface).is_empty());
    let other = h.feed(frame(3.0).reply(A, VIP).to(CLIENT, CLIENT_IP).on("eth2"));
    assert_eq!(of(&other, EventKind::UnexpectedInterface).len(), 1, "another interface is news");
}

#[test]
fn this_host_answering_one_ip_on_two_interfaces_is_unexpected() {
    let mut h = Harness::new();
    let first = h.feed(frame(0.0).reply(A, VIP).to(CLIENT, CLIENT_IP).egress());
    assert!(alarms(&first).is_empty());
    let second = h.feed(frame(0.5).reply(B, VIP).to(CLIENT, CLIENT_IP).on("eth1").egress());
    let e = of(&second, EventKind::UnexpectedInterface);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].ifaces, vec![Arc::<str>::from("eth0"), Arc::<str>::from("eth1")]);
    assert_eq!(e[0].direction, Some(Direction::Egress));
    // Answers on one interface at a time, more than the window apart, are fine.
    let mut h = Harness::new();
    let events = h.feed_all([
        frame(0.0).reply(A, VIP).to(CLIENT, CLIENT_IP).egress(),
        frame(11.0).reply(A, VIP).to(CLIENT, CLIENT_IP).on("eth1").egress(),
    ]);
    assert!(of(&events, EventKind::UnexpectedInterface).is_empty());
}

// ---------------------------------------------------------------- unanswered

#[test]
fn unanswered_requests_this_host_sent_start_end_and_carry_the_requester() {
    let mut h = Harness::new();
    h.feed(frame(0.0).reply(A, VIP).to(CLIENT, CLIENT_IP));
    // The owner dies; this host keeps asking once a second.
    let ask = |t: f64| frame(t).request(CLIENT, CLIENT_IP).asking(VIP).egress();
    let mut events = h.feed_all([ask(10.0), ask(11.0)]);
    assert!(of(&events, EventKind::Unanswered).is_empty(), "one timed-out request is not enough");
    events.extend(h.tick(12.0));
    let un = of(&events, EventKind::Unanswered);
    assert_eq!(un.len(), 1);
    let e = un[0];
    assert_eq!(e.state, Some(ConditionState::Start));
    assert_eq!(e.ts, at(12.0), "dated at the second request's deadline");
    assert_eq!(e.count, Some(2));
    assert_eq!((e.requester_mac, e.requester_ip), (Some(mac(CLIENT)), Some(ip(CLIENT_IP))));
    assert_eq!(e.mac, Some(mac(A)), "the last owner");
    assert_eq!(e.direction, Some(Direction::Egress));
    assert_eq!(e.severity, crate::event::Severity::Critical);

    let more = h.feed_all((12..20).map(|i| ask(f64::from(i))));
    assert!(of(&more, EventKind::Unanswered).is_empty(), "ongoing waits for the report interval");
    // An answer ends it at once, naming who answered.
    let answered = h.feed(frame(20.5).reply(B, VIP).to(CLIENT, CLIENT_IP));
    let end = of(&answered, EventKind::Unanswered);
    assert_eq!(end.len(), 1);
    assert_eq!(end[0].state, Some(ConditionState::End));
    assert_eq!(end[0].mac, Some(mac(B)));
    assert_eq!(end[0].count, Some(10));
}

#[test]
fn unanswered_ends_after_the_quiet_window_when_the_asking_stops() {
    let mut h = Harness::new();
    h.feed(frame(0.0).reply(A, VIP).to(CLIENT, CLIENT_IP));
    let ask = |t: f64| frame(t).request(CLIENT, CLIENT_IP).asking(VIP).egress();
    h.feed_all([ask(10.0), ask(11.0)]);
    let mut events = h.tick(12.0);
    events.extend(h.tick(12.0 + 30.0));
    assert_eq!(
        states(&events, EventKind::Unanswered),
        [ConditionState::Start, ConditionState::End]
    );
}

#[test]
fn unanswered_is_only_judged_where_the_reply_would_be_seen() {
    let ask = |t: f64| frame(t).request(CLIENT, CLIENT_IP).asking(VIP);
    let owned_then_silent = |h: &mut Harness| {
        let mut events = h.feed(frame(0.0).reply(A, VIP).to(CLIENT, CLIENT_IP));
        events.extend(h.feed_all((10..15).map(|i| ask(f64::from(i)))));
        events.extend(h.tick(20.0));
        events
    };
    // A DaemonSet node sees other hosts' requests but not the replies to them.
    let mut h = Harness::new();
    assert!(of(&owned_then_silent(&mut h), EventKind::Unanswered).is_empty());
    // A mirror port (or a capture) sees everything.
    let mut h = Harness::with(EngineConfig { full_view: true, ..EngineConfig::default() });
    assert_eq!(states(&owned_then_silent(&mut h), EventKind::Unanswered), [ConditionState::Start]);
    // An IP nobody ever owned and no pool lists is not watched (zeek_linuxsll-arp.pcap).
    let mut h = Harness::with(EngineConfig { full_view: true, ..EngineConfig::default() });
    let mut events = h.feed_all((0..9).map(|i| ask(f64::from(i)).0.clone()).map(Frame));
    events.extend(h.tick(20.0));
    assert!(of(&events, EventKind::Unanswered).is_empty());
    // A pool IP is watched even if it never had an owner (a dead speaker from the start).
    let mut cfg = pool_config(vip_pool());
    cfg.full_view = true;
    let mut h = Harness::with(cfg);
    let mut events = h.feed_all((0..3).map(|i| ask(f64::from(i))));
    events.extend(h.tick(3.0 + 30.0));
    let un = of(&events, EventKind::Unanswered);
    assert_eq!(un[0].pool, Some("vips"));
    assert_eq!(
        states(&events, EventKind::Unanswered),
        [ConditionState::Start, ConditionState::End]
    );
}

#[test]
fn a_request_answered_within_the_timeout_is_not_unanswered() {
    let mut h = Harness::with(EngineConfig { full_view: true, ..EngineConfig::default() });
    h.feed(frame(0.0).reply(A, VIP).to(CLIENT, CLIENT_IP));
    let mut events = Vec::new();
    for i in 1..20 {
        let t = f64::from(i) * 2.0;
        events.extend(h.feed(frame(t).request(CLIENT, CLIENT_IP).asking(VIP)));
        events.extend(h.feed(frame(t + 0.9).reply(A, VIP).to(CLIENT, CLIENT_IP)));
    }
    events.extend(h.tick(100.0));
    assert!(alarms(&events).is_empty(), "{events:?}");
    assert_eq!(h.engine.stats().pending_requests, 0);
}

#[test]
fn unanswered_needs_one_requester_asking_again_not_many_hosts_asking_once() {
    // A capture taken on a host (tcpdump_arp-oobr_fuzzed.pcap underneath the fuzzing): it sees
    // every host's broadcast request for the gateway but only the unicast replies sent to itself.
    // Each host asks once, or again minutes later when its cache entry expires: none of that
    // shows a request going unanswered, since a host that got no answer retransmits at once.
    let gateway_owned = || {
        let mut h = Harness::with(EngineConfig { full_view: true, ..EngineConfig::default() });
        h.feed(frame(0.0).reply(A, VIP).to(CLIENT, CLIENT_IP));
        h
    };
    let ask = |t: f64, host: u8| {
        frame(t)
            .request(&format!("02:00:00:00:01:{host:02x}"), &format!("192.0.2.{host}"))
            .asking(VIP)
    };

    let mut h = gateway_owned();
    let mut events = h.feed_all((1..=8).map(|i| ask(f64::from(i) * 40.0, i)));
    // Two hosts asking within the same second are two first requests as well.
    events.extend(h.feed_all([ask(400.0, 20), ask(400.4, 21), ask(401.2, 22)]));
    // The same host refreshing its cache every 45 s.
    events.extend(h.feed_all((0..5).map(|i| ask(500.0 + f64::from(i) * 45.0, 30))));
    events.extend(h.tick(800.0));
    assert!(of(&events, EventKind::Unanswered).is_empty(), "{events:?}");

    // One host retransmitting because nobody answers: unanswered at its second timeout, naming
    // it, even while other hosts' requests are interleaved.
    let mut h = gateway_owned();
    let mut events =
        h.feed_all([ask(10.0, 7), ask(10.3, 8), ask(11.0, 7), ask(11.5, 9), ask(12.0, 7)]);
    events.extend(h.tick(13.0));
    let un = of(&events, EventKind::Unanswered);
    assert_eq!(un.len(), 1, "{events:?}");
    assert_eq!(un[0].state, Some(ConditionState::Start));
    assert_eq!(un[0].ts, at(12.0));
    assert_eq!(un[0].count, Some(2));
    assert_eq!(
        (un[0].requester_mac, un[0].requester_ip),
        (Some(mac("02:00:00:00:01:07")), Some(ip("192.0.2.7")))
    );
}

/// `arping -c 5` for a dead VIP from this host: requests 0.9998 s apart (iputils waits a
/// little under a second between them), the first at 10 s. The kernel folds a request identical
/// to one it emitted less than 1 s before into the next record of that tuple: the records are
/// 10.0 (alone), 11.9996 (carrying the fold of 10.9998) and 13.9992 (carrying 12.9994).
fn arping_five_requests_as_the_kernel_folds_them(last_repeat_known: bool) -> Vec<Frame> {
    let ask = |t: f64| frame(t).request(CLIENT, CLIENT_IP).asking(VIP).egress();
    let folded = |t: f64, repeat: f64| {
        let f = ask(t).repeats(1);
        if last_repeat_known {
            f.last_repeat(repeat)
        } else {
            f
        }
    };
    vec![ask(10.0), folded(11.9996, 10.9998), folded(13.9992, 12.9994)]
}

#[test]
fn arping_retransmissions_folded_by_the_kernel_count_and_time_out_on_their_own() {
    let run = |last_repeat_known: bool| {
        let mut h = Harness::new();
        h.feed(frame(0.0).reply(A, VIP).to(CLIENT, CLIENT_IP));
        let mut events = Vec::new();
        for f in arping_five_requests_as_the_kernel_folds_them(last_repeat_known) {
            // Ticked at every deadline, as the watch loop does.
            while let Some(d) = h.engine.next_deadline().filter(|d| *d < f.ts) {
                events.extend(h.tick(d.saturating_since(at(0.0)).as_secs_f64()));
            }
            events.extend(h.feed(f));
        }
        events.extend(h.tick(100.0));
        let un: Vec<(ConditionState, Timestamp, u64)> = of(&events, EventKind::Unanswered)
            .iter()
            .map(|e| (e.state.unwrap(), e.ts, e.count.unwrap()))
            .collect();
        un
    };
    // The second request (folded at 10.9998) has its own deadline, 11.9998: `unanswered` starts
    // there, 2 s after the first request, with the three requests sent by then (the third, at
    // 11.9996, was sent while the second waited). All five are counted by the end.
    let un = run(true);
    assert_eq!(un.len(), 2, "{un:?}");
    assert_eq!((un[0].0, un[0].1), (ConditionState::Start, at(11.9998)));
    assert_eq!(un[0].2, 3);
    assert_eq!((un[1].0, un[1].2), (ConditionState::End, 5));
    // Without the time of the fold, the folded requests still count, with the record that
    // carried them: no time is invented for them.
    let un = run(false);
    assert_eq!((un[0].0, un[0].1, un[0].2), (ConditionState::Start, at(12.9996), 3));
    assert_eq!((un[1].0, un[1].2), (ConditionState::End, 5));
}

#[test]
fn a_requester_asking_twice_within_a_second_is_not_missed_when_the_kernel_folds_the_second() {
    // Requests at 10.0 and 10.6 (folded), then one more at 11.5 that carries the fold.
    let mut h = Harness::new();
    h.feed(frame(0.0).reply(A, VIP).to(CLIENT, CLIENT_IP));
    let ask = |t: f64| frame(t).request(CLIENT, CLIENT_IP).asking(VIP).egress();
    let mut events = h.feed(ask(10.0));
    events.extend(h.tick(11.0));
    events.extend(h.feed(ask(11.5).repeats(1).last_repeat(10.6)));
    events.extend(h.tick(11.6));
    let un = of(&events, EventKind::Unanswered);
    assert_eq!(un.len(), 1, "{events:?}");
    assert_eq!((un[0].ts, un[0].count), (at(11.6), Some(3)));

    // Two requests within a second, both in one record (the second folded, carried by the
    // record of a third): without its time, the fold still makes the count.
    let mut h = Harness::new();
    h.feed(frame(0.0).reply(A, VIP).to(CLIENT, CLIENT_IP));
    let mut events = h.feed(ask(10.0).repeats(1));
    events.extend(h.tick(11.0));
    let un = of(&events, EventKind::Unanswered);
    assert_eq!((un[0].ts, un[0].count), (at(11.0), Some(2)), "{events:?}");

    // A fold handed over long after (the requester asked again only much later) times out
    // when the record carrying it comes, and still makes the second of the streak.
    let mut h = Harness::new();
    h.feed(frame(0.0).reply(A, VIP).to(CLIENT, CLIENT_IP));
    let mut events = h.feed(ask(10.0));
    events.extend(h.tick(39.0));
    events.extend(h.feed(ask(40.0).repeats(1).last_repeat(10.6)));
    let un = of(&events, EventKind::Unanswered);
    assert_eq!((un[0].ts, un[0].count), (at(40.0), Some(2)), "{events:?}");

    // A folded request that a claim answered after it was sent is no unanswered request.
    let mut h = Harness::new();
    h.feed(frame(0.0).reply(A, VIP).to(CLIENT, CLIENT_IP));
    let mut events = h.feed(ask(10.0));
    events.extend(h.feed(frame(10.5).reply(A, VIP).to(CLIENT, CLIENT_IP)));
    events.extend(h.feed(ask(20.0)));
    events.extend(h.feed(frame(20.7).reply(A, VIP).to(CLIENT, CLIENT_IP)));
    events.extend(h.feed(ask(21.0).repeats(1).last_repeat(20.5)));
    events.extend(h.tick(30.0));
    assert!(of(&events, EventKind::Unanswered).is_empty(), "{events:?}");
}

// ---------------------------------------------------------------- sender mismatch and storms

#[test]
fn sender_mismatch_is_reported_once_per_interval_and_is_exemptable() {
    let mut h = Harness::new();
    let spoofed = |t: f64| frame(t).reply(A, VIP).to(CLIENT, CLIENT_IP).eth_src(B);
    let first = h.feed(spoofed(0.0));
    let mm = of(&first, EventKind::SenderMismatch);
    assert_eq!(mm.len(), 1);
    assert_eq!((mm[0].mac, mm[0].eth_src), (Some(mac(A)), Some(mac(B))));
    assert!(of(&h.feed(spoofed(1.0)), EventKind::SenderMismatch).is_empty());
    assert_eq!(of(&h.feed(spoofed(61.0)), EventKind::SenderMismatch)[0].count, Some(2));

    let mut cfg = EngineConfig::default();
    cfg.exemptions.sender_mismatch_macs = vec![mac(A)];
    let mut h = Harness::with(cfg);
    assert!(of(&h.feed(spoofed(0.0)), EventKind::SenderMismatch).is_empty());
}

#[test]
fn sender_mismatch_about_a_pool_ip_names_the_pool_like_the_other_events_about_it() {
    let mut h = Harness::with(pool_config(vip_pool()));
    let events = h.feed(frame(0.0).reply(C, VIP).to(CLIENT, CLIENT_IP).eth_src(B));
    let mm = of(&events, EventKind::SenderMismatch);
    assert_eq!(mm.len(), 1);
    assert_eq!(mm[0].pool, Some("vips"));
    assert_eq!(of(&events, EventKind::UnknownResponder)[0].pool, Some("vips"));
    // A probe names its target, and so does its mismatch.
    let probe = h.feed(frame(61.0).probe(C, "192.0.2.11").eth_src(B));
    assert_eq!(of(&probe, EventKind::SenderMismatch)[0].pool, Some("vips"));
    // Outside every pool there is no pool to name.
    let outside = h.feed(frame(0.0).reply(A, "198.51.100.1").to(CLIENT, CLIENT_IP).eth_src(B));
    assert_eq!(of(&outside, EventKind::SenderMismatch)[0].pool, None);
}

#[test]
fn storm_per_sender_mac_has_a_lifecycle() {
    let mut h = Harness::new();
    // 200 requests a second from one MAC for 3 s (a scan or a loop), default threshold 50/s.
    let frames = (0..600).map(|i| {
        let target = format!("10.0.{}.{}", i / 256, i % 256);
        frame(f64::from(i) * 0.005).request(C, "10.0.0.1").asking(&target)
    });
    let events = h.feed_all(frames);
    let storms = of(&events, EventKind::Storm);
    assert_eq!(storms.len(), 1, "one start, no ongoing within the report interval");
    let s = storms[0];
    assert_eq!(s.state, Some(ConditionState::Start));
    assert_eq!(s.scope, Some(StormScope::Mac));
    assert_eq!(s.mac, Some(mac(C)));
    assert_eq!(s.ip, ip("10.0.0.1"), "a per-MAC storm names the sender's IP");
    assert_eq!(s.ts, at(0.25), "the 51st frame in a second");
    assert_eq!(s.rate, Some(51));
    let end = h.tick(3.0 + 30.0);
    let ended = of(&end, EventKind::Storm);
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].state, Some(ConditionState::End));
    assert_eq!(ended[0].count, Some(550));
}

#[test]
fn storm_per_interface_counts_all_senders() {
    // Their 1000 bindings are beyond the budget of informational events (tests/budget.rs).
    let mut cfg = EngineConfig::default();
    cfg.thresholds.info_rate_per_iface = 0;
    let mut h = Harness::with(cfg);
    // 1000 frames a second from 1000 different MACs: no single sender storms.
    let frames = (0..1000u32).map(|i| {
        let m = format!("02:00:00:00:{:02x}:{:02x}", i / 256, i % 256);
        frame(f64::from(i) * 0.001).request(&m, "10.0.0.1").asking("10.0.0.2")
    });
    let events = h.feed_all(frames);
    let storms = of(&events, EventKind::Storm);
    assert_eq!(storms.len(), 1);
    assert_eq!(storms[0].scope, Some(StormScope::Iface));
    assert_eq!(storms[0].iface, "eth0");
    assert_eq!(
        storms[0].ip,
        IpAddr::from(Ipv4Addr::UNSPECIFIED),
        "an interface storm has no single IP"
    );
}

// ---------------------------------------------------------------- bounds, determinism, time

#[test]
fn a_sender_is_tracked_from_its_second_frame_and_the_tracked_ones_stay_within_their_cap() {
    let mut cfg = EngineConfig::default();
    cfg.caps.max_tracked_senders = 50;
    let mut h = Harness::with(cfg);
    let macs: Vec<String> =
        (0..1000u32).map(|i| format!("02:00:00:01:{:02x}:{:02x}", i / 256, i % 256)).collect();
    let request = |t: f64, m: &str| frame(t).request(m, "10.0.0.1").asking("10.0.0.2");
    // One frame each, as in a spoofing flood: none is tracked.
    for (i, m) in macs.iter().enumerate() {
        h.feed(request(i as f64 * 0.001, m));
    }
    assert_eq!(h.engine.stats().tracked_senders, 0);
    // Two each, back to back: every one is tracked, the least recently seen forgotten past the cap.
    for (i, m) in macs.iter().enumerate() {
        let t = 10.0 + i as f64 * 0.001;
        h.feed(request(t, m));
        h.feed(request(t, m));
    }
    let stats = h.engine.stats();
    assert_eq!(stats.tracked_senders, 50);
    assert_eq!(stats.evictions.senders, 950);
}

#[test]
fn a_proxy_is_recognised_at_its_fourth_ip_counting_the_one_before_it_was_tracked() {
    // A proxy's first reply is remembered with its first sighting: four IPs make it a proxy, as
    // they would had it been tracked from the first one.
    let mut h = Harness::new();
    for (i, target) in ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"].iter().enumerate() {
        h.feed(frame(i as f64 * 0.1).reply(C, *target).to(CLIENT, CLIENT_IP));
    }
    assert!(h.engine.senders.is_proxy(mac(C)));
    // One frame fewer is not a proxy.
    let mut h = Harness::new();
    for (i, target) in ["10.0.0.1", "10.0.0.2", "10.0.0.3"].iter().enumerate() {
        h.feed(frame(i as f64 * 0.1).reply(C, *target).to(CLIENT, CLIENT_IP));
    }
    assert!(!h.engine.senders.is_proxy(mac(C)));
}

#[test]
fn a_mac_seen_as_the_arp_sender_of_another_source_has_not_sent_a_frame_of_its_rate() {
    let mut cfg = EngineConfig::default();
    // A sends for others (a bond, a load balancer): no sender mismatch, so C is not tracked.
    cfg.exemptions.sender_mismatch_macs = vec![mac(A)];
    let mut h = Harness::with(cfg);
    // C as the ARP sender of a reply A sent: a first sighting of C, with the IP it answered for.
    let events = h.feed(frame(0.0).reply(C, "10.0.0.1").to(CLIENT, CLIENT_IP).eth_src(A));
    assert!(alarms(&events).is_empty());
    // Then C's own frames, 200 a second: its storm starts at its 51st, not its 50th.
    let frames = (0..100)
        .map(|i| frame(0.5 + f64::from(i) * 0.005).request(C, "10.0.0.1").asking("10.0.0.2"));
    let events = h.feed_all(frames);
    let storms = of(&events, EventKind::Storm);
    assert_eq!(storms.len(), 1);
    assert_eq!(storms[0].ts, at(0.5 + 50.0 * 0.005));
    assert_eq!(storms[0].rate, Some(51));
}

#[test]
fn a_first_frame_carrying_repeats_is_tracked_and_counted_at_once() {
    let mut h = Harness::new();
    // The first record of a MAC, standing for 60 frames (59 of them folded by the kernel) within
    // a second: above 50/s.
    let first = frame(0.9).request(C, "10.0.0.1").asking("10.0.0.2").repeats(59).last_repeat(0.8);
    let events = h.feed(first);
    let storms = of(&events, EventKind::Storm);
    assert_eq!(storms.len(), 1);
    assert_eq!(storms[0].mac, Some(mac(C)));
    assert_eq!(storms[0].rate, Some(60));
}

#[test]
fn a_flood_of_random_addresses_stays_within_the_caps() {
    let cfg = EngineConfig {
        caps: Caps {
            max_tracked_ips: 100,
            max_macs_per_ip: 4,
            max_tracked_senders: 50,
            max_interfaces: 2,
        },
        ..EngineConfig::default()
    };
    let mut h = Harness::with(cfg);
    let mut out = Vec::new();
    let mut seed: u32 = 0x1234_5678;
    for i in 0..10_000u32 {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let b = seed.to_be_bytes();
        let f = frame(f64::from(i) * 0.01)
            .reply(
                &format!("02:{:02x}:{:02x}:{:02x}:{:02x}:01", b[0], b[1], b[2], b[3]),
                &format!("10.{}.{}.{}", b[0], b[1], b[2]),
            )
            .to(CLIENT, CLIENT_IP);
        h.engine.observe(&f.0, &mut out);
        out.clear();
    }
    // And 20 MACs for one IP.
    for i in 0..20u32 {
        let f = frame(200.0 + f64::from(i))
            .reply(&format!("02:00:00:00:01:{i:02x}"), VIP)
            .to(CLIENT, CLIENT_IP);
        h.engine.observe(&f.0, &mut out);
    }
    let stats = h.engine.stats();
    assert!(stats.tracked_ips <= 100);
    assert!(stats.tracked_macs <= 100 * 4);
    assert_eq!(stats.tracked_senders, 0, "every MAC sent one frame: none is tracked");
    assert!(stats.evictions.ips >= 9_900);
    assert_eq!(stats.evictions.macs, 16);
    assert_eq!(stats.observations, 10_020);
    let vip_macs = h.engine.ips.peek(&ip(VIP)).unwrap().bindings.len();
    assert_eq!(vip_macs, 4);
}

#[test]
fn the_same_input_gives_the_same_events() {
    let run = || {
        let mut h = Harness::with(pool_config(vip_pool()));
        let frames = (0..300).map(|i| {
            let who = [A, B, C][i % 3];
            frame(i as f64 * 0.3).reply(who, VIP).to(CLIENT, CLIENT_IP)
        });
        let mut events = h.feed_all(frames);
        events.extend(h.tick(500.0));
        serde_json::to_string(&events.iter().map(Record::of).collect::<Vec<_>>()).unwrap()
    };
    assert_eq!(run(), run());
}

#[test]
fn next_deadline_says_when_each_timer_runs_out_so_a_tick_then_reports_it_on_time() {
    let mut h = Harness::new();
    assert_eq!(h.engine.next_deadline(), None, "nothing is waiting");
    h.feed(frame(0.0).reply(A, VIP).to(CLIENT, CLIENT_IP));
    assert_eq!(h.engine.next_deadline(), None, "a claim starts no timer");
    // The owner dies; this host asks at 10.0 and again at 11.2.
    let ask = |t: f64| frame(t).request(CLIENT, CLIENT_IP).asking(VIP).egress();
    h.feed(ask(10.0));
    assert_eq!(h.engine.next_deadline(), Some(at(11.0)), "the request's reply deadline");
    assert!(h.tick(10.999).is_empty(), "an early tick does nothing");
    assert!(h.tick(11.0).is_empty(), "one request timed out");
    assert_eq!(h.engine.next_deadline(), None);
    h.feed(ask(11.2));
    assert_eq!(h.engine.next_deadline(), Some(at(12.2)));
    // Ticked exactly at the deadline (as the watch loop does), the start is reported then.
    let un = h.tick(12.2);
    assert_eq!(states(&un, EventKind::Unanswered), [ConditionState::Start]);
    assert_eq!(of(&un, EventKind::Unanswered)[0].ts, at(12.2));
    // Then the quiet window of the open condition.
    assert_eq!(h.engine.next_deadline(), Some(at(12.2 + 30.0)));
    let end = h.tick(12.2 + 30.0);
    assert_eq!(states(&end, EventKind::Unanswered), [ConditionState::End]);
    assert_eq!(of(&end, EventKind::Unanswered)[0].ts, at(42.2));
    assert_eq!(h.engine.next_deadline(), None);

    // Requests for several IPs and conditions of several kinds: always the earliest.
    let mut h = Harness::with(pool_config(vip_pool()));
    let ask_for =
        |t: f64, target: &str| frame(t).request(CLIENT, CLIENT_IP).asking(target).egress();
    h.feed(ask_for(0.0, "192.0.2.1"));
    h.feed(frame(0.2).reply(A, VIP).to(CLIENT, CLIENT_IP));
    h.feed(frame(0.3).reply(B, VIP).to(CLIENT, CLIENT_IP)); // a strong multi-responder
    h.feed(ask_for(0.5, "192.0.2.2"));
    assert_eq!(h.engine.next_deadline(), Some(at(1.0)));
    h.tick(1.0);
    assert_eq!(h.engine.next_deadline(), Some(at(1.5)));
    h.tick(1.5);
    assert_eq!(h.engine.next_deadline(), Some(at(30.3)), "the multi-responder goes quiet");
}

#[test]
fn observations_from_the_past_are_taken_as_now() {
    let mut h = Harness::new();
    h.feed(frame(10.0).reply(A, VIP).to(CLIENT, CLIENT_IP));
    let events = h.feed(frame(9.0).announce(ArpOp::Request, B, VIP));
    let change = of(&events, EventKind::OwnerChange);
    assert_eq!(change[0].ts, at(10.0));
    assert_eq!(change[0].gap_ms, Some(0));
}

#[test]
fn stats_count_events_by_kind() {
    let mut h = Harness::new();
    h.feed_all([
        frame(0.0).reply(A, VIP).to(CLIENT, CLIENT_IP),
        frame(0.1).reply(B, VIP).to(CLIENT, CLIENT_IP),
        frame(0.2).probe(C, "192.0.2.77"),
    ]);
    let stats = h.engine.stats();
    assert_eq!(stats.events_of(EventKind::NewBinding), 2);
    assert_eq!(stats.events_of(EventKind::MultiResponder), 1);
    assert_eq!(stats.events_of(EventKind::Probe), 1);
    assert_eq!(stats.claims, 2);
    // The probed IP is tracked too, until a claim answers the probe or it is evicted.
    assert_eq!((stats.tracked_ips, stats.tracked_macs), (2, 2));
    assert_eq!(stats.active_conditions, 1);
}

// ---------------------------------------------------------------- schema

/// Every field the engine emits, and every raw-observation field, is declared in the JSON
/// Schema with a matching type, and required fields are present.
#[test]
fn emitted_events_and_raw_observations_match_the_schema_file() {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../../../docs/schema/arpwatch-events.schema.json"))
            .unwrap();
    let defs = &schema["$defs"];
    assert_eq!(defs["event"]["properties"]["schema"]["const"], crate::wire::SCHEMA_VERSION);

    let mut cfg = pool_config(vip_pool());
    cfg.full_view = true;
    let mut h = Harness::with(cfg);
    // The cluster: node-a (A on eth0) announces the VIP of Service web/front; node-b has B on
    // eth1; C is nobody's. B's answer at 0.6 is an announcer_mismatch once the grace is over.
    let cluster = schema_cluster();
    h.engine.set_declarations(cluster.declarations());
    let mut events = h.feed_all([
        frame(0.0).probe(C, VIP),
        frame(0.5).reply(A, VIP).to(CLIENT, CLIENT_IP),
        frame(0.6).reply(B, VIP).to(CLIENT, CLIENT_IP).on("eth1"),
        frame(0.7).reply(C, VIP).to(CLIENT, CLIENT_IP).eth_src(A),
        frame(0.8).probe(B, VIP),
        frame(1.0).announce(ArpOp::Request, B, VIP),
        frame(2.0).announce(ArpOp::Request, A, VIP),
        frame(3.0).announce(ArpOp::Request, B, VIP),
        frame(4.0).request(CLIENT, CLIENT_IP).asking("192.0.2.5"),
        frame(5.0).request(CLIENT, CLIENT_IP).asking("192.0.2.5"),
        frame(6.0).reply(A, "192.0.2.3").to(CLIENT, CLIENT_IP).egress(),
        frame(6.1).reply(A, "192.0.2.3").to(CLIENT, CLIENT_IP).on("eth1").egress(),
    ]);
    events.extend(
        h.feed_all(
            (0..100).map(|i| {
                frame(10.0 + f64::from(i) * 0.001).request(C, "10.0.0.1").asking("10.0.0.2")
            }),
        ),
    );
    // A request from an IP another MAC has just claimed: the sender form, naming the sender.
    events.extend(h.feed_all([
        frame(30.0).reply(A, "192.0.2.7").to(CLIENT, CLIENT_IP),
        frame(31.0).request(B, "192.0.2.7").asking(CLIENT_IP),
    ]));
    // Owner changes 11 s apart (no multi-responder): flapping at the third.
    events.extend(h.feed_all([
        frame(40.0).announce(ArpOp::Request, A, "192.0.2.6"),
        frame(51.0).announce(ArpOp::Request, B, "192.0.2.6"),
        frame(62.0).announce(ArpOp::Request, A, "192.0.2.6"),
        frame(73.0).announce(ArpOp::Request, B, "192.0.2.6"),
    ]));
    events.extend(h.tick(200.0));
    let kinds: std::collections::BTreeSet<&str> =
        events.iter().map(|e| e.kind().as_str()).collect();
    assert_eq!(kinds.len(), EventKind::ALL.len(), "every kind is exercised: {kinds:?}");

    // As the pipeline writes them: with the node, and A as this host's own MAC.
    struct OwnA;
    impl LocalMacs for OwnA {
        fn owner(&self, m: MacAddr) -> Option<&str> {
            (m == mac(A)).then_some("eth0")
        }
    }
    let mut annotator = Annotator::new("node-a");
    annotator.set_local_macs(Arc::new(OwnA));
    for e in &mut events {
        annotator.annotate(e);
    }
    assert!(events.iter().any(|e| e.context.local_iface.is_some()));
    // With the cluster context (every cluster field appears on some event) and once stale.
    let mut stale = cluster.clone();
    stale.set_stale(true);
    let stale_events: Vec<Event> = events.iter().take(3).cloned().collect();
    annotator.set_cluster(Some(Arc::new(stale)));
    for mut e in stale_events {
        annotator.annotate(&mut e);
        assert!(e.context.stale);
        events.push(e);
    }
    annotator.set_cluster(Some(Arc::new(cluster)));
    let mut annotated: Vec<Event> = events.clone();
    for e in &mut annotated {
        annotator.annotate(e);
    }
    events.extend(annotated);
    let present: std::collections::BTreeSet<String> = events
        .iter()
        .flat_map(|e| serde_json::to_value(Record::of(e)).unwrap().as_object().unwrap().clone())
        .map(|(k, _)| k)
        .collect();
    for field in [
        "mac_node",
        "old_node",
        "new_node",
        "mac_nodes",
        "foreign_macs",
        "mac_ifaces",
        "services",
        "announcer",
        "context",
    ] {
        assert!(present.contains(field), "no event has {field}");
    }
    let forms: std::collections::BTreeSet<_> = of(&events, EventKind::MultiResponder)
        .iter()
        .filter_map(|e| e.form)
        .map(|f| f.as_str())
        .collect();
    assert_eq!(forms, ["sender", "strong"].into());
    for e in &events {
        check_against(&serde_json::to_value(Record::of(e)).unwrap(), &defs["event"], defs);
    }
    let raw = frame(0.0).reply(A, VIP).to(CLIENT, CLIENT_IP);
    let mut raw = raw.0;
    raw.vlan = VlanTags::from_slice(&[100, 200]).unwrap();
    check_against(&serde_json::to_value(RawLine(&raw)).unwrap(), &defs["observation"], defs);
}

/// node-a (A on eth0, this host) and node-b (B on eth1, a Lease); web/front on the VIP, announced
/// by node-a on eth0 (MetalLB).
fn schema_cluster() -> crate::cluster::ClusterSnapshot {
    use crate::cluster::*;
    let inventory = |node: &str, iface: &str, m: &str| Inventory {
        node: node.into(),
        interfaces: vec![(iface.into(), mac(m))],
        renewed: at(0.0),
        duration: std::time::Duration::from_secs(3600),
    };
    let inputs = ClusterInputs {
        nodes: vec![NodeInfo {
            name: "node-b".into(),
            addresses: vec![ip("192.0.2.7")],
            ..Default::default()
        }],
        inventories: vec![inventory("node-b", "eth1", B)],
        services: vec![ServiceInfo {
            namespace: "web".into(),
            name: "front".into(),
            ingress_ips: vec![ip(VIP)],
            vip_host: None,
        }],
        l2_statuses: vec![L2Status {
            node: "node-a".into(),
            service_namespace: "web".into(),
            service_name: "front".into(),
            interfaces: vec!["eth0".into()],
        }],
        metallb: true,
        ..Default::default()
    };
    ClusterSnapshot::build(&inputs, Some(&inventory("node-a", "eth0", A)), at(0.0))
}

#[test]
fn claimants_are_the_macs_that_claimed_within_the_concurrency_window() {
    let mut h = Harness::new();
    let vip = ip(VIP);
    assert_eq!(h.engine.claimants(vip), 0);
    h.feed(frame(0.0).request(C, VIP).asking(CLIENT_IP));
    assert_eq!(h.engine.claimants(vip), 0, "a request is no claim");
    h.feed(frame(1.0).reply(A, VIP).to(CLIENT, CLIENT_IP));
    h.feed(frame(1.5).announce(ArpOp::Request, B, VIP));
    assert_eq!(h.engine.claimants(vip), 2);
    // The default concurrency window is 10 s: A's claim ages out first.
    h.tick(11.2);
    assert_eq!(h.engine.claimants(vip), 1);
    h.tick(12.0);
    assert_eq!(h.engine.claimants(vip), 0);
}

#[test]
fn the_caps_bound_what_is_kept_and_allocate_nothing_up_front() {
    // `validate` refuses caps this large, but an engine built from any configuration must not
    // reserve memory by them (this once aborted with a capacity overflow).
    let caps = Caps {
        max_tracked_ips: usize::MAX,
        max_macs_per_ip: usize::MAX,
        max_tracked_senders: usize::MAX,
        max_interfaces: usize::MAX,
    };
    let mut h = Harness::with(EngineConfig { caps, ..EngineConfig::default() });
    h.feed(frame(0.0).reply(A, VIP).to(CLIENT, CLIENT_IP));
    let events = h.feed(frame(0.1).reply(B, VIP).to(CLIENT, CLIENT_IP));
    assert!(events.iter().any(|e| e.kind() == EventKind::MultiResponder), "{events:?}");
    assert_eq!(h.engine.stats().tracked_macs, 2);
}

mod announcer;
mod budget;
mod ndp;
mod status;

#[test]
fn a_node_answering_on_an_interface_its_load_balancer_does_not_announce_from_is_misplaced() {
    // A cluster pool (MetalLB, L2Advertisement.spec.interfaces = [eth0]): C is node B's second
    // NIC. Seen from the client, the claim arrives on the client's own eth0 either way.
    let pool = Pool {
        name: "metallb/front".into(),
        cidrs: vec!["192.0.2.0/28".parse().unwrap()],
        macs: macs(&[A, B, C]),
        node_interfaces: vec!["eth0".into()],
        misplaced_macs: macs(&[C]),
        ..Pool::default()
    };
    let mut h = Harness::with(pool_config(pool));
    let events = h.feed(frame(0.0).reply(A, VIP).to(CLIENT, CLIENT_IP));
    assert!(alarms(&events).is_empty(), "{events:?}");
    let events = h.feed(frame(5.0).reply(C, VIP).to(CLIENT, CLIENT_IP));
    let misplaced = of(&events, EventKind::UnexpectedInterface);
    assert_eq!(misplaced.len(), 1, "{events:#?}");
    assert_eq!(misplaced[0].mac, Some(mac(C)));
    assert_eq!(misplaced[0].allowed_ifaces, [Arc::<str>::from("eth0")]);
    assert_eq!(misplaced[0].pool, Some("metallb/front"));
    assert!(of(&events, EventKind::UnknownResponder).is_empty(), "a node's MAC is no foreigner");
}
