//! The IPv6 incidents of issue 11, reproduced in namespace labs with the kernel's own Neighbor
//! Discovery and watched by the built arpwatch binary: the twins of `labs_incidents` and
//! `labs_node_view`. Each lab is one L2 segment (a bridge in a `switch` namespace) with a client
//! at 2001:db8::1, nodes at 2001:db8::11, ::12, ... and sometimes a foreign host; the VIP is
//! 2001:db8::100. Every lab first checks, with the kernel's own ND statistics and neighbour cache,
//! that the exchange it is about really happened, so a failure says whether the lab or arpwatch
//! missed it. Needs root; fails, never skips, without it.
//!
//! Addresses: only 2001:db8::/32 (and the kernel's fe80::/64 link-local ones), only inside the
//! namespaces these tests create.

mod support;

use arpwatch_core::testkit::frames::{mac_bytes, NdFrame};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;
use support::lab::{
    alarms, cluster6, raw_nd, watch_during, Arpwatch, Finished, Netns, TempConfig, DAD_TIMEOUT,
};

const VIP: &str = "2001:db8::100";
const VIP128: &str = "2001:db8::100/128";
const CLIENT: &str = "2001:db8::1";

/// How long the kernel may take for an exchange it starts at once (a solicitation and its
/// answers).
const EXCHANGE: Duration = Duration::from_secs(2);

fn ip6_bytes(ip: &str) -> [u8; 16] {
    ip.parse::<std::net::Ipv6Addr>().expect("an IPv6 address").octets()
}

fn macs_of(events: &[Value], key: &str) -> BTreeSet<String> {
    events
        .iter()
        .flat_map(|e| e[key].as_array().cloned().unwrap_or_default())
        .map(|m| m.as_str().unwrap().to_owned())
        .collect()
}

fn states(events: &[Value]) -> Vec<&str> {
    events.iter().map(|e| e["state"].as_str().unwrap_or("")).collect()
}

/// Every event about an IPv6 address says so.
fn assert_ndp(done: &Finished) {
    for e in done.json_lines() {
        if e["ip"].as_str().is_some_and(|ip| ip.contains(':')) {
            assert_eq!(e["proto"], "ndp", "an event about an IPv6 address: {e}");
        }
    }
}

/// Waits until the client's neighbour entry for the VIP holds `mac`.
fn wait_vip_at(client: &Netns, mac: &str, what: &str, timeout: Duration) {
    client.wait_neigh6("eth0", VIP, what, timeout, |e| {
        e.is_some_and(|e| e.lladdr.as_deref() == Some(mac))
    });
}

#[test]
fn two_nodes_holding_one_vip_both_answering_the_clients_solicitation_is_a_multi_responder() {
    // Split brain: two speakers each hold the VIP (`nodad`, as kube-vip and keepalived add it)
    // and the kernel of each answers the client's solicitation.
    let lan = cluster6("ndmr", 2);
    let (client, nodes) = (&lan.hosts[0], &lan.hosts[1..]);
    for node in nodes {
        node.add_addr_nodad("eth0", VIP128);
    }
    let node_macs: BTreeSet<String> = nodes.iter().map(|n| n.mac("eth0")).collect();
    let before: Vec<_> = nodes.iter().map(|n| n.nd_counters("eth0")).collect();

    let done = watch_during(client, &["eth0"], &[], "3", || {
        client.udp_to(VIP);
        for (node, before) in nodes.iter().zip(&before) {
            node.wait_nd("eth0", *before, "its advertisement of the VIP", EXCHANGE, |d| {
                d.ns_in >= 1 && d.na_out >= 1
            });
        }
    });

    let events = done.events("multi_responder", VIP);
    assert_eq!(
        states(&events).iter().filter(|s| **s == "start").count(),
        1,
        "exactly one multi_responder start: {}",
        done.stdout
    );
    let start = &events[0];
    assert_eq!(start["state"], "start", "{}", done.stdout);
    assert_eq!(start["severity"], "critical");
    assert_eq!(start["proto"], "ndp");
    assert_eq!(start["iface"], "eth0");
    assert_eq!(start["form"], "strong", "both answered the one solicitor: {start}");
    assert_eq!(start["requester_ip"], CLIENT);
    assert_eq!(start["requester_mac"], client.mac("eth0").as_str());
    assert_eq!(macs_of(&events, "macs"), node_macs, "every answering node: {}", done.stdout);
    assert_ndp(&done);
}

