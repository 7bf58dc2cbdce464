//! Neighbor Discovery through the same detections as ARP (SPEC §3, `notes/ndp.md`): an NA claims
//! its target for its target link-layer address, an unsolicited NA announces, an NS is a request
//! from its source, a DAD NS is a probe. Fake clock, as for ARP.

use super::*;
use crate::observation::{NaFlags, Proto};

const VIP6: &str = "2001:db8::100";
const CLIENT6: &str = "2001:db8::99";

/// R, S, O as named.
fn flags(router: bool, solicited: bool, override_: bool) -> NaFlags {
    NaFlags { router, solicited, override_ }
}

/// The answer of `mac` to the client's solicitation for `VIP6` (S=1, O as given).
fn answer(secs: f64, mac: &str, override_: bool) -> Frame {
    frame(secs).advertise(mac, VIP6, flags(false, true, override_)).to(CLIENT, CLIENT6)
}

/// An unsolicited NA (S=0, O=1) of `VIP6` from `mac`, as MetalLB and kube-vip send on takeover.
fn announce(secs: f64, mac: &str) -> Frame {
    frame(secs).advertise(mac, VIP6, flags(false, false, true))
}

/// The client's solicitation for `VIP6`, to its solicited-node address.
fn solicit(secs: f64) -> Frame {
    frame(secs).solicit(CLIENT, CLIENT6).asking(VIP6)
}

fn vip6_pool() -> Pool {
    Pool {
        name: "vips6".into(),
        cidrs: vec!["2001:db8::100/120".parse().unwrap()],
        interfaces: vec!["eth0".into()],
        macs: macs(&[A, B]),
        ..Pool::default()
    }
}

#[test]
fn an_advertisement_binds_its_target_and_events_say_ndp_in_rfc_5952_form() {
    let mut h = Harness::new();
    let events = h.feed_all([solicit(0.0), answer(0.001, A, true)]);
    let bindings = of(&events, EventKind::NewBinding);
    assert_eq!(bindings.len(), 2, "the client's source and the VIP: {events:#?}");
    assert_eq!((bindings[0].ip, bindings[0].mac), (ip(CLIENT6), Some(mac(CLIENT))));
    assert_eq!(bindings[0].announced, Some(Announced::Request));
    assert_eq!((bindings[1].ip, bindings[1].mac), (ip(VIP6), Some(mac(A))));
    assert_eq!(bindings[1].announced, Some(Announced::Reply));
    assert!(bindings.iter().all(|b| b.proto == Some(Proto::Ndp)));
    let line = Record::of(&events[1]);
    let json = serde_json::to_value(line).unwrap();
    assert_eq!((json["ip"].as_str(), json["proto"].as_str()), (Some("2001:db8::100"), Some("ndp")));
    assert!(alarms(&events).is_empty());
}

#[test]
fn two_macs_answering_one_solicitation_are_a_strong_multi_responder() {
    let mut h = Harness::new();
    h.feed_all([solicit(0.0), answer(0.001, A, false)]);
    let events = h.feed(answer(0.002, B, false));
    let multi = of(&events, EventKind::MultiResponder);
    assert_eq!(multi.len(), 1, "reported on the second answer: {events:#?}");
    assert_eq!(multi[0].state, Some(ConditionState::Start));
    assert_eq!(multi[0].form, Some(ResponderForm::Strong));
    assert_eq!(multi[0].macs, macs(&[A, B]));
    assert_eq!(
        (multi[0].requester_mac, multi[0].requester_ip),
        (Some(mac(CLIENT)), Some(ip(CLIENT6)))
    );
    assert_eq!(multi[0].proto, Some(Proto::Ndp));
}

#[test]
fn announcements_interleaving_from_two_macs_are_a_sustained_multi_responder() {
    // Two kube-vip leaders after a split brain, each announcing every 3 s.
    let mut h = Harness::new();
    let events =
        h.feed_all([announce(0.0, A), announce(1.5, B), announce(3.0, A), announce(4.5, B)]);
    let multi = of(&events, EventKind::MultiResponder);
    assert_eq!(multi[0].form, Some(ResponderForm::Sustained), "{events:#?}");
    assert_eq!(multi[0].macs, macs(&[A, B]));
    assert_eq!(of(&events, EventKind::Gratuitous).len(), 4);
}

