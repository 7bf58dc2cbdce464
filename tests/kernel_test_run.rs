//! The real XDP and TC programs, loaded into this kernel and run on crafted frames with
//! BPF_PROG_TEST_RUN: the verdict, the exact record in the ring buffer (or none), and the counters,
//! for ARP and for IPv6 Neighbor Discovery.
//! Needs root (CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON); without it these tests fail, never skip.

mod support;

use arpwatch::{wakeup_bytes, CounterTotals, KernelProbe, DEFAULT_RING_BYTES};
use arpwatch_common::{direction, na_flag, Counter, NeighRecord, RECORD_RING_BYTES, WAKEUP_GAP_NS};
use arpwatch_core::testkit::frames::*;
use aya::programs::{TestRun, TestRunOptions};
use std::time::Duration;
use support::kernel::{
    allowed_cpus, boot_ns, drain_records, pin_to, Hook, TC_ACT_UNSPEC, XDP_PASS,
};

const NODE_A: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0a];
const NODE_B: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0b];
const VIP: [u8; 4] = [192, 0, 2, 10];
const CLIENT_IP: [u8; 4] = [192, 0, 2, 1];

/// What one run of the program on one frame produced.
struct RunOutcome {
    hook: Hook,
    verdict: u32,
    records: Vec<NeighRecord>,
    counters: CounterTotals,
    boot_ns_before: u64,
    boot_ns_after: u64,
}

/// Runs a freshly loaded program (its own ring and counters) once on `data`, with `ctx` as the
/// context input when given.
fn run_once(hook: Hook, data: &[u8], ctx: Option<&[u8]>) -> RunOutcome {
    let mut probe =
        KernelProbe::load(DEFAULT_RING_BYTES).expect("load the XDP program (run as root)");
    let mut ring = probe.take_ring().unwrap();
    let opts = TestRunOptions { data_in: Some(data), ctx_in: ctx, ..Default::default() };
    let boot_ns_before = boot_ns();
    let result = hook.test_run(&probe, opts).expect("BPF_PROG_TEST_RUN");
    let boot_ns_after = boot_ns();
    let records = drain_records(&mut ring);
    RunOutcome {
        hook,
        verdict: result.return_value,
        records,
        counters: probe.counters().unwrap(),
        boot_ns_before,
        boot_ns_after,
    }
}

fn run(frame: &[u8]) -> RunOutcome {
    run_once(Hook::XdpIngress, frame, None)
}

/// Asserts the counters of the hook's direction (arp, malformed, ring-full, and ndp 0) and that
/// the other direction's stayed 0. (Frames are not counted by the programs: the interfaces'
/// own counters have them, and a test run touches no interface.)
fn assert_counters(outcome: &RunOutcome, arp: u64, malformed: u64) {
    assert_all_counters(outcome, arp, 0, malformed);
}

/// As [`assert_counters`], for Neighbor Discovery: ndp, malformed (and arp 0).
fn assert_nd_counters(outcome: &RunOutcome, ndp: u64, malformed: u64) {
    assert_all_counters(outcome, 0, ndp, malformed);
}

fn assert_all_counters(outcome: &RunOutcome, arp: u64, ndp: u64, malformed: u64) {
    let c = &outcome.counters;
    let dir = outcome.hook.direction();
    let got =
        [Counter::Arp, Counter::Ndp, Counter::Malformed, Counter::RingFull, Counter::Suppressed]
            .map(|k| c.get(k, dir));
    assert_eq!(
        got,
        [arp, ndp, malformed, 0, 0],
        "{:?} arp/ndp/malformed/ring_full/suppressed",
        outcome.hook
    );
    let other = 1 - dir;
    for k in Counter::ALL {
        assert_eq!(c.get(k, other), 0, "{} of the other direction must stay 0", k.name());
    }
}

/// The one record a valid ARP frame must produce, checked field by field against the frame.
fn assert_single_record(outcome: &RunOutcome, frame: &ArpFrame) {
    assert_counters(outcome, 1, 0);
    assert_record(outcome, frame.expected_record());
}

/// The one record a valid ND message must produce: every field, padding included.
fn assert_single_nd_record(outcome: &RunOutcome, expected: NeighRecord) {
    assert_nd_counters(outcome, 1, 0);
    assert_record(outcome, expected);
}

