//! What a node itself answers, seen by the TC egress program of the arpwatch running on that node:
//! the "wandering IPs" incident (a node with several NICs on one segment answering a VIP on each),
//! several nodes answering one VIP, passivity and least privilege. Real kernel, namespaces, the
//! kernel's own ARP. Needs root; fails, never skips, without it.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;
use support::lab::{
    arpwatch_bin, cluster, hold_vip_like_ipvs, watch_during, Arpwatch, Netns, TempConfig,
};

const VIP: &str = "192.0.2.100";

/// A client and one node whose `eth0` and `eth1` are both on the segment, the VIP held IPVS-style
/// with `arp_ignore=0`, so the node answers the client's broadcast request on both NICs.
fn node_with_two_nics(tag: &str) -> support::lab::Lan {
    let mut lan = cluster(tag, 1);
    lan.connect(1, "eth1");
    hold_vip_like_ipvs(&lan.hosts[1], VIP, false);
    lan.hosts[1].sysctl("net.ipv4.conf.eth1.arp_ignore", "0");
    lan
}

#[test]
fn node_answering_a_vip_on_two_interfaces_reports_both_from_its_egress_view() {
    let lan = node_with_two_nics("wander");
    let (client, node) = (&lan.hosts[0], &lan.hosts[1]);
    let (mac0, mac1) = (node.mac("eth0"), node.mac("eth1"));

    let done = watch_during(node, &["eth0", "eth1"], &[], "3", || client.udp_to(VIP));

    let events = done.events("unexpected_interface", VIP);
    let both: Vec<_> =
        events.iter().filter(|e| e["ifaces"].as_array().is_some_and(|a| a.len() == 2)).collect();
    assert!(!both.is_empty(), "an event naming both interfaces: {}", done.stdout);
    let e = both[0];
    assert_eq!(e["severity"], "warning");
    assert_eq!(e["direction"], "egress");
    assert!(e["node"].as_str().is_some_and(|n| !n.is_empty()), "{e}");
    let named: BTreeSet<(String, String)> = e["ifaces"]
        .as_array()
        .unwrap()
        .iter()
        .zip(e["macs"].as_array().unwrap())
        .map(|(i, m)| (i.as_str().unwrap().to_owned(), m.as_str().unwrap().to_owned()))
        .collect();
    let expected: BTreeSet<(String, String)> =
        [("eth0".to_owned(), mac0), ("eth1".to_owned(), mac1)].into_iter().collect();
    assert_eq!(named, expected, "each interface with the MAC it answered with");
}

#[test]
fn answer_on_an_interface_outside_the_pool_is_reported() {
    let lan = node_with_two_nics("poolif");
    let (client, node) = (&lan.hosts[0], &lan.hosts[1]);
    let config = TempConfig::new(&format!(
        "[[pools]]\nname = \"metallb\"\ncidrs = [\"{VIP}/32\"]\ninterfaces = [\"eth0\"]\n"
    ));

    let done = watch_during(node, &["eth0", "eth1"], &["--config", config.arg()], "3", || {
        client.udp_to(VIP)
    });

    let outside: Vec<_> = done
        .events("unexpected_interface", VIP)
        .into_iter()
        .filter(|e| e["iface"] == "eth1" && e["pool"] == "metallb")
        .collect();
    assert!(!outside.is_empty(), "{}", done.stdout);
    assert_eq!(outside[0]["allowed_ifaces"], serde_json::json!(["eth0"]));
    assert_eq!(outside[0]["mac"], node.mac("eth1").as_str());
    assert!(
        done.events("unexpected_interface", VIP)
            .iter()
            .all(|e| e["iface"] != "eth0" || e["ifaces"].is_array()),
        "the answer on the allowed eth0 alone is not reported: {}",
        done.stdout
    );
}

#[test]
fn two_nodes_answering_one_vip_each_see_their_own_claim_and_the_client_sees_both() {
    let lan = cluster("twonodes", 2);
    let (client, a, b) = (&lan.hosts[0], &lan.hosts[1], &lan.hosts[2]);
    for node in [a, b] {
        hold_vip_like_ipvs(node, VIP, false);
    }
    let args = |ns: &Netns| {
        Arpwatch::start(
            Some(ns),
            &["watch", "--iface", "eth0", "--format", "json", "--duration", "4"],
        )
    };
    let (mut on_a, mut on_b) = (args(a), args(b));
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
        assert_eq!(own[0]["local"], true, "the node knows the MAC is its own: {}", own[0]);
        assert_eq!(own[0]["local_iface"], "eth0");
    }
    let multi = done.events("multi_responder", VIP);
    assert!(!multi.is_empty(), "{}", done.stdout);
    let macs: BTreeSet<&str> = multi
        .iter()
        .flat_map(|e| e["macs"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()))
        .collect();
    let (mac_a, mac_b) = (a.mac("eth0"), b.mac("eth0"));
    assert_eq!(macs, BTreeSet::from([mac_a.as_str(), mac_b.as_str()]));
}

/// rx_packets of `iface`, from the kernel's link statistics.
fn rx_packets(ns: &Netns, iface: &str) -> u64 {
    let out = ns.ip(&["-j", "-s", "link", "show", "dev", iface]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v[0]["stats64"]["rx"]["packets"].as_u64().expect("rx packets")
}

#[test]
fn watching_sends_nothing_and_never_turns_on_promiscuous_mode() {
    let watched = Netns::new("quietw");
    let peer = Netns::new("quietp");
    // Silence the kernels' own IPv6 chatter (router solicitations, MLD) before the links go up,
    // so any frame the peer receives would be arpwatch's.
    for ns in [&watched, &peer] {
        ns.sysctl("net.ipv6.conf.all.disable_ipv6", "1");
        ns.sysctl("net.ipv6.conf.default.disable_ipv6", "1");
    }
    watched.veth_to("eth0", &peer, "eth0");
    let before = rx_packets(&peer, "eth0");

    let mut watch =
        Arpwatch::start(Some(&watched), &["watch", "--iface", "eth0", "--duration", "2"]);
    watch.wait_attached(&["eth0"]);
    let promiscuity = watched.link_json("eth0")["promiscuity"].as_u64();
    let done = watch.finish(Duration::from_secs(30));

    assert!(done.status.success(), "{}", done.stderr);
    assert_eq!(promiscuity, Some(0), "promiscuity while watching");
    assert_eq!(
        rx_packets(&peer, "eth0"),
        before,
        "the peer received a frame from the watched side"
    );
}

#[test]
fn exactly_the_three_capabilities_are_enough() {
    let ns = Netns::new("caps3");
    let peer = Netns::new("caps3p");
    ns.veth_to("eth0", &peer, "eth0");
    // Keep only CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON in the bounding set: root then execs
    // arpwatch with exactly those.
    let last: u32 =
        std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").unwrap().trim().parse().unwrap();
    let drop: Vec<String> =
        (0..=last).filter(|c| ![12, 38, 39].contains(c)).map(|c| c.to_string()).collect();
    let out = ns
        .command("capsh")
        .arg(format!("--drop={}", drop.join(",")))
        .args(["--", "-c"])
        .arg(format!(
            "grep CapEff /proc/self/status; exec {} watch --iface eth0 --raw --duration 1",
            arpwatch_bin()
        ))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("CapEff:\t000000c000001000"),
        "the shell ran with exactly the three: {stdout}"
    );
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("watching eth0"), "{stderr}");
}