#[test]
fn failover_announced_with_an_unsolicited_na_is_an_owner_change_with_its_gap() {
    // A holds the VIP and answered the client; then the VIP moves: A drops it, B adds it with
    // `ndisc_notify=1`. This kernel sends that unsolicited NA (to ff02::1, S=0, O=1) when the
    // address's DAD completes (with `nodad` it sends none), so B adds it with DAD, which also puts
    // B's DAD probe for the VIP on the wire before the announcement.
    let lan = cluster6("ndfo", 2);
    let (client, a, b) = (&lan.hosts[0], &lan.hosts[1], &lan.hosts[2]);
    a.add_addr_nodad("eth0", VIP128);
    b.sysctl("net.ipv6.conf.eth0.ndisc_notify", "1");
    let (mac_a, mac_b) = (a.mac("eth0"), b.mac("eth0"));

    let done = watch_during(client, &["eth0"], &[], "7", || {
        client.udp_to(VIP); // A answers the client: A's last claim
        wait_vip_at(client, &mac_a, "the VIP resolved through A", EXCHANGE);
        a.del_addr("eth0", VIP128);
        let before = b.nd_counters("eth0");
        b.add_addr("eth0", VIP128);
        // Nothing else changes the client's (REACHABLE, unused) entry: B's announcement did.
        wait_vip_at(client, &mac_b, "B's unsolicited NA", Duration::from_secs(4));
        let sent = b.nd_counters("eth0") - before;
        assert!(sent.ns_out >= 1 && sent.na_out >= 1, "B's DAD probe, then its NA: {sent:?}");
    });

    let changes = done.events("owner_change", VIP);
    assert_eq!(changes.len(), 1, "{}", done.stdout);
    let change = &changes[0];
    assert_eq!(change["old_mac"], mac_a.as_str(), "{change}");
    assert_eq!(change["new_mac"], mac_b.as_str(), "{change}");
    assert_eq!(change["announced"], "gratuitous", "an unsolicited NA: {change}");
    assert_eq!(change["override"], true, "Linux announces with O=1: {change}");
    assert_eq!(change["severity"], "warning");
    assert_eq!(change["proto"], "ndp");
    assert!(change["gap_ms"].as_u64().is_some(), "the failover gap is reported: {change}");
    assert!(done.events("multi_responder", VIP).is_empty(), "a clean handover: {}", done.stdout);
    // B's DAD probe for the VIP, which A held until a moment before, is also a `probe_conflict`
    // (old_mac A) by the rule of docs/events.md; this lab does not judge it either way.
    assert_ndp(&done);
}

#[test]
fn speaker_failover_announced_by_its_own_unsolicited_na_is_a_clean_owner_change() {
    // What MetalLB and kube-vip do: the VIP is added `nodad` on the new leader, which announces it
    // itself (an unsolicited NA to ff02::1, S=0, O=1, written to an AF_PACKET socket). No DAD
    // probe, so the owner change is the one warning.
    let lan = cluster6("ndspk", 2);
    let (client, a, b) = (&lan.hosts[0], &lan.hosts[1], &lan.hosts[2]);
    a.add_addr_nodad("eth0", VIP128);
    let (mac_a, mac_b) = (a.mac("eth0"), b.mac("eth0"));

    let done = watch_during(client, &["eth0"], &[], "3", || {
        client.udp_to(VIP);
        wait_vip_at(client, &mac_a, "the VIP resolved through A", EXCHANGE);
        a.del_addr("eth0", VIP128);
        b.add_addr_nodad("eth0", VIP128);
        let na = NdFrame::unsolicited(mac_bytes(&mac_b), ip6_bytes(VIP));
        b.send_frames("eth0", &[na.bytes()]);
        wait_vip_at(client, &mac_b, "B's announcement", EXCHANGE);
    });

    let changes = done.events("owner_change", VIP);
    assert_eq!(changes.len(), 1, "{}", done.stdout);
    let change = &changes[0];
    assert_eq!(
        (change["old_mac"].as_str(), change["new_mac"].as_str()),
        (Some(&*mac_a), Some(&*mac_b))
    );
    assert_eq!(change["announced"], "gratuitous", "{change}");
    assert_eq!(change["override"], true, "{change}");
    assert!(change["gap_ms"].as_u64().is_some(), "{change}");
    let alarms = alarms(&done);
    assert_eq!(alarms.len(), 1, "the owner change alone: {}", done.stdout);
    assert_ndp(&done);
}

