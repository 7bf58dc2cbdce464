//! arpwatch kernel programs. The XDP program runs on ingress of each watched interface and the TC
//! classifier on its egress (what this host itself sends, such as its own ARP replies); where
//! another program holds the interface's XDP slot, a second classifier watches ingress instead.
//! All of them turn every valid Ethernet/IPv4 ARP frame and every valid IPv6 Neighbor
//! Solicitation and Advertisement (RFC 4861 §7.1, checked by the rule in `arpwatch_common::nd`,
//! without the ICMPv6 checksum) into one [`NeighRecord`] in the `EVENTS` ring buffer, count the
//! valid, malformed, suppressed and lost ones in the per-CPU `COUNTERS` array (other frames are
//! not counted: the interfaces' own counters have them), and always let the frame go on unchanged: arpwatch
//! never drops, changes or sends a packet.
//!
//! In a storm most frames are exact repeats. A tuple ([`Tuple`]) crosses the ring at most
//! [`DEDUP_EMITS_PER_INTERVAL`] times per `DEDUP_INTERVAL_NS` on each CPU; a further repeat within
//! the interval, from the MAC that last spoke for its address (on any CPU), is counted as
//! suppressed instead; the next record of that tuple on that CPU carries the count and when the
//! latest of them was seen. Gratuitous ARP, ARP probes, unsolicited Neighbor Advertisements, DAD
//! probes (a Neighbor Solicitation from `::`), a new MAC for an address, a new interface or an
//! opcode change always go through. The state is two tables indexed by hash, the per-CPU one
//! set-associative (`arpwatch_common::dedup`): a collision there costs an extra record, never a
//! fold.
//!
//! Diagnostics (why a frame was counted malformed) go through aya-log at debug level, at most one
//! a second, and only on the malformed paths: no valid, non-ARP or non-ND frame ever reaches a log
//! call.
//! User space loads the object with aya-log's level at 0 unless its own logger wants the
//! `arpwatch_ebpf` target at debug; the verifier then removes the logging code altogether.
#![no_std]
#![no_main]
// The word loads of `packet` (see there).
#![feature(asm_experimental_arch)]

use arpwatch_common::dedup::{
    RecentSet, RecentSlot, Tuple, COARSE_TICK_NS, RECENT_SETS, SPEAKER_SLOTS,
};
use arpwatch_common::nd::{self, Ipv6Hdr, NdInvalid, NdMessage, OptionBytes, IPV6_HEADER_LEN};
use arpwatch_common::{
    direction, ethertype, ipv4_field, proto, ArpEthIpv4, Counter, NeighRecord,
    ARP_FIXED_HEADER_LEN, COUNTER_SLOTS, DEDUP_EMITS_PER_INTERVAL, DEFAULT_DEDUP_INTERVAL_NS,
    MAX_VLAN_TAGS, RECORD_RING_BYTES, WAKEUP_GAP_NS,
};
use aya_ebpf::{
    bindings::{xdp_action, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, TC_ACT_UNSPEC},
    helpers::{bpf_ktime_get_boot_ns, bpf_ktime_get_coarse_ns},
    macros::{classifier, map, xdp},
    maps::{Array, PerCpuArray, RingBuf},
    programs::{TcContext, XdpContext},
};
use aya_log_ebpf::debug;
// The check the log macros make themselves, made first here so that the rate limit is not paid
// when user space loaded the object with the kernel's log off (the verifier then drops the whole
// branch: the level is a read-only global). Hidden in aya-log-ebpf, whose version is pinned.
use aya_log_ebpf::macro_support::{level_enabled, Level};
use core::mem::size_of;
use network_types::{eth::EthHdr, vlan::VlanHdr};

/// Default ring size; user space may resize it at load time. 2 MiB holds about 17 000 records
/// (112 bytes plus the ring's 8-byte header each), a few milliseconds of a line-rate storm.
const DEFAULT_RING_BYTES: u32 = 2 << 20;

#[map(name = "EVENTS")]
static EVENTS: RingBuf = RingBuf::with_byte_size(DEFAULT_RING_BYTES, 0);

#[map(name = "COUNTERS")]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

/// The tuples this CPU recently emitted, in sets of a few slots chosen by hash
/// (`arpwatch_common::dedup`): a repeat costs a lookup and a few tag compares, and a set full of
/// other tuples only makes a tuple look new (an extra record).
#[map(name = "RECENT")]
static RECENT: PerCpuArray<RecentSet> = PerCpuArray::with_max_entries(RECENT_SETS, 0);

/// Who last spoke for each claimed address, shared by all CPUs (`arpwatch_common::dedup`).
#[map(name = "SPEAKERS")]
static SPEAKERS: Array<u64> = Array::with_max_entries(SPEAKER_SLOTS, 0);

/// When the last diagnostic about a malformed frame was logged (boot time), for all CPUs: at most
/// one a second. Racing CPUs may let a second one through; nothing depends on it. The log itself
/// goes through aya-log's `AYA_LOGS` ring, forwarded by user space to its logger.
#[map(name = "LOG_RATE")]
static LOG_RATE: Array<u64> = Array::with_max_entries(1, 0);
const LOG_INTERVAL_NS: u64 = 1_000_000_000;

