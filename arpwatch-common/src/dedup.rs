//! The identity of a record for in-kernel de-duplication, and where the kernel keeps its state,
//! as pure functions of the record so that tests can compute it in user space (and build
//! colliding tuples on purpose).
//!
//! Two tables hold the state, both indexed by hash with no lookup chains and no locks:
//!
//! - `RECENT`, per CPU, [`RECENT_SETS`] sets of [`RECENT_WAYS`] slots (set-associative: a tuple
//!   may sit in any slot of its set, [`Tuple::recent_set`]): the tuples recently emitted on that
//!   CPU, each slot the tuple's 64-bit [`Tuple::tag`], when its interval started, how many
//!   records it emitted in it, and the repeats suppressed since its last record. A repeat well
//!   inside its interval is judged on the coarse clock (the time of the last tick: the precise
//!   clock cost more than the rest of the suppressed path), so the time of the latest one is
//!   exact to a tick ([`COARSE_TICK_NS`]). Per CPU: a tuple whose frames land on several CPUs
//!   gets its records on each. A tuple none of whose set's slots holds its tag is new to the
//!   table: emitted, and it takes an empty slot of the set, else the slot whose interval started
//!   earliest if that interval is over; when every slot of the set holds another tuple still in
//!   its interval, it is not kept at all (each of its frames is then emitted until a slot frees
//!   up): tuples in a set fuller than its ways cost records, and a set never thrashes, evicting
//!   the tuples that would have been folded next. A collision costs records, never a fold.
//! - `SPEAKERS`, shared by all CPUs, [`SPEAKER_SLOTS`] words: per claimed address (on its
//!   interface, direction and protocol) a 64-bit [`Tuple::speaker`] value that stands for the
//!   address and the MAC that last spoke for it. Shared, so that "another MAC than the last one
//!   for this address is never folded" holds when the two MACs' frames land on different CPUs;
//!   one word, so that racing CPUs never leave a torn value: the loser's next frame is emitted.
//!
//! The hashes are seeded by user space at load ([`crate::globals::DEDUP_HASH_SEED`]), so a sender
//! cannot craft frames whose tags collide with another's. A false match needs two tuples with
//! the same 64-bit tag (or two addresses with the same speaker value) in the same set (or slot).

use crate::{op, proto, NeighRecord};

/// Sets of the per-CPU table of recent tuples (a power of two).
pub const RECENT_SETS: u32 = 4096;
/// Slots per set of the per-CPU table of recent tuples: 160 bytes a set, 640 KiB per CPU. A set
/// of four holds the tuples that direct-mapped slots lost to collisions: of 4096 tuples in 4096
/// sets, on average about 20 find their set full.
pub const RECENT_WAYS: usize = 4;
/// Slots of the shared table of last speakers (a power of two). 8 bytes each: 8 MiB, once per
/// host. Two addresses sharing a slot emit every frame of theirs, each overwriting the other's
/// word: with 65,536 slots a switching loop's 700 addresses made about four such pairs, 2 % of
/// its frames and seven times the records of everything else (measured: 106,600 records in the
/// loop storm against 13,353 with this size).
pub const SPEAKER_SLOTS: u32 = 1 << 20;

/// One set of the per-CPU `RECENT` table: the slots a tuple of that set may sit in. A slot
/// never used has `window_emits` 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RecentSet {
    pub ways: [RecentSlot; RECENT_WAYS],
}

/// One slot of the per-CPU `RECENT` table.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RecentSlot {
    /// The [`Tuple::tag`] of the tuple the slot holds.
    pub tag: u64,
    /// When the tuple's current interval started (with its first record in it), boot time.
    pub window_start_ns: u64,
    /// The same moment on the coarse clock (`bpf_ktime_get_coarse_ns`, CLOCK_MONOTONIC at the
    /// last tick): a repeat well inside the interval is judged, and timed, on it alone.
    pub window_start_coarse_ns: u64,
    /// Records emitted since `window_start_ns`, at most [`crate::DEDUP_EMITS_PER_INTERVAL`].
    pub window_emits: u32,
    /// Repeats suppressed since the tuple's last record (saturating).
    pub suppressed: u32,
    /// When the latest of them was seen (boot time, to within [`COARSE_TICK_NS`]); meaningful
    /// while `suppressed` is above 0.
    pub last_suppressed_ns: u64,
}