/// A node adds 2001:db8::50 with DAD, watched from the client (ingress) or the node (egress).
const NEW: &str = "2001:db8::50";

fn add_with_dad(node: &Netns) {
    let before = node.nd_counters("eth0");
    node.add_addr("eth0", &format!("{NEW}/64"));
    node.wait_dad(DAD_TIMEOUT);
    let sent = node.nd_counters("eth0") - before;
    assert!(sent.ns_out >= 1, "the kernel's DAD probe for {NEW}: {sent:?}");
}

#[test]
fn dad_probe_for_an_added_address_is_a_probe_with_the_probers_mac() {
    let lan = cluster6("nddad", 1);
    let (client, node) = (&lan.hosts[0], &lan.hosts[1]);

    let done = watch_during(client, &["eth0"], &[], "5", || add_with_dad(node));

    let probes = done.events("probe", NEW);
    assert!(!probes.is_empty(), "{}", done.stdout);
    assert_eq!(probes[0]["mac"], node.mac("eth0").as_str(), "{}", probes[0]);
    assert_eq!(probes[0]["severity"], "info");
    assert_eq!(probes[0]["proto"], "ndp");
    assert_eq!(probes[0]["direction"], "ingress");
    assert!(alarms(&done).is_empty(), "a DAD that succeeds raises nothing: {}", done.stdout);
    assert_ndp(&done);
}

#[test]
fn dad_probe_seen_by_the_probing_host_itself_is_its_own_probe_on_egress() {
    let lan = cluster6("nddadown", 1);
    let node = &lan.hosts[1];

    let done = watch_during(node, &["eth0"], &[], "5", || add_with_dad(node));

    let probes = done.events("probe", NEW);
    assert!(!probes.is_empty(), "{}", done.stdout);
    let probe = &probes[0];
    assert_eq!(probe["mac"], node.mac("eth0").as_str(), "{probe}");
    assert_eq!(probe["direction"], "egress", "{probe}");
    assert_eq!(probe["local"], true, "the node knows the MAC is its own: {probe}");
    assert_eq!(probe["local_iface"], "eth0");
    assert!(alarms(&done).is_empty(), "a DAD that succeeds raises nothing: {}", done.stdout);
    assert_ndp(&done);
}

#[test]
fn dead_vip_nobody_answers_the_clients_solicitations_is_unanswered() {
    // Nobody holds the pool's VIP. arpwatch watches the client, so the solicitations are its own
    // (egress) and any answer would be seen. The client's kernel solicits three times, a second
    // apart (`mcast_solicit`).
    let lan = cluster6("nddead", 1);
    let client = &lan.hosts[0];
    let config = TempConfig::new(&format!(
        "[[pools]]\nname = \"metallb\"\ncidrs = [\"{VIP128}\"]\n\
         [thresholds]\nreply_timeout = \"500ms\"\nunanswered_after = 2\n"
    ));
    let before = client.nd_counters("eth0");

    let done = watch_during(client, &["eth0"], &["--config", config.arg()], "6", || {
        client.udp_to(VIP);
        client.wait_nd("eth0", before, "three solicitations", Duration::from_secs(4), |d| {
            d.ns_out >= 3
        });
        client.wait_neigh6("eth0", VIP, "resolution failed", Duration::from_secs(2), |e| {
            e.is_none_or(|e| e.state.iter().any(|s| s == "FAILED"))
        });
    });

    let unanswered = done.events("unanswered", VIP);
    assert_eq!(states(&unanswered).first(), Some(&"start"), "{}", done.stdout);
    let start = &unanswered[0];
    assert_eq!(start["severity"], "critical");
    assert_eq!(start["proto"], "ndp");
    assert_eq!(start["direction"], "egress", "{start}");
    assert_eq!(start["pool"], "metallb");
    assert_eq!(start["requester_ip"], CLIENT, "{start}");
    assert_eq!(start["requester_mac"], client.mac("eth0").as_str(), "{start}");
    assert!(start["count"].as_u64().unwrap() >= 2, "{start}");
    assert!(done.events("new_binding", VIP).is_empty(), "nobody claimed the VIP: {}", done.stdout);
    assert_ndp(&done);
}