/// The de-duplication interval in nanoseconds, set by user space at load time (a read-only
/// global the verifier sees as a constant); 0 turns de-duplication off.
#[unsafe(no_mangle)]
static DEDUP_INTERVAL_NS: u64 = DEFAULT_DEDUP_INTERVAL_NS;

/// How many bytes of records one CPU may submit after it woke the reader before a record wakes
/// it again whatever [`WAKEUP_GAP_NS`] says, set by user space at load.
#[unsafe(no_mangle)]
static WAKEUP_BYTES: u64 = 0;

/// When this CPU last woke the reader (boot time), and how many bytes of records it submitted
/// since. A record less than [`WAKEUP_GAP_NS`] after that is submitted without a wake-up (each
/// one costs an interrupt to this CPU and a wake-up of the reader, in a flood one per record
/// when the reader keeps up): the reader, woken a moment ago, drains again by itself
/// (`RING_FOLLOW_UP`). Only a burst of [`WAKEUP_BYTES`] from this CPU wakes it sooner. Counted
/// here rather than asked of the ring: the two ring queries that told how full it was and
/// whether the reader had moved cost 20 ns a record (an eighth of an emitted record) once the
/// ring was a sixteenth full.
#[map(name = "LAST_WAKEUP")]
static LAST_WAKEUP: PerCpuArray<[u64; 2]> = PerCpuArray::with_max_entries(1, 0);

/// The seed of the de-duplication hashes, random per load (set by user space).
#[unsafe(no_mangle)]
static DEDUP_HASH_SEED: u64 = 0;

const IPV4_BE: u16 = ethertype::IPV4.to_be();
const ARP_BE: u16 = ethertype::ARP.to_be();
const IPV6_BE: u16 = ethertype::IPV6.to_be();
const VLAN_8021Q_BE: u16 = ethertype::VLAN_8021Q.to_be();
const VLAN_8021AD_BE: u16 = ethertype::VLAN_8021AD.to_be();

#[xdp]
pub fn arpwatch_xdp(ctx: XdpContext) -> u32 {
    // Read only for a valid ARP frame or ND message: `ingress_ifindex` is rewritten into a chain
    // of loads (xdp->rxq->dev->ifindex) that the other paths have no use for.
    // SAFETY: the context pointer is the kernel's `xdp_md`, valid for the program's run.
    let ifindex = || unsafe { (*ctx.ctx).ingress_ifindex };
    observe(ctx.data(), ctx.data_end(), ifindex, direction::INGRESS, VlanTags::EMPTY);
    xdp_action::XDP_PASS
}

/// What this host sends.
#[classifier]
pub fn arpwatch_tc_egress(ctx: TcContext) -> i32 {
    classify(&ctx, direction::EGRESS)
}

/// What arrives, on an interface whose XDP slot another program holds. A program of its own
/// rather than one classifier reading the direction from the packet: the direction is where the
/// program is attached, known at build time, so the shared parser is specialised per direction
/// like the XDP one, and a BPF_PROG_TEST_RUN of either gives the same records as live traffic
/// (`__sk_buff.ingress_ifindex` is also set on egress, for forwarded frames).
#[classifier]
pub fn arpwatch_tc_ingress(ctx: TcContext) -> i32 {
    classify(&ctx, direction::INGRESS)
}

#[inline(always)]
fn classify(ctx: &TcContext, dir: u8) -> i32 {
    // SAFETY: the context pointer is the kernel's `__sk_buff`, valid for the program's run.
    let (ifindex, offloaded) = unsafe {
        let skb = &*ctx.skb.skb;
        (skb.ifindex, if skb.vlan_present != 0 { Some(skb.vlan_tci as u16) } else { None })
    };
    // The outermost tag is often skb metadata, not bytes the classifier sees: on egress a VLAN
    // device leaves it for the driver to insert, on ingress the stack has already taken it out
    // of the frame (or the NIC did) before TC runs.
    let mut tags = VlanTags::EMPTY;
    if let Some(tci) = offloaded {
        tags.push(tci);
    }
    observe(ctx.data(), ctx.data_end(), || ifindex, dir, tags);
    // UNSPEC, not OK: an observer must not cut short the programs and filters that follow it.
    TC_ACT_UNSPEC
}

#[inline(always)]
fn count(counter: Counter, dir: u8) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter.index(dir)) {
        // SAFETY: a per-CPU slot is only touched by this CPU, and the program is not re-entered
        // on one CPU while it runs.
        unsafe { *slot += 1 };
    }
}

/// A pointer to a `T` at `offset` into the packet, or `None` if the packet is too short. The
/// verifier needs this comparison right before each access.
#[inline(always)]
fn ptr_at<T>(data: usize, data_end: usize, offset: usize) -> Option<*const T> {
    let start = data + offset;
    if start + size_of::<T>() > data_end {
        return None;
    }
    Some(start as *const T)
}

