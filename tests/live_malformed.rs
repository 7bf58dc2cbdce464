//! Malformed and truncated ARP frames and Neighbor Discovery messages written into a veth while
//! `arpwatch watch --raw` watches the other end: none becomes an observation, the ingress
//! malformed counter is exact, nothing crashes, and the run ends with status 0; with the kernel's debug log on, the programs say why
//! a frame was malformed, at most once a second. Needs root; without it this test fails, never
//! skips.

mod support;

use arpwatch_core::testkit::frames::*;
use std::time::Duration;
use support::lab::{watch_during, Arpwatch, Netns};

const NODE_A: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0a];
const NODE_B: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0b];
const VIP: [u8; 4] = [192, 0, 2, 10];
const CLIENT_IP: [u8; 4] = [192, 0, 2, 1];

/// Every way a frame can claim to be ARP (ethertype 0x0806 after at most the tags it carries)
/// without being an Ethernet/IPv4 request or reply arpwatch decodes.
fn malformed_frames() -> Vec<(&'static str, Vec<u8>)> {
    let request = || ArpFrame::request(NODE_A, CLIENT_IP, VIP);
    let with = |f: fn(&mut ArpFrame)| {
        let mut frame = request();
        f(&mut frame);
        frame.bytes()
    };
    let mut runt_padded = request();
    runt_padded.truncate = Some(14);
    let mut runt_padded = runt_padded.bytes();
    // A bare header claiming ARP, padded with zeros to the Ethernet minimum as a NIC would: 46
    // bytes of body, but htype, ptype and the lengths are all 0.
    runt_padded.resize(60, 0);
    vec![
        ("hlen 8", with(|f| f.hlen = 8)),
        ("plen 16", with(|f| f.plen = 16)),
        ("hlen 0", with(|f| f.hlen = 0)),
        ("htype 6 (IEEE 802)", with(|f| f.htype = 6)),
        ("ptype IPv6", with(|f| f.ptype = 0x86dd)),
        ("op 3 (RARP request)", with(|f| f.op = 3)),
        ("op 0", with(|f| f.op = 0)),
        ("op 257", with(|f| f.op = 0x0101)),
        ("truncated to 27 body bytes", with(|f| f.truncate = Some(14 + 27))),
        ("truncated after the fixed header", with(|f| f.truncate = Some(14 + 8))),
        ("bare Ethernet header with 0x0806", with(|f| f.truncate = Some(14))),
        ("runt padded to 60 bytes with zeros", runt_padded),
        (
            "three VLAN tags",
            request().tagged(&[(TPID_8021AD, 10), (TPID_8021Q, 20), (TPID_8021Q, 30)]).bytes(),
        ),
        ("one VLAN tag, truncated ARP", {
            let mut f = request().tagged(&[(TPID_8021Q, 5)]);
            f.truncate = Some(18 + 20);
            f.bytes()
        }),
    ]
}

/// Every way an NS or NA fails RFC 4861 §7.1, from the crafted nodes' MACs.
fn malformed_nd_frames() -> Vec<(&'static str, Vec<u8>)> {
    let vip6 = ipv6_bytes("2001:db8::10");
    let ns = || NdFrame::solicitation(NODE_A, ipv6_bytes("2001:db8::1"), vip6);
    let na = || NdFrame::unsolicited(NODE_B, vip6);
    let dad = || NdFrame::dad_probe(NODE_A, vip6);
    let raw = |bytes: &[u8]| vec![NdOption::Raw(bytes.to_vec())];
    vec![
        ("NS, hop limit 254", ns().with(|f| f.hop_limit = 254).bytes()),
        ("NA, code 1", na().with(|f| f.code = 1).bytes()),
        ("NS, ICMPv6 length 16", ns().with(|f| f.payload_len = Some(16)).bytes()),
        ("NS, target cut", ns().cut(14 + 40 + 20).bytes()),
        ("NS, zero-length option", ns().options(raw(&[1, 0, 0, 0, 0, 0, 0, 0])).bytes()),
        ("NA, option past the end", na().options(raw(&[2, 3, 0, 0, 0, 0, 0, 0])).bytes()),
        ("NS for a multicast target", ns().with(|f| f.target = ALL_NODES).bytes()),
        ("solicited NA to all nodes", na().with(|f| f.flags = 0x40).bytes()),
        ("DAD probe to all nodes", dad().with(|f| f.dst = ALL_NODES).bytes()),
        ("DAD probe with SLLA", dad().options(vec![NdOption::source(NODE_A)]).bytes()),
    ]
}