/// The run passed the frame on and wrote exactly `expected` (with the run's time, loopback and
/// the hook's direction).
fn assert_record(outcome: &RunOutcome, expected: NeighRecord) {
    assert_eq!(outcome.verdict, outcome.hook.pass_verdict());
    assert_eq!(outcome.records.len(), 1, "exactly one record");
    let r = outcome.records[0];
    assert!(
        (outcome.boot_ns_before..=outcome.boot_ns_after).contains(&r.ts_boot_ns),
        "timestamp {} outside the run [{}, {}]",
        r.ts_boot_ns,
        outcome.boot_ns_before,
        outcome.boot_ns_after
    );
    let expected = NeighRecord {
        ts_boot_ns: r.ts_boot_ns,
        // BPF_PROG_TEST_RUN runs both programs as if on loopback.
        ifindex: 1,
        direction: outcome.hook.direction(),
        ..expected
    };
    assert_eq!(r, expected);
    // The bytes too: nothing the struct comparison could miss, the padding included.
    assert_eq!(bytes_of(&r), bytes_of(&expected));
}

fn bytes_of(record: &NeighRecord) -> Vec<u8> {
    // SAFETY: `NeighRecord` is plain old data without implicit padding (asserted in its crate).
    unsafe {
        std::slice::from_raw_parts(
            (record as *const NeighRecord).cast::<u8>(),
            std::mem::size_of::<NeighRecord>(),
        )
    }
    .to_vec()
}

fn assert_malformed(frame: &[u8]) {
    let outcome = run(frame);
    assert_eq!(outcome.verdict, XDP_PASS);
    assert!(outcome.records.is_empty(), "a malformed frame must not be emitted");
    assert_counters(&outcome, 0, 1);
}

fn assert_not_arp(frame: &[u8]) {
    let outcome = run(frame);
    assert_eq!(outcome.verdict, XDP_PASS);
    assert!(outcome.records.is_empty());
    assert_counters(&outcome, 0, 0);
}

#[test]
fn request_is_recorded() {
    let frame = ArpFrame::request(NODE_A, CLIENT_IP, VIP);
    assert_single_record(&run(&frame.bytes()), &frame);
}

#[test]
fn reply_is_recorded() {
    let frame = ArpFrame::reply(NODE_A, VIP, NODE_B, CLIENT_IP);
    assert_single_record(&run(&frame.bytes()), &frame);
}

#[test]
fn gratuitous_request_and_reply_are_recorded() {
    for op in [1, 2] {
        let frame = ArpFrame::gratuitous(op, NODE_B, VIP);
        let outcome = run(&frame.bytes());
        assert_single_record(&outcome, &frame);
        assert_eq!(outcome.records[0].spa, outcome.records[0].tpa);
    }
}

#[test]
fn frame_padded_to_ethernet_minimum_is_recorded() {
    // Real frames on the wire are padded to 60 bytes; the padding must not matter.
    let frame = ArpFrame::request(NODE_A, CLIENT_IP, VIP);
    let mut bytes = frame.bytes();
    bytes.resize(60, 0);
    assert_single_record(&run(&bytes), &frame);
}

#[test]
fn single_8021q_tag_is_decoded() {
    let frame = ArpFrame::reply(NODE_A, VIP, NODE_B, CLIENT_IP).tagged(&[(TPID_8021Q, 123)]);
    assert_single_record(&run(&frame.bytes()), &frame);
}

#[test]
fn qinq_8021ad_then_8021q_tags_are_decoded_outermost_first() {
    // Priority bits set in the TCI must not leak into the VLAN id.
    let frame = ArpFrame::request(NODE_A, CLIENT_IP, VIP)
        .tagged(&[(TPID_8021AD, 0x2000 | 300), (TPID_8021Q, 0xe000 | 4094)]);
    let outcome = run(&frame.bytes());
    assert_single_record(&outcome, &frame);
    assert_eq!(outcome.records[0].vlan, [300, 4094]);
}

#[test]
fn third_vlan_tag_before_arp_is_malformed() {
    let frame = ArpFrame::request(NODE_A, CLIENT_IP, VIP).tagged(&[
        (TPID_8021AD, 10),
        (TPID_8021Q, 20),
        (TPID_8021Q, 30),
    ]);
    assert_malformed(&frame.bytes());
}

#[test]
fn truncated_arp_is_malformed() {
    let mut frame = ArpFrame::request(NODE_A, CLIENT_IP, VIP);
    frame.truncate = Some(14 + 27);
    assert_malformed(&frame.bytes());
}