/// Packet bytes read a word at a time. The packet structs have alignment 1, so that they can sit
/// at any offset, and for a target without misaligned access LLVM reads every field of theirs
/// byte by byte and shifts the bytes together: an IPv6 address took 46 instructions, a MAC 17,
/// a quarter of an ND record's path. The kernel allows misaligned packet loads (the programs are
/// not loaded with strict alignment, and x86 and arm64 read them natively), but letting LLVM make
/// them (`+allows-misaligned-mem-access`) makes it merge stack stores across alignment too,
/// which the verifier refuses: so these loads are written out, where LLVM does not see into them.
mod packet {
    use core::arch::asm;
    use core::mem::{size_of, MaybeUninit};

    /// Defines `$name`, which loads the `$type` at `p` as the instruction of that width does:
    /// in memory order (the target is little-endian), at any alignment.
    macro_rules! load {
        ($name:ident, $type:ty, $width:literal) => {
            /// # Safety
            /// The bytes at `p` lie inside the packet (bounds checked, for the verifier too).
            #[inline(always)]
            unsafe fn $name(p: *const u8) -> $type {
                let v: u64;
                // SAFETY: by the caller; a load has no other effect.
                unsafe {
                    asm!(concat!("{v} = *(", $width, " *)({p} + 0)"), p = in(reg) p,
                         v = out(reg) v, options(readonly, nostack, preserves_flags))
                };
                v as $type
            }
        };
    }
    load!(load_u64, u64, "u64");
    load!(load_u32, u32, "u32");
    load!(load_u16, u16, "u16");

    /// A header copied out of the packet onto the stack, 8-byte aligned, so that its fields are
    /// read there a word at a time too.
    #[repr(C, align(8))]
    pub struct Aligned<T>(pub T);

    /// A copy of the header `h` in the packet (a whole number of words, of plain bytes).
    #[inline(always)]
    pub fn copy<T: Copy>(h: &T) -> Aligned<T> {
        const { assert!(size_of::<T>().is_multiple_of(8)) };
        let mut out = MaybeUninit::<Aligned<T>>::uninit();
        let (from, to) = ((h as *const T).cast::<u8>(), out.as_mut_ptr().cast::<u64>());
        for word in 0..size_of::<T>() / 8 {
            // SAFETY: `h` is a reference into the packet, whose bounds were checked to make it;
            // `to` has room for as many words, aligned.
            unsafe { to.add(word).write(load_u64(from.add(word * 8))) };
        }
        // SAFETY: every word written, and `T` is plain bytes (any bit pattern is valid).
        unsafe { out.assume_init() }
    }

    /// An IPv4 address in the packet.
    #[inline(always)]
    pub fn ipv4(a: &[u8; 4]) -> [u8; 4] {
        // SAFETY: `a` is a reference into the packet, whose bounds were checked to make it.
        unsafe { load_u32(a.as_ptr()) }.to_ne_bytes()
    }

    /// A MAC address in the packet.
    #[inline(always)]
    pub fn mac(m: &[u8; 6]) -> [u8; 6] {
        let p = m.as_ptr();
        // SAFETY: as in `ipv4`.
        let (low, high) = unsafe { (load_u32(p).to_ne_bytes(), load_u16(p.add(4)).to_ne_bytes()) };
        [low[0], low[1], low[2], low[3], high[0], high[1]]
    }
}

#[inline(always)]
fn is_vlan(ether_type_be: u16) -> bool {
    ether_type_be == VLAN_8021Q_BE || ether_type_be == VLAN_8021AD_BE
}

/// The VLAN ids seen so far, outermost first.
#[derive(Clone, Copy)]
struct VlanTags {
    ids: [u16; MAX_VLAN_TAGS],
    count: u8,
}

impl VlanTags {
    const EMPTY: VlanTags = VlanTags { ids: [0; MAX_VLAN_TAGS], count: 0 };

    /// Adds a tag from its TCI; `false` if the frame has more tags than arpwatch decodes.
    #[inline(always)]
    fn push(&mut self, tci: u16) -> bool {
        // A match, not indexing: the verifier must never see a possible panic.
        let id = tci & 0x0fff;
        match self.count {
            0 => self.ids[0] = id,
            1 => self.ids[1] = id,
            _ => return false,
        }
        self.count += 1;
        true
    }
}

/// Why a frame with the ARP ethertype, or an NS or NA, was counted malformed.
#[derive(Clone, Copy)]
enum Malformed {
    /// More VLAN tags before the ARP ethertype than arpwatch decodes.
    TooManyTags,
    /// Too short for an Ethernet/IPv4 ARP body.
    Truncated,
    /// The fixed header (htype, ptype, hlen, plen, op) is not that of an Ethernet/IPv4 request or
    /// reply. The pointer, into the packet and bounds-checked, is read only if the log is on.
    Unsupported(*const [u8; ARP_FIXED_HEADER_LEN]),
    /// A Neighbor Solicitation or Advertisement that fails RFC 4861 §7.1.
    Nd(NdInvalid),
}

