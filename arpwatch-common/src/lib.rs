//! What the arpwatch kernel programs and user space agree on: the record that crosses the ring
//! buffer (one per ARP frame or IPv6 Neighbor Discovery message), the wire layouts of an
//! Ethernet/IPv4 ARP body and of the ND messages, the validity rules both parsers apply, and the
//! indices of the per-CPU counters.
//!
//! Everything here is `#[repr(C)]` with explicit padding so that no uninitialised kernel byte can
//! reach user space, and every layout is pinned by a compile-time size assertion.
#![no_std]

#[cfg(test)]
extern crate std;

pub mod dedup;
pub mod nd;

/// Ethertypes the parsers care about (host byte order).
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const IPV6: u16 = 0x86dd;
    pub const VLAN_8021Q: u16 = 0x8100;
    pub const VLAN_8021AD: u16 = 0x88a8;
}

/// The most VLAN tags a frame may carry before its ethertype (802.1ad outer, 802.1Q inner).
pub const MAX_VLAN_TAGS: usize = 2;

/// Which protocol a [`NeighRecord`] carries.
pub mod proto {
    /// Ethernet/IPv4 ARP.
    pub const ARP: u8 = 0;
    /// IPv6 Neighbor Discovery (RFC 4861): a Neighbor Solicitation or Advertisement.
    pub const NDP: u8 = 1;
}

/// Message codes a [`NeighRecord`] carries in `op`: the ARP operation for [`proto::ARP`], the
/// ICMPv6 type for [`proto::NDP`].
pub mod op {
    pub const REQUEST: u8 = 1;
    pub const REPLY: u8 = 2;
    pub const NEIGHBOR_SOLICITATION: u8 = 135;
    pub const NEIGHBOR_ADVERTISEMENT: u8 = 136;
}

/// The flags of a Neighbor Advertisement, as the first byte of its message body has them.
pub mod na_flag {
    /// R: the sender is a router.
    pub const ROUTER: u8 = 0x80;
    /// S: sent in response to a Neighbor Solicitation.
    pub const SOLICITED: u8 = 0x40;
    /// O: should override an existing cache entry. Without it a neighbour that cached another
    /// MAC keeps it (RFC 4861 §7.2.5).
    pub const OVERRIDE: u8 = 0x20;
    pub const ALL: u8 = ROUTER | SOLICITED | OVERRIDE;
}

/// Where the frame was seen, from the watching host's point of view.
pub mod direction {
    pub const INGRESS: u8 = 0;
    pub const EGRESS: u8 = 1;
}

/// The body of an ARP packet for Ethernet hardware and IPv4 protocol addresses, as on the wire.
/// Multi-byte integers are kept as big-endian byte arrays so the struct has alignment 1 and can be
/// read at any offset in a packet.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpEthIpv4 {
    pub htype: [u8; 2],
    pub ptype: [u8; 2],
    pub hlen: u8,
    pub plen: u8,
    pub op: [u8; 2],
    pub sha: [u8; 6],
    pub spa: [u8; 4],
    pub tha: [u8; 6],
    pub tpa: [u8; 4],
}

const _: () = assert!(core::mem::size_of::<ArpEthIpv4>() == 28);

/// The ARP fixed header (htype, ptype, hlen, plen, op): enough to decide validity.
pub const ARP_FIXED_HEADER_LEN: usize = 8;

impl ArpEthIpv4 {
    /// The one validity rule of arpwatch, applied by the kernel program and the user-space decoder
    /// alike: Ethernet hardware (htype 1, hlen 6), IPv4 protocol (ptype 0x0800, plen 4), and a
    /// request or a reply. Anything else that carries ethertype 0x0806 is malformed or unsupported.
    #[inline(always)]
    pub fn is_supported(header: &[u8; ARP_FIXED_HEADER_LEN]) -> bool {
        header[0] == 0
            && header[1] == 1
            && header[2] == 0x08
            && header[3] == 0x00
            && header[4] == 6
            && header[5] == 4
            && header[6] == 0
            && (header[7] == op::REQUEST || header[7] == op::REPLY)
    }

    /// The operation code; meaningful once [`ArpEthIpv4::is_supported`] said yes.
    #[inline(always)]
    pub fn op_code(&self) -> u8 {
        self.op[1]
    }
}