#[test]
fn wrong_hlen_is_malformed() {
    let mut frame = ArpFrame::request(NODE_A, CLIENT_IP, VIP);
    frame.hlen = 8;
    assert_malformed(&frame.bytes());
}

#[test]
fn wrong_plen_is_malformed() {
    let mut frame = ArpFrame::request(NODE_A, CLIENT_IP, VIP);
    frame.plen = 16;
    assert_malformed(&frame.bytes());
}

#[test]
fn ieee802_htype_is_malformed() {
    let mut frame = ArpFrame::request(NODE_A, CLIENT_IP, VIP);
    frame.htype = 6;
    assert_malformed(&frame.bytes());
}

#[test]
fn op_3_is_malformed() {
    let mut frame = ArpFrame::request(NODE_A, CLIENT_IP, VIP);
    frame.op = 3;
    assert_malformed(&frame.bytes());
}

#[test]
fn rarp_is_not_arp() {
    let mut frame = ArpFrame::request(NODE_A, CLIENT_IP, VIP);
    frame.ethertype = ETH_P_RARP;
    frame.op = 3;
    assert_not_arp(&frame.bytes());
}

#[test]
fn ipv4_tcp_is_passed_untouched() {
    assert_not_arp(&ipv4_tcp_frame(NODE_A, NODE_B));
}

#[test]
fn tagged_ipv4_is_not_arp() {
    let mut frame = ipv4_tcp_frame(NODE_A, NODE_B);
    frame.splice(12..12, [0x81, 0x00, 0x00, 0x7b]);
    assert_not_arp(&frame);
}

#[test]
fn frame_shorter_than_ethernet_header_never_reaches_the_program() {
    // The kernel itself refuses to hand XDP a packet shorter than an Ethernet header: with 8 bytes
    // of a 14-byte input declared as metadata (xdp_md.data = 8), the program would see 6 bytes,
    // and BPF_PROG_TEST_RUN answers EINVAL without running it. (Live, AF_PACKET pads short sends
    // to the header length, so a runt cannot arrive either.)
    let probe = KernelProbe::load(DEFAULT_RING_BYTES).unwrap();
    let data = [0u8; 14];
    let xdp_md: Vec<u8> = [8u32, 14, 0, 0, 0, 0].iter().flat_map(|v| v.to_ne_bytes()).collect();
    let opts = TestRunOptions { data_in: Some(&data), ctx_in: Some(&xdp_md), ..Default::default() };
    let err = probe.xdp().test_run(opts).expect_err("the kernel must refuse a 6-byte packet");
    let errno = std::error::Error::source(&err)
        .and_then(|e| e.downcast_ref::<std::io::Error>())
        .and_then(std::io::Error::raw_os_error);
    assert_eq!(errno, Some(libc::EINVAL), "{err:?}");
}

#[test]
fn bare_ethernet_header_claiming_arp_is_malformed() {
    let mut frame = ArpFrame::request(NODE_A, CLIENT_IP, VIP);
    frame.truncate = Some(14);
    assert_malformed(&frame.bytes());
}

#[test]
fn frame_cut_inside_a_vlan_tag_is_passed_and_not_arp() {
    let mut frame = ArpFrame::request(NODE_A, CLIENT_IP, VIP).tagged(&[(TPID_8021Q, 5)]);
    frame.truncate = Some(16);
    assert_not_arp(&frame.bytes());
}

#[test]
fn every_run_passes_and_counts_accumulate_per_program() {
    // The same valid frame runs twice: with de-duplication on, the second would be suppressed
    // (tests/kernel_dedup.rs covers that), so it is off here to count every record.
    let mut probe = KernelProbe::load_with_dedup(DEFAULT_RING_BYTES, Duration::ZERO).unwrap();
    let mut ring = probe.take_ring().unwrap();
    let valid = ArpFrame::request(NODE_A, CLIENT_IP, VIP).bytes();
    let mut bad = ArpFrame::request(NODE_A, CLIENT_IP, VIP);
    bad.plen = 6;
    let bad = bad.bytes();
    let tcp = ipv4_tcp_frame(NODE_A, NODE_B);
    for frame in [&valid, &bad, &tcp, &valid] {
        let opts = TestRunOptions { data_in: Some(frame), ..Default::default() };
        assert_eq!(probe.xdp().test_run(opts).unwrap().return_value, XDP_PASS);
    }
    assert_eq!(drain_records(&mut ring).len(), 2);
    let c = probe.counters().unwrap();
    assert_eq!(c.get(Counter::Arp, direction::INGRESS), 2);
    assert_eq!(c.get(Counter::Malformed, direction::INGRESS), 1);
}