/// The first `reason` of [`log_malformed`] that stands for an [`NdInvalid`] (`3 + its index`).
const ND_REASON_BASE: u8 = 3;

/// Counts a malformed frame and, when user space turned the kernel's debug log on, says why.
#[inline(always)]
fn malformed(dir: u8, ifindex: impl FnOnce() -> u32, why: Malformed) {
    count(Counter::Malformed, dir);
    if level_enabled(Level::Debug) {
        // Plain integers across the call: the verifier refuses a callee that reads a register
        // the caller left unset, such as the payload of an enum variant without one.
        let (reason, header) = match why {
            Malformed::TooManyTags => (0, 0),
            Malformed::Truncated => (1, 0),
            // Read again here, volatile, so that no copy of the header made for this log is kept
            // (in registers or on the stack) along the path valid frames take.
            // SAFETY: a pointer into the packet, within bounds checked by the caller.
            Malformed::Unsupported(header) => {
                (2, u64::from_be_bytes(unsafe { core::ptr::read_volatile(header) }))
            }
            Malformed::Nd(why) => (ND_REASON_BASE + why as u8, 0),
        };
        log_malformed(dir, ifindex(), reason, header);
    }
}

/// The diagnostic itself, at most once a second (the counter has every frame). Not inlined: one
/// copy per program however many places find a malformed frame. `reason` is a [`Malformed`]
/// variant's index (an ND one's [`NdInvalid`] after [`ND_REASON_BASE`]), `header` the fixed
/// header of an unsupported ARP frame, big-endian.
#[inline(never)]
fn log_malformed(dir: u8, ifindex: u32, reason: u8, header: u64) {
    // SAFETY: a helper without arguments or side effects.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let Some(last) = LOG_RATE.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: a map value pointer from a successful lookup, 8-byte aligned.
    unsafe {
        if *last != 0 && now.wrapping_sub(*last) < LOG_INTERVAL_NS {
            return;
        }
        *last = now;
    }
    let dir = if dir == direction::INGRESS { "ingress" } else { "egress" };
    let h = header.to_be_bytes();
    match reason {
        0 => debug!(
            &(),
            "malformed ARP frame ({} ifindex {}): more than {} VLAN tags",
            dir,
            ifindex,
            MAX_VLAN_TAGS
        ),
        1 => debug!(
            &(),
            "malformed ARP frame ({} ifindex {}): shorter than an Ethernet/IPv4 ARP body",
            dir,
            ifindex
        ),
        2 => debug!(
            &(),
            "unsupported ARP frame ({} ifindex {}): htype {} ptype {:x} hlen {} plen {} op {}",
            dir,
            ifindex,
            u16::from_be_bytes([h[0], h[1]]),
            u16::from_be_bytes([h[2], h[3]]),
            h[4],
            h[5],
            u16::from_be_bytes([h[6], h[7]])
        ),
        _ => {
            // A match rather than indexing `NdInvalid::ALL`: no bounds check to prove.
            let why = match reason - ND_REASON_BASE {
                0 => NdInvalid::HopLimit,
                1 => NdInvalid::TooShort,
                2 => NdInvalid::Truncated,
                3 => NdInvalid::Code,
                4 => NdInvalid::MulticastTarget,
                5 => NdInvalid::SolicitedToMulticast,
                6 => NdInvalid::DadDestination,
                7 => NdInvalid::BadOption,
                _ => NdInvalid::DadWithLinkLayer,
            };
            debug!(
                &(),
                "malformed Neighbor Discovery message ({} ifindex {}): {}",
                dir,
                ifindex,
                why.as_str()
            )
        }
    }
}

/// Counts an ARP frame behind more VLAN tags than arpwatch decodes as malformed, by peeking at the
/// ethertype the undecoded tag at `offset` carries.
#[inline(always)]
fn count_if_arp_behind_tag(
    data: usize,
    data_end: usize,
    offset: usize,
    dir: u8,
    ifindex: impl FnOnce() -> u32,
) {
    if let Some(tag) = ptr_at::<VlanHdr>(data, data_end, offset) {
        // SAFETY: bounds checked by `ptr_at`.
        if unsafe { (*tag).ether_type } == ARP_BE {
            malformed(dir, ifindex, Malformed::TooManyTags);
        }
    }
}

/// Steps over one VLAN tag at `offset`: records its id and returns the ethertype it carries, or
/// `None` when the frame ends inside the tag or has one tag too many.
#[inline(always)]
fn step_over_tag(
    data: usize,
    data_end: usize,
    offset: usize,
    tags: &mut VlanTags,
    dir: u8,
    ifindex: impl FnOnce() -> u32,
) -> Option<u16> {
    let tag = ptr_at::<VlanHdr>(data, data_end, offset)?;
    // SAFETY: bounds checked by `ptr_at`.
    let tag = unsafe { &*tag };
    if !tags.push(u16::from_be_bytes(tag.tci)) {
        count_if_arp_behind_tag(data, data_end, offset, dir, ifindex);
        return None;
    }
    Some(tag.ether_type)
}

