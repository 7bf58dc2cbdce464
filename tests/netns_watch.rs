//! The built arpwatch binary watching a veth end in a namespace while the kernel on both sides
//! resolves neighbours with its own ARP. Needs root; fails, never skips, without it.

mod support;

use serde_json::{json, Value};
use std::time::Duration;
use support::lab::{find_raw, pair, Arpwatch, Netns, ProgramsOn};

#[test]
fn raw_lines_describe_the_kernels_own_arp_exchange() {
    let lab = pair("raw");
    let observer_mac = lab.observer.mac("eth0");
    let peer_mac = lab.peer.mac("eth0");
    let ifindex = lab.observer.ifindex("eth0");

    let mut watch = Arpwatch::start(
        Some(&lab.observer),
        &["watch", "--iface", "eth0", "--raw", "--duration", "4"],
    );
    watch.wait_attached(&["eth0"]);
    // The observer resolves the peer: the peer's reply arrives on the watched interface.
    lab.observer.udp_to("192.0.2.2");
    // The peer, its cache emptied, resolves the observer: its broadcast request arrives too.
    lab.peer.ip(&["neigh", "flush", "dev", "eth0"]);
    lab.peer.udp_to("192.0.2.1");
    let done = watch.finish(Duration::from_secs(20));
    assert!(done.status.success(), "exit {}; stderr:\n{}", done.status, done.stderr);

    let lines = done.json_lines();
    // Ingress (XDP): the peer's reply to us, then the peer's broadcast request.
    let reply = find_raw(&lines, "reply", "192.0.2.2", "192.0.2.1");
    let request = find_raw(&lines, "request", "192.0.2.2", "192.0.2.1");
    // Egress (TC): our own request, then our own reply to the peer.
    let own_request = find_raw(&lines, "request", "192.0.2.1", "192.0.2.2");
    let own_reply = find_raw(&lines, "reply", "192.0.2.1", "192.0.2.2");
    let common = |line: &Value, direction: &str, sender: &str| {
        assert_eq!(line["iface"], "eth0");
        assert_eq!(line["ifindex"], ifindex);
        assert_eq!(line["direction"], direction);
        assert_eq!(line["vlan"], json!([]));
        assert_eq!(line["eth_src"], sender);
        assert_eq!(line["sha"], sender);
        let ts = line["ts"].as_str().unwrap();
        let parsed =
            time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|e| panic!("{ts} is not RFC 3339: {e}"));
        let age = time::OffsetDateTime::now_utc() - parsed;
        assert!(
            age > time::Duration::ZERO && age < time::Duration::seconds(60),
            "ts {ts} is not now"
        );
        assert!(ts.ends_with('Z'), "UTC: {ts}");
    };
    common(reply, "ingress", &peer_mac);
    common(request, "ingress", &peer_mac);
    common(own_request, "egress", &observer_mac);
    common(own_reply, "egress", &observer_mac);
    assert_eq!(reply["eth_dst"], observer_mac.as_str());
    assert_eq!(reply["tha"], observer_mac.as_str());
    assert_eq!(request["eth_dst"], "ff:ff:ff:ff:ff:ff");
    assert_eq!(request["tha"], "00:00:00:00:00:00");
    assert_eq!(own_request["eth_dst"], "ff:ff:ff:ff:ff:ff");
    assert_eq!(own_reply["tha"], peer_mac.as_str());
    for line in &lines {
        let expected = if line["direction"] == "ingress" { &peer_mac } else { &observer_mac };
        // The namespaces' own IPv6 duplicate address detection and router solicitation come
        // along as Neighbor Discovery lines, which name their sender by the Ethernet source.
        let sender = if line["proto"] == "arp" { &line["sha"] } else { &line["eth_src"] };
        assert_eq!(sender, expected.as_str(), "ingress is the peer's, egress ours: {line}");
    }
    assert!(done.stderr.contains("kernel counters: ingress:"), "{}", done.stderr);
    assert_eq!(done.stderr.matches("ring_full_drops=0").count(), 2, "{}", done.stderr);
    assert!(!lab.observer.has_arpwatch_programs("eth0"), "programs left attached after --duration");
}