#[test]
fn holder_gone_after_resolution_leaves_the_clients_unicast_probes_unanswered() {
    // The node held the VIP and answered the client, then died (its address is gone). The
    // client's entry goes stale; its next datagram makes the kernel confirm reachability with
    // unicast solicitations to the old MAC (`ucast_solicit`, three, a second apart), which nobody
    // answers. Short reachable and first-probe times bring that within seconds.
    let lan = cluster6("ndgone", 1);
    let (client, node) = (&lan.hosts[0], &lan.hosts[1]);
    client.sysctl("net.ipv6.neigh.eth0.base_reachable_time_ms", "500");
    client.sysctl("net.ipv6.neigh.eth0.delay_first_probe_time", "1");
    node.add_addr_nodad("eth0", VIP128);
    let node_mac = node.mac("eth0");
    let config = TempConfig::new(&format!(
        "[[pools]]\nname = \"metallb\"\ncidrs = [\"{VIP128}\"]\n\
         [thresholds]\nreply_timeout = \"500ms\"\nunanswered_after = 2\n"
    ));

    let done = watch_during(client, &["eth0"], &["--config", config.arg()], "9", || {
        client.udp_to(VIP);
        wait_vip_at(client, &node_mac, "the VIP resolved through the node", EXCHANGE);
        node.del_addr("eth0", VIP128);
        let before = client.nd_counters("eth0");
        // The entry goes from REACHABLE to DELAY (or to STALE, and to DELAY with the next
        // datagram), then PROBE: three unicast solicitations, then FAILED.
        wait_reachability_lost(client);
        let sent = client.nd_counters("eth0") - before;
        assert!(sent.ns_out >= 3 && sent.na_in == 0, "three unicast probes, no answer: {sent:?}");
    });

    let unanswered = done.events("unanswered", VIP);
    assert_eq!(states(&unanswered).first(), Some(&"start"), "{}", done.stdout);
    let start = &unanswered[0];
    assert_eq!(start["severity"], "critical");
    assert_eq!(start["proto"], "ndp");
    assert_eq!(start["direction"], "egress", "{start}");
    assert_eq!(start["mac"], node_mac.as_str(), "the last owner: {start}");
    // A reachability probe has no packet waiting to take its source from: the kernel sends it
    // from its link-local address.
    assert_eq!(start["requester_ip"], client.link_local6("eth0").as_str(), "{start}");
    assert_eq!(start["requester_mac"], client.mac("eth0").as_str(), "{start}");
    assert!(start["count"].as_u64().unwrap() >= 2, "{start}");
    assert!(done.events("multi_responder", VIP).is_empty(), "{}", done.stdout);
    assert!(done.events("owner_change", VIP).is_empty(), "{}", done.stdout);
    assert_ndp(&done);
}

/// Waits, nudging the entry out of STALE with a datagram, until the client's kernel gave up on
/// the VIP's cached MAC after its unicast probes (FAILED, or the entry gone).
fn wait_reachability_lost(client: &Netns) {
    client.wait_neigh6("eth0", VIP, "reachability lost", Duration::from_secs(8), |e| {
        let is = |state: &str| e.is_some_and(|e| e.state.iter().any(|s| s == state));
        if is("STALE") {
            client.udp_to(VIP);
        }
        e.is_none() || is("FAILED")
    });
}

