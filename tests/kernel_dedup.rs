//! In-kernel de-duplication, on the real programs with BPF_PROG_TEST_RUN: exact repeats within the
//! interval are suppressed and counted, the next record of the tuple carries the count and the
//! time of the latest repeat, the interval expires on the kernel's own clock, and the frames that
//! matter are never suppressed (a new MAC for an IP, a new interface, another opcode, gratuitous
//! ARP, probes). Neighbor Discovery follows the same rules: repeats folded, a new MAC for a target,
//! unsolicited advertisements and DAD probes never.
//! The table of recent tuples is per CPU: each harness pins its thread to one CPU, and the tests
//! that cross CPUs (the last-sender rule holds across them) pin it to each in turn. Collisions in
//! the tables are built on purpose: tuples that share a set of the recent tuples' table, found
//! among many, and addresses that share a slot of the last speakers', from a seed chosen to make
//! them.
//! Needs root (CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON); without it these tests fail, never skip.

mod support;

use arpwatch::{CounterTotals, KernelProbe, DEFAULT_DEDUP_INTERVAL, DEFAULT_RING_BYTES};
use arpwatch_common::dedup::{Tuple, COARSE_TICK_NS, RECENT_WAYS};
use arpwatch_common::{direction, Counter, NeighRecord};
use arpwatch_core::testkit::frames::*;
use aya::maps::{MapData, RingBuf};
use aya::programs::{TestRun, TestRunOptions};
use std::collections::HashMap;
use std::time::Duration;
use support::kernel::{allowed_cpus, boot_ns, drain_records, pin_to};
use support::lab::Netns;

const NODE_A: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0a];
const NODE_B: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0b];
const CLIENT: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x99];
const VIP: [u8; 4] = [192, 0, 2, 10];
const OTHER_VIP: [u8; 4] = [192, 0, 2, 11];
const CLIENT_IP: [u8; 4] = [192, 0, 2, 99];

/// Byte offset of `ifindex` in `struct __sk_buff` (uapi/linux/bpf.h): the test run looks the
/// device up by it, so the classifier sees that interface.
const SKB_IFINDEX_OFFSET: usize = 40;

/// A loaded probe with its ring, running frames through either program.
struct Harness {
    probe: KernelProbe,
    ring: RingBuf<MapData>,
}

impl Harness {
    /// Loads the programs and pins the calling thread to the CPU it runs on.
    fn new(interval: Duration) -> Harness {
        Harness::seeded(interval, 0)
    }

    /// Like [`Harness::new`], with the de-duplication hashes' seed.
    fn seeded(interval: Duration, seed: u64) -> Harness {
        pin_to(allowed_cpus()[0]);
        let mut probe = KernelProbe::load_seeded(DEFAULT_RING_BYTES, interval, seed)
            .expect("load (run as root)");
        let ring = probe.take_ring().unwrap();
        Harness { probe, ring }
    }

    /// Runs the XDP program `repeat` times on `frame` and returns the records it emitted.
    fn ingress(&mut self, frame: &ArpFrame, repeat: u32) -> Vec<NeighRecord> {
        self.ingress_bytes(&frame.bytes(), repeat)
    }

    /// Runs the XDP program `repeat` times on an ND frame and returns the records it emitted.
    fn ingress_nd(&mut self, frame: &NdFrame, repeat: u32) -> Vec<NeighRecord> {
        self.ingress_bytes(&frame.bytes(), repeat)
    }

    fn ingress_bytes(&mut self, data: &[u8], repeat: u32) -> Vec<NeighRecord> {
        let opts = TestRunOptions { data_in: Some(data), repeat, ..Default::default() };
        self.probe.xdp().test_run(opts).expect("BPF_PROG_TEST_RUN");
        self.drain()
    }

    /// Runs the TC egress program once on `frame` as if leaving by interface `ifindex`.
    fn egress(&mut self, frame: &ArpFrame, ifindex: u32) -> Vec<NeighRecord> {
        let data = frame.bytes();
        let mut ctx = [0u8; SKB_IFINDEX_OFFSET + 4];
        ctx[SKB_IFINDEX_OFFSET..].copy_from_slice(&ifindex.to_ne_bytes());
        let opts =
            TestRunOptions { data_in: Some(&data), ctx_in: Some(&ctx), ..Default::default() };
        self.probe.tc_egress().test_run(opts).expect("BPF_PROG_TEST_RUN");
        self.drain()
    }