/// Parses one frame and records it if it is a valid ARP packet or ND message. Shared by all
/// programs so that ingress and egress apply the same rules; `tags` holds a tag the stack kept
/// out of the frame.
#[inline(always)]
fn observe(
    data: usize,
    data_end: usize,
    ifindex: impl Fn() -> u32 + Copy,
    dir: u8,
    mut tags: VlanTags,
) {
    let Some(eth) = ptr_at::<EthHdr>(data, data_end, 0) else {
        return;
    };
    // SAFETY: `ptr_at` checked that the header lies inside the packet.
    let eth = unsafe { &*eth };
    let mut ether_type = eth.ether_type;
    // The common frames leave first, untagged: IPv4 after one compare, IPv6 other than ICMPv6
    // after its next header. An untagged ICMPv6 header found here is the one `observe_nd` reads;
    // a tagged frame's is looked for behind its tags.
    if ether_type == IPV4_BE {
        return;
    }
    let mut icmpv6 = None;
    if ether_type == IPV6_BE {
        icmpv6 = icmpv6_header(data, data_end, EthHdr::LEN);
        if icmpv6.is_none() {
            return;
        }
    }
    if ether_type != ARP_BE && ether_type != IPV6_BE && !is_vlan(ether_type) {
        return;
    }

    let mut offset = EthHdr::LEN;
    // Two tags, unrolled by hand: the verifier must see a bounded walk.
    if is_vlan(ether_type) {
        let Some(inner) = step_over_tag(data, data_end, offset, &mut tags, dir, ifindex) else {
            return;
        };
        ether_type = inner;
        offset += VlanHdr::LEN;
        if is_vlan(ether_type) {
            let Some(inner) = step_over_tag(data, data_end, offset, &mut tags, dir, ifindex) else {
                return;
            };
            ether_type = inner;
            offset += VlanHdr::LEN;
            if is_vlan(ether_type) {
                // A third tag is beyond what arpwatch decodes.
                count_if_arp_behind_tag(data, data_end, offset, dir, ifindex);
                return;
            }
        }
    }
    let frame = Frame { data, data_end, eth, tags, dir };
    if ether_type == ARP_BE {
        observe_arp(&frame, offset, ifindex);
    } else if ether_type == IPV6_BE {
        if let Some(ip) = icmpv6.or_else(|| icmpv6_header(data, data_end, offset)) {
            observe_nd(&frame, ip, offset, ifindex);
        }
    }
}

/// The header of the IPv6 packet at `offset` if it is whole and carries ICMPv6 right behind it.
#[inline(always)]
fn icmpv6_header(data: usize, data_end: usize, offset: usize) -> Option<*const Ipv6Hdr> {
    // SAFETY: bounds checked by `ptr_at`; alignment 1.
    ptr_at::<Ipv6Hdr>(data, data_end, offset).filter(|&ip| unsafe { &*ip }.carries_icmpv6())
}

/// What the link layer gave, for the record.
struct Frame<'a> {
    data: usize,
    data_end: usize,
    eth: &'a EthHdr,
    tags: VlanTags,
    dir: u8,
}

/// The ARP body at `offset`: validated, then recorded.
#[inline(always)]
fn observe_arp(frame: &Frame, offset: usize, ifindex: impl Fn() -> u32 + Copy) {
    let dir = frame.dir;
    let Some(arp) = ptr_at::<ArpEthIpv4>(frame.data, frame.data_end, offset) else {
        // Claims to be ARP but is too short for an Ethernet/IPv4 ARP body.
        malformed(dir, ifindex, Malformed::Truncated);
        return;
    };
    // SAFETY: the whole 28-byte body is inside the packet; the struct has alignment 1.
    let arp = unsafe { &*arp };
    // SAFETY: the fixed header is the first 8 bytes of the body checked above.
    let header = unsafe { &*(arp as *const ArpEthIpv4 as *const [u8; ARP_FIXED_HEADER_LEN]) };
    if !ArpEthIpv4::is_supported(header) {
        malformed(dir, ifindex, Malformed::Unsupported(header));
        return;
    }
    count(Counter::Arp, dir);
    // Announcements and probes are rare and each one matters (failover, address conflict).
    let (spa, tpa) = (packet::ipv4(&arp.spa), packet::ipv4(&arp.tpa));
    let untracked = spa == tpa || spa == [0; 4];
    let mut record = NeighRecord {
        ts_boot_ns: 0,
        last_suppressed_ns: 0,
        ifindex: ifindex(),
        suppressed: 0,
        direction: dir,
        proto: proto::ARP,
        op: arp.op_code(),
        vlan_count: frame.tags.count,
        vlan: frame.tags.ids,
        eth_src: packet::mac(&frame.eth.src_addr),
        eth_dst: packet::mac(&frame.eth.dst_addr),
        sha: packet::mac(&arp.sha),
        tha: packet::mac(&arp.tha),
        nd_flags: 0,
        lladdr_present: 0,
        _pad0: [0; 6],
        spa: ipv4_field(spa),
        tpa: ipv4_field(tpa),
        nd_target: [0; 16],
    };
    emit(&mut record, untracked);
}