#[test]
fn malformed_arp_frames_are_counted_exactly_and_never_observed() {
    let observer = Netns::new("malobs");
    let sender = Netns::new("malsnd");
    observer.veth_to("eth0", &sender, "peer0");
    let mut frames = malformed_frames();
    frames.extend(malformed_nd_frames());
    // One valid reply sent last: frames leave one socket in order and cross one veth queue, so once
    // it is observed, every malformed frame before it has been through the program.
    let sentinel = ArpFrame::reply(NODE_B, VIP, NODE_A, CLIENT_IP);

    let mut all: Vec<Vec<u8>> = frames.iter().map(|(_, f)| f.clone()).collect();
    all.push(sentinel.bytes());
    let done =
        watch_during(&observer, &["eth0"], &["--raw"], "4", || sender.send_frames("peer0", &all));

    // The namespaces' own kernels send valid ND of their own (DAD probes for their link-local
    // addresses): observed, but not from the crafted nodes.
    let crafted = [mac_text(NODE_A), mac_text(NODE_B)];
    let lines: Vec<_> = done
        .json_lines()
        .into_iter()
        .filter(|l| crafted.iter().any(|m| l["eth_src"] == m.as_str()))
        .collect();
    assert_eq!(
        lines.len(),
        1,
        "only the valid sentinel may be observed, got:\n{}\nstderr:\n{}",
        done.stdout,
        done.stderr
    );
    assert_eq!(lines[0]["spa"], "192.0.2.10", "the one observation is the sentinel reply");
    assert_eq!(lines[0]["op"], "reply");

    let counters = done
        .stderr
        .lines()
        .find(|l| l.contains("kernel counters:"))
        .unwrap_or_else(|| panic!("no kernel counters on stderr:\n{}", done.stderr));
    let ingress =
        counters.split("ingress:").nth(1).and_then(|s| s.split(';').next()).expect("ingress block");
    let field = |name: &str| -> u64 {
        ingress
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name}= in {counters}"))
    };
    let names: Vec<&str> = frames.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        field("malformed"),
        frames.len() as u64,
        "one malformed count per frame of {names:?}"
    );
    assert_eq!(field("arp"), 1, "only the sentinel is valid ARP");
    assert_eq!(field("ring_full_drops"), 0);
    assert!(!done.stderr.contains("panicked"), "{}", done.stderr);
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

/// The kernel programs' diagnostics in arpwatch's stderr (aya-log records, target
/// `arpwatch_ebpf`).
fn kernel_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|l| l.contains(" arpwatch_ebpf]")).collect()
}

fn hlen_8() -> Vec<u8> {
    let mut frame = ArpFrame::request(NODE_A, CLIENT_IP, VIP);
    frame.hlen = 8;
    frame.bytes()
}

#[test]
fn with_the_kernel_debug_log_on_a_malformed_frame_is_explained_at_most_once_a_second() {
    let observer = Netns::new("mallog");
    let sender = Netns::new("mallogs");
    observer.veth_to("eth0", &sender, "peer0");
    let ifindex = observer.ifindex("eth0");
    let mut watch = Arpwatch::start_with_env(
        Some(&observer),
        // Ended by SIGTERM once the last line is seen: on a busy machine three explanations a
        // second apart may take longer than a fixed duration.
        &["watch", "--iface", "eth0", "--raw", "--duration", "60"],
        &[("RUST_LOG", "info,arpwatch_ebpf=debug")],
    );
    watch.wait_attached(&["eth0"]);
    let mut truncated = ArpFrame::request(NODE_A, CLIENT_IP, VIP);
    truncated.truncate = Some(14 + 27);
    // Six malformed frames at once: one line says why, the others are only counted.
    let burst = [vec![hlen_8(); 5], vec![truncated.bytes()]].concat();
    sender.send_frames("peer0", &burst);
    let first = watch.wait_for_stderr("arpwatch_ebpf]", Duration::from_secs(5));
    assert!(
        first.contains("DEBUG")
            && first.ends_with(&format!(
                "unsupported ARP frame (ingress ifindex {ifindex}): htype 1 ptype 800 hlen 8 \
                 plen 4 op 1"
            )),
        "{first}"
    );
    // A second later the next one is explained again.
    std::thread::sleep(Duration::from_millis(1200));
    let tags = ArpFrame::request(NODE_A, CLIENT_IP, VIP).tagged(&[
        (TPID_8021AD, 10),
        (TPID_8021Q, 20),
        (TPID_8021Q, 30),
    ]);
    sender.send_frames("peer0", &[tags.bytes()]);
    watch.wait_for_stderr("more than 2 VLAN tags", Duration::from_secs(5));
    // And a Neighbor Discovery message says which RFC 4861 check it failed.
    std::thread::sleep(Duration::from_millis(1200));
    let hop_limit_64 =
        NdFrame::unsolicited(NODE_B, ipv6_bytes("2001:db8::10")).with(|f| f.hop_limit = 64).bytes();
    sender.send_frames("peer0", &[hop_limit_64]);
    let nd = watch.wait_for_stderr("Neighbor Discovery", Duration::from_secs(5));
    assert!(
        nd.ends_with(&format!(
            "malformed Neighbor Discovery message (ingress ifindex {ifindex}): hop limit is not 255"
        )),
        "{nd}"
    );
    watch.signal(libc::SIGTERM);
    let done = watch.finish(Duration::from_secs(20));
    assert!(done.status.success(), "{}", done.stderr);
    let lines = kernel_lines(&done.stderr);
    assert_eq!(lines.len(), 3, "one line per second, not per frame: {lines:#?}");
    assert!(
        done.stderr.contains("malformed=8 "),
        "every malformed frame is still counted: {}",
        done.stderr
    );
    // Frames of every kind come from the interface's own counters: at least the eight sent.
    let frames: u64 = done
        .stderr
        .split("ingress: frames=")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no ingress frame count: {}", done.stderr));
    assert!(frames >= 8, "{frames} ingress frames counted for 8 sent: {}", done.stderr);
}

#[test]
fn by_default_the_kernel_programs_log_nothing() {
    let observer = Netns::new("malquiet");
    let sender = Netns::new("malquiets");
    observer.veth_to("eth0", &sender, "peer0");
    let done = watch_during(&observer, &["eth0"], &["--raw"], "2", || {
        sender.send_frames("peer0", &[hlen_8()]);
    });
    assert_eq!(kernel_lines(&done.stderr), Vec::<&str>::new(), "{}", done.stderr);
    assert!(done.stderr.contains("malformed=1 "), "{}", done.stderr);
}