    fn drain(&mut self) -> Vec<NeighRecord> {
        drain_records(&mut self.ring)
    }

    fn counters(&self) -> CounterTotals {
        self.probe.counters().unwrap()
    }
}

/// The tuple the XDP test run (ingress on interface 1) gives `record`, hashed with `seed`.
fn tuple(record: &NeighRecord, seed: u64) -> Tuple {
    Tuple::of(&NeighRecord { ifindex: 1, ..*record }, seed)
}

/// The first seed that puts `a` and `b` in the same slot of the table `slot` reads.
fn colliding_seed(a: &NeighRecord, b: &NeighRecord, slot: impl Fn(&Tuple) -> u32) -> u64 {
    (0..).find(|&seed| slot(&tuple(a, seed)) == slot(&tuple(b, seed))).unwrap()
}

/// `n` replies from `NODE_A`, each for another sender and target address, whose tuples share one
/// set of the recent tuples' table under `seed` (and whose claimed addresses share no slot of the
/// last speakers' table, so that only the set is shared).
fn sharing_a_set(n: usize, seed: u64) -> Vec<ArpFrame> {
    let mut sets: HashMap<u32, Vec<(ArpFrame, Tuple)>> = HashMap::new();
    for sender in 1..=254 {
        for target in 1..=254 {
            let frame =
                ArpFrame::reply(NODE_A, [192, 0, 2, sender], CLIENT, [198, 51, 100, target]);
            let t = tuple(&frame.expected_record(), seed);
            let set = sets.entry(t.recent_set).or_default();
            if set.iter().all(|(_, other)| other.speaker_slot != t.speaker_slot) {
                set.push((frame, t));
                if set.len() == n {
                    return set.drain(..).map(|(frame, _)| frame).collect();
                }
            }
        }
    }
    panic!("no {n} of the candidate tuples share a set");
}

fn vip_reply(from: [u8; 6]) -> ArpFrame {
    ArpFrame::reply(from, VIP, CLIENT, CLIENT_IP)
}

/// The records' carried counts, in order.
fn carried(records: &[NeighRecord]) -> Vec<u32> {
    records.iter().map(|r| r.suppressed).collect()
}

#[test]
fn repeats_within_the_interval_are_suppressed_and_counted() {
    let mut h = Harness::new(DEFAULT_DEDUP_INTERVAL);
    let before = boot_ns();
    let records = h.ingress(&vip_reply(NODE_A), 1000);
    let elapsed = boot_ns() - before;
    assert!(
        elapsed < DEFAULT_DEDUP_INTERVAL.as_nanos() as u64,
        "1000 runs took {elapsed} ns, longer than the interval: the test cannot judge suppression"
    );
    assert_eq!(records.len(), 2, "only the first two of 1000 identical frames are emitted");
    assert_eq!(carried(&records), [0, 0]);
    let c = h.counters();
    let ingress = |k| c.get(k, direction::INGRESS);
    assert_eq!(ingress(Counter::Arp), 1000, "a suppressed frame is still a valid ARP frame");
    assert_eq!(ingress(Counter::Suppressed), 998);
    assert_eq!(ingress(Counter::RingFull), 0);
    for k in Counter::ALL {
        assert_eq!(c.get(k, direction::EGRESS), 0, "{} egress", k.name());
    }
}

#[test]
fn the_next_record_after_the_interval_carries_the_suppressed_count() {
    let interval = Duration::from_millis(200);
    let mut h = Harness::new(interval);
    let frame = vip_reply(NODE_A);
    let first = h.ingress(&frame, 1);
    assert_eq!(carried(&first), [0]);
    let expires = first[0].ts_boot_ns + interval.as_nanos() as u64;

    assert_eq!(
        carried(&h.ingress(&frame, 25)),
        [0],
        "the second frame of the interval is emitted, the 24 repeats after it suppressed"
    );
    assert!(
        boot_ns() < expires,
        "the 25 repeats must all have run inside the interval to be judged"
    );

    // Wait out the interval on the same clock the program reads, then check it really passed.
    std::thread::sleep(Duration::from_nanos(expires.saturating_sub(boot_ns())));
    assert!(boot_ns() >= expires);
    let second = h.ingress(&frame, 1);
    assert_eq!(
        carried(&second),
        [24],
        "the record after the interval stands for itself and 24 repeats"
    );
    assert!(second[0].ts_boot_ns - first[0].ts_boot_ns >= interval.as_nanos() as u64);
    assert_eq!(h.counters().get(Counter::Suppressed, direction::INGRESS), 24);

    // The count was handed over, and that record started a new interval: one more record, then
    // the repeats are counted from zero.
    let after = second[0].ts_boot_ns + interval.as_nanos() as u64;
    assert_eq!(carried(&h.ingress(&frame, 4)), [0]);
    std::thread::sleep(Duration::from_nanos(after.saturating_sub(boot_ns())));
    assert!(boot_ns() >= after);
    assert_eq!(carried(&h.ingress(&frame, 1)), [3]);
}