/// The most the coarse clock lags the real one: a tick, at most 10 ms (HZ is 100 or more).
/// A repeat whose coarse time since its window started is this much short of the interval is
/// certainly inside it; nearer the end the precise clock decides.
pub const COARSE_TICK_NS: u64 = 10_000_000;

const _: () = assert!(core::mem::size_of::<RecentSlot>() == 40);

/// What makes two records "the same" for de-duplication, in ARP's terms, hashed:
///
/// | part | ARP | Neighbor Solicitation | Neighbor Advertisement |
/// |---|---|---|---|
/// | claimed address | sender IP | IPv6 source | target |
/// | other address | target IP | target | IPv6 destination |
/// | speaking MAC | sender MAC | source link-layer option, else the Ethernet source | target link-layer option, else the Ethernet source |
/// | flags | 0 | 0 | R, S, O |
///
/// plus protocol, opcode, direction and interface. The target is part of the tuple so that
/// requests for different IPs (a gateway resolving several VIPs) and replies to different
/// requesters stay distinct facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuple {
    /// The slot of the claimed address in `SPEAKERS`.
    pub speaker_slot: u32,
    /// The claimed address with the MAC that speaks for it: what `SPEAKERS` holds after this
    /// tuple's record. For one address, different MACs always give different values.
    pub speaker: u64,
    /// The set of the tuple in `RECENT`.
    pub recent_set: u32,
    /// The tuple's 64-bit hash, kept in its `RECENT` slot.
    pub tag: u64,
}

impl Tuple {
    /// The tuple of `record` (whose `ts_boot_ns`, `suppressed` and `last_suppressed_ns` do not
    /// count), hashed with `seed`.
    #[inline(always)]
    pub fn of(record: &NeighRecord, seed: u64) -> Tuple {
        let nd = record.proto == proto::NDP;
        let advertisement = nd && record.op == op::NEIGHBOR_ADVERTISEMENT;
        // Every candidate read from its own field, then chosen: read through a chosen pointer,
        // the fields' alignment is lost and each word is assembled byte by byte.
        let (spa, tpa, target) = (words(&record.spa), words(&record.tpa), words(&record.nd_target));
        let [c0, c1] = if advertisement { target } else { spa };
        let [o0, o1] = if nd && !advertisement { target } else { tpa };
        let mac = if nd && record.lladdr_present == 0 {
            mac_word(&record.eth_src)
        } else {
            mac_word(&record.sha)
        };
        let i = record.ifindex.to_le_bytes();
        let place =
            u64::from_le_bytes([i[0], i[1], i[2], i[3], record.direction, record.proto, 0, 0]);
        let message = mac | u64::from(record.op) << 48 | u64::from(record.nd_flags) << 56;

        let address = mix(mix(mix(seed, c0), c1), place);
        let speaker_hash = finish(address);
        // `finish` is a bijection: for one address, another MAC is another value.
        let speaker = finish(speaker_hash ^ mac);
        let tag = finish(mix(mix(mix(address, o0), o1), message));
        Tuple {
            speaker_slot: (speaker_hash >> 32) as u32 & (SPEAKER_SLOTS - 1),
            speaker,
            recent_set: (tag >> 32) as u32 & (RECENT_SETS - 1),
            tag,
        }
    }
}

/// A 16-byte address as two words.
#[inline(always)]
fn words(a: &[u8; 16]) -> [u64; 2] {
    let [a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15] = *a;
    [
        u64::from_le_bytes([a0, a1, a2, a3, a4, a5, a6, a7]),
        u64::from_le_bytes([a8, a9, a10, a11, a12, a13, a14, a15]),
    ]
}