#[test]
fn holder_replaced_by_a_proxy_answering_with_override_clear_is_an_owner_change_saying_so() {
    // The node holding the VIP dies; another node answers for it by proxy NDP, which Linux does
    // with the Override flag clear (as MetalLB answers solicitations): a neighbour that still
    // caches the old MAC would keep it. The client here had given up on the old MAC (its unicast
    // probes went unanswered), so it asks again and takes the proxy's answer.
    let lan = cluster6("ndproxy", 2);
    let (client, a, b) = (&lan.hosts[0], &lan.hosts[1], &lan.hosts[2]);
    client.sysctl("net.ipv6.neigh.eth0.base_reachable_time_ms", "500");
    client.sysctl("net.ipv6.neigh.eth0.delay_first_probe_time", "1");
    a.add_addr_nodad("eth0", VIP128);
    // Linux answers for a proxied address only when forwarding; the unicast solicitations that
    // confirm reachability only with `proxy_ndp` on `all` too (else it forwards them, unanswered).
    b.sysctl("net.ipv6.conf.all.forwarding", "1");
    b.sysctl("net.ipv6.conf.all.proxy_ndp", "1");
    b.sysctl("net.ipv6.conf.eth0.proxy_ndp", "1");
    b.sysctl("net.ipv6.neigh.eth0.proxy_delay", "0");
    let (mac_a, mac_b) = (a.mac("eth0"), b.mac("eth0"));

    let done = watch_during(client, &["eth0"], &[], "11", || {
        client.udp_to(VIP);
        wait_vip_at(client, &mac_a, "the VIP resolved through A", EXCHANGE);
        a.del_addr("eth0", VIP128);
        b.ip(&["-6", "neigh", "add", "proxy", VIP, "dev", "eth0"]);
        wait_reachability_lost(client);
        let before = b.nd_counters("eth0");
        client.udp_to(VIP);
        wait_vip_at(client, &mac_b, "B's proxy answer", EXCHANGE);
        let sent = b.nd_counters("eth0") - before;
        assert!(sent.na_out >= 1, "{sent:?}");
    });

    let changes = done.events("owner_change", VIP);
    assert_eq!(changes.len(), 1, "{}", done.stdout);
    let change = &changes[0];
    assert_eq!(change["old_mac"], mac_a.as_str(), "{change}");
    assert_eq!(change["new_mac"], mac_b.as_str(), "{change}");
    assert_eq!(change["announced"], "reply", "a solicited NA: {change}");
    assert_eq!(change["override"], false, "a proxy's NA has O=0: {change}");
    assert_eq!(change["proto"], "ndp");
    assert!(change["gap_ms"].as_u64().is_some(), "{change}");
    // The unicast probes to the dead node went unanswered until the proxy answered.
    let unanswered = done.events("unanswered", VIP);
    assert_eq!(states(&unanswered), ["start", "end"], "{}", done.stdout);
    assert_eq!(
        unanswered[1]["mac"],
        mac_b.as_str(),
        "ended by the proxy's claim: {}",
        unanswered[1]
    );
    assert!(done.events("multi_responder", VIP).is_empty(), "{}", done.stdout);
    assert_ndp(&done);
}

#[test]
fn foreign_device_answering_for_a_vip_is_an_unknown_responder() {
    let mut lan = cluster6("ndforeign", 1);
    let foreign = lan.add_host("ndforeignx", &format!("{VIP}/64"));
    lan.wait_dad();
    let (client, node, foreign) = (&lan.hosts[0], &lan.hosts[1], &lan.hosts[foreign]);
    let config = TempConfig::new(&format!(
        "[[pools]]\nname = \"metallb\"\ncidrs = [\"{VIP128}\"]\nmacs = [\"{}\"]\n",
        node.mac("eth0")
    ));
    let intruder = foreign.mac("eth0");
    let before = foreign.nd_counters("eth0");

    let done = watch_during(client, &["eth0"], &["--config", config.arg()], "3", || {
        client.udp_to(VIP);
        wait_vip_at(client, &intruder, "the foreign device's answer", EXCHANGE);
        let sent = foreign.nd_counters("eth0") - before;
        assert!(sent.na_out >= 1, "{sent:?}");
    });

    let unknown = done.events("unknown_responder", VIP);
    assert!(!unknown.is_empty(), "{}", done.stdout);
    assert_eq!(unknown[0]["mac"], intruder.as_str());
    assert_eq!(unknown[0]["severity"], "critical");
    assert_eq!(unknown[0]["pool"], "metallb");
    assert_eq!(unknown[0]["proto"], "ndp");
    assert_eq!(unknown[0]["announced"], "reply", "{}", unknown[0]);
    assert_eq!(unknown[0]["override"], true, "Linux answers with O=1: {}", unknown[0]);
    assert_ndp(&done);
}

