//! arpwatch kernel programs. The XDP program runs on ingress of each watched interface and the TC
//! classifier on its egress (what this host itself sends, such as its own ARP replies); where
//! another program holds the interface's XDP slot, a second classifier watches ingress instead.
//! All of them turn every valid Ethernet/IPv4 ARP frame into one [`NeighRecord`] in the `EVENTS`
//! ring buffer, count what they see in the per-CPU `COUNTERS` array, and always let the frame go
//! on unchanged: arpwatch never drops, changes or sends a packet.
//!
//! In a storm most frames are exact repeats. A tuple ([`DedupKey`]) crosses the ring at most
//! [`DEDUP_EMITS_PER_INTERVAL`] times per `DEDUP_INTERVAL_NS`; a further repeat within the
//! interval, from the MAC that last spoke for its sender IP, is counted as suppressed instead; the
//! next record of that tuple carries the count and when the latest of them was seen.
//! Gratuitous ARP, probes, a new MAC for an IP, a new interface or an opcode change always go
//! through.
//!
//! Diagnostics (why a frame was counted malformed) go through aya-log at debug level, at most one
//! a second, and only on the malformed paths: no valid or non-ARP frame ever reaches a log call.
//! User space loads the object with aya-log's level at 0 unless its own logger wants the
//! `arpwatch_ebpf` target at debug; the verifier then removes the logging code altogether.
#![no_std]
#![no_main]
// The BPF target has no atomic read-modify-write types in `core::sync::atomic`; the intrinsics
// lower to the BPF atomic add instruction the kernel supports on map values.
#![feature(core_intrinsics)]
#![allow(internal_features)]

use arpwatch_common::{
    direction, ethertype, ArpEthIpv4, Counter, DedupEntry, DedupKey, NeighRecord, SenderKey,
    ARP_FIXED_HEADER_LEN, COUNTER_SLOTS, DEDUP_EMITS_PER_INTERVAL, DEFAULT_DEDUP_INTERVAL_NS,
    MAX_VLAN_TAGS,
};
use aya_ebpf::{
    bindings::{xdp_action, BPF_ANY, BPF_F_NO_COMMON_LRU, TC_ACT_UNSPEC},
    helpers::bpf_ktime_get_boot_ns,
    macros::{classifier, map, xdp},
    maps::{Array, LruHashMap, PerCpuArray, RingBuf},
    programs::{TcContext, XdpContext},
};
use aya_log_ebpf::debug;
// The check the log macros make themselves, made first here so that the rate limit is not paid
// when user space loaded the object with the kernel's log off (the verifier then drops the whole
// branch: the level is a read-only global). Hidden in aya-log-ebpf, whose version is pinned.
use aya_log_ebpf::macro_support::{level_enabled, Level};
use core::intrinsics::{atomic_xadd, atomic_xsub, AtomicOrdering};
use core::mem::size_of;
use network_types::{eth::EthHdr, vlan::VlanHdr};

/// Default ring size; user space may resize it at load time. 2 MiB holds about 29 000 records
/// (64 bytes plus the ring's 8-byte header each), a few milliseconds of a line-rate storm.
const DEFAULT_RING_BYTES: u32 = 2 << 20;

#[map(name = "EVENTS")]
static EVENTS: RingBuf = RingBuf::with_byte_size(DEFAULT_RING_BYTES, 0);

#[map(name = "COUNTERS")]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

/// Tuples remembered for de-duplication. A storm of more distinct tuples than this evicts the
/// oldest, which only means an evicted tuple is emitted again: nothing is lost.
const DEDUP_ENTRIES: u32 = 32_768;
/// Sender IPs whose last emitting MAC is remembered (per interface and direction).
const LAST_SENDER_ENTRIES: u32 = 16_384;

/// Per-CPU LRU lists: under a flood of distinct tuples every frame inserts, and the shared LRU
/// list's free-list refills (`bpf_lru_pop_free`) dominated the program's cost in the profile.
const LRU_FLAGS: u32 = BPF_F_NO_COMMON_LRU;

#[map(name = "DEDUP")]
static DEDUP: LruHashMap<DedupKey, DedupEntry> =
    LruHashMap::with_max_entries(DEDUP_ENTRIES, LRU_FLAGS);

#[map(name = "LAST_SENDER")]
static LAST_SENDER: LruHashMap<SenderKey, [u8; 6]> =
    LruHashMap::with_max_entries(LAST_SENDER_ENTRIES, LRU_FLAGS);

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