#[test]
fn the_next_record_carries_when_the_latest_folded_repeat_was_seen() {
    // A requester asking faster than twice an interval: its third request falls inside the
    // interval and is folded. Its time must still reach user space, on the next record.
    let interval = Duration::from_millis(200);
    let mut h = Harness::new(interval);
    let request = ArpFrame::request(CLIENT, CLIENT_IP, VIP);
    let first = h.ingress(&request, 1);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].last_suppressed_ns, 0, "a record that carries no repeat has no time");
    let expires = first[0].ts_boot_ns + interval.as_nanos() as u64;

    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(h.ingress(&request, 1).len(), 1, "a second request in the interval is emitted");
    let before_repeats = boot_ns();
    assert!(h.ingress(&request, 3).is_empty(), "the retransmissions after it are folded");
    let after_repeats = boot_ns();
    assert!(after_repeats < expires, "the repeats must run inside the interval to be judged");

    std::thread::sleep(Duration::from_nanos(expires.saturating_sub(boot_ns())));
    let next = h.ingress(&request, 1);
    assert_eq!(carried(&next), [3]);
    let last = next[0].last_suppressed_ns;
    // A repeat well inside the interval is dated on the coarse clock: to within a tick.
    assert!(
        (before_repeats - COARSE_TICK_NS..=after_repeats + COARSE_TICK_NS).contains(&last),
        "the latest repeat was seen at {last}, within a tick of the repeats' run \
         [{before_repeats}, {after_repeats}], not at the first record ({}) nor at this one ({})",
        first[0].ts_boot_ns,
        next[0].ts_boot_ns
    );
    assert!(last > first[0].ts_boot_ns && last < next[0].ts_boot_ns);

    // The time is handed over with the count: a window without repeats carries neither.
    let after = next[0].ts_boot_ns + interval.as_nanos() as u64;
    std::thread::sleep(Duration::from_nanos(after.saturating_sub(boot_ns())));
    let quiet = h.ingress(&request, 1);
    assert_eq!(carried(&quiet), [0]);
    assert_eq!(quiet[0].last_suppressed_ns, 0);
}

#[test]
fn a_requester_asking_twice_within_the_interval_is_seen_twice_even_when_it_then_stops() {
    // `arping` retransmits every 999.6 to 999.98 ms, inside a 1 s interval; a requester that asks
    // twice and gives up must not lose its second request to a fold nothing ever hands over.
    let mut h = Harness::new(DEFAULT_DEDUP_INTERVAL);
    let request = ArpFrame::request(CLIENT, CLIENT_IP, VIP);
    let records = h.ingress(&request, 2);
    assert_eq!(carried(&records), [0, 0], "both requests cross the ring at once");
    assert_eq!(h.counters().get(Counter::Suppressed, direction::INGRESS), 0);
}

#[test]
fn a_new_mac_for_an_ip_is_never_suppressed_and_an_earlier_mac_coming_back_is_not_either() {
    let mut h = Harness::new(DEFAULT_DEDUP_INTERVAL);
    assert_eq!(h.ingress(&vip_reply(NODE_A), 5).len(), 2, "A twice, three repeats suppressed");
    let b = h.ingress(&vip_reply(NODE_B), 1);
    assert_eq!(b.len(), 1, "a second MAC answering for the VIP is emitted at once");
    assert_eq!(b[0].sha, NODE_B);
    // A, B, A is the evidence of a multi-responder: A's return is emitted although A's tuple was
    // emitted a moment ago, and carries A's three suppressed repeats.
    let a_again = h.ingress(&vip_reply(NODE_A), 1);
    assert_eq!(carried(&a_again), [3]);
    assert_eq!(a_again[0].sha, NODE_A);
    // Alternating MACs keep going through.
    assert_eq!(h.ingress(&vip_reply(NODE_B), 1).len(), 1);
    assert_eq!(h.counters().get(Counter::Suppressed, direction::INGRESS), 3);
}