/// Starts a watch, proves the program is attached, ends the process with `sig`, and checks that
/// nothing stays attached.
fn detaches_after(sig: libc::c_int, tag: &str) -> support::lab::Finished {
    let lab = pair(tag);
    let mut watch = Arpwatch::start(Some(&lab.observer), &["watch", "--iface", "eth0", "--raw"]);
    watch.wait_attached(&["eth0"]);
    assert!(lab.observer.has_xdp("eth0"), "XDP must be attached while watching");
    assert_eq!(
        lab.observer.tcx_egress_programs("eth0"),
        1,
        "TC egress must be attached while watching"
    );
    watch.signal(sig);
    let done = watch.finish(Duration::from_secs(20));
    assert!(
        !lab.observer.has_arpwatch_programs("eth0"),
        "programs still attached after signal {sig}"
    );
    done
}

#[test]
fn sigterm_stops_cleanly_and_detaches() {
    let done = detaches_after(libc::SIGTERM, "term");
    assert!(done.status.success(), "SIGTERM is a clean stop: {}\n{}", done.status, done.stderr);
    assert!(done.stderr.contains("kernel counters:"), "{}", done.stderr);
}

#[test]
fn sigint_stops_cleanly_and_detaches() {
    let done = detaches_after(libc::SIGINT, "int");
    assert!(done.status.success(), "{}\n{}", done.status, done.stderr);
}

#[test]
fn sigkill_leaves_nothing_attached() {
    use std::os::unix::process::ExitStatusExt;
    let done = detaches_after(libc::SIGKILL, "kill");
    assert_eq!(done.status.signal(), Some(libc::SIGKILL));
}

#[test]
fn unknown_interface_is_a_usage_error_in_one_sentence() {
    let lab = pair("unk");
    let watch = Arpwatch::start(Some(&lab.observer), &["watch", "--iface", "nosuch0", "--raw"]);
    let done = watch.finish(Duration::from_secs(20));
    assert_eq!(done.status.code(), Some(2), "{}", done.stderr);
    let message: Vec<&str> = done.stderr.lines().filter(|l| l.starts_with("arpwatch:")).collect();
    assert_eq!(message, ["arpwatch: --iface nosuch0: no such network interface"]);
}

#[test]
fn missing_capability_is_named() {
    // Drop CAP_PERFMON (and CAP_SYS_ADMIN, which would stand in for it) from the bounding set.
    let lab = pair("cap");
    let bin = support::lab::arpwatch_bin();
    let out = lab
        .observer
        .command("capsh")
        .args(["--drop=cap_perfmon,cap_sys_admin", "--", "-c"])
        .arg(format!("exec {bin} watch --iface eth0 --raw --duration 1"))
        .output()
        .expect("run capsh");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("CAP_PERFMON"), "{stderr}");
    assert!(!stderr.contains("CAP_BPF ("), "only the missing capability is named: {stderr}");
}

#[test]
fn netlink_filter_left_by_a_killed_arpwatch_is_removed_at_the_next_start() {
    // Kernels before 6.6 have no TCX: the egress program is a netlink filter, which outlives a
    // SIGKILL. --tc-mode netlink takes that path on this kernel too.
    let lab = pair("stale");
    let egress_filters = || {
        String::from_utf8(
            lab.observer.exec(&["tc", "filter", "show", "dev", "eth0", "egress"]).stdout,
        )
        .unwrap()
    };
    let args = ["watch", "--iface", "eth0", "--raw", "--tc-mode", "netlink"];
    let mut killed = Arpwatch::start(Some(&lab.observer), &args);
    killed.wait_attached(&["eth0"]);
    killed.signal(libc::SIGKILL);
    killed.finish(Duration::from_secs(20));
    assert!(!lab.observer.has_xdp("eth0"), "XDP is a bpf_link and died with the process");
    assert!(
        egress_filters().contains("arpwatch_tc_egress"),
        "the netlink filter stays: {}",
        egress_filters()
    );

    let mut next =
        Arpwatch::start(Some(&lab.observer), &[&args[..], &["--duration", "1"]].concat());
    next.wait_attached(&["eth0"]);
    let done = next.finish(Duration::from_secs(20));
    assert!(done.status.success(), "{}", done.stderr);
    assert!(done.stderr.contains("removed an egress filter left behind"), "{}", done.stderr);
    assert_eq!(egress_filters(), "", "nothing of ours remains after a clean stop");
}