const ARP_BE: u16 = ethertype::ARP.to_be();
const VLAN_8021Q_BE: u16 = ethertype::VLAN_8021Q.to_be();
const VLAN_8021AD_BE: u16 = ethertype::VLAN_8021AD.to_be();

#[xdp]
pub fn arpwatch_xdp(ctx: XdpContext) -> u32 {
    // Read only for an ARP frame: `ingress_ifindex` is rewritten into a chain of loads
    // (xdp->rxq->dev->ifindex) that the non-ARP path has no use for.
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

/// Why a frame with the ARP ethertype was counted malformed.
#[derive(Clone, Copy)]
enum Malformed {
    /// More VLAN tags before the ARP ethertype than arpwatch decodes.
    TooManyTags,
    /// Too short for an Ethernet/IPv4 ARP body.
    Truncated,
    /// The fixed header (htype, ptype, hlen, plen, op) is not that of an Ethernet/IPv4 request or
    /// reply. The pointer, into the packet and bounds-checked, is read only if the log is on.
    Unsupported(*const [u8; ARP_FIXED_HEADER_LEN]),
}

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
        };
        log_malformed(dir, ifindex(), reason, header);
    }
}

/// The diagnostic itself, at most once a second (the counter has every frame). Not inlined: one
/// copy per program however many places find a malformed frame. `reason` is a [`Malformed`]
/// variant's index, `header` the fixed header of an unsupported one, big-endian.
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
        _ => debug!(
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

/// Parses one frame and records it if it is a valid ARP packet. Shared by both programs so that
/// ingress and egress apply the same rules; `tags` holds a tag the stack kept out of the frame.
#[inline(always)]
fn observe(
    data: usize,
    data_end: usize,
    ifindex: impl Fn() -> u32 + Copy,
    dir: u8,
    mut tags: VlanTags,
) {
    count(Counter::Frames, dir);
    let Some(eth) = ptr_at::<EthHdr>(data, data_end, 0) else {
        return;
    };
    // SAFETY: `ptr_at` checked that the header lies inside the packet.
    let eth = unsafe { &*eth };
    let mut ether_type = eth.ether_type;
    // The common non-ARP, untagged frame leaves here after one bounds check and two compares.
    if ether_type != ARP_BE && !is_vlan(ether_type) {
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
    if ether_type != ARP_BE {
        return;
    }

    let Some(arp) = ptr_at::<ArpEthIpv4>(data, data_end, offset) else {
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
    // SAFETY: a helper without arguments or side effects.
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let ifindex = ifindex();

    let dedup = match Dedup::check(arp, ifindex, dir, now) {
        Some(dedup) => dedup,
        None => {
            count(Counter::Suppressed, dir);
            return;
        }
    };

    let Some(mut entry) = EVENTS.reserve::<NeighRecord>(0) else {
        // The de-duplication state is left as it was: the next repeat is emitted, not suppressed
        // behind a record that never reached user space.
        count(Counter::RingFull, dir);
        return;
    };
    let (suppressed, last_suppressed_ns) = dedup.commit(arp, now);
    entry.write(NeighRecord {
        ts_boot_ns: now,
        ifindex,
        direction: dir,
        op: arp.op_code(),
        vlan_count: tags.count,
        _pad0: 0,
        vlan: tags.ids,
        eth_src: eth.src_addr,
        eth_dst: eth.dst_addr,
        sha: arp.sha,
        tha: arp.tha,
        spa: arp.spa,
        tpa: arp.tpa,
        suppressed,
        last_suppressed_ns,
    });
    entry.submit(0);
}

/// The de-duplication interval user space set at load (0: off).
#[inline(always)]
fn dedup_interval() -> u64 {
    // SAFETY: a read-only global; the volatile read keeps the compiler from folding in the
    // default the object was built with, so the value user space set at load is used.
    unsafe { core::ptr::read_volatile(&DEDUP_INTERVAL_NS) }
}

/// A frame that de-duplication lets through, with what to update once its record is reserved.
#[derive(Clone, Copy)]
enum Dedup {
    /// Gratuitous ARP, a probe, or de-duplication turned off: no state kept.
    Untracked,
    /// A tuple seen before: its entry gets the new emit time and hands over its count.
    Known { entry: *mut DedupEntry, key: DedupKey, sender_changed: bool },
    /// A tuple not in the map: inserted on emit.
    New { key: DedupKey, sender_changed: bool },
}

impl Dedup {
    /// `None` when the frame is a repeat to suppress (and counts it on its tuple); otherwise what
    /// to commit if the record is emitted.
    #[inline(always)]
    fn check(arp: &ArpEthIpv4, ifindex: u32, dir: u8, now: u64) -> Option<Dedup> {
        let interval = dedup_interval();
        // Announcements and probes are rare and each one matters (failover, address conflict).
        let announcement = arp.spa == arp.tpa || arp.spa == [0; 4];
        if interval == 0 || announcement {
            return Some(Dedup::Untracked);
        }
        let key = DedupKey {
            spa: arp.spa,
            tpa: arp.tpa,
            sha: arp.sha,
            op: arp.op_code(),
            direction: dir,
            ifindex,
        };
        let sender = SenderKey { spa: arp.spa, ifindex, direction: dir, _pad: [0; 3] };
        let sender_changed = match LAST_SENDER.get_ptr(sender) {
            // SAFETY: a map value pointer from a successful lookup, 6 bytes, read once.
            Some(mac) => (unsafe { *mac }) != arp.sha,
            None => true,
        };
        let Some(entry) = DEDUP.get_ptr_mut(key) else {
            return Some(Dedup::New { key, sender_changed });
        };
        // SAFETY: a map value pointer from a successful lookup; the entry is 8-byte aligned.
        let (start, emits) = unsafe { ((*entry).window_start_ns, (*entry).window_emits) };
        if !sender_changed
            && now.wrapping_sub(start) < interval
            && emits >= DEDUP_EMITS_PER_INTERVAL
        {
            // SAFETY: as above; another CPU may count the same tuple, hence the atomic add. The
            // time is stored first, so a commit that reads the count also finds a time at least
            // as late as the repeats it hands over (on one CPU exactly; across CPUs any of the
            // racing repeats' times).
            unsafe {
                (*entry).last_suppressed_ns = now;
                atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(
                    &raw mut (*entry).suppressed,
                    1,
                )
            };
            return None;
        }
        Some(Dedup::Known { entry, key, sender_changed })
    }

    /// Records that the frame was emitted at `now`; returns the repeats its record carries and
    /// when the latest of them was seen (0 when it carries none).
    #[inline(always)]
    fn commit(self, arp: &ArpEthIpv4, now: u64) -> (u32, u64) {
        let (carried, last_suppressed_ns, key, sender_changed) = match self {
            Dedup::Untracked => return (0, 0),
            Dedup::New { key, sender_changed } => {
                let fresh = DedupEntry {
                    window_start_ns: now,
                    window_emits: 1,
                    suppressed: 0,
                    last_suppressed_ns: 0,
                };
                let _ = DEDUP.insert(key, fresh, BPF_ANY as u64);
                (0, 0, key, sender_changed)
            }
            Dedup::Known { entry, key, sender_changed } => {
                // Subtract what was read rather than zeroing, so a repeat counted meanwhile on
                // another CPU is kept for the next record.
                // SAFETY: the lookup's value pointer stays valid for the program's run (RCU) and
                // is 8-byte aligned.
                let (carried, last_suppressed_ns) = unsafe {
                    let suppressed = &raw mut (*entry).suppressed;
                    let carried = core::ptr::read_volatile(suppressed);
                    let last_suppressed_ns = if carried == 0 {
                        0
                    } else {
                        core::ptr::read_volatile(&raw const (*entry).last_suppressed_ns)
                    };
                    atomic_xsub::<u64, u64, { AtomicOrdering::Relaxed }>(suppressed, carried);
                    // A new interval starts with this record, unless it is the second of the
                    // current one (racing CPUs may let a third through: harmless).
                    if now.wrapping_sub((*entry).window_start_ns) >= dedup_interval() {
                        (*entry).window_start_ns = now;
                        (*entry).window_emits = 1;
                    } else {
                        (*entry).window_emits += 1;
                    }
                    (carried, last_suppressed_ns)
                };
                (carried.min(u32::MAX as u64) as u32, last_suppressed_ns, key, sender_changed)
            }
        };
        if sender_changed {
            let sender = SenderKey {
                spa: key.spa,
                ifindex: key.ifindex,
                direction: key.direction,
                _pad: [0; 3],
            };
            let _ = LAST_SENDER.insert(sender, arp.sha, BPF_ANY as u64);
        }
        (carried, last_suppressed_ns)
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