#[test]
fn an_opcode_change_is_never_suppressed() {
    let mut h = Harness::new(DEFAULT_DEDUP_INTERVAL);
    let request = ArpFrame::request(NODE_A, VIP, CLIENT_IP);
    let reply = ArpFrame { op: 2, ..request.clone() };
    assert_eq!(h.ingress(&request, 3).len(), 2);
    let records = h.ingress(&reply, 1);
    assert_eq!(records.len(), 1, "the same addresses with another opcode are another fact");
    assert_eq!(records[0].op, 2);
}

#[test]
fn a_request_for_another_target_is_never_suppressed() {
    // A gateway resolving two VIPs one after the other: both requests matter (for `unanswered`).
    let mut h = Harness::new(DEFAULT_DEDUP_INTERVAL);
    assert_eq!(h.ingress(&ArpFrame::request(CLIENT, CLIENT_IP, VIP), 3).len(), 2);
    assert_eq!(h.ingress(&ArpFrame::request(CLIENT, CLIENT_IP, OTHER_VIP), 1).len(), 1);
}

#[test]
fn gratuitous_arp_and_probes_are_never_suppressed() {
    let mut h = Harness::new(DEFAULT_DEDUP_INTERVAL);
    for op in [1, 2] {
        let records = h.ingress(&ArpFrame::gratuitous(op, NODE_A, VIP), 5);
        assert_eq!(records.len(), 5, "every gratuitous ARP (op {op}) is emitted");
        assert!(records.iter().all(|r| r.suppressed == 0));
    }
    let probe = ArpFrame::request(NODE_B, [0, 0, 0, 0], VIP);
    assert_eq!(h.ingress(&probe, 5).len(), 5, "every RFC 5227 probe is emitted");
    assert_eq!(h.counters().get(Counter::Suppressed, direction::INGRESS), 0);
}

#[test]
fn ingress_and_egress_are_separate_tuples() {
    let mut h = Harness::new(DEFAULT_DEDUP_INTERVAL);
    let frame = vip_reply(NODE_A);
    assert_eq!(h.ingress(&frame, 1).len(), 1);
    let egress = h.egress(&frame, 1);
    assert_eq!(egress.len(), 1, "the same frame leaving this host is a tuple of its own");
    assert_eq!(egress[0].direction, direction::EGRESS);
    assert_eq!(h.egress(&frame, 1).len(), 1, "the second of the interval is emitted");
    assert!(h.egress(&frame, 1).is_empty(), "an egress repeat after it is suppressed");
    let c = h.counters();
    assert_eq!(c.get(Counter::Suppressed, direction::EGRESS), 1);
    assert_eq!(c.get(Counter::Suppressed, direction::INGRESS), 0);
}

#[test]
fn a_new_interface_is_never_suppressed() {
    // This host answering one VIP on two interfaces must show on both. The classifier's test run
    // takes the interface from `__sk_buff.ifindex`, looked up in the caller's namespace: a
    // namespace of our own holds the two interfaces.
    let ns = Netns::new("dedupif");
    ns.ip(&["link", "add", "nic0", "type", "veth", "peer", "name", "nic1"]);
    let nic0 = ns.ifindex("nic0") as u32;
    let nic1 = ns.ifindex("nic1") as u32;
    let per_interface = ns.run_inside(move || {
        let mut h = Harness::new(DEFAULT_DEDUP_INTERVAL);
        let frame = ArpFrame::gratuitous(2, NODE_A, VIP);
        // A plain reply (not gratuitous), so only the interface differs.
        let frame = ArpFrame { spa: VIP, tpa: CLIENT_IP, ..frame };
        let on_nic0 = h.egress(&frame, nic0);
        h.egress(&frame, nic0);
        let repeat_on_nic0 = h.egress(&frame, nic0);
        let on_nic1 = h.egress(&frame, nic1);
        (on_nic0, repeat_on_nic0, on_nic1)
    });
    let (on_nic0, repeat_on_nic0, on_nic1) = per_interface;
    assert_eq!(on_nic0.iter().map(|r| r.ifindex).collect::<Vec<_>>(), [nic0]);
    assert!(repeat_on_nic0.is_empty(), "a repeat on the same interface is suppressed");
    assert_eq!(
        on_nic1.iter().map(|r| r.ifindex).collect::<Vec<_>>(),
        [nic1],
        "another interface is emitted"
    );
}