#[test]
fn a_takeover_announced_by_unsolicited_na_is_an_owner_change_with_its_gap_and_override() {
    let mut h = Harness::new();
    h.feed_all([solicit(0.0), answer(0.001, A, true)]);
    let events = h.feed(announce(4.0, B));
    let change = of(&events, EventKind::OwnerChange);
    assert_eq!(change.len(), 1, "{events:#?}");
    assert_eq!((change[0].old_mac, change[0].new_mac), (Some(mac(A)), Some(mac(B))));
    assert_eq!(change[0].announced, Some(Announced::Gratuitous));
    assert_eq!(change[0].gap_ms, Some(3999));
    assert_eq!(change[0].override_, Some(true));
    let gratuitous = of(&events, EventKind::Gratuitous);
    assert_eq!((gratuitous[0].mac, gratuitous[0].override_), (Some(mac(B)), Some(true)));
}

#[test]
fn an_owner_change_by_an_advertisement_without_override_says_so() {
    // MetalLB answers with O=0: a client that cached A keeps A, whatever B says.
    let mut h = Harness::new();
    h.feed_all([solicit(0.0), answer(0.001, A, true)]);
    let events = h.feed_all([solicit(5.0), answer(5.001, B, false)]);
    let change = of(&events, EventKind::OwnerChange);
    assert_eq!(change[0].new_mac, Some(mac(B)));
    assert_eq!(change[0].announced, Some(Announced::Reply));
    assert_eq!(change[0].override_, Some(false));
    let json = serde_json::to_value(change[0]).unwrap();
    assert_eq!(json["override"], false);
}

#[test]
fn arp_events_carry_no_override() {
    let mut h = Harness::new();
    h.feed(frame(0.0).reply(A, VIP).to(CLIENT, CLIENT_IP));
    let events = h.feed(frame(5.0).announce(ArpOp::Request, B, VIP));
    let change = of(&events, EventKind::OwnerChange);
    assert_eq!((change[0].override_, change[0].proto), (None, Some(Proto::Arp)));
}

#[test]
fn a_leader_bouncing_between_nodes_is_flapping() {
    let mut h = Harness::new();
    let events =
        h.feed_all([announce(0.0, A), announce(10.0, B), announce(20.0, A), announce(30.0, B)]);
    assert_eq!(of(&events, EventKind::OwnerChange).len(), 3);
    let flapping = of(&events, EventKind::Flapping);
    assert_eq!(flapping[0].state, Some(ConditionState::Start), "{events:#?}");
    assert_eq!(flapping[0].ip, ip(VIP6));
}

#[test]
fn a_foreign_mac_or_interface_answering_for_an_ipv6_pool_is_reported() {
    let mut h = Harness::with(pool_config(vip6_pool()));
    let events = h.feed_all([solicit(0.0), answer(0.001, C, true)]);
    let unknown = of(&events, EventKind::UnknownResponder);
    assert_eq!(unknown.len(), 1, "{events:#?}");
    assert_eq!((unknown[0].mac, unknown[0].pool), (Some(mac(C)), Some("vips6")));
    assert_eq!(unknown[0].override_, Some(true));

    let events = h.feed(announce(1.0, A).on("eth1"));
    let misplaced = of(&events, EventKind::UnexpectedInterface);
    assert_eq!((misplaced[0].mac, misplaced[0].iface), (Some(mac(A)), "eth1"));
    assert!(of(&events, EventKind::UnknownResponder).is_empty(), "A is allowed");
}

#[test]
fn a_dad_probe_is_a_probe_of_its_target_by_the_ethernet_source() {
    let mut h = Harness::new();
    let events = h.feed(frame(0.0).dad(C, VIP6));
    let probe = of(&events, EventKind::Probe);
    assert_eq!((probe[0].ip, probe[0].mac), (ip(VIP6), Some(mac(C))));
    assert_eq!(probe[0].proto, Some(Proto::Ndp));
    assert_eq!(events.len(), 1, "{events:#?}");
}

