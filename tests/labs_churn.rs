//! Interfaces that come, go and change names while arpwatch watches a glob. Real kernel,
//! namespaces. Needs root; fails, never skips, without it.

mod support;

use arpwatch_core::testkit::frames::{ip_bytes, mac_bytes, ArpFrame};
use std::time::Duration;
use support::lab::{Arpwatch, Netns, ProgramsOn};

const STEP: Duration = Duration::from_secs(20);

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).expect("the process is running").count()
}

#[test]
fn veth_churn_is_followed_without_leaking_and_leaves_nothing_attached() {
    let ns = Netns::new("churn");
    // One pair that exists before the start and lives through the churn.
    ns.ip(&["link", "add", "vethkeep0", "type", "veth", "peer", "name", "vethkeep1"]);
    let mut watch = Arpwatch::start(Some(&ns), &["watch", "--iface", "veth*", "--raw"]);
    watch.wait_attached(&["vethkeep0", "vethkeep1"]);
    let pid = watch.pid();
    let rounds = 200;
    let mut baseline = None;
    for round in 0..rounds {
        let (a, b) = (format!("vetha{round}"), format!("vethb{round}"));
        ns.ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
        watch.wait_attached(&[&a, &b]);
        if round % 50 == 0 {
            assert!(
                ns.has_xdp(&a) && ns.tcx_egress_programs(&a) == 1,
                "round {round}: {a} attached"
            );
        }
        ns.ip(&["link", "del", &a]);
        for gone in [&a, &b] {
            watch.wait_for_stderr(&format!("forgot {gone} "), STEP);
        }
        if round == 10 {
            baseline = Some(open_fds(pid));
        }
    }
    let (baseline, end) = (baseline.unwrap(), open_fds(pid));
    assert!(
        end <= baseline,
        "open fds grew with the churn: {baseline} after 10 rounds, {end} after {rounds}"
    );
    assert!(ns.has_arpwatch_programs("vethkeep0"), "the long-lived pair is still watched");

    watch.signal(libc::SIGTERM);
    let done = watch.finish(STEP);
    assert!(done.status.success(), "{}", done.stderr);
    for iface in ["vethkeep0", "vethkeep1", "lo"] {
        assert!(!ns.has_arpwatch_programs(iface), "{iface}: a program outlived arpwatch");
    }
}

#[test]
fn observations_carry_the_interface_name_at_the_time_they_were_seen() {
    let watched = Netns::new("renw");
    let peer = Netns::new("renp");
    watched.veth_to("vethr0", &peer, "eth0");
    let peer_mac = mac_bytes(&peer.mac("eth0"));
    let announce = |ip: &str| {
        peer.send_frames("eth0", &[ArpFrame::gratuitous(1, peer_mac, ip_bytes(ip)).bytes()])
    };

    let mut watch = Arpwatch::start(Some(&watched), &["watch", "--iface", "veth*", "--raw"]);
    watch.wait_attached(&["vethr0"]);
    announce("192.0.2.1");
    watched.ip(&["link", "set", "vethr0", "down"]);
    watched.ip(&["link", "set", "vethr0", "name", "vethq0"]);
    watched.ip(&["link", "set", "vethq0", "up"]);
    watch.wait_for_stderr("is now vethq0", STEP);
    announce("192.0.2.2");
    // Out of the selection: the watch lets go of it.
    watched.ip(&["link", "set", "vethq0", "down"]);
    watched.ip(&["link", "set", "vethq0", "name", "other0"]);
    watch.wait_for_stderr("stopped watching vethq0", STEP);
    assert!(!watched.has_arpwatch_programs("other0"), "a renamed-away interface is released");
    watch.signal(libc::SIGTERM);
    let done = watch.finish(STEP);
    assert!(done.status.success(), "{}", done.stderr);

    let lines = done.json_lines();
    let iface_of = |spa: &str| {
        lines
            .iter()
            .find(|l| l["spa"] == spa)
            .unwrap_or_else(|| panic!("no frame from {spa} in {lines:#?}"))["iface"]
            .clone()
    };
    assert_eq!(iface_of("192.0.2.1"), "vethr0");
    assert_eq!(iface_of("192.0.2.2"), "vethq0");
}