/// One ARP frame or Neighbor Discovery message as seen by a kernel program, pushed through the
/// ring buffer to user space.
///
/// The fields mean what the wire says, per protocol:
///
/// | field | ARP | NDP |
/// |---|---|---|
/// | `op` | [`op::REQUEST`], [`op::REPLY`] | [`op::NEIGHBOR_SOLICITATION`], [`op::NEIGHBOR_ADVERTISEMENT`] |
/// | `sha` | sender hardware address | the link-layer address option (source for an NS, target for an NA); zero when absent |
/// | `tha` | target hardware address | zero |
/// | `spa` | sender IP (first 4 bytes; the rest zero) | IPv6 source |
/// | `tpa` | target IP (first 4 bytes; the rest zero) | IPv6 destination |
/// | `nd_target` | zero | the target address |
/// | `nd_flags` | zero | an NA's R, S, O flags ([`na_flag`]), zero for an NS |
/// | `lladdr_present` | zero | 1 when the message carried its link-layer address option |
///
/// Layout (112 bytes, alignment 8): every byte is a named field, the padding included, and the
/// kernel writes every field, so nothing uninitialised crosses the boundary.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NeighRecord {
    /// `bpf_ktime_get_boot_ns()` when the program saw the frame (CLOCK_BOOTTIME).
    pub ts_boot_ns: u64,
    /// When the latest of the `suppressed` repeats was seen, on the `ts_boot_ns` scale and exact
    /// to within a tick of the kernel's clock ([`dedup::COARSE_TICK_NS`]), never after
    /// `ts_boot_ns`; 0 when `suppressed` is 0. A folded retransmission of a request is a request
    /// of its own (with its own reply deadline), and its time would otherwise be lost.
    pub last_suppressed_ns: u64,
    /// The interface the frame arrived on (ingress) or left by (egress).
    pub ifindex: u32,
    /// How many identical frames (same [`dedup::Tuple`]) the kernel suppressed since it last emitted
    /// a record for this tuple: this record stands for `1 + suppressed` frames.
    pub suppressed: u32,
    /// [`direction::INGRESS`] or [`direction::EGRESS`].
    pub direction: u8,
    /// [`proto::ARP`] or [`proto::NDP`].
    pub proto: u8,
    /// See the table above.
    pub op: u8,
    /// How many entries of `vlan` are meaningful (0 to [`MAX_VLAN_TAGS`]), outermost first.
    pub vlan_count: u8,
    /// VLAN ids (the low 12 bits of each tag's TCI), outermost first; unused entries are 0.
    pub vlan: [u16; MAX_VLAN_TAGS],
    pub eth_src: [u8; 6],
    pub eth_dst: [u8; 6],
    pub sha: [u8; 6],
    pub tha: [u8; 6],
    pub nd_flags: u8,
    pub lladdr_present: u8,
    pub _pad0: [u8; 6],
    pub spa: [u8; 16],
    pub tpa: [u8; 16],
    pub nd_target: [u8; 16],
}

/// An IPv4 address in a record's 16-byte address field: its four bytes first, the rest zero.
#[inline(always)]
pub const fn ipv4_field(ip: [u8; 4]) -> [u8; 16] {
    [ip[0], ip[1], ip[2], ip[3], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
}

pub const NEIGH_RECORD_SIZE: usize = 112;
/// What a record takes in the ring buffer: itself and the ring's 8-byte header.
pub const RECORD_RING_BYTES: u64 = NEIGH_RECORD_SIZE as u64 + 8;
const _: () = assert!(core::mem::size_of::<NeighRecord>() == NEIGH_RECORD_SIZE);
const _: () = assert!(core::mem::align_of::<NeighRecord>() == 8);

#[cfg(feature = "user")]
// SAFETY: `NeighRecord` is `repr(C)`, has no implicit padding (asserted above) and every bit pattern
// is a valid value of each of its integer and byte-array fields.
unsafe impl aya::Pod for NeighRecord {}

/// Indices into the per-CPU `COUNTERS` array. Each direction has its own block of
/// [`Counter::COUNT`] slots: the slot of counter `c` for direction `d` is
/// `d as u32 * Counter::COUNT + c as u32` (see [`Counter::index`]).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Frames with ethertype 0x0806 (after VLAN tags) that passed validation: each one was
    /// recorded, suppressed as a repeat, or lost to a full ring. (Frames of every kind are not
    /// counted here: a counter on every frame was most of the cost of the programs' path for
    /// other traffic, and the interfaces count them anyway; user space reads theirs.)
    Arp = 0,
    /// Frames with ethertype 0x0806 that failed validation (truncated, wrong htype, ptype, hlen,
    /// plen or op) or carried more VLAN tags than supported, and ICMPv6 Neighbor Solicitations
    /// and Advertisements that failed the RFC 4861 §7.1 checks: never emitted.
    Malformed = 1,
    /// Valid ARP frames and ND messages lost because the ring buffer was full.
    RingFull = 2,
    /// Valid ARP frames and ND messages not emitted because the same tuple was emitted less than the de-duplication
    /// interval ago; the next record of that tuple carries them in [`NeighRecord::suppressed`].
    Suppressed = 3,
    /// Valid IPv6 Neighbor Solicitations and Advertisements: like [`Counter::Arp`], each one was
    /// recorded, suppressed as a repeat, or lost to a full ring.
    Ndp = 4,
}

impl Counter {
    pub const COUNT: u32 = 5;
    pub const ALL: [Counter; Counter::COUNT as usize] =
        [Counter::Arp, Counter::Malformed, Counter::RingFull, Counter::Suppressed, Counter::Ndp];

    /// The slot of this counter for `direction`.
    #[inline(always)]
    pub const fn index(self, direction: u8) -> u32 {
        direction as u32 * Counter::COUNT + self as u32
    }