/// The options of the ICMPv6 message that starts `start` bytes into the packet, read for the
/// shared option walk with a bounds check before each access.
struct PacketOptions {
    data: usize,
    data_end: usize,
    start: usize,
}

impl OptionBytes for PacketOptions {
    #[inline(always)]
    fn header(&self, offset: usize) -> Option<[u8; 2]> {
        let p = ptr_at::<[u8; 2]>(self.data, self.data_end, self.start + offset)?;
        // SAFETY: bounds checked by `ptr_at`; alignment 1.
        Some(unsafe { *p })
    }

    #[inline(always)]
    fn mac(&self, offset: usize) -> Option<[u8; 6]> {
        let p = ptr_at::<[u8; 6]>(self.data, self.data_end, self.start + offset + 2)?;
        // SAFETY: bounds checked by `ptr_at`; alignment 1.
        Some(packet::mac(unsafe { &*p }))
    }
}

/// The IPv6 packet at `offset`, whose header `ip` says ICMPv6 follows it ([`icmpv6_header`]): if
/// it is a Neighbor Solicitation or Advertisement, validated by the shared rule (`arpwatch_common::nd`, RFC 4861 §7.1 without
/// the checksum), then recorded. Any other IPv6 packet (extension headers, other ICMPv6 types,
/// TCP, UDP) is not counted at all.
#[inline(always)]
fn observe_nd(frame: &Frame, ip: *const Ipv6Hdr, offset: usize, ifindex: impl Fn() -> u32 + Copy) {
    let (data, data_end, dir) = (frame.data, frame.data_end, frame.dir);
    let icmp = offset + IPV6_HEADER_LEN;
    let Some(icmp_type) = ptr_at::<u8>(data, data_end, icmp) else {
        return;
    };
    // SAFETY: bounds checked by `ptr_at`.
    if !nd::is_nd_type(unsafe { *icmp_type }) {
        return;
    }
    // Copied only now: other IPv6 traffic leaves after two byte loads.
    // SAFETY: `icmpv6_header` checked that the header lies inside the packet.
    let ip = &packet::copy(unsafe { &*ip }).0;
    // At least the type byte is there: `data + icmp < data_end`. Read back through a volatile
    // load so that the compiler cannot relate it to `data_end`: knowing the options end inside
    // `captured`, it would drop the bounds checks of the option walk, which the verifier needs.
    let captured = data_end - (data + icmp);
    // SAFETY: a read of a local.
    let captured = unsafe { core::ptr::read_volatile(&captured) };
    if let Err(why) = nd::check_ip(ip, captured) {
        malformed(dir, ifindex, Malformed::Nd(why));
        return;
    }
    let Some(msg) = ptr_at::<NdMessage>(data, data_end, icmp) else {
        // Not reached: `check_ip` found at least 24 bytes. The verifier wants the check.
        malformed(dir, ifindex, Malformed::Nd(NdInvalid::Truncated));
        return;
    };
    // SAFETY: bounds checked by `ptr_at`; alignment 1.
    let msg = &packet::copy(unsafe { &*msg }).0;
    if let Err(why) = nd::check_message(ip, msg) {
        malformed(dir, ifindex, Malformed::Nd(why));
        return;
    }
    let options = PacketOptions { data, data_end, start: icmp };
    let link = match nd::walk_options(&options, ip.payload_len(), msg.link_layer_option()) {
        Ok(link) => link,
        Err(why) => {
            malformed(dir, ifindex, Malformed::Nd(why));
            return;
        }
    };
    if let Err(why) = nd::check_options(ip, msg, &link) {
        malformed(dir, ifindex, Malformed::Nd(why));
        return;
    }
    count(Counter::Ndp, dir);
    let untracked = nd::is_announcement_or_probe(ip, msg);
    let mut record = NeighRecord {
        ts_boot_ns: 0,
        last_suppressed_ns: 0,
        ifindex: ifindex(),
        suppressed: 0,
        direction: dir,
        proto: proto::NDP,
        op: msg.icmp_type,
        vlan_count: frame.tags.count,
        vlan: frame.tags.ids,
        eth_src: packet::mac(&frame.eth.src_addr),
        eth_dst: packet::mac(&frame.eth.dst_addr),
        sha: link.mac,
        tha: [0; 6],
        nd_flags: msg.record_flags(),
        lladdr_present: link.present as u8,
        _pad0: [0; 6],
        spa: ip.src,
        tpa: ip.dst,
        nd_target: msg.target,
    };
    emit(&mut record, untracked);
}

/// De-duplicates a valid frame's `record` (never, when `untracked`) and, unless it is a repeat
/// to suppress, has it emitted. Inlined: a repeat, most frames of a storm, then costs no call
/// (each call and return is dearer than it looks where returns go through a mitigation thunk).
#[inline(always)]
fn emit(record: &mut NeighRecord, untracked: bool) {
    let mut clock = Clock::default();
    match Dedup::check(record, untracked, &mut clock) {
        Some(dedup) => submit(record, &dedup, &mut clock),
        None => count(Counter::Suppressed, record.direction),
    }
}