#[test]
fn zero_interval_turns_de_duplication_off() {
    let mut h = Harness::new(Duration::ZERO);
    assert_eq!(h.ingress(&vip_reply(NODE_A), 10).len(), 10);
    assert_eq!(h.counters().get(Counter::Suppressed, direction::INGRESS), 0);
}

// ---------------------------------------------------------------------------------------------
// IPv6 Neighbor Discovery

fn vip6() -> [u8; 16] {
    ipv6_bytes("2001:db8::10")
}

fn client6() -> [u8; 16] {
    ipv6_bytes("2001:db8::99")
}

/// `from` answers the client's solicitation for the VIP: solicited, override, with its TLLA.
fn vip6_advertisement(from: [u8; 6]) -> NdFrame {
    NdFrame::advertisement(from, vip6(), CLIENT, client6())
}

#[test]
fn neighbor_discovery_repeats_are_folded_like_arp() {
    let mut h = Harness::new(DEFAULT_DEDUP_INTERVAL);
    let records = h.ingress_nd(&vip6_advertisement(NODE_A), 1000);
    assert_eq!(carried(&records), [0, 0], "only the first two of 1000 identical NAs are emitted");
    let solicitation = NdFrame::solicitation(CLIENT, client6(), vip6());
    assert_eq!(h.ingress_nd(&solicitation, 10).len(), 2, "and two of 10 identical NSs");
    let c = h.counters();
    let ingress = |k| c.get(k, direction::INGRESS);
    assert_eq!(ingress(Counter::Ndp), 1010, "a suppressed message is still a valid one");
    assert_eq!(ingress(Counter::Arp), 0);
    assert_eq!(ingress(Counter::Suppressed), 998 + 8);
}

#[test]
fn a_folded_advertisement_is_carried_by_the_next_record_of_its_tuple() {
    let interval = Duration::from_millis(200);
    let mut h = Harness::new(interval);
    let na = vip6_advertisement(NODE_A);
    let first = h.ingress_nd(&na, 6);
    assert_eq!(carried(&first), [0, 0]);
    let expires = first[0].ts_boot_ns + interval.as_nanos() as u64;
    assert!(boot_ns() < expires, "the repeats must run inside the interval to be judged");
    std::thread::sleep(Duration::from_nanos(expires.saturating_sub(boot_ns())));
    assert!(boot_ns() >= expires);
    let next = h.ingress_nd(&na, 1);
    assert_eq!(carried(&next), [4]);
    let last = next[0].last_suppressed_ns;
    assert!(
        last.abs_diff(first[1].ts_boot_ns) <= COARSE_TICK_NS && last < next[0].ts_boot_ns,
        "the repeats ran right after the second record ({}), and {last} is within a tick of it",
        first[1].ts_boot_ns
    );
}

#[test]
fn a_new_mac_for_a_target_is_never_folded_with_or_without_the_link_layer_option() {
    let mut h = Harness::new(DEFAULT_DEDUP_INTERVAL);
    assert_eq!(h.ingress_nd(&vip6_advertisement(NODE_A), 5).len(), 2);
    let b = h.ingress_nd(&vip6_advertisement(NODE_B), 1);
    assert_eq!(b.len(), 1, "a second MAC advertising the target is emitted at once");
    assert_eq!(b[0].sha, NODE_B);
    let a_again = h.ingress_nd(&vip6_advertisement(NODE_A), 1);
    assert_eq!(carried(&a_again), [3], "A, B, A: A's return is emitted with its repeats");

    // Without the target link-layer option the Ethernet source is the MAC that speaks (as user
    // space reads it): a router's NA (R, S, no option) from another MAC is a new MAC too.
    let bare = |from| {
        vip6_advertisement(from).options(vec![]).with(|f| {
            f.flags = arpwatch_common::na_flag::ROUTER | arpwatch_common::na_flag::SOLICITED
        })
    };
    let mut h = Harness::new(DEFAULT_DEDUP_INTERVAL);
    assert_eq!(h.ingress_nd(&bare(NODE_A), 5).len(), 2);
    let b = h.ingress_nd(&bare(NODE_B), 1);
    assert_eq!(b.len(), 1, "another Ethernet source for the target is emitted at once");
    assert_eq!((b[0].eth_src, b[0].lladdr_present), (NODE_B, 0));
}