#[test]
fn a_dad_probe_for_an_address_held_by_another_mac_is_a_conflict() {
    let mut h = Harness::new();
    h.feed(announce(0.0, A));
    let events = h.feed(frame(5.0).dad(C, VIP6));
    let conflict = of(&events, EventKind::ProbeConflict);
    assert_eq!(conflict.len(), 1, "{events:#?}");
    assert_eq!((conflict[0].mac, conflict[0].old_mac), (Some(mac(C)), Some(mac(A))));
    assert_eq!(conflict[0].last_seen, Some(at(0.0)));
}

#[test]
fn an_advertisement_answering_a_dad_probe_is_a_conflict() {
    // The holder defends: RFC 4861 §7.2.4 answers a probe from `::` to all nodes, S=0.
    let mut h = Harness::new();
    h.feed(frame(0.0).dad(C, VIP6));
    let events = h.feed(announce(0.01, A));
    let conflict = of(&events, EventKind::ProbeConflict);
    assert_eq!(conflict.len(), 1, "{events:#?}");
    assert_eq!((conflict[0].mac, conflict[0].old_mac), (Some(mac(C)), Some(mac(A))));
    assert_eq!(conflict[0].ip, ip(VIP6));
    // Reported once: a second defence is the same conflict.
    assert!(of(&h.feed(announce(0.02, A)), EventKind::ProbeConflict).is_empty());
}

#[test]
fn two_hosts_probing_one_address_at_once_are_a_conflict() {
    let mut h = Harness::new();
    h.feed(frame(0.0).dad(C, VIP6));
    let events = h.feed(frame(0.3).dad(B, VIP6));
    let conflict = of(&events, EventKind::ProbeConflict);
    assert_eq!((conflict[0].mac, conflict[0].old_mac), (Some(mac(B)), Some(mac(C))));
}

#[test]
fn dad_that_succeeds_raises_nothing() {
    // Probe, a second later the address is the prober's own, announced (`ndisc_notify`).
    let mut h = Harness::new();
    let mut events = h.feed(frame(0.0).dad(C, VIP6));
    events.extend(h.feed(frame(1.0).dad(C, VIP6)));
    events.extend(h.feed(announce(2.0, C)));
    events.extend(h.tick(60.0));
    assert!(alarms(&events).is_empty(), "{events:#?}");
    assert_eq!(of(&events, EventKind::Probe).len(), 2);
    // Another MAC answering long after the probe window is an owner change, not a conflict.
    let later = h.feed(announce(70.0, A));
    assert!(of(&later, EventKind::ProbeConflict).is_empty());
    assert_eq!(of(&later, EventKind::OwnerChange).len(), 1);
}

#[test]
fn solicitations_this_host_sent_that_nobody_answers_are_unanswered() {
    let mut h = Harness::with(pool_config(vip6_pool()));
    let mut events = Vec::new();
    for n in 0..3 {
        events.extend(h.feed(solicit(f64::from(n)).egress()));
    }
    events.extend(h.tick(3.5));
    let unanswered = of(&events, EventKind::Unanswered);
    assert_eq!(unanswered[0].state, Some(ConditionState::Start), "{events:#?}");
    assert_eq!(unanswered[0].ip, ip(VIP6));
    assert_eq!(unanswered[0].pool, Some("vips6"));
    assert_eq!(
        (unanswered[0].requester_mac, unanswered[0].requester_ip),
        (Some(mac(CLIENT)), Some(ip(CLIENT6)))
    );
    assert_eq!(unanswered[0].proto, Some(Proto::Ndp));
    // An answer ends it, naming who answered.
    let events = h.feed(answer(4.0, A, true));
    let end = of(&events, EventKind::Unanswered);
    assert_eq!((end[0].state, end[0].mac), (Some(ConditionState::End), Some(mac(A))));
}

#[test]
fn solicitations_seen_arriving_are_not_judged_without_full_view() {
    let mut h = Harness::with(pool_config(vip6_pool()));
    let mut events = h.feed_all((0..3).map(|n| solicit(f64::from(n))));
    events.extend(h.tick(10.0));
    assert!(of(&events, EventKind::Unanswered).is_empty(), "{events:#?}");
}

