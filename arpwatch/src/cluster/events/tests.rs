use super::*;
use arpwatch_core::event::{Condition, Lifecycle, Requester, ResponderForm, Seen};
use arpwatch_core::observation::{Direction, MacAddr, VlanTags};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn multi_responder(state: ConditionState) -> Event {
    let seen =
        Seen { iface: "eth0".into(), vlan: VlanTags::NONE, direction: Some(Direction::Ingress) };
    let detail = Detail::Lasting {
        lifecycle: Lifecycle {
            state,
            count: 1,
            first_seen: Timestamp::from_secs(1_790_000_000),
            last_seen: Timestamp::from_secs(1_790_000_000),
            macs: vec![MacAddr([2, 0, 0, 0, 0xa, 1]), MacAddr([2, 0, 0, 0, 0xb, 1])],
            summarised: None,
        },
        condition: Condition::MultiResponder {
            form: ResponderForm::Strong,
            requester: Some(Requester {
                mac: MacAddr([2, 0, 0, 0, 0, 0x99]),
                ip: ip("192.0.2.99"),
            }),
            sender: None,
        },
    };
    Event::new(Timestamp::from_secs(1_790_000_000), ip("192.0.2.240"), seen, None, detail)
}

#[test]
fn event_names_are_the_same_on_every_node_and_differ_per_service_condition_and_vip() {
    // FNV-1a 32 of the VIP's text (FNV-1a 32 of "a" is e40c292c): fixed forever, since every
    // version of every node must agree.
    assert_eq!(
        event_name("web", Reason::MultipleResponders, ip("192.0.2.240")),
        "arpwatch-web-multipleresponders-51282c1d"
    );
    assert_eq!(
        event_name("web", Reason::MultipleResponders, ip("2001:db8::f0")),
        "arpwatch-web-multipleresponders-4bad0d6a"
    );
    let names = [
        event_name("web", Reason::MultipleResponders, ip("192.0.2.240")),
        event_name("web", Reason::Unanswered, ip("192.0.2.240")),
        event_name("web", Reason::MultipleResponders, ip("192.0.2.241")),
        event_name("api", Reason::MultipleResponders, ip("192.0.2.240")),
    ];
    for (i, a) in names.iter().enumerate() {
        assert!(names[i + 1..].iter().all(|b| a != b), "{a} twice");
        // A DNS subdomain: lower case, digits, '-'.
        assert!(a.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
    }
}

#[test]
fn a_start_gives_one_finding_per_service_of_the_vip_and_an_end_none() {
    let services: Vec<Arc<str>> = vec!["shop/api".into(), "shop/web".into()];
    let findings = Finding::of(&multi_responder(ConditionState::Start), &services);
    assert_eq!(findings.len(), 2);
    let web = &findings[1];
    assert_eq!((web.namespace.as_str(), web.service.as_str()), ("shop", "web"));
    assert_eq!(web.reason, Reason::MultipleResponders);
    assert!(web.starts);
    assert_eq!(web.event_name(), "arpwatch-web-multipleresponders-51282c1d");
    assert!(
        web.note.starts_with("CRITICAL multi_responder 192.0.2.240 state=start "),
        "{}",
        web.note
    );

    let ongoing = Finding::of(&multi_responder(ConditionState::Ongoing), &services);
    assert!(ongoing.iter().all(|f| !f.starts) && ongoing.len() == 2);
    assert!(Finding::of(&multi_responder(ConditionState::End), &services).is_empty());
    // A VIP of no Service: nothing to record it on.
    assert!(Finding::of(&multi_responder(ConditionState::Start), &[]).is_empty());
}

#[test]
fn the_event_is_about_the_service_and_repeats_patch_only_the_series() {
    let finding = &Finding::of(&multi_responder(ConditionState::Start), &["shop/web".into()])[0];
    let event = new_event(finding, &finding.event_name(), "arpwatch-node-a", Some("uid-1".into()));
    let json = serde_json::to_value(&event).unwrap();
    assert_eq!(json["metadata"]["name"], "arpwatch-web-multipleresponders-51282c1d");
    assert_eq!(json["metadata"]["namespace"], "shop");
    assert_eq!(json["reason"], "MultipleResponders");
    assert_eq!(json["type"], "Warning");
    assert_eq!(json["action"], "Observed");
    assert_eq!(json["reportingController"], "arpwatch.io/arpwatch");
    assert_eq!(json["reportingInstance"], "arpwatch-node-a");
    assert_eq!(json["eventTime"], "2026-09-21T14:13:20.000000Z");
    assert_eq!(
        json["regarding"],
        serde_json::json!({"apiVersion": "v1", "kind": "Service", "namespace": "shop", "name": "web", "uid": "uid-1"})
    );
    assert!(json.get("series").is_none(), "a first occurrence has no series");
    assert_eq!(
        series_patch(2, Timestamp::from_secs(1_790_000_060)),
        serde_json::json!({"series": {"count": 2, "lastObservedTime": "2026-09-21T14:14:20.000000Z"}})
    );
}

#[test]
fn a_long_note_is_cut_to_what_the_api_server_accepts() {
    let long = format!("2026-11-21T10:00:01Z CRITICAL multi_responder {}", "é".repeat(2000));
    let cut = note(&long);
    assert!(cut.len() <= MAX_NOTE && cut.ends_with('…'));
    assert!(cut.starts_with("CRITICAL"));
    assert_eq!(note("2026-11-21T10:00:01Z INFO x"), "INFO x");
}

#[test]
fn the_sink_never_waits_and_counts_what_it_drops() {
    let metrics = KubeMetrics::default();
    let (sink, mut findings) = channel(&metrics);
    let event = multi_responder(ConditionState::Start);
    for _ in 0..QUEUE + 5 {
        sink.offer(&event, &["shop/web".into()]);
    }
    assert_eq!(metrics.events_dropped.get(), 5);
    assert!(findings.try_recv().is_ok());
}