#[test]
fn full_ring_drops_are_counted_not_silent() {
    // The smallest ring the kernel allows is one page: 4096 / (112 + 8) = 34 records.
    let page = 4096u32;
    // One frame repeated: with de-duplication on, all but the first would be suppressed before
    // reaching the ring, so it is off here.
    let mut probe = KernelProbe::load_with_dedup(page, Duration::ZERO).unwrap();
    let mut ring = probe.take_ring().unwrap();
    let frame = ArpFrame::request(NODE_A, CLIENT_IP, VIP).bytes();
    let runs = 100u32;
    let opts = TestRunOptions { data_in: Some(&frame), repeat: runs, ..Default::default() };
    assert_eq!(probe.xdp().test_run(opts).unwrap().return_value, XDP_PASS);
    let taken = drain_records(&mut ring).len();
    let c = probe.counters().unwrap();
    let dropped = c.get(Counter::RingFull, direction::INGRESS);
    assert_eq!(c.get(Counter::Arp, direction::INGRESS), runs as u64);
    assert!(dropped > 0, "a one-page ring cannot hold {runs} records");
    assert_eq!(
        taken as u64 + dropped,
        runs as u64,
        "every frame is either delivered or counted as dropped"
    );
}

#[test]
fn egress_reply_is_recorded_as_egress_and_never_changes_the_verdict() {
    // What this host answers: the TC classifier sees it, marks it egress, and returns UNSPEC so
    // the filters and programs after it decide as if arpwatch were not there.
    let frame = ArpFrame::reply(NODE_A, VIP, NODE_B, CLIENT_IP);
    assert_single_record(&run_once(Hook::TcEgress, &frame.bytes(), None), &frame);
    let tagged = ArpFrame::gratuitous(2, NODE_A, VIP).tagged(&[(TPID_8021Q, 42)]);
    assert_single_record(&run_once(Hook::TcEgress, &tagged.bytes(), None), &tagged);
}

#[test]
fn tc_ingress_records_what_arrives_as_ingress_and_never_changes_the_verdict() {
    // Where another program holds the XDP slot, this classifier watches ingress: the same records
    // as XDP, in the ingress block, and UNSPEC so the programs after it decide.
    let reply = ArpFrame::reply(NODE_A, VIP, NODE_B, CLIENT_IP);
    assert_single_record(&run_once(Hook::TcIngress, &reply.bytes(), None), &reply);
    let qinq =
        ArpFrame::request(NODE_A, CLIENT_IP, VIP).tagged(&[(TPID_8021AD, 300), (TPID_8021Q, 4094)]);
    assert_single_record(&run_once(Hook::TcIngress, &qinq.bytes(), None), &qinq);

    let mut bad = ArpFrame::request(NODE_A, CLIENT_IP, VIP);
    bad.op = 3;
    let outcome = run_once(Hook::TcIngress, &bad.bytes(), None);
    assert_eq!(outcome.verdict, TC_ACT_UNSPEC);
    assert!(outcome.records.is_empty());
    assert_counters(&outcome, 0, 1);

    let outcome = run_once(Hook::TcIngress, &ipv4_tcp_frame(NODE_A, NODE_B), None);
    assert_eq!(outcome.verdict, TC_ACT_UNSPEC);
    assert_counters(&outcome, 0, 0);
}

#[test]
fn egress_malformed_and_non_arp_are_counted_in_the_egress_block() {
    let mut bad = ArpFrame::request(NODE_A, CLIENT_IP, VIP);
    bad.hlen = 0;
    let outcome = run_once(Hook::TcEgress, &bad.bytes(), None);
    assert_eq!(outcome.verdict, TC_ACT_UNSPEC);
    assert!(outcome.records.is_empty());
    assert_counters(&outcome, 0, 1);

    let outcome = run_once(Hook::TcEgress, &ipv4_tcp_frame(NODE_A, NODE_B), None);
    assert_eq!(outcome.verdict, TC_ACT_UNSPEC);
    assert!(outcome.records.is_empty());
    assert_counters(&outcome, 0, 0);
}

// ---------------------------------------------------------------------------------------------
// IPv6 Neighbor Discovery, on every hook