#[test]
fn node_answering_the_vip_sees_its_own_advertisement_on_egress() {
    let lan = cluster6("ndegress", 1);
    let (client, node) = (&lan.hosts[0], &lan.hosts[1]);
    node.add_addr_nodad("eth0", VIP128);
    let (node_mac, client_mac) = (node.mac("eth0"), client.mac("eth0"));
    let resolve = || {
        client.udp_to(VIP);
        wait_vip_at(client, &node_mac, "the node's answer", EXCHANGE);
    };

    // What the node's arpwatch observes, with --raw: the client's solicitation arriving and the
    // node's own advertisement leaving.
    let raw = watch_during(node, &["eth0"], &["--raw"], "3", resolve);
    let lines = raw.json_lines();
    let ns = raw_nd(&lines, "neighbor_solicitation", VIP);
    let ns = ns
        .iter()
        .find(|l| l["direction"] == "ingress" && l["src"] == CLIENT)
        .unwrap_or_else(|| panic!("the client's NS: {}", raw.stdout));
    assert_eq!(ns["lladdr"], client_mac.as_str(), "{ns}");
    assert_eq!(ns["eth_src"], client_mac.as_str(), "{ns}");
    assert_eq!(ns["dst"], "ff02::1:ff00:100", "to the VIP's solicited-node address: {ns}");
    assert_eq!(ns["iface"], "eth0");
    let na = raw_nd(&lines, "neighbor_advertisement", VIP);
    let na = na
        .iter()
        .find(|l| l["direction"] == "egress")
        .unwrap_or_else(|| panic!("the node's own NA, from egress: {}", raw.stdout));
    assert_eq!(na["eth_src"], node_mac.as_str(), "{na}");
    assert_eq!(na["eth_dst"], client_mac.as_str(), "{na}");
    assert_eq!(na["lladdr"], node_mac.as_str(), "{na}");
    assert_eq!((na["src"].as_str(), na["dst"].as_str()), (Some(VIP), Some(CLIENT)), "{na}");
    assert_eq!(
        na["flags"],
        serde_json::json!({"router": false, "solicited": true, "override": true}),
        "{na}"
    );
    assert_eq!(na["ifindex"], node.ifindex("eth0"));

    // The events of the same exchange (the client forgets the VIP, and asks again).
    client.ip(&["-6", "neigh", "del", VIP, "dev", "eth0"]);
    let done = watch_during(node, &["eth0"], &[], "3", resolve);
    let own: Vec<_> = done
        .events("new_binding", VIP)
        .into_iter()
        .filter(|e| e["direction"] == "egress")
        .collect();
    assert_eq!(own.len(), 1, "its own answer, from egress: {}", done.stdout);
    assert_eq!(own[0]["mac"], node_mac.as_str());
    assert_eq!(own[0]["local"], true, "the node knows the MAC is its own: {}", own[0]);
    assert_eq!(own[0]["local_iface"], "eth0");
    assert_eq!(own[0]["proto"], "ndp");
    assert!(alarms(&done).is_empty(), "{}", done.stdout);
    assert_ndp(&done);
}

