//! What arpwatch attaches to an interface and what it leaves there: beside another XDP program
//! (Cilium, Calico, an XDP firewall, Katran) it watches ingress through TC and never touches the
//! other program; with netlink TC filters it removes the `clsact` qdisc it added, and only that
//! one. The built binary in namespaces, the kernel's own ARP. Needs root; fails, never skips,
//! without it.

mod support;

use arpwatch::EBPF_OBJECT;
use arpwatch_common::programs;
use arpwatch_core::testkit::frames::{mac_bytes, ArpFrame, TPID_8021Q};
use serde_json::json;
use std::sync::mpsc;
use std::time::Duration;
use support::lab::{find_raw, get, pair, Arpwatch, Netns, ProgramsOn, METRICS};

/// Another XDP program on an interface, as Cilium or an XDP firewall would hold it: the object's
/// `arpwatch_xdp_floor` (it only returns XDP_PASS), loaded and attached in driver mode by a
/// thread of its own inside the namespace, which keeps it attached until the guard drops. With
/// `tc_ingress`, also a TCX ingress program of its own (Cilium has both), attached before
/// arpwatch starts: its id is `tc_ingress_id`.
struct ForeignXdp {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    tc_ingress_id: Option<u32>,
}

impl ForeignXdp {
    fn attach(ns: &Netns, iface: &str) -> ForeignXdp {
        Self::attach_with(ns, iface, false)
    }

    fn attach_with(ns: &Netns, iface: &str, tc_ingress: bool) -> ForeignXdp {
        let path = format!("/var/run/netns/{}", ns.name);
        let iface = iface.to_owned();
        let (attached_tx, attached_rx) = mpsc::channel();
        let (stop, stop_rx) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            let netns = std::fs::File::open(&path).expect("open netns");
            // SAFETY: setns on a valid namespace descriptor, for this thread only.
            assert_eq!(unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
            let mut ebpf = aya::Ebpf::load(EBPF_OBJECT).expect("load the object");
            let xdp: &mut aya::programs::Xdp =
                ebpf.program_mut(programs::XDP_FLOOR).unwrap().try_into().unwrap();
            xdp.load().expect("load the foreign XDP program");
            xdp.attach(&iface, aya::programs::XdpMode::Driver).expect("attach the foreign XDP");
            let mut tc_id = None;
            if tc_ingress {
                let tc: &mut aya::programs::SchedClassifier =
                    ebpf.program_mut(programs::TC_EGRESS).unwrap().try_into().unwrap();
                tc.load().expect("load the foreign classifier");
                tc.attach(&iface, aya::programs::TcAttachType::Ingress)
                    .expect("attach the foreign classifier");
                tc_id = Some(tc.info().unwrap().id());
            }
            attached_tx.send(tc_id).unwrap();
            // Held until the guard drops: the link dies with this thread's `ebpf`.
            let _ = stop_rx.recv();
            drop(ebpf);
        });
        let tc_ingress_id =
            attached_rx.recv_timeout(Duration::from_secs(10)).expect("the foreign XDP is attached");
        ForeignXdp { stop: Some(stop), thread: Some(thread), tc_ingress_id }
    }
}