const LINK_LOCAL_A: &str = "fe80::a";
const VIP6: &str = "2001:db8::10";
const CLIENT_IP6: &str = "2001:db8::1";

fn ns() -> NdFrame {
    NdFrame::solicitation(NODE_A, ipv6_bytes(LINK_LOCAL_A), ipv6_bytes(VIP6))
}

fn na() -> NdFrame {
    NdFrame::advertisement(NODE_B, ipv6_bytes(VIP6), NODE_A, ipv6_bytes(CLIENT_IP6))
}

fn nonce() -> NdOption {
    NdOption::Nonce([0xa1, 0xb2, 0xc3, 0xd4, 0xe5, 0xf6])
}

/// A valid ND frame on XDP, TC ingress and TC egress: one record each, exactly the expected one.
fn assert_nd_recorded(frame: &NdFrame) -> NeighRecord {
    let expected = frame.expected_record();
    for hook in Hook::ALL {
        assert_single_nd_record(&run_once(hook, &frame.bytes(), None), expected);
    }
    expected
}

/// An NS or NA that fails RFC 4861 §7.1: counted malformed on every hook, never recorded.
fn assert_nd_malformed(bytes: &[u8]) {
    for hook in Hook::ALL {
        let outcome = run_once(hook, bytes, None);
        assert_eq!(outcome.verdict, hook.pass_verdict());
        assert!(outcome.records.is_empty(), "{hook:?}: a malformed message must not be emitted");
        assert_nd_counters(&outcome, 0, 1);
    }
}

/// Not ND: a frame on every hook, nothing else.
fn assert_not_nd(bytes: &[u8]) {
    for hook in Hook::ALL {
        let outcome = run_once(hook, bytes, None);
        assert_eq!(outcome.verdict, hook.pass_verdict());
        assert!(outcome.records.is_empty(), "{hook:?}");
        assert_nd_counters(&outcome, 0, 0);
    }
}

#[test]
fn neighbor_solicitation_with_source_link_layer_address_is_recorded() {
    let r = assert_nd_recorded(&ns());
    // Spelled out once, against the wire rather than the builder.
    assert_eq!((r.proto, r.op, r.lladdr_present, r.nd_flags), (1, 135, 1, 0));
    assert_eq!(r.sha, NODE_A);
    assert_eq!(r.tha, [0; 6]);
    assert_eq!(r.spa, ipv6_bytes(LINK_LOCAL_A));
    assert_eq!(r.tpa, ipv6_bytes("ff02::1:ff00:10"));
    assert_eq!(r.nd_target, ipv6_bytes(VIP6));
    assert_eq!(r.eth_dst, [0x33, 0x33, 0xff, 0, 0, 0x10]);
    assert_eq!(r._pad0, [0; 6]);
}

#[test]
fn neighbor_solicitation_without_options_is_recorded_with_no_link_layer_address() {
    let unicast = ns().options(vec![]).with(|f| (f.dst, f.eth_dst) = (ipv6_bytes(VIP6), NODE_B));
    let r = assert_nd_recorded(&unicast);
    assert_eq!((r.lladdr_present, r.sha), (0, [0; 6]));
}

#[test]
fn dad_probes_with_and_without_a_nonce_are_recorded() {
    let probe = NdFrame::dad_probe(NODE_A, ipv6_bytes(VIP6));
    let r = assert_nd_recorded(&probe);
    assert_eq!((r.spa, r.lladdr_present), ([0; 16], 0));
    // Linux sends its probes with a Nonce option (enhanced DAD).
    assert_nd_recorded(&probe.clone().options(vec![nonce()]));
    // A nonce before the source link-layer address is stepped over.
    let r = assert_nd_recorded(&ns().options(vec![nonce(), NdOption::source(NODE_A)]));
    assert_eq!((r.lladdr_present, r.sha), (1, NODE_A));
}

#[test]
fn solicited_and_unsolicited_advertisements_with_and_without_target_link_layer_address() {
    let r = assert_nd_recorded(&na());
    assert_eq!((r.op, r.sha, r.lladdr_present), (136, NODE_B, 1));
    assert_eq!(r.nd_flags, na_flag::SOLICITED | na_flag::OVERRIDE);
    assert_eq!(
        (r.spa, r.tpa, r.nd_target),
        (ipv6_bytes(VIP6), ipv6_bytes(CLIENT_IP6), ipv6_bytes(VIP6))
    );
    let r = assert_nd_recorded(&na().options(vec![]));
    assert_eq!((r.sha, r.lladdr_present), ([0; 6], 0));

    let unsolicited = NdFrame::unsolicited(NODE_B, ipv6_bytes(VIP6));
    let r = assert_nd_recorded(&unsolicited);
    assert_eq!((r.nd_flags, r.tpa), (na_flag::OVERRIDE, ipv6_bytes("ff02::1")));
    assert_nd_recorded(&unsolicited.options(vec![]));
}