#[test]
fn client_talking_to_one_healthy_vip_holder_raises_nothing() {
    // One node holds the pool's VIP; the client resolves it and keeps talking. A short reachable
    // time makes the client's kernel confirm reachability with unicast solicitations to the
    // node, which answers each; the node's kernel resolves the client for its ICMPv6 answers.
    let lan = cluster6("ndok", 1);
    let (client, node) = (&lan.hosts[0], &lan.hosts[1]);
    client.sysctl("net.ipv6.neigh.eth0.base_reachable_time_ms", "500");
    client.sysctl("net.ipv6.neigh.eth0.delay_first_probe_time", "1");
    node.add_addr_nodad("eth0", VIP128);
    let node_mac = node.mac("eth0");
    let config = TempConfig::new(&format!(
        "[[pools]]\nname = \"metallb\"\ncidrs = [\"{VIP128}\"]\nmacs = [\"{node_mac}\"]\n\
         interfaces = [\"eth0\"]\n[thresholds]\nreply_timeout = \"500ms\"\n"
    ));
    let before = client.nd_counters("eth0");

    let done = watch_during(client, &["eth0"], &["--config", config.arg()], "6", || {
        client.udp_to(VIP);
        wait_vip_at(client, &node_mac, "the node's answer", EXCHANGE);
        // Keep talking (one datagram every 100 ms, at most 40) until the kernel has confirmed
        // reachability with at least one unicast solicitation and got its answer.
        for _ in 0..40 {
            let d = client.nd_counters("eth0") - before;
            if d.ns_out >= 2 && d.na_in >= 2 {
                break;
            }
            client.udp_to(VIP);
            std::thread::sleep(Duration::from_millis(100));
        }
        let d = client.nd_counters("eth0") - before;
        assert!(d.ns_out >= 2 && d.na_in >= 2, "a unicast reachability probe answered: {d:?}");
        let entry = client.neigh6("eth0", VIP);
        assert_eq!(entry.and_then(|e| e.lladdr), Some(node_mac.clone()), "still the node");
    });

    let bindings = done.events("new_binding", VIP);
    assert_eq!(bindings.len(), 1, "arpwatch saw the node's answer, once: {}", done.stdout);
    assert_eq!(bindings[0]["mac"], node_mac.as_str());
    assert_eq!(bindings[0]["proto"], "ndp");
    // arpwatch saw the reachability probe: the client's solicitation from its link-local address
    // (the first one, with a datagram waiting, came from 2001:db8::1).
    let probe_sender = done.events("new_binding", &client.link_local6("eth0"));
    assert_eq!(probe_sender.len(), 1, "{}", done.stdout);
    assert_eq!(probe_sender[0]["direction"], "egress");
    assert_eq!(probe_sender[0]["announced"], "request");
    assert!(alarms(&done).is_empty(), "a healthy VIP raises nothing: {}", done.stdout);
    assert_ndp(&done);
}

#[test]
fn two_speakers_each_see_their_own_answer_and_the_client_sees_both() {
    // The node view of the split brain: the arpwatch on each node sees its own NA (egress,
    // local), the client's sees both.
    let lan = cluster6("ndtwo", 2);
    let (client, a, b) = (&lan.hosts[0], &lan.hosts[1], &lan.hosts[2]);
    for node in [a, b] {
        node.add_addr_nodad("eth0", VIP128);
    }
    let start = |ns: &Netns| {
        Arpwatch::start(
            Some(ns),
            &["watch", "--iface", "eth0", "--format", "json", "--duration", "4"],
        )
    };
    let (mut on_a, mut on_b) = (start(a), start(b));
    on_a.wait_attached(&["eth0"]);
    on_b.wait_attached(&["eth0"]);
    let done = watch_during(client, &["eth0"], &[], "3", || client.udp_to(VIP));
    let (done_a, done_b) =
        (on_a.finish(Duration::from_secs(30)), on_b.finish(Duration::from_secs(30)));

    for (node, seen) in [(a, &done_a), (b, &done_b)] {
        let own: Vec<_> = seen
            .events("new_binding", VIP)
            .into_iter()
            .filter(|e| e["direction"] == "egress")
            .collect();
        assert_eq!(own.len(), 1, "{}: its own answer, from egress: {}", node.name, seen.stdout);
        assert_eq!(own[0]["mac"], node.mac("eth0").as_str());
        assert_eq!(own[0]["local"], true, "{}", own[0]);
        assert_eq!(own[0]["local_iface"], "eth0");
        assert_ndp(seen);
    }
    let macs = macs_of(&done.events("multi_responder", VIP), "macs");
    assert_eq!(macs, BTreeSet::from([a.mac("eth0"), b.mac("eth0")]), "{}", done.stdout);
}
