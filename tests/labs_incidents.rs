//! The incidents of SPEC §1, reproduced in namespace labs with the kernel's own ARP stack and
//! watched by the built arpwatch binary. Each lab is one L2 segment (a bridge in a `switch`
//! namespace) with a client, "node" namespaces and sometimes a foreign host; the VIP is
//! 192.0.2.100. Needs root; fails, never skips, without it.

mod support;

use arpwatch_core::testkit::frames::{ip_bytes, mac_bytes, ArpFrame};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;
use support::lab::{cluster, hold_vip_like_ipvs, watch_during, Netns, TempConfig};

const VIP: &str = "192.0.2.100";

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

#[test]
fn ipvs_without_strict_arp_one_request_one_multi_responder_naming_every_node() {
    let lan = cluster("ipvs", 3);
    let (client, nodes) = (&lan.hosts[0], &lan.hosts[1..]);
    for node in nodes {
        hold_vip_like_ipvs(node, VIP, false);
    }
    let node_macs: BTreeSet<String> = nodes.iter().map(|n| n.mac("eth0")).collect();

    let done = watch_during(client, &["eth0"], &[], "3", || client.udp_to(VIP));

    let events = done.events("multi_responder", VIP);
    assert_eq!(
        states(&events).iter().filter(|s| **s == "start").count(),
        1,
        "exactly one multi_responder start: {events:#?}"
    );
    assert_eq!(events[0]["severity"], "critical");
    assert_eq!(events[0]["iface"], "eth0");
    assert_eq!(macs_of(&events, "macs"), node_macs, "every answering node is named: {events:#?}");
}

#[test]
fn ipvs_with_strict_arp_raises_no_multi_responder() {
    // strictARP: arp_ignore=1 keeps the nodes quiet about the VIP on kube-ipvs0; the speaker's
    // node (node 0 here) holds it on eth0 and is the one legitimate answer.
    let lan = cluster("strict", 3);
    let (client, nodes) = (&lan.hosts[0], &lan.hosts[1..]);
    for node in nodes {
        hold_vip_like_ipvs(node, VIP, true);
    }
    nodes[0].add_addr("eth0", &format!("{VIP}/32"));
    let leader = nodes[0].mac("eth0");

    let done = watch_during(client, &["eth0"], &[], "3", || client.udp_to(VIP));

    assert!(done.events("multi_responder", VIP).is_empty(), "{}", done.stdout);
    let bindings = done.events("new_binding", VIP);
    let bound: Vec<&str> = bindings.iter().map(|e| e["mac"].as_str().unwrap()).collect();
    assert_eq!(bound, [leader.as_str()], "only the leader answered: {}", done.stdout);
}

/// A speaker's gratuitous announcement of the VIP, MetalLB style: a request and a reply at once.
fn announce(node: &Netns) {
    let mac = mac_bytes(&node.mac("eth0"));
    let frames = [1, 2].map(|op| ArpFrame::gratuitous(op, mac, ip_bytes(VIP)).bytes());
    node.send_frames("eth0", &frames);
}

/// Moves the VIP from `from` to `to` the way an L2 speaker fails over: the address moves, then the
/// new leader announces it.
fn fail_over(from: &Netns, to: &Netns) {
    from.ip(&["addr", "del", &format!("{VIP}/32"), "dev", "eth0"]);
    to.add_addr("eth0", &format!("{VIP}/32"));
    announce(to);
}

#[test]
fn failover_is_an_owner_change_with_its_gap_and_not_a_multi_responder() {
    let lan = cluster("fo", 2);
    let (client, a, b) = (&lan.hosts[0], &lan.hosts[1], &lan.hosts[2]);
    a.add_addr("eth0", &format!("{VIP}/32"));
    let (mac_a, mac_b) = (a.mac("eth0"), b.mac("eth0"));

    let done = watch_during(client, &["eth0"], &[], "3", || {
        client.udp_to(VIP); // the old leader answers the client: A's last claim
        fail_over(a, b);
    });

    let changes = done.events("owner_change", VIP);
    assert_eq!(changes.len(), 1, "{}", done.stdout);
    let change = &changes[0];
    assert_eq!(change["old_mac"], mac_a.as_str());
    assert_eq!(change["new_mac"], mac_b.as_str());
    assert_eq!(change["announced"], "gratuitous");
    assert_eq!(change["severity"], "warning");
    assert!(change["gap_ms"].as_u64().is_some(), "the failover gap is reported: {change}");
    assert!(done.events("multi_responder", VIP).is_empty(), "a clean handover: {}", done.stdout);
}