#[test]
fn a_link_layer_option_other_than_the_ethernet_source_is_a_sender_mismatch() {
    let mut h = Harness::new();
    let events = h.feed(announce(0.0, A).eth_src(C));
    let mismatch = of(&events, EventKind::SenderMismatch);
    assert_eq!((mismatch[0].mac, mismatch[0].eth_src), (Some(mac(A)), Some(mac(C))), "{events:#?}");
    assert_eq!(mismatch[0].ip, ip(VIP6));
    // Without the option, the Ethernet source is the sender: nothing to compare.
    let events = h.feed(announce(1.0, B).without_lladdr().eth_src(B));
    assert!(of(&events, EventKind::SenderMismatch).is_empty());
}

#[test]
fn benign_neighbor_discovery_raises_nothing() {
    let mut h = Harness::with(pool_config(vip6_pool()));
    let mut events = Vec::new();
    // A client resolves the VIP, then keeps confirming reachability with unicast solicitations
    // (no source option needed), each answered S=1 O=0 by the one holder.
    events.extend(h.feed_all([solicit(0.0).egress(), answer(0.001, A, true)]));
    for n in 1..6 {
        let t = f64::from(n) * 30.0;
        let nud = frame(t).solicit(CLIENT, CLIENT6).asking(VIP6).to(A, VIP6).without_lladdr();
        events.extend(h.feed(nud.egress()));
        events.extend(h.feed(answer(t + 0.001, A, false)));
    }
    // Privacy addresses appearing on the client: new sources of its solicitations.
    for n in 1..4u8 {
        let src = format!("2001:db8::{:x}:{:x}", 0x1000 + u16::from(n), 0xbeef);
        events.extend(h.feed(frame(200.0 + f64::from(n)).solicit(CLIENT, &src).asking(VIP6)));
    }
    // A router's advertisement of itself (R=1), and its own link-local resolution.
    events.extend(h.feed(frame(210.0).advertise(C, "fe80::c", flags(true, false, true))));
    events.extend(h.tick(400.0));
    assert!(alarms(&events).is_empty(), "{:#?}", alarms(&events));
    assert_eq!(of(&events, EventKind::NewBinding).len(), 2 + 3 + 1);
}

#[test]
fn ipv4_and_ipv6_state_of_one_mac_stay_apart() {
    // A dual-stack node answers for both VIPs; a takeover of one is not a change of the other.
    let mut h = Harness::new();
    h.feed_all([frame(0.0).reply(A, VIP).to(CLIENT, CLIENT_IP), answer(0.1, A, true)]);
    let events = h.feed(announce(5.0, B));
    let change = of(&events, EventKind::OwnerChange);
    assert_eq!(change.len(), 1);
    assert_eq!(change[0].ip, ip(VIP6));
    assert_eq!(h.engine.claimants(ip(VIP)), 1);
    assert_eq!(h.engine.claimants(ip(VIP6)), 2);
}

#[test]
fn ndp_events_and_raw_lines_match_the_schema_file() {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../../../docs/schema/arpwatch-events.schema.json"))
            .unwrap();
    let defs = &schema["$defs"];
    let mut h = Harness::with(pool_config(vip6_pool()));
    let mut events = h.feed_all([
        solicit(0.0).egress(),
        answer(0.001, A, true),
        answer(0.002, C, false),
        announce(5.0, B),
        frame(6.0).dad(C, VIP6),
    ]);
    events.extend(h.tick(100.0));
    let kinds: std::collections::BTreeSet<_> = events.iter().map(|e| e.kind().as_str()).collect();
    for kind in ["multi_responder", "owner_change", "unknown_responder", "probe_conflict"] {
        assert!(kinds.contains(kind), "{kind} in {kinds:?}");
    }
    let annotator = Annotator::new("node-a");
    for e in &mut events {
        annotator.annotate(e);
        check_against(&serde_json::to_value(Record::of(e)).unwrap(), &defs["event"], defs);
    }
    for raw in [solicit(0.0), answer(0.001, A, true), frame(1.0).dad(C, VIP6)] {
        let mut raw = raw.0;
        raw.vlan = VlanTags::from_slice(&[100]).unwrap();
        let line = serde_json::to_value(RawLine(&raw)).unwrap();
        check_against(&line, &defs["nd_observation"], defs);
        check_against(&line, &schema, defs);
    }
}