#[test]
fn identical_frames_are_folded_unless_dedup_is_off() {
    let lab = pair("dedup");
    let peer_mac = arpwatch_core::testkit::frames::mac_bytes(&lab.peer.mac("eth0"));
    let observer_mac = arpwatch_core::testkit::frames::mac_bytes(&lab.observer.mac("eth0"));
    let reply = arpwatch_core::testkit::frames::ArpFrame::reply(
        peer_mac,
        [192, 0, 2, 2],
        observer_mac,
        [192, 0, 2, 1],
    )
    .bytes();
    let mut seen = Vec::new();
    for interval in ["1000", "0"] {
        let mut watch = Arpwatch::start(
            Some(&lab.observer),
            &["watch", "--iface", "eth0", "--raw", "--dedup-interval", interval, "--duration", "2"],
        );
        watch.wait_attached(&["eth0"]);
        lab.peer.send_frames("eth0", &[reply.clone(), reply.clone(), reply.clone(), reply.clone()]);
        let done = watch.finish(Duration::from_secs(20));
        assert!(done.status.success(), "{}", done.stderr);
        let replies = done
            .json_lines()
            .iter()
            .filter(|l| l["op"] == "reply" && l["spa"] == "192.0.2.2")
            .count();
        seen.push((interval, replies, done.stderr.contains("suppressed=2")));
    }
    // Two of a tuple cross the ring per interval; the other two are folded and counted.
    assert_eq!(
        seen,
        [("1000", 2, true), ("0", 4, false)],
        "(interval, replies printed, 2 suppressed)"
    );
}

/// An interface whose name is not UTF-8 is watched under `--all`, named with its bytes escaped
/// (`ob\xff`) in the raw lines and logs, and never as a hex dump. aya attaches TC by name only, so
/// its egress is not watched, and the log says so.
#[test]
fn an_interface_whose_name_is_not_utf8_is_watched_under_all_and_named_escaped() {
    use std::os::unix::ffi::OsStrExt;
    let observer = Netns::new("nutfo");
    let peer = Netns::new("nutfp");
    let name: &[u8] = b"ob\xff";
    let ip = |args: &[&[u8]]| {
        let out = std::process::Command::new("ip")
            .args(["-n", &observer.name])
            .args(args.iter().map(|a| std::ffi::OsStr::from_bytes(a)))
            .output()
            .expect("run ip");
        assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    ip(&[
        b"link",
        b"add",
        name,
        b"type",
        b"veth",
        b"peer",
        b"name",
        b"eth0",
        b"netns",
        peer.name.as_bytes(),
    ]);
    ip(&[b"link", b"set", name, b"up"]);
    ip(&[b"addr", b"add", b"192.0.2.1/24", b"dev", name]);
    peer.ip(&["link", "set", "eth0", "up"]);
    peer.add_addr("eth0", "192.0.2.2/24");
    let ifindex = observer.run_inside(|| {
        let name = std::ffi::CString::new(&b"ob\xff"[..]).unwrap();
        // SAFETY: a NUL-terminated name.
        unsafe { libc::if_nametoindex(name.as_ptr()) }
    });
    assert!(ifindex > 0);

    let mut watch =
        Arpwatch::start(Some(&observer), &["watch", "--all", "--raw", "--duration", "4"]);
    watch.wait_attached(&[r"ob\xff"]);
    // The peer resolves the observer: its broadcast request arrives on `ob\xff`.
    peer.udp_to("192.0.2.1");
    let done = watch.finish(Duration::from_secs(20));
    assert!(done.status.success(), "exit {}; stderr:\n{}", done.status, done.stderr);

    let lines = done.json_lines();
    let request = find_raw(&lines, "request", "192.0.2.2", "192.0.2.1");
    assert_eq!(request["iface"], r"ob\xff");
    assert_eq!(request["ifindex"], ifindex);
    assert_eq!(request["direction"], "ingress");
    let stderr = &done.stderr;
    assert!(stderr.lines().all(|l| l.len() < 300), "a long log line:\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "interface {ifindex} has a name that is not plain text; arpwatch writes it ob\\xff"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("egress not watched"), "{stderr}");
}
