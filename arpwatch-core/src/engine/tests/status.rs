//! The engine's read-only queries for the status API on the fake clock: per IP its owner, the
//! claimants, the last owner change, open conditions and requests; the watched IPs; and that
//! asking changes nothing.

use super::*;
use crate::status::IpStatus;

fn status(h: &Harness, addr: &str) -> IpStatus {
    h.engine.ip_status(ip(addr)).unwrap_or_else(|| panic!("{addr} has no status"))
}

fn claimant_macs(st: &IpStatus) -> Vec<String> {
    st.claims.iter().map(|c| c.mac.to_string()).collect()
}

#[test]
fn two_responders_are_both_claimants_with_their_counts_and_the_open_multi_responder() {
    let mut h = Harness::with(pool_config(vip_pool()));
    let events = h.feed_all([
        frame(1.0).reply(A, VIP).to(CLIENT, CLIENT_IP),
        frame(1.01).reply(B, VIP).to(CLIENT, CLIENT_IP),
        frame(3.0).reply(A, VIP).to(CLIENT, CLIENT_IP),
        frame(3.01).reply(B, VIP).to(CLIENT, CLIENT_IP),
        frame(5.0).reply(A, VIP).to(CLIENT, CLIENT_IP),
    ]);
    assert_eq!(states(&events, EventKind::MultiResponder)[0], ConditionState::Start);
    let st = status(&h, VIP);
    assert_eq!(st.pool.as_deref(), Some("vips"));
    assert_eq!(claimant_macs(&st), [A, B]);
    let counts: Vec<u64> = st.claims.iter().map(|c| c.count).collect();
    assert_eq!(counts, [3, 2]);
    assert_eq!(st.claims[0].since, at(1.0));
    assert_eq!((st.claims[0].last, st.claims[1].last), (at(5.0), at(3.01)));
    let owner = st.owner.as_ref().unwrap();
    assert_eq!(owner.mac, mac(A), "a later reply to an answered requester does not take over");
    assert_eq!(owner.since, at(1.0));
    assert_eq!(st.conditions.len(), 1);
    let open = &st.conditions[0];
    assert_eq!(open.event, EventKind::MultiResponder);
    assert_eq!((open.first_seen, open.ip), (at(1.01), ip(VIP)));
    assert_eq!(open.macs, [mac(A), mac(B)]);
    assert_eq!(open.state, ConditionState::Start);
    let (all, total) = h.engine.open_conditions(10);
    assert_eq!((all, total), (vec![open.clone()], 1));

    // Past the concurrency window, B no longer claims; the incident is still open until quiet.
    h.tick(14.0);
    let st = status(&h, VIP);
    assert_eq!(claimant_macs(&st), [A]);
    assert_eq!(st.conditions.len(), 1);
    h.tick(100.0);
    let st = status(&h, VIP);
    assert!(st.claims.is_empty() && st.conditions.is_empty());
    assert_eq!(st.owner.unwrap().mac, mac(A), "the owner stays when its claims age out");
}

#[test]
fn a_failovers_owner_change_is_the_last_owner_change_with_its_gap() {
    let mut h = Harness::with(pool_config(vip_pool()));
    let mut events = h.feed_all([
        frame(0.0).announce(ArpOp::Request, A, VIP),
        frame(2.0).reply(A, VIP).to(CLIENT, CLIENT_IP),
        frame(4.5).announce(ArpOp::Request, B, VIP),
    ]);
    events.extend(h.tick(30.0));
    let changes = of(&events, EventKind::OwnerChange);
    assert_eq!(changes.len(), 1);
    let st = status(&h, VIP);
    let change = st.last_owner_change.as_ref().unwrap();
    assert_eq!((change.old_mac, change.new_mac), (mac(A), mac(B)));
    assert_eq!(change.at, at(4.5));
    assert_eq!(change.gap_ms, Some(2500));
    assert!(change.reported);
    let event = serde_json::to_value(changes[0]).unwrap();
    assert_eq!(event["gap_ms"], 2500);
    assert_eq!(event["ts"], serde_json::to_value(change.at).unwrap());
    let owner = st.owner.unwrap();
    assert_eq!((owner.mac, owner.since, owner.last_claim), (mac(B), at(4.5), Some(at(4.5))));
    assert!(st.claims.is_empty(), "nothing claimed within the last 10 s at 30 s");
}

#[test]
fn a_move_within_an_open_multi_responder_is_an_unreported_owner_change() {
    let mut h = Harness::with(pool_config(vip_pool()));
    let events = h.feed_all([
        frame(0.0).announce(ArpOp::Request, A, VIP),
        frame(1.0).announce(ArpOp::Request, B, VIP),
        frame(2.0).announce(ArpOp::Request, A, VIP),
        frame(3.0).announce(ArpOp::Request, B, VIP),
        frame(4.0).announce(ArpOp::Request, A, VIP),
    ]);
    assert!(!states(&events, EventKind::MultiResponder).is_empty());
    let reported = of(&events, EventKind::OwnerChange).len();
    let st = status(&h, VIP);
    let change = st.last_owner_change.unwrap();
    assert_eq!((change.old_mac, change.new_mac, change.at), (mac(B), mac(A), at(4.0)));
    assert!(!change.reported, "{reported} owner_change events, the last move is the incident's");
    assert_eq!(st.owner.unwrap().since, at(4.0));
}