#[test]
fn every_combination_of_the_advertisement_flags_is_recorded_as_sent() {
    for bits in 0..8u8 {
        let flags = bits << 5; // R 0x80, S 0x40, O 0x20
        let r = assert_nd_recorded(&na().with(|f| f.flags = flags));
        assert_eq!(r.nd_flags, flags);
    }
    // The five reserved bits are not part of the record.
    let r = assert_nd_recorded(&na().with(|f| f.flags = 0xff));
    assert_eq!(r.nd_flags, na_flag::ALL);
}

#[test]
fn tagged_and_qinq_neighbor_discovery_is_recorded_with_its_vlan_ids() {
    let r = assert_nd_recorded(&ns().tagged(&[(TPID_8021Q, 0xe000 | 123)]));
    assert_eq!((r.vlan_count, r.vlan), (1, [123, 0]));
    let r = assert_nd_recorded(&na().tagged(&[(TPID_8021AD, 0x2000 | 300), (TPID_8021Q, 4094)]));
    assert_eq!((r.vlan_count, r.vlan), (2, [300, 4094]));
}

#[test]
fn hop_limit_254_is_malformed() {
    assert_nd_malformed(&ns().with(|f| f.hop_limit = 254).bytes());
    assert_nd_malformed(&na().tagged(&[(TPID_8021Q, 5)]).with(|f| f.hop_limit = 254).bytes());
}

#[test]
fn code_1_is_malformed() {
    assert_nd_malformed(&ns().with(|f| f.code = 1).bytes());
    assert_nd_malformed(&na().with(|f| f.code = 1).bytes());
}

#[test]
fn truncated_messages_are_malformed() {
    // Cut inside the target, and an IPv6 payload length beyond the frame.
    assert_nd_malformed(&ns().cut(14 + 40 + 20).bytes());
    assert_nd_malformed(&ns().with(|f| f.payload_len = Some(40)).bytes());
    // An ICMPv6 length below 24 octets, however much the frame holds.
    assert_nd_malformed(&na().with(|f| f.payload_len = Some(20)).bytes());
}

#[test]
fn zero_length_option_is_malformed_not_a_loop() {
    assert_nd_malformed(
        &ns().options(vec![NdOption::Raw(vec![1, 0, 2, 0, 0, 0, 0, 0x0a])]).bytes(),
    );
    assert_nd_malformed(
        &na().options(vec![nonce(), NdOption::Raw(vec![14, 0, 0, 0, 0, 0, 0, 0])]).bytes(),
    );
}

#[test]
fn option_running_past_the_end_is_malformed() {
    assert_nd_malformed(
        &na().options(vec![NdOption::Raw(vec![2, 2, 2, 0, 0, 0, 0, 0x0b])]).bytes(),
    );
    assert_nd_malformed(&ns().options(vec![NdOption::Raw(vec![1])]).bytes());
}

#[test]
fn rfc_4861_destination_rules_are_enforced() {
    let dad = NdFrame::dad_probe(NODE_A, ipv6_bytes(VIP6));
    assert_nd_malformed(&dad.clone().with(|f| f.dst = ipv6_bytes("ff02::1")).bytes());
    assert_nd_malformed(&dad.options(vec![NdOption::source(NODE_A)]).bytes());
    let solicited_to_all =
        NdFrame::unsolicited(NODE_B, ipv6_bytes(VIP6)).with(|f| f.flags = na_flag::SOLICITED);
    assert_nd_malformed(&solicited_to_all.bytes());
    assert_nd_malformed(&ns().with(|f| f.target = ipv6_bytes("ff02::1")).bytes());
}

#[test]
fn an_extension_header_before_icmpv6_is_not_neighbor_discovery() {
    assert_not_nd(&ns().with(|f| f.hop_by_hop = true).bytes());
}