    pub const fn name(self) -> &'static str {
        match self {
            Counter::Arp => "arp",
            Counter::Malformed => "malformed",
            Counter::RingFull => "ring_full_drops",
            Counter::Suppressed => "suppressed",
            Counter::Ndp => "ndp",
        }
    }
}

/// Number of slots in the `COUNTERS` map: one block per direction.
pub const COUNTER_SLOTS: u32 = 2 * Counter::COUNT;

/// How many records one tuple ([`dedup::Tuple`]) may emit per de-duplication interval; the repeats beyond are
/// suppressed. Two, so that a requester's retransmission within the interval (`arping` sends one
/// every 999.6-999.98 ms) still crosses the ring at once, even when nothing follows it, while a
/// storm of identical frames costs two records per tuple and interval.
pub const DEDUP_EMITS_PER_INTERVAL: u32 = 2;

/// Default de-duplication interval: a tuple is emitted at most once per interval, its repeats in
/// between are counted and carried by the next record. One second keeps a switching loop or a
/// broadcast storm down to one record per distinct frame per second.
pub const DEFAULT_DEDUP_INTERVAL_NS: u64 = 1_000_000_000;

/// A record less than this long after the last one its CPU woke the reader with is submitted
/// without a wake-up (unless its CPU submitted a burst since): the reader drains again on its
/// own at most this long after a wake-up (`capture::RingReader`), so a lone record is read at
/// once and one in a burst within about twice this.
pub const WAKEUP_GAP_NS: u64 = 1_000_000;

/// Names of the maps the kernel object defines, so user space does not repeat string literals.
pub mod maps {
    pub const EVENTS: &str = "EVENTS";
    pub const COUNTERS: &str = "COUNTERS";
    /// Per CPU: the tuples recently emitted ([`crate::dedup`]).
    pub const RECENT: &str = "RECENT";
    /// Shared: who last spoke for each claimed address ([`crate::dedup`]).
    pub const SPEAKERS: &str = "SPEAKERS";
    /// aya-log's ring of the programs' diagnostics (defined by aya-log-ebpf).
    pub const AYA_LOGS: &str = "AYA_LOGS";
}

/// Names of the globals user space may set when loading the kernel object.
pub mod globals {
    /// `u64`: the de-duplication interval in nanoseconds; 0 turns de-duplication off.
    pub const DEDUP_INTERVAL_NS: &str = "DEDUP_INTERVAL_NS";
    /// `u64`: the seed of the de-duplication hashes ([`crate::dedup::Tuple::of`]), random per
    /// load.
    pub const DEDUP_HASH_SEED: &str = "DEDUP_HASH_SEED";
    /// `u64`: how many bytes of records (each with the ring's 8-byte header) one CPU may submit
    /// after it woke the reader before one wakes it again even within [`crate::WAKEUP_GAP_NS`].
    pub const WAKEUP_BYTES: &str = "WAKEUP_BYTES";
}

/// Names of the programs in the kernel object.
pub mod programs {
    pub const XDP: &str = "arpwatch_xdp";
    pub const TC_EGRESS: &str = "arpwatch_tc_egress";
    /// The same classifier for ingress, attached where the XDP slot is taken by another program.
    pub const TC_INGRESS: &str = "arpwatch_tc_ingress";
    /// An XDP program that only returns `XDP_PASS`: the floor the per-packet cost of
    /// [`XDP`] is compared with in the benchmarks. Never attached.
    pub const XDP_FLOOR: &str = "arpwatch_xdp_floor";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_rule_accepts_only_ethernet_ipv4_request_and_reply() {
        let ok_request = [0, 1, 8, 0, 6, 4, 0, 1];
        let ok_reply = [0, 1, 8, 0, 6, 4, 0, 2];
        assert!(ArpEthIpv4::is_supported(&ok_request));
        assert!(ArpEthIpv4::is_supported(&ok_reply));
        for (i, bad) in [
            [0, 6, 8, 0, 6, 4, 0, 1],       // htype IEEE 802
            [0, 1, 0x86, 0xdd, 6, 4, 0, 1], // ptype IPv6
            [0, 1, 8, 0, 14, 4, 0, 1],      // hlen
            [0, 1, 8, 0, 6, 16, 0, 1],      // plen
            [0, 1, 8, 0, 6, 4, 0, 3],       // RARP request op
            [0, 1, 8, 0, 6, 4, 1, 1],       // op 257
            [0, 1, 8, 0, 6, 4, 0, 0],       // op 0
        ]
        .iter()
        .enumerate()
        {
            assert!(!ArpEthIpv4::is_supported(bad), "case {i} must be rejected");
        }
    }

    #[test]
    fn counter_slots_are_distinct_per_direction() {
        let mut seen = [false; COUNTER_SLOTS as usize];
        for d in [direction::INGRESS, direction::EGRESS] {
            for c in Counter::ALL {
                let i = c.index(d) as usize;
                assert!(!seen[i]);
                seen[i] = true;
            }
        }
        assert!(seen.iter().all(|s| *s));
    }
}