#[test]
fn a_failover_and_a_failback_within_seconds_are_two_owner_changes_not_a_multi_responder() {
    // A keepalived master restarting: the backup takes the VIP, the master takes it back 4 s
    // later (preemption), each move announced. Claims A, B, A within the 10 s concurrency
    // window, but at no moment did both hold the VIP.
    let lan = cluster("fofb", 2);
    let (client, a, b) = (&lan.hosts[0], &lan.hosts[1], &lan.hosts[2]);
    a.add_addr("eth0", &format!("{VIP}/32"));
    let (mac_a, mac_b) = (a.mac("eth0"), b.mac("eth0"));

    let done = watch_during(client, &["eth0"], &[], "7", || {
        client.udp_to(VIP); // the master answers the client: A's claim
        std::thread::sleep(Duration::from_millis(700));
        fail_over(a, b);
        std::thread::sleep(Duration::from_secs(4));
        fail_over(b, a);
    });

    let changes = done.events("owner_change", VIP);
    let moves: Vec<(&str, &str)> = changes
        .iter()
        .map(|c| (c["old_mac"].as_str().unwrap(), c["new_mac"].as_str().unwrap()))
        .collect();
    assert_eq!(moves, [(mac_a.as_str(), mac_b.as_str()), (mac_b.as_str(), mac_a.as_str())]);
    assert!(changes.iter().all(|c| c["announced"] == "gratuitous"), "{}", done.stdout);
    assert!(done.events("multi_responder", VIP).is_empty(), "a hand-back: {}", done.stdout);
}

#[test]
fn a_vip_moved_back_and_forth_is_flapping() {
    let lan = cluster("flap", 2);
    let (client, a, b) = (&lan.hosts[0], &lan.hosts[1], &lan.hosts[2]);
    a.add_addr("eth0", &format!("{VIP}/32"));
    // Claims 1.2 s apart never interleave within a 1 s concurrency window: this lab is about the
    // owner changes alone.
    let config = TempConfig::new("[thresholds]\nconcurrency_window = \"1s\"\n");

    let done = watch_during(client, &["eth0"], &["--config", config.arg()], "6", || {
        announce(a);
        for (from, to) in [(a, b), (b, a), (a, b)] {
            std::thread::sleep(Duration::from_millis(1200));
            fail_over(from, to);
        }
    });

    assert_eq!(done.events("owner_change", VIP).len(), 3, "{}", done.stdout);
    let flapping = done.events("flapping", VIP);
    assert_eq!(states(&flapping), ["start"], "{}", done.stdout);
    assert_eq!(flapping[0]["severity"], "critical");
    assert!(flapping[0]["count"].as_u64().unwrap() >= 3, "{}", flapping[0]);
}

#[test]
fn dead_speaker_vip_nobody_answers_is_unanswered_from_a_mirror_view() {
    // Nobody holds the VIP. arpwatch watches every port of the segment's bridge, as on a mirror
    // port, so it sees the client's requests and would see any reply.
    let lan = cluster("dead", 1);
    let client = &lan.hosts[0];
    let config = TempConfig::new(&format!(
        "full_view = true\n[[pools]]\nname = \"metallb\"\ncidrs = [\"{VIP}/32\"]\n\
         [thresholds]\nreply_timeout = \"500ms\"\nunanswered_after = 2\n"
    ));
    let ports = lan.ports();
    let ports: Vec<&str> = ports.iter().map(String::as_str).collect();

    let done = watch_during(&lan.switch, &ports, &["--config", config.arg()], "6", || {
        // The client's kernel asks up to three times, a second apart, for each attempt.
        client.udp_to(VIP);
    });

    let unanswered = done.events("unanswered", VIP);
    assert_eq!(states(&unanswered).first(), Some(&"start"), "{}", done.stdout);
    assert_eq!(unanswered[0]["severity"], "critical");
    assert!(unanswered[0]["count"].as_u64().unwrap() >= 2, "{}", unanswered[0]);
    assert!(done.events("new_binding", VIP).is_empty(), "nobody claimed the VIP: {}", done.stdout);
}

#[test]
fn foreign_device_answering_for_a_vip_is_an_unknown_responder() {
    let mut lan = cluster("foreign", 1);
    let foreign = lan.add_host("foreignx", &format!("{VIP}/24"));
    let (client, node, foreign) = (&lan.hosts[0], &lan.hosts[1], &lan.hosts[foreign]);
    let config = TempConfig::new(&format!(
        "[[pools]]\nname = \"metallb\"\ncidrs = [\"{VIP}/32\"]\nmacs = [\"{}\"]\n",
        node.mac("eth0")
    ));
    let intruder = foreign.mac("eth0");

    let done =
        watch_during(client, &["eth0"], &["--config", config.arg()], "3", || client.udp_to(VIP));

    let unknown = done.events("unknown_responder", VIP);
    assert!(!unknown.is_empty(), "{}", done.stdout);
    assert_eq!(unknown[0]["mac"], intruder.as_str());
    assert_eq!(unknown[0]["severity"], "critical");
    assert_eq!(unknown[0]["pool"], "metallb");
}