/// Stamps `record` with the time, the repeats it carries and when the latest of them was seen,
/// and copies it to the ring. Not inlined: one copy per program for ARP and ND alike (and each
/// path's stack stays within the limit).
#[inline(never)]
fn submit(record: &mut NeighRecord, dedup: &Dedup, clock: &mut Clock) {
    let dir = record.direction;
    let now = clock.boot_ns();
    record.ts_boot_ns = now;
    (record.suppressed, record.last_suppressed_ns) = dedup.carried(now);
    // Reserved and submitted rather than `output`: written straight into the ring.
    let Some(mut entry) = EVENTS.reserve::<NeighRecord>(0) else {
        // The de-duplication state is left as it was: the next repeat is emitted, not suppressed
        // behind a record that never reached user space, and the count stays for it to carry.
        count(Counter::RingFull, dir);
        return;
    };
    entry.write(*record);
    entry.submit(wakeup_flags(now));
    dedup.commit(clock);
}

/// Whether the record submitted at `now` wakes the reader: the first from this CPU in
/// `WAKEUP_GAP_NS`, or the one that makes `WAKEUP_BYTES` submitted by this CPU since it last
/// woke the reader.
#[inline(always)]
fn wakeup_flags(now: u64) -> u64 {
    let Some(last) = LAST_WAKEUP.get_ptr_mut(0) else {
        return BPF_RB_FORCE_WAKEUP as u64;
    };
    // SAFETY: a read-only global, read as in `dedup_interval`.
    let wakeup_bytes = unsafe { core::ptr::read_volatile(&WAKEUP_BYTES) };
    // SAFETY: this CPU's own slot, 8-byte aligned.
    let [woken_ns, submitted] = unsafe { *last };
    let submitted = submitted + RECORD_RING_BYTES;
    if now.wrapping_sub(woken_ns) < WAKEUP_GAP_NS && submitted < wakeup_bytes {
        // SAFETY: as above.
        unsafe { (*last)[1] = submitted };
        return BPF_RB_NO_WAKEUP as u64;
    }
    // SAFETY: as above.
    unsafe { *last = [now, 0] };
    BPF_RB_FORCE_WAKEUP as u64
}

/// The two clocks, each read at most once per frame, and only if needed: the precise one costs
/// more than the rest of the suppressed path.
#[derive(Default)]
struct Clock {
    boot_ns: Option<u64>,
    coarse_ns: Option<u64>,
}

impl Clock {
    /// `bpf_ktime_get_boot_ns`: the records' time.
    #[inline(always)]
    fn boot_ns(&mut self) -> u64 {
        // SAFETY: a helper without arguments or side effects.
        *self.boot_ns.get_or_insert_with(|| unsafe { bpf_ktime_get_boot_ns() })
    }

    /// `bpf_ktime_get_coarse_ns`: CLOCK_MONOTONIC at the last tick.
    #[inline(always)]
    fn coarse_ns(&mut self) -> u64 {
        // SAFETY: as above.
        *self.coarse_ns.get_or_insert_with(|| unsafe { bpf_ktime_get_coarse_ns() })
    }
}

/// The de-duplication interval user space set at load (0: off).
#[inline(always)]
fn dedup_interval() -> u64 {
    // SAFETY: a read-only global; the volatile read keeps the compiler from folding in the
    // default the object was built with, so the value user space set at load is used.
    unsafe { core::ptr::read_volatile(&DEDUP_INTERVAL_NS) }
}

/// The hash seed user space set at load.
#[inline(always)]
fn hash_seed() -> u64 {
    // SAFETY: as in `dedup_interval`.
    unsafe { core::ptr::read_volatile(&DEDUP_HASH_SEED) }
}

/// A frame that de-duplication lets through, with what to update once its record is in the ring.
/// A struct whose every field is set on every path (an untracked frame's to null and zero), not
/// an enum: [`submit`] takes it across a call, and the verifier refuses a call that copies a
/// register left unset, as the bytes of a variant without them would be.
#[derive(Clone, Copy)]
struct Dedup {
    /// This CPU's slot for the tuple: the one holding it, else the one it may take over. Null
    /// for an announcement, a probe, or with de-duplication turned off: no state kept.
    slot: *mut RecentSlot,
    /// Whether the slot holds this tuple (rather than another, or nothing yet).
    known: bool,
    /// Another MAC (or nobody known) spoke last for the claimed address.
    speaker_changed: bool,
    /// The shared word of who last spoke for the claimed address.
    speaker: *mut u64,
    /// What that word holds once this record is emitted (`Tuple::speaker`).
    speaker_value: u64,
    /// The tuple's tag (`Tuple::tag`).
    tag: u64,
}

impl Dedup {
    const UNTRACKED: Dedup = Dedup {
        slot: core::ptr::null_mut(),
        known: false,
        speaker_changed: false,
        speaker: core::ptr::null_mut(),
        speaker_value: 0,
        tag: 0,
    };