#[test]
fn mld_and_router_advertisements_are_not_neighbor_discovery_observations() {
    assert_not_nd(&mld_report_frame(NODE_A, ipv6_bytes(LINK_LOCAL_A)));
    assert_not_nd(&router_advertisement_frame(NODE_B, ipv6_bytes(LINK_LOCAL_A)));
}

#[test]
fn ipv6_tcp_is_counted_as_a_frame_only() {
    assert_not_nd(&ipv6_tcp_frame(NODE_A, NODE_B));
    assert_not_nd(&ethernet(NODE_B, NODE_A, &[(TPID_8021Q, 9)], ETH_P_IPV6, &ipv6_tcp_packet()));
}

/// Whether the ring's fd, registered edge-triggered in `epoll`, was signalled: the kernel woke its
/// readers since the last call.
fn woken(epoll: &std::os::fd::OwnedFd) -> bool {
    use std::os::fd::AsRawFd;
    let mut event = libc::epoll_event { events: 0, u64: 0 };
    // SAFETY: a valid epoll fd and room for one event.
    let n = unsafe { libc::epoll_wait(epoll.as_raw_fd(), &mut event, 1, 0) };
    assert!(n >= 0, "epoll_wait: {}", std::io::Error::last_os_error());
    n == 1
}

#[test]
fn a_record_wakes_the_reader_unless_its_cpu_did_just_before_and_sent_little_since() {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // One page: the threshold is a sixteenth of it (256 bytes) on up to 8 CPUs, so every third
    // record (120 bytes with the ring's header) within the gap wakes the reader.
    const RING: u32 = 4096;
    pin_to(allowed_cpus()[0]);
    let mut probe = KernelProbe::load_with_dedup(RING, Duration::ZERO).unwrap();
    let threshold = wakeup_bytes(RING);
    assert!(threshold > RECORD_RING_BYTES, "a lone record within the gap must not wake");
    let mut ring = probe.take_ring().unwrap();
    // SAFETY: epoll_create1 returns a new fd or -1.
    let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(epoll >= 0, "epoll_create1: {}", std::io::Error::last_os_error());
    // SAFETY: a new fd nobody else owns.
    let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
    let mut interest = libc::epoll_event { events: (libc::EPOLLIN | libc::EPOLLET) as u32, u64: 0 };
    // SAFETY: valid fds and event.
    let rc = unsafe {
        libc::epoll_ctl(epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, ring.as_raw_fd(), &mut interest)
    };
    assert_eq!(rc, 0, "epoll_ctl: {}", std::io::Error::last_os_error());
    let frame = ArpFrame::request(NODE_A, CLIENT_IP, VIP).bytes();
    // Test runs of one frame each: a run of several changes the XDP dispatcher, which takes
    // milliseconds.
    let run = || {
        let opts = TestRunOptions { data_in: Some(&frame), repeat: 1, ..Default::default() };
        probe.xdp().test_run(opts).unwrap();
    };

    // Whether a record woke the reader follows from its time, that of the last record that did
    // (records carry the time the program decided by), and the bytes submitted in between. The
    // wake-up is an irq_work the kernel runs before the test run returns; it is looked for
    // before the ring is emptied (an empty ring reports no readiness). Every eighth record comes
    // after a wait past the gap.
    let (mut last_wake, mut submitted) = (0, 0);
    let (mut by_gap, mut by_bytes, mut quiet) = (0, 0, 0);
    for i in 0..64 {
        if i % 8 == 0 {
            let start = boot_ns();
            while boot_ns() - start < WAKEUP_GAP_NS {
                std::hint::spin_loop();
            }
        }
        run();
        let was_woken = woken(&epoll);
        let record = drain_records(&mut ring)[0];
        let after_gap = record.ts_boot_ns - last_wake >= WAKEUP_GAP_NS;
        let burst = submitted + RECORD_RING_BYTES >= threshold;
        assert_eq!(
            was_woken,
            after_gap || burst,
            "a record {} ns and {submitted} bytes after the last wake-up",
            record.ts_boot_ns - last_wake
        );
        if after_gap || burst {
            (last_wake, submitted) = (record.ts_boot_ns, 0);
            if after_gap {
                by_gap += 1;
            } else {
                by_bytes += 1;
            }
        } else {
            submitted += RECORD_RING_BYTES;
            quiet += 1;
        }
    }
    assert!(
        by_gap >= 1 && by_bytes >= 1 && quiet >= 1,
        "{by_gap} records woke the reader after the gap, {by_bytes} after a burst, {quiet} did not"
    );
}