#[test]
fn unsolicited_advertisements_and_dad_probes_are_never_folded() {
    let mut h = Harness::new(DEFAULT_DEDUP_INTERVAL);
    let unsolicited = NdFrame::unsolicited(NODE_A, vip6());
    let records = h.ingress_nd(&unsolicited, 5);
    assert_eq!(records.len(), 5, "every unsolicited NA (S=0) is emitted");
    let probe = NdFrame::dad_probe(NODE_B, vip6());
    assert_eq!(h.ingress_nd(&probe, 5).len(), 5, "every DAD probe (NS from ::) is emitted");
    let with_nonce = probe.options(vec![NdOption::Nonce([1, 2, 3, 4, 5, 6])]);
    assert_eq!(h.ingress_nd(&with_nonce, 5).len(), 5);
    let c = h.counters();
    assert_eq!(c.get(Counter::Suppressed, direction::INGRESS), 0);
    assert_eq!(c.get(Counter::Ndp, direction::INGRESS), 15);
}

#[test]
fn an_advertisement_with_other_flags_is_another_tuple() {
    // The Override flag decides whether neighbours take the MAC: a change of it is news.
    let mut h = Harness::new(DEFAULT_DEDUP_INTERVAL);
    assert_eq!(h.ingress_nd(&vip6_advertisement(NODE_A), 3).len(), 2);
    let without_override =
        vip6_advertisement(NODE_A).with(|f| f.flags = arpwatch_common::na_flag::SOLICITED);
    assert_eq!(h.ingress_nd(&without_override, 1).len(), 1);
}

#[test]
fn arp_and_neighbor_discovery_keep_their_own_last_senders() {
    // 32.1.13.184 is 20:01:0d:b8 as bytes: in a record's 16-byte field it reads as 2001:db8::.
    // Another MAC advertising 2001:db8:: must not count as a new sender for the IPv4 address.
    let mut h = Harness::new(DEFAULT_DEDUP_INTERVAL);
    let arp = ArpFrame::reply(NODE_A, [0x20, 0x01, 0x0d, 0xb8], CLIENT, CLIENT_IP);
    assert_eq!(h.ingress(&arp, 3).len(), 2);
    let na = NdFrame::advertisement(NODE_B, ipv6_bytes("2001:db8::"), CLIENT, client6());
    assert_eq!(h.ingress_nd(&na, 1).len(), 1);
    assert!(h.ingress(&arp, 1).is_empty(), "the ARP repeat is still folded");
    assert_eq!(h.counters().get(Counter::Suppressed, direction::INGRESS), 2);
}

#[test]
fn another_mac_is_never_folded_when_the_two_macs_land_on_different_cpus() {
    let cpus = allowed_cpus();
    assert!(cpus.len() >= 2, "this test needs two CPUs, the thread may use {cpus:?}");
    let mut h = Harness::new(DEFAULT_DEDUP_INTERVAL);
    pin_to(cpus[0]);
    assert_eq!(h.ingress(&vip_reply(NODE_A), 5).len(), 2, "A twice on the first CPU");
    pin_to(cpus[1]);
    assert_eq!(h.ingress(&vip_reply(NODE_B), 1).len(), 1, "B on the second CPU");
    pin_to(cpus[0]);
    let a_again = h.ingress(&vip_reply(NODE_A), 1);
    assert_eq!(carried(&a_again), [3], "A after B is emitted, on A's CPU, with its repeats");
    // The table of recent tuples is per CPU: on another CPU a tuple gets its own two records
    // per interval (the repeats each CPU folds are carried by that CPU's next record).
    pin_to(cpus[1]);
    assert_eq!(h.ingress(&vip_reply(NODE_A), 4).len(), 2);
    assert_eq!(h.counters().get(Counter::Suppressed, direction::INGRESS), 3 + 2);
}