    /// `None` when the frame is a repeat to suppress (and counts it on its tuple); otherwise what
    /// to commit if the record is emitted.
    #[inline(always)]
    fn check(record: &NeighRecord, untracked: bool, clock: &mut Clock) -> Option<Dedup> {
        let interval = dedup_interval();
        if interval == 0 || untracked {
            return Some(Dedup::UNTRACKED);
        }
        let tuple = Tuple::of(record, hash_seed());
        // Both lookups succeed: the hash is masked to the tables' sizes.
        let (Some(speaker), Some(set)) =
            (SPEAKERS.get_ptr_mut(tuple.speaker_slot), RECENT.get_ptr_mut(tuple.recent_set))
        else {
            return Some(Dedup::UNTRACKED);
        };
        // SAFETY: map value pointers from successful lookups, 8-byte aligned. The speaker word is
        // shared: read once, as one word (another CPU may write it meanwhile). The set is this
        // CPU's own, and the program is not re-entered on one CPU while it runs.
        unsafe {
            let speaker_changed = core::ptr::read_volatile(speaker) != tuple.speaker;
            let ways = &mut (*set).ways;
            let (slot, known) = match ways.iter_mut().find(|way| way.tag == tuple.tag) {
                Some(way) => (way as *mut RecentSlot, true),
                None => {
                    // The slot a new tuple may take: an empty one, else the one whose interval
                    // started earliest (`commit` takes it only if that interval is over).
                    let age = |way: &RecentSlot| match way.window_emits {
                        0 => 0,
                        _ => way.window_start_ns,
                    };
                    let oldest = ways.iter_mut().reduce(|a, b| if age(b) < age(a) { b } else { a });
                    let Some(oldest) = oldest else {
                        return Some(Dedup::UNTRACKED);
                    };
                    (oldest as *mut RecentSlot, false)
                }
            };
            if known && !speaker_changed && (*slot).window_emits >= DEDUP_EMITS_PER_INTERVAL {
                // Well inside the interval the coarse clock decides, and dates the repeat to
                // within a tick; near its end the precise one does.
                let coarse_elapsed = clock.coarse_ns().wrapping_sub((*slot).window_start_coarse_ns);
                let seen_ns = if coarse_elapsed.saturating_add(COARSE_TICK_NS) < interval {
                    Some((*slot).window_start_ns + coarse_elapsed)
                } else {
                    let now = clock.boot_ns();
                    (now.wrapping_sub((*slot).window_start_ns) < interval).then_some(now)
                };
                if let Some(seen_ns) = seen_ns {
                    (*slot).suppressed = (*slot).suppressed.saturating_add(1);
                    (*slot).last_suppressed_ns = seen_ns;
                    return None;
                }
            }
            Some(Dedup {
                slot,
                known,
                speaker_changed,
                speaker,
                speaker_value: tuple.speaker,
                tag: tuple.tag,
            })
        }
    }

    /// The repeats the record made at `now` carries and when the latest of them was seen (0
    /// when it carries none).
    #[inline(always)]
    fn carried(&self, now: u64) -> (u32, u64) {
        let slot = self.slot;
        if slot.is_null() || !self.known {
            return (0, 0);
        }
        // SAFETY: the lookup's value pointer stays valid for the program's run.
        unsafe {
            match (*slot).suppressed {
                0 => (0, 0),
                // A coarse date may run up to a tick ahead: never after the record itself.
                n => (n, (*slot).last_suppressed_ns.min(now)),
            }
        }
    }

    /// Records that the frame was emitted (at `clock.boot_ns()`), with what `carried` handed
    /// over.
    #[inline(always)]
    fn commit(&self, clock: &mut Clock) {
        let Dedup { slot, known, speaker_changed, speaker, speaker_value, tag } = *self;
        if slot.is_null() {
            return;
        }
        let now = clock.boot_ns();
        // SAFETY: as in `check`.
        unsafe {
            let in_interval = now.wrapping_sub((*slot).window_start_ns) < dedup_interval();
            // A tuple new to the set takes an empty slot, or one whose tuple's interval is over
            // (the repeats that tuple had counted there are lost with it; the `suppressed`
            // counter still has them). In a set whose tuples are all in their interval it is not
            // kept: its next frame is emitted too, while theirs are still folded.
            if known || (*slot).window_emits == 0 || !in_interval {
                // A new interval starts with this record, unless it is the second of the current
                // one.
                if known && in_interval {
                    (*slot).window_emits += 1;
                } else {
                    (*slot).tag = tag;
                    (*slot).window_start_ns = now;
                    (*slot).window_start_coarse_ns = clock.coarse_ns();
                    (*slot).window_emits = 1;
                }
                (*slot).suppressed = 0;
            }
            if speaker_changed {
                core::ptr::write_volatile(speaker, speaker_value);
            }
        }
    }
}

/// The floor of the per-packet cost benchmark: an XDP program that does nothing but pass.
#[xdp]
pub fn arpwatch_xdp_floor(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // Unreachable: the code above has no panicking operation, and the verifier would reject the
    // endless loop if one were ever linked in.
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
