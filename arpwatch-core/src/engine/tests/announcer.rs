//! `announcer_mismatch` on the fake clock: the four cases of a declared VIP whose wire disagrees
//! for longer than the grace period (5 s by default), and the failovers that must stay silent.

use super::*;
use crate::cluster::{Announcer, AnnouncerSource, Declaration};

/// Node a announces VIP with MAC A (on eth0); node b has MAC B; C is nobody's.
fn declared(node: &str, allowed: &[&str]) -> Vec<(IpAddr, Declaration)> {
    let announcer = Announcer {
        node: node.into(),
        interfaces: vec!["eth0".into()],
        source: AnnouncerSource::MetalLb,
    };
    vec![(ip(VIP), Declaration { announcer, macs: macs(allowed) })]
}

fn harness(node: &str, allowed: &[&str]) -> Harness {
    let mut h = Harness::with(EngineConfig { full_view: true, ..EngineConfig::default() });
    h.engine.set_declarations(declared(node, allowed));
    h
}

/// A client asks for the VIP at `t` and `mac` answers.
fn answered(t: f64, by: &str) -> [Frame; 2] {
    [
        frame(t).request(CLIENT, CLIENT_IP).asking(VIP),
        frame(t + 0.001).reply(by, VIP).to(CLIENT, CLIENT_IP),
    ]
}

fn mismatches(events: &[Event]) -> Vec<Record<'_>> {
    of(events, EventKind::AnnouncerMismatch)
}

#[test]
fn another_nodes_mac_answering_past_the_grace_is_a_mismatch_until_the_declared_one_owns_it() {
    let mut h = harness("a", &[A]);
    let mut events = h.feed_all([answered(0.0, A), answered(1.0, B)].into_iter().flatten());
    // B keeps answering; the grace (5 s from B's first claim at 1.001) has not run out at 5.
    events.extend(h.feed_all((2..=5).flat_map(|t| answered(t as f64, B))));
    assert!(mismatches(&events).is_empty(), "{events:?}");
    assert_eq!(h.engine.next_deadline(), Some(at(6.001)), "the grace is a timer");
    let start = h.tick(6.001);
    let m = mismatches(&start);
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].state, Some(ConditionState::Start));
    assert_eq!(m[0].ts, at(6.001));
    assert_eq!(m[0].first_seen, Some(at(1.001)), "the mismatch began with B's first claim");
    assert_eq!(m[0].mac, Some(mac(B)));
    assert_eq!(m[0].macs, macs(&[B]));
    assert_eq!(m[0].count, Some(5));
    let announcer = m[0].announcer.unwrap();
    assert_eq!((&*announcer.node, announcer.source), ("a", AnnouncerSource::MetalLb));
    assert_eq!(m[0].severity, crate::event::Severity::Critical);

    // The declared MAC takes the VIP back, B silent for longer than the concurrency window.
    let back = h.feed_all([answered(20.0, A)].into_iter().flatten());
    let end = mismatches(&back);
    assert_eq!(end.len(), 1);
    assert_eq!((end[0].state, end[0].mac), (Some(ConditionState::End), Some(mac(A))));
    assert_eq!(end[0].ts, at(20.001));
}

#[test]
fn a_mac_of_no_node_is_a_mismatch_and_it_ends_after_the_quiet_window() {
    let mut h = harness("a", &[A]);
    let events = h.feed_all([frame(0.0).announce(ArpOp::Request, C, VIP)]);
    assert!(mismatches(&events).is_empty());
    let start = h.tick(5.0);
    assert_eq!(states(&start, EventKind::AnnouncerMismatch), [ConditionState::Start]);
    assert_eq!(mismatches(&start)[0].mac, Some(mac(C)));
    // Nothing more: the condition ends like every other, a quiet window after its evidence.
    let end = h.tick(40.0);
    assert_eq!(states(&end, EventKind::AnnouncerMismatch), [ConditionState::End]);
    assert_eq!(mismatches(&end)[0].ts, at(35.0));
}

#[test]
fn the_announcers_mac_on_an_undeclared_interface_is_a_mismatch() {
    // Node a's MACs: A on eth0 (declared), C on eth1. The declaration lists eth0's only.
    let mut h = harness("a", &[A]);
    let events: Vec<Event> = h.feed_all((0..8).flat_map(|t| answered(t as f64, C)));
    let m = mismatches(&events);
    assert_eq!(states(&events, EventKind::AnnouncerMismatch), [ConditionState::Start]);
    assert_eq!(m[0].ts, at(5.001), "dated at the end of the grace, by the frame that passed it");
    assert_eq!(m[0].mac, Some(mac(C)));
    // Every further claim is evidence; at most one report per report interval.
    let later = h.feed_all((8..70).flat_map(|t| answered(t as f64, C)));
    assert_eq!(states(&later, EventKind::AnnouncerMismatch), [ConditionState::Ongoing]);
}