/// A record's MAC address field (`eth_src` or `sha`) as the low 48 bits of a word, read as one
/// 32-bit and one 16-bit load: byte by byte, the choice between the two fields would cost a load,
/// a shift and an or per byte.
#[inline(always)]
fn mac_word(m: &[u8; 6]) -> u64 {
    // SAFETY: `m` is a MAC field of a `NeighRecord`, which starts 4-byte aligned (asserted
    // below): six readable bytes, the first four and the last two each aligned for their load.
    let (low, high) =
        unsafe { (m.as_ptr().cast::<u32>().read(), m.as_ptr().add(4).cast::<u16>().read()) };
    u64::from(u32::from_le(low)) | u64::from(u16::from_le(high)) << 32
}

const _: () = assert!(core::mem::offset_of!(NeighRecord, eth_src) % 4 == 0);
const _: () = assert!(core::mem::offset_of!(NeighRecord, sha) % 4 == 0);

/// Folds one word into a running hash.
#[inline(always)]
fn mix(h: u64, word: u64) -> u64 {
    let h = (h ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ (h >> 32)
}

/// The finaliser of MurmurHash3 (a bijection of `u64`): every input bit reaches every output bit.
#[inline(always)]
fn finish(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipv4_field;

    fn reply(mac: u8, spa: u8, tpa: u8) -> NeighRecord {
        NeighRecord {
            proto: proto::ARP,
            op: op::REPLY,
            ifindex: 2,
            sha: [2, 0, 0, 0, 0, mac],
            spa: ipv4_field([192, 0, 2, spa]),
            tpa: ipv4_field([192, 0, 2, tpa]),
            ..Default::default()
        }
    }

    #[test]
    fn the_tuple_ignores_time_and_carried_counts() {
        let r = reply(1, 10, 99);
        let later = NeighRecord { ts_boot_ns: 5, suppressed: 3, last_suppressed_ns: 4, ..r };
        assert_eq!(Tuple::of(&r, 7), Tuple::of(&later, 7));
    }

    #[test]
    fn another_mac_for_an_address_is_another_speaker_in_the_same_slot() {
        let a = Tuple::of(&reply(1, 10, 99), 7);
        let b = Tuple::of(&reply(2, 10, 99), 7);
        assert_eq!(a.speaker_slot, b.speaker_slot);
        assert_ne!(a.speaker, b.speaker);
        assert_ne!(a.tag, b.tag);
        let other_target = Tuple::of(&reply(1, 10, 98), 7);
        assert_eq!((a.speaker_slot, a.speaker), (other_target.speaker_slot, other_target.speaker));
        assert_ne!(a.tag, other_target.tag);
    }

    #[test]
    fn every_part_of_the_tuple_counts() {
        let base = reply(1, 10, 99);
        let variants = [
            NeighRecord { op: op::REQUEST, ..base },
            NeighRecord { ifindex: 3, ..base },
            NeighRecord { direction: crate::direction::EGRESS, ..base },
            NeighRecord { proto: proto::NDP, lladdr_present: 1, ..base },
            NeighRecord { nd_flags: 0x20, ..base },
        ];
        let tag = Tuple::of(&base, 7).tag;
        for (i, v) in variants.iter().enumerate() {
            assert_ne!(Tuple::of(v, 7).tag, tag, "variant {i}");
        }
        assert_ne!(Tuple::of(&base, 8).tag, tag, "the seed");
    }

    #[test]
    fn neighbor_discovery_tuples_are_read_in_arp_terms() {
        let target = [0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];
        let na = NeighRecord {
            proto: proto::NDP,
            op: op::NEIGHBOR_ADVERTISEMENT,
            eth_src: [2, 0, 0, 0, 0, 1],
            nd_target: target,
            spa: [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            ..Default::default()
        };
        // An NA speaks for its target whatever its IPv6 source; without the option the Ethernet
        // source is the MAC that speaks.
        let other_source = NeighRecord { spa: [0; 16], ..na };
        assert_eq!(Tuple::of(&na, 7), Tuple::of(&other_source, 7));
        let with_option = NeighRecord { lladdr_present: 1, sha: [2, 0, 0, 0, 0, 1], ..na };
        assert_eq!(Tuple::of(&na, 7).speaker, Tuple::of(&with_option, 7).speaker);
        let other_ether = NeighRecord { eth_src: [2, 0, 0, 0, 0, 2], ..na };
        assert_ne!(Tuple::of(&na, 7).speaker, Tuple::of(&other_ether, 7).speaker);
    }
}