#[test]
fn requests_seen_answered_and_unanswered_and_the_open_unanswered_condition() {
    let mut cfg = pool_config(vip_pool());
    cfg.full_view = true;
    let mut h = Harness::with(cfg);
    let ask = |t: f64| frame(t).request(CLIENT, CLIENT_IP).asking(VIP);
    let mut events = h.feed_all([ask(10.0), ask(11.5), ask(13.0)]);
    events.extend(h.tick(13.5));
    let st = status(&h, VIP);
    assert!(st.owner.is_none() && st.claims.is_empty());
    let r = &st.requests;
    assert_eq!((r.seen, r.answered, r.unanswered, r.waiting), (3, 0, 2, 1));
    assert_eq!((r.since, r.last_request, r.last_answer), (Some(at(10.0)), Some(at(13.0)), None));
    assert_eq!(states(&events, EventKind::Unanswered), [ConditionState::Start]);
    assert_eq!(st.conditions.len(), 1);
    assert_eq!(st.conditions[0].event, EventKind::Unanswered);
    assert_eq!(st.conditions[0].first_seen, at(12.5));

    // A answers: the waiting request counts as answered, the condition ends.
    events = h.feed_all([frame(13.6).reply(A, VIP).to(CLIENT, CLIENT_IP)]);
    assert_eq!(states(&events, EventKind::Unanswered), [ConditionState::End]);
    let st = status(&h, VIP);
    let r = &st.requests;
    assert_eq!((r.seen, r.answered, r.unanswered, r.waiting), (3, 1, 2, 0));
    assert_eq!(r.last_answer, Some(at(13.6)));
    assert!(st.conditions.is_empty());

    // The counts cover one to two windows of five minutes, then go.
    h.feed(ask(400.0));
    let r = status(&h, VIP).requests;
    assert_eq!((r.since, r.seen, r.answered), (Some(at(10.0)), 4, 1));
    h.tick(700.0);
    let r = status(&h, VIP).requests;
    assert_eq!((r.since, r.seen, r.unanswered), (Some(at(310.0)), 1, 1));
    h.tick(1000.0);
    let r = status(&h, VIP).requests;
    assert_eq!((r.since, r.seen, r.last_request), (None, 0, Some(at(400.0))));
}

#[test]
fn watched_ips_are_pool_ips_seen_and_owned_ips_in_address_order_by_pages() {
    let mut h = Harness::with(pool_config(vip_pool()));
    h.feed_all([
        frame(0.0).reply(A, "192.0.2.9").to(CLIENT, CLIENT_IP),
        frame(0.1).request(CLIENT, CLIENT_IP).asking("192.0.2.3"),
        frame(0.2).reply(C, "203.0.113.5").to(CLIENT, CLIENT_IP),
        frame(0.3).reply(C, "2001:db8::5").to(CLIENT, CLIENT_IP),
        frame(0.4).request(B, "198.51.100.7").asking(CLIENT_IP),
        frame(0.5).reply(A, "192.0.2.1").to(CLIENT, CLIENT_IP),
    ]);
    // 198.51.100.7 only sent a request (no owner, no pool); CLIENT_IP never claimed.
    let all = h.engine.watched_ips(None, 100);
    let list: Vec<String> = all.ips.iter().map(ToString::to_string).collect();
    assert_eq!(list, ["192.0.2.1", "192.0.2.9", "203.0.113.5", "2001:db8::5"]);
    assert_eq!((all.more, all.total), (false, 4));
    let first = h.engine.watched_ips(None, 2);
    assert_eq!((first.ips.len(), first.more), (2, true));
    let next = h.engine.watched_ips(first.ips.last().copied(), 2);
    assert_eq!(next.ips, [ip("203.0.113.5"), ip("2001:db8::5")]);
    assert!(!next.more);
    assert_eq!(
        h.engine.watched_ips(Some(ip("2001:db8::5")), 2),
        WatchedIps { ips: vec![], more: false, total: 4 }
    );

    // A pool IP never seen has a status (nobody owns it); an unknown IP has none.
    let unseen = status(&h, "192.0.2.4");
    assert!(unseen.owner.is_none() && unseen.claims.is_empty());
    assert_eq!(unseen.pool.as_deref(), Some("vips"));
    assert!(h.engine.ip_status(ip("203.0.113.99")).is_none());
    assert_eq!(status(&h, "2001:db8::5").proto, crate::observation::Proto::Ndp);
}

#[test]
fn asking_changes_nothing_the_engine_reports() {
    let frames = || {
        let mut frames = Vec::new();
        for i in 0..40 {
            let t = f64::from(i) * 0.7;
            let who = [A, B, C][i as usize % 3];
            frames.push(frame(t).reply(who, VIP).to(CLIENT, CLIENT_IP));
            frames.push(frame(t + 0.1).request(CLIENT, CLIENT_IP).asking("192.0.2.2"));
        }
        frames
    };
    let mut cfg = pool_config(vip_pool());
    cfg.full_view = true;
    let mut quiet = Harness::with(cfg.clone());
    let mut asked = Harness::with(cfg);
    let mut expected = quiet.feed_all(frames());
    expected.extend(quiet.tick(100.0));
    let mut got = Vec::new();
    for f in frames() {
        got.extend(asked.feed(f));
        let _ = asked.engine.ip_status(ip(VIP));
        let _ = asked.engine.ip_status(ip("192.0.2.2"));
        let _ = asked.engine.watched_ips(None, 1);
        let _ = asked.engine.open_conditions(1);
    }
    got.extend(asked.tick(100.0));
    assert_eq!(got, expected);
    assert_eq!(asked.engine.stats(), quiet.engine.stats());
}