impl Drop for ForeignXdp {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The ids of the TCX ingress programs of `iface`, in the order they run.
fn tcx_ingress_ids(ns: &Netns, iface: &str) -> Vec<u32> {
    let iface = iface.to_owned();
    ns.run_inside(move || {
        aya::programs::SchedClassifier::query_tcx(&iface, aya::programs::TcAttachType::Ingress)
            .expect("query TCX ingress")
            .1
            .iter()
            .map(|p| p.id())
            .collect()
    })
}

#[test]
fn beside_a_foreign_xdp_program_ingress_is_watched_by_tc_and_the_program_is_untouched() {
    let lab = pair("fxdp");
    let foreign = ForeignXdp::attach_with(&lab.observer, "eth0", true);
    let foreign_id = lab.observer.xdp_program_id("eth0").expect("the foreign program's id");
    let foreign_tc = foreign.tc_ingress_id.unwrap();
    let peer_mac = lab.peer.mac("eth0");

    let mut watch = Arpwatch::start(
        Some(&lab.observer),
        &["watch", "--iface", "eth0", "--raw", "--duration", "4", "--metrics-addr", METRICS],
    );
    let watching = watch.wait_for_stderr("watching eth0 ", Duration::from_secs(20));
    assert!(watching.contains("ingress by TC (tcx), egress by TC (tcx)"), "{watching}");
    watch.wait_for_stderr(
        &format!(
            "eth0: the XDP slot is held by program id {foreign_id}; its ingress is watched by TC"
        ),
        Duration::from_secs(1),
    );
    assert_eq!(lab.observer.xdp_program_id("eth0"), Some(foreign_id), "untouched while watching");
    let order = tcx_ingress_ids(&lab.observer, "eth0");
    assert_eq!(order.len(), 2, "arpwatch's TC ingress program and the foreign one: {order:?}");
    assert_eq!(order[1], foreign_tc, "arpwatch runs first, before the program that was there");
    let metrics = get(&lab.observer, "/metrics").1;
    assert!(
        metrics.contains("arpwatch_ingress_hook{iface=\"eth0\",hook=\"tc\",mode=\"tcx\"} 1\n"),
        "{metrics}"
    );

    // The observer resolves the peer (the peer's reply arrives), the peer resolves the observer
    // (its broadcast request arrives), and the peer announces itself on VLAN 42 (the stack takes
    // the tag out of the frame before TC runs).
    lab.observer.udp_to("192.0.2.2");
    lab.peer.ip(&["neigh", "flush", "dev", "eth0"]);
    lab.peer.udp_to("192.0.2.1");
    let tagged = ArpFrame::gratuitous(2, mac_bytes(&peer_mac), [192, 0, 2, 42])
        .tagged(&[(TPID_8021Q, 42)])
        .bytes();
    lab.peer.send_frames("eth0", &[tagged]);
    let done = watch.finish(Duration::from_secs(20));
    assert!(done.status.success(), "{}\n{}", done.status, done.stderr);

    let lines = done.json_lines();
    for (op, spa, tpa, vlan) in [
        ("reply", "192.0.2.2", "192.0.2.1", json!([])),
        ("request", "192.0.2.2", "192.0.2.1", json!([])),
        ("reply", "192.0.2.42", "192.0.2.42", json!([42])),
    ] {
        let line = find_raw(&lines, op, spa, tpa);
        assert_eq!(line["direction"], "ingress", "{line}");
        assert_eq!(line["iface"], "eth0", "{line}");
        assert_eq!(line["sha"], peer_mac.as_str(), "{line}");
        assert_eq!(line["vlan"], vlan, "{line}");
    }
    assert_eq!(lab.observer.xdp_program_id("eth0"), Some(foreign_id), "untouched after the run");
    assert_eq!(tcx_ingress_ids(&lab.observer, "eth0"), [foreign_tc], "only the foreign one left");
    assert_eq!(lab.observer.tcx_egress_programs("eth0"), 0, "nothing of arpwatch left");
    drop(foreign);
    assert!(!lab.observer.has_xdp("eth0"));
}

#[test]
fn ingress_hook_xdp_refuses_a_taken_slot_in_one_sentence_and_leaves_the_program_alone() {
    let lab = pair("fxdpno");
    let _foreign = ForeignXdp::attach(&lab.observer, "eth0");
    let foreign_id = lab.observer.xdp_program_id("eth0").unwrap();
    let watch = Arpwatch::start(
        Some(&lab.observer),
        &["watch", "--iface", "eth0", "--raw", "--ingress-hook", "xdp", "--duration", "2"],
    );
    let done = watch.finish(Duration::from_secs(20));
    assert_eq!(done.status.code(), Some(1), "{}", done.stderr);
    let message: Vec<&str> = done.stderr.lines().filter(|l| l.starts_with("arpwatch:")).collect();
    assert_eq!(message.len(), 1, "{}", done.stderr);
    assert!(
        message[0].contains(&format!("the XDP slot is held by program id {foreign_id}"))
            && message[0].contains("--ingress-hook auto or tc"),
        "{}",
        message[0]
    );
    assert_eq!(lab.observer.xdp_program_id("eth0"), Some(foreign_id));
    assert_eq!(lab.observer.tcx_egress_programs("eth0"), 0);
    assert_eq!(lab.observer.tcx_ingress_programs("eth0"), 0);
}

#[test]
fn a_glob_over_a_busy_and_a_free_interface_watches_both() {
    let lab = pair("fxdpglob");
    lab.observer.veth_to("eth1", &lab.peer, "eth1");
    let _foreign = ForeignXdp::attach(&lab.observer, "eth0");
    let mut watch = Arpwatch::start(
        Some(&lab.observer),
        &["watch", "--iface", "eth*", "--raw", "--duration", "2"],
    );
    let eth0 = watch.wait_for_stderr("watching eth0 ", Duration::from_secs(20));
    let eth1 = watch.wait_for_stderr("watching eth1 ", Duration::from_secs(20));
    assert!(eth0.contains("ingress by TC (tcx)"), "{eth0}");
    assert!(eth1.contains("ingress by XDP in native mode"), "{eth1}");
    let done = watch.finish(Duration::from_secs(20));
    assert!(done.status.success(), "{}", done.stderr);
    assert!(lab.observer.has_xdp("eth0"), "the foreign program stays");
    assert!(!lab.observer.has_arpwatch_programs("eth1"));
}

#[test]
fn ingress_hook_tc_with_netlink_filters_watches_and_removes_the_clsact_qdisc_it_added() {
    let lab = pair("tcnl");
    assert!(!lab.observer.qdiscs("eth0").contains("clsact"));
    let mut watch = Arpwatch::start(
        Some(&lab.observer),
        &[
            "watch",
            "--iface",
            "eth0",
            "--raw",
            "--ingress-hook",
            "tc",
            "--tc-mode",
            "netlink",
            "--duration",
            "3",
        ],
    );
    let watching = watch.wait_for_stderr("watching eth0 ", Duration::from_secs(20));
    assert!(watching.contains("ingress by TC (netlink), egress by TC (netlink)"), "{watching}");
    assert!(!lab.observer.has_xdp("eth0"), "--ingress-hook tc never touches XDP");
    assert!(lab.observer.qdiscs("eth0").contains("clsact"));
    assert!(
        lab.observer.tc_filters("eth0", "ingress").contains(programs::TC_INGRESS),
        "{}",
        lab.observer.tc_filters("eth0", "ingress")
    );
    lab.peer.udp_to("192.0.2.1");
    let done = watch.finish(Duration::from_secs(20));
    assert!(done.status.success(), "{}", done.stderr);
    let request = find_raw(&done.json_lines(), "request", "192.0.2.2", "192.0.2.1").clone();
    assert_eq!(request["direction"], "ingress");

    assert!(!lab.observer.has_arpwatch_programs("eth0"));
    let qdiscs = lab.observer.qdiscs("eth0");
    assert!(!qdiscs.contains("clsact"), "the qdisc arpwatch added is gone: {qdiscs}");
}

#[test]
fn a_clsact_qdisc_arpwatch_added_is_removed_after_a_clean_exit() {
    let lab = pair("tcnlgone");
    assert!(!lab.observer.qdiscs("eth0").contains("clsact"));
    let mut watch = Arpwatch::start(
        Some(&lab.observer),
        &["watch", "--iface", "eth0", "--raw", "--tc-mode", "netlink", "--duration", "1"],
    );
    watch.wait_attached(&["eth0"]);
    assert!(lab.observer.qdiscs("eth0").contains("clsact"), "arpwatch added it");
    let done = watch.finish(Duration::from_secs(20));
    assert!(done.status.success(), "{}", done.stderr);
    let qdiscs = lab.observer.qdiscs("eth0");
    assert!(!qdiscs.contains("clsact"), "the qdisc arpwatch added is gone: {qdiscs}");
}

/// Someone else's filter on eth0's clsact ingress: a classic BPF program that matches nothing.
fn add_foreign_filter(ns: &Netns) {
    ns.exec(&["tc", "filter", "add", "dev", "eth0", "ingress", "bpf", "bytecode", "1,6 0 0 0,"]);
}

#[test]
fn a_clsact_qdisc_that_was_there_before_is_kept_with_its_filters() {
    let lab = pair("tcnlkeep");
    lab.observer.exec(&["tc", "qdisc", "add", "dev", "eth0", "clsact"]);
    add_foreign_filter(&lab.observer);
    let foreign_filter = lab.observer.tc_filters("eth0", "ingress");
    let watch = Arpwatch::start(
        Some(&lab.observer),
        &["watch", "--iface", "eth0", "--raw", "--tc-mode", "netlink", "--duration", "1"],
    );
    let done = watch.finish(Duration::from_secs(20));
    assert!(done.status.success(), "{}", done.stderr);
    assert!(done.stderr.contains("watching eth0 "), "{}", done.stderr);
    assert!(lab.observer.qdiscs("eth0").contains("clsact"), "a qdisc arpwatch did not add stays");
    assert_eq!(lab.observer.tc_filters("eth0", "ingress"), foreign_filter);
    assert_eq!(lab.observer.tc_filters("eth0", "egress"), "");
}

#[test]
fn a_clsact_qdisc_arpwatch_added_is_kept_while_others_filters_use_it() {
    let lab = pair("tcnlused");
    let mut watch = Arpwatch::start(
        Some(&lab.observer),
        &["watch", "--iface", "eth0", "--raw", "--tc-mode", "netlink", "--duration", "2"],
    );
    watch.wait_attached(&["eth0"]);
    assert!(lab.observer.qdiscs("eth0").contains("clsact"), "arpwatch added it");
    // Another tool puts its filter on the qdisc arpwatch added.
    add_foreign_filter(&lab.observer);
    let done = watch.finish(Duration::from_secs(20));
    assert!(done.status.success(), "{}", done.stderr);
    assert!(done.stderr.contains("kept the clsact qdisc arpwatch had added"), "{}", done.stderr);
    assert!(lab.observer.qdiscs("eth0").contains("clsact"));
    assert!(lab.observer.tc_filters("eth0", "ingress").contains("bytecode"));
    assert_eq!(lab.observer.tc_filters("eth0", "egress"), "");
}

/// What docs/deploy.md says attaching changes on a veth, per ingress hook: native XDP on one end
/// caps the MTU of the other (the peer's frames must fit one page), skb-mode XDP and TC change
/// nothing. On a NIC the driver decides; this is the one driver the labs have.
#[test]
fn native_xdp_on_a_veth_caps_the_peers_mtu_and_skb_mode_and_tc_do_not() {
    for (args, hook, peer_mtu_9000) in [
        (["--xdp-mode", "native"], "XDP in native mode", false),
        (["--xdp-mode", "skb"], "XDP in skb mode", true),
        (["--ingress-hook", "tc"], "TC (tcx)", true),
    ] {
        let lab = pair("mtu");
        let mut watch = Arpwatch::start(
            Some(&lab.observer),
            &[&["watch", "--iface", "eth0", "--raw", "--duration", "2"][..], &args].concat(),
        );
        let watching = watch.wait_for_stderr("watching eth0 ", Duration::from_secs(20));
        assert!(watching.contains(&format!("ingress by {hook},")), "{watching}");
        let set = lab.peer.try_ip(&["link", "set", "eth0", "mtu", "9000"]);
        assert_eq!(set.is_ok(), peer_mtu_9000, "{args:?}: peer mtu 9000: {set:?}");
        let done = watch.finish(Duration::from_secs(20));
        assert!(done.status.success(), "{args:?}: {}", done.stderr);
        // Once arpwatch is gone, the cap is too.
        lab.peer.ip(&["link", "set", "eth0", "mtu", "9000"]);
    }
}