#[test]
fn a_silent_announcer_while_requests_go_unanswered_is_a_mismatch() {
    let mut h = harness("a", &[A]);
    let mut events = h.feed_all([answered(0.0, A)].into_iter().flatten());
    events.extend(
        h.feed_all((1..=8).map(|t| frame(t as f64).request(CLIENT, CLIENT_IP).asking(VIP))),
    );
    events.extend(h.tick(9.5));
    assert_eq!(states(&events, EventKind::Unanswered), [ConditionState::Start]);
    let m = mismatches(&events);
    assert_eq!(m.len(), 1, "{events:?}");
    assert_eq!(m[0].state, Some(ConditionState::Start));
    // The first request went out at 1 and timed out at 2; 5 s after it was sent, the next
    // request's timeout (at 7) finds the VIP still silent... the grace timer runs at 6.
    assert_eq!(m[0].ts, at(6.0));
    assert_eq!(m[0].first_seen, Some(at(1.0)));
    assert_eq!(m[0].mac, None);
    assert!(m[0].macs.is_empty());
    // The announcer answers again: both end, naming it.
    let back = h.feed_all([answered(10.0, A)].into_iter().flatten());
    let end = mismatches(&back);
    assert_eq!((end[0].state, end[0].mac), (Some(ConditionState::End), Some(mac(A))));
    assert_eq!(states(&back, EventKind::Unanswered), [ConditionState::End]);
}

#[test]
fn a_declared_vip_is_watched_for_unanswered_requests_without_a_pool() {
    let mut h = harness("a", &[A]);
    let events = h.feed_all((0..3).map(|t| frame(t as f64).request(CLIENT, CLIENT_IP).asking(VIP)));
    let mut events = events;
    events.extend(h.tick(3.0));
    assert_eq!(states(&events, EventKind::Unanswered), [ConditionState::Start]);
}

#[test]
fn a_normal_failover_where_the_status_follows_within_the_grace_raises_nothing() {
    let mut h = harness("a", &[A]);
    let mut events = h.feed_all([answered(0.0, A), answered(1.0, A)].into_iter().flatten());
    // a dies; b announces at 10 and answers; MetalLB moves the status to b 1.5 s later.
    events.extend(h.feed_all([frame(10.0).announce(ArpOp::Request, B, VIP)]));
    events.extend(h.feed_all(answered(11.0, B)));
    h.engine.set_declarations(declared("b", &[B]));
    events.extend(h.feed_all((12..60).flat_map(|t| answered(t as f64, B))));
    events.extend(h.tick(100.0));
    assert!(mismatches(&events).is_empty(), "{events:?}");
    assert_eq!(alarms(&events), ["owner_change"]);
}

#[test]
fn a_status_that_moves_to_match_the_wire_ends_the_mismatch() {
    let mut h = harness("a", &[A]);
    let mut events = h.feed_all((0..8).flat_map(|t| answered(t as f64, B)));
    assert_eq!(states(&events, EventKind::AnnouncerMismatch), [ConditionState::Start]);
    h.engine.set_declarations(declared("b", &[B]));
    assert_eq!(h.engine.next_deadline(), Some(at(7.001)), "the end is due now");
    events = h.tick(7.5);
    let end = mismatches(&events);
    assert_eq!((end[0].state, end[0].ts), (Some(ConditionState::End), at(7.001)));
    assert_eq!(end[0].announcer.unwrap().node.as_ref(), "a", "the declaration it was about");
    // The same declarations again change nothing.
    h.engine.set_declarations(declared("b", &[B]));
    assert!(h.tick(8.0).is_empty());
}

#[test]
fn a_withdrawn_declaration_ends_the_mismatch_and_stops_the_watch() {
    let mut h = harness("a", &[A]);
    h.feed_all((0..8).flat_map(|t| answered(t as f64, B)));
    h.engine.set_declarations(Vec::new());
    let events = h.tick(8.0);
    assert_eq!(states(&events, EventKind::AnnouncerMismatch), [ConditionState::End]);
    let later = h.feed_all((9..30).flat_map(|t| answered(t as f64, B)));
    assert!(mismatches(&later).is_empty());
}

#[test]
fn undeclared_macs_answering_alongside_the_announcer_are_a_mismatch_too() {
    // IPVS without strictARP: every node answers, the announcer among them.
    let mut h = harness("a", &[A]);
    let events = h.feed_all((0..8).flat_map(|t| {
        let t = t as f64;
        [
            frame(t).request(CLIENT, CLIENT_IP).asking(VIP),
            frame(t + 0.001).reply(A, VIP).to(CLIENT, CLIENT_IP),
            frame(t + 0.002).reply(B, VIP).to(CLIENT, CLIENT_IP),
        ]
    }));
    assert_eq!(states(&events, EventKind::AnnouncerMismatch), [ConditionState::Start]);
    assert_eq!(mismatches(&events)[0].macs, macs(&[B]));
    assert!(!of(&events, EventKind::MultiResponder).is_empty());
}

#[test]
fn without_the_announcers_macs_only_silence_is_judged() {
    let mut h = harness("a", &[]);
    let events = h.feed_all((0..10).flat_map(|t| answered(t as f64, C)));
    assert!(mismatches(&events).is_empty());
}

#[test]
fn the_same_for_ipv6() {
    let vip6 = ip("2001:db8::10");
    let announcer =
        Announcer { node: "a".into(), interfaces: Vec::new(), source: AnnouncerSource::KubeVip };
    let mut h = Harness::with(EngineConfig { full_view: true, ..EngineConfig::default() });
    h.engine.set_declarations(vec![(vip6, Declaration { announcer, macs: macs(&[A]) })]);
    let flags = crate::observation::NaFlags { router: false, solicited: true, override_: true };
    let events =
        h.feed_all((0..8).map(|t| {
            frame(t as f64).advertise(B, "2001:db8::10", flags).to(CLIENT, "2001:db8::99")
        }));
    let m = mismatches(&events);
    assert_eq!(m.len(), 1);
    assert_eq!((m[0].ip, m[0].mac), (vip6, Some(mac(B))));
    assert_eq!(m[0].announcer.unwrap().source.as_str(), "kube-vip");
}