#[test]
fn tuples_sharing_a_set_as_many_as_its_ways_are_all_folded() {
    let seed = 1;
    let tuples = sharing_a_set(RECENT_WAYS, seed);
    let mut h = Harness::seeded(DEFAULT_DEDUP_INTERVAL, seed);
    for (i, t) in tuples.iter().enumerate() {
        assert_eq!(h.ingress(t, 3).len(), 2, "tuple {i}: two records, one repeat folded");
    }
    for (i, t) in tuples.iter().enumerate() {
        assert!(h.ingress(t, 2).is_empty(), "tuple {i} keeps its slot: its repeats are folded");
    }
    assert_eq!(
        h.counters().get(Counter::Suppressed, direction::INGRESS),
        RECENT_WAYS as u64 * (1 + 2)
    );
}

#[test]
fn a_tuple_whose_set_is_full_is_emitted_and_evicts_only_a_tuple_whose_interval_is_over() {
    let seed = 1;
    let interval = Duration::from_millis(200);
    let mut tuples = sharing_a_set(RECENT_WAYS + 1, seed);
    let newcomer = tuples.pop().unwrap();
    let (first, others) = tuples.split_first().unwrap();
    let mut h = Harness::seeded(interval, seed);
    let records = h.ingress(first, 5);
    assert_eq!(records.len(), 2, "two records, three repeats folded");
    let expires = records[0].ts_boot_ns + interval.as_nanos() as u64;
    for t in others {
        assert_eq!(h.ingress(t, 3).len(), 2, "the others fill the set");
    }
    assert_eq!(
        h.ingress(&newcomer, 2).len(),
        2,
        "a tuple whose set is full of tuples in their interval is not kept: every frame emitted"
    );
    assert!(h.ingress(first, 1).is_empty(), "and it evicted none of them: still folded");
    assert!(boot_ns() < expires, "all of it must run inside the first tuple's interval");

    // Once the first tuple's interval is over, its slot (the one whose interval started
    // earliest) goes to the next tuple new to the set.
    std::thread::sleep(Duration::from_nanos(expires.saturating_sub(boot_ns())));
    assert!(boot_ns() >= expires);
    assert_eq!(h.ingress(&newcomer, 1).len(), 1);
    assert_eq!(h.ingress(&newcomer, 2).len(), 1, "it is kept now: its second record, then a fold");
    let again = h.ingress(first, 1);
    assert_eq!(
        carried(&again),
        [0],
        "the evicted tuple looks new: emitted (its four folded repeats are lost with the slot)"
    );
    let others_folded = others.len() as u64;
    assert_eq!(h.counters().get(Counter::Suppressed, direction::INGRESS), 4 + others_folded + 1);
}

#[test]
fn an_address_whose_speaker_slot_another_took_is_emitted_again_never_folded() {
    // Two VIPs sharing a slot of the table of last speakers.
    let x = |from| ArpFrame::reply(from, VIP, CLIENT, CLIENT_IP);
    let y = |from| ArpFrame::reply(from, OTHER_VIP, CLIENT, CLIENT_IP);
    let seed = colliding_seed(&x(NODE_A).expected_record(), &y(NODE_A).expected_record(), |t| {
        t.speaker_slot
    });
    let mut h = Harness::seeded(DEFAULT_DEDUP_INTERVAL, seed);
    assert_eq!(h.ingress(&x(NODE_A), 3).len(), 2);
    assert_eq!(h.ingress(&y(NODE_B), 1).len(), 1);
    assert_eq!(
        carried(&h.ingress(&x(NODE_A), 1)),
        [1],
        "the slot no longer says A for the VIP: an extra record, with the repeat it folded"
    );
    assert!(h.ingress(&x(NODE_A), 1).is_empty(), "and A is the last speaker again");

    // A, B, then A for the other VIP in the shared slot: A's return to the first VIP still
    // finds B's word replaced by another address's, never by A's own.
    assert_eq!(h.ingress(&x(NODE_B), 1).len(), 1);
    assert_eq!(h.ingress(&y(NODE_A), 1).len(), 1);
    assert_eq!(h.ingress(&x(NODE_A), 1).len(), 1, "A after B for the VIP is emitted");
}