/// Seconds since the Unix epoch of an event's RFC 3339 `ts`.
fn epoch_secs(ts: &Value) -> f64 {
    let ts = ts.as_str().expect("ts is a string");
    let t = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{ts}: {e}"));
    t.unix_timestamp_nanos() as f64 / 1e9
}

fn now_epoch_secs() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

#[test]
fn arping_to_a_dead_vip_is_unanswered_when_its_retransmission_times_out_and_printed_then() {
    // The node held the VIP and answered the client, then died. On the client, `arping -c 5`
    // (iputils, needs the `iputils-arping` package) asks five times a little under a second
    // apart; the kernel's de-duplication lets two identical frames through per interval, so
    // each request crosses the ring (a third within the interval would be folded and carried,
    // with its time, by the next record). arpwatch watches the client itself, so the requests
    // are its own (egress) and any reply would be seen.
    let lan = cluster("arping", 1);
    let (client, node) = (&lan.hosts[0], &lan.hosts[1]);
    node.add_addr("eth0", &format!("{VIP}/32"));

    // A short quiet window, so the run also shows the `end`, with the whole count.
    let config = TempConfig::new("[thresholds]\nquiet_window = \"3s\"\n");
    let mut cmd = client.command(support::lab::arpwatch_bin());
    cmd.args(["watch", "--format", "json", "--iface", "eth0", "--duration", "14"])
        .args(["--config", config.arg()])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut watch = cmd.spawn().expect("start arpwatch");
    // Each stdout line with the wall-clock time it was read, to see when it was printed.
    let stdout = watch.stdout.take().unwrap();
    let lines = std::thread::spawn(move || {
        use std::io::BufRead;
        let lines = std::io::BufReader::new(stdout).lines().map_while(Result::ok);
        lines.map(|l| (now_epoch_secs(), l)).collect::<Vec<_>>()
    });
    let stderr = watch.stderr.take().unwrap();
    let (attached_tx, attached) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("watching eth0 ") {
                let _ = attached_tx.send(());
            }
        }
    });
    attached.recv_timeout(Duration::from_secs(20)).expect("arpwatch attached to eth0");

    client.udp_to(VIP); // the node answers: the VIP has an owner
    std::thread::sleep(Duration::from_millis(300));
    node.ip(&["addr", "del", &format!("{VIP}/32"), "dev", "eth0"]);
    let first_request = now_epoch_secs();
    let arping = client
        .command("arping")
        .args(["-c", "5", "-I", "eth0", VIP])
        .output()
        .expect("arping runs (apt-get install iputils-arping)");
    assert!(!arping.status.success(), "nobody answers: {arping:?}");

    let status = watch.wait().expect("arpwatch exits by --duration");
    assert!(status.success(), "{status}");
    let lines = lines.join().unwrap();
    let unanswered: Vec<(f64, Value)> = lines
        .iter()
        .map(|(read, l)| (*read, serde_json::from_str::<Value>(l).expect("JSON line")))
        .filter(|(_, e)| e["event"] == "unanswered" && e["ip"] == VIP)
        .collect();
    let all: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
    let (printed, start) = unanswered.first().unwrap_or_else(|| panic!("no unanswered: {all:#?}"));
    assert_eq!(start["state"], "start", "{all:#?}");
    // Its second request timed out: 2 s after the first (a little under 1 s, plus the reply
    // timeout), not a second later as when the kernel folded it away.
    let after_first = epoch_secs(&start["ts"]) - first_request;
    assert!((1.8..2.6).contains(&after_first), "started {after_first:.3} s after: {start}");
    // Printed when its timer ran out, not at the next once-a-second tick.
    let late = printed - epoch_secs(&start["ts"]);
    assert!(late < 0.25, "printed {late:.3} s after its ts: {start}");
    // Every request counts: all 5. The end is printed when the quiet window ran out.
    assert!(start["count"].as_u64().unwrap() >= 2, "{start}");
    let (printed, end) = unanswered.last().unwrap();
    assert_eq!(end["state"], "end", "{all:#?}");
    assert_eq!(end["count"].as_u64(), Some(5), "{all:#?}");
    let late = printed - epoch_secs(&end["ts"]);
    assert!(late < 0.25, "printed {late:.3} s after its ts: {end}");
}
