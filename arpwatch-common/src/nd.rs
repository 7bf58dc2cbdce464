//! IPv6 Neighbor Discovery (RFC 4861) as both parsers read it: the wire layouts of the IPv6 header
//! and of the fixed part of a Neighbor Solicitation or Advertisement, and the one validity rule
//! (RFC 4861 §7.1.1 and §7.1.2), written as pure functions over header values and over a source
//! of option bytes, so that the kernel program and the user-space decoder run the very same
//! checks in the very same order and cannot disagree on what is valid, malformed or not ND.
//!
//! What a parser does with a frame whose (innermost) ethertype is IPv6:
//!
//! 1. **Not ND** (not counted): shorter than the 40-byte IPv6 header, a version other
//!    than 6, a next header other than ICMPv6 (58): an extension header before ICMPv6 is not
//!    walked (MLD, behind a Hop-by-Hop header, is therefore not ND either), no ICMPv6 type byte,
//!    or an ICMPv6 type other than 135 (NS) and 136 (NA): Router Solicitations and
//!    Advertisements, redirects, MLD, echo.
//! 2. **Malformed** ([`NdInvalid`], counted in `malformed`, never emitted): an NS or NA that fails
//!    a check of §7.1, in the order of [`check_ip`], [`check_message`], [`walk_options`] and
//!    [`check_options`].
//! 3. Otherwise **valid**: one record.
//!
//! Not checked: the ICMPv6 checksum (neither parser verifies it: the kernel would have to sum the
//! whole message with the pseudo-header, and a corrupted frame that passes every other check is
//! rare; the stack itself drops it), and IP authentication headers (an AH is an extension header:
//! such a message is not ND here at all).
//!
//! Options are walked up to [`MAX_OPTIONS`] deep, a fixed bound the eBPF verifier can see: each
//! option within the bound must have a length above zero and end inside the ICMPv6 message, and
//! the first link-layer address option of the kind the message carries (source for an NS, target
//! for an NA) must be one 8-octet unit long (an Ethernet address). Options beyond the bound are
//! neither checked nor searched; Linux's DAD probe carries one (a Nonce), its NS and NA one each.

/// The ICMPv6 next-header value (IANA protocol number 58).
pub const NEXT_HEADER_ICMPV6: u8 = 58;
/// The hop limit every ND message is sent with; any other value means it crossed a router.
pub const HOP_LIMIT: u8 = 255;
/// ICMPv6 type, code, checksum, the 4 bytes of flags and reserved, and the 16-byte target.
pub const MESSAGE_LEN: usize = 24;
/// How many options the walk looks at.
pub const MAX_OPTIONS: usize = 4;
/// An option's length field counts units of this many octets.
pub const OPTION_UNIT: usize = 8;

/// ND option types (RFC 4861 §4.6, RFC 3971 §5.3.2).
pub mod option {
    /// Source link-layer address: meaningful in a Neighbor Solicitation.
    pub const SOURCE_LINK_LAYER: u8 = 1;
    /// Target link-layer address: meaningful in a Neighbor Advertisement.
    pub const TARGET_LINK_LAYER: u8 = 2;
    /// Nonce: Linux puts one in its duplicate address detection probes (`enhanced_dad`).
    pub const NONCE: u8 = 14;
}

/// The IPv6 header as on the wire (RFC 8200 §3), alignment 1.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Ipv6Hdr {
    /// Version (4 bits), traffic class (8), flow label (20).
    pub version_class_flow: [u8; 4],
    /// Length of everything after this header, big-endian.
    pub payload_len: [u8; 2],
    pub next_header: u8,
    pub hop_limit: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
}

pub const IPV6_HEADER_LEN: usize = 40;
const _: () = assert!(core::mem::size_of::<Ipv6Hdr>() == IPV6_HEADER_LEN);

impl Ipv6Hdr {
    /// Whether the packet is IPv6 with ICMPv6 right after the fixed header: the only place ND is
    /// looked for (step 1 of the module doc).
    #[inline(always)]
    pub fn carries_icmpv6(&self) -> bool {
        // The next header first: it is what turns away most IPv6 traffic.
        self.next_header == NEXT_HEADER_ICMPV6 && self.version_class_flow[0] >> 4 == 6
    }

    /// The payload length: with ICMPv6 directly behind the header, the ICMPv6 length.
    #[inline(always)]
    pub fn payload_len(&self) -> usize {
        u16::from_be_bytes(self.payload_len) as usize
    }
}

/// The fixed part of a Neighbor Solicitation or Advertisement (RFC 4861 §4.3, §4.4), alignment 1.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct NdMessage {
    pub icmp_type: u8,
    pub code: u8,
    pub checksum: [u8; 2],
    /// An NA's R, S, O flags ([`crate::na_flag`]) and 5 reserved bits; reserved in an NS.
    pub flags: u8,
    pub reserved: [u8; 3],
    pub target: [u8; 16],
}

const _: () = assert!(core::mem::size_of::<NdMessage>() == MESSAGE_LEN);

impl NdMessage {
    /// An NA's flags as a record carries them (reserved bits cleared), zero for an NS.
    #[inline(always)]
    pub fn record_flags(&self) -> u8 {
        if self.icmp_type == crate::op::NEIGHBOR_ADVERTISEMENT {
            self.flags & crate::na_flag::ALL
        } else {
            0
        }
    }

    /// The option type whose link-layer address the message carries: source for an NS, target
    /// for an NA.
    #[inline(always)]
    pub fn link_layer_option(&self) -> u8 {
        if self.icmp_type == crate::op::NEIGHBOR_ADVERTISEMENT {
            option::TARGET_LINK_LAYER
        } else {
            option::SOURCE_LINK_LAYER
        }
    }
}

/// Whether an ICMPv6 type is one of the two Neighbor Discovery messages arpwatch records.
#[inline(always)]
pub fn is_nd_type(icmp_type: u8) -> bool {
    icmp_type == crate::op::NEIGHBOR_SOLICITATION || icmp_type == crate::op::NEIGHBOR_ADVERTISEMENT
}

/// Why an NS or NA fails RFC 4861 §7.1: every one is counted `malformed`, never emitted.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NdInvalid {
    /// IPv6 hop limit other than 255: the message crossed a router (or was forged off-link).
    HopLimit = 0,
    /// ICMPv6 length (the IPv6 payload length) below 24 octets.
    TooShort = 1,
    /// The frame ends before the ICMPv6 length the IPv6 header gives.
    Truncated = 2,
    /// ICMPv6 code other than 0.
    Code = 3,
    /// The target address is a multicast address.
    MulticastTarget = 4,
    /// An NA to a multicast destination with the Solicited flag set.
    SolicitedToMulticast = 5,
    /// A DAD probe (NS from `::`) not sent to a solicited-node multicast address.
    DadDestination = 6,
    /// An option of length zero, an option running past the ICMPv6 length, or a link-layer
    /// address option longer than an Ethernet address.
    BadOption = 7,
    /// A DAD probe (NS from `::`) carrying a source link-layer address option.
    DadWithLinkLayer = 8,
}

impl NdInvalid {
    pub const ALL: [NdInvalid; 9] = [
        NdInvalid::HopLimit,
        NdInvalid::TooShort,
        NdInvalid::Truncated,
        NdInvalid::Code,
        NdInvalid::MulticastTarget,
        NdInvalid::SolicitedToMulticast,
        NdInvalid::DadDestination,
        NdInvalid::BadOption,
        NdInvalid::DadWithLinkLayer,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            NdInvalid::HopLimit => "hop limit is not 255",
            NdInvalid::TooShort => "ICMPv6 length below 24 octets",
            NdInvalid::Truncated => "frame ends before the ICMPv6 length",
            NdInvalid::Code => "ICMPv6 code is not 0",
            NdInvalid::MulticastTarget => "target is a multicast address",
            NdInvalid::SolicitedToMulticast => "solicited advertisement to a multicast destination",
            NdInvalid::DadDestination => "DAD probe not to a solicited-node multicast address",
            NdInvalid::BadOption => "option of length 0, past the message, or a bad link-layer one",
            NdInvalid::DadWithLinkLayer => "DAD probe with a source link-layer address option",
        }
    }
}

#[inline(always)]
fn is_multicast(addr: &[u8; 16]) -> bool {
    addr[0] == 0xff
}

#[inline(always)]
fn is_unspecified(addr: &[u8; 16]) -> bool {
    u128::from_ne_bytes(*addr) == 0
}

/// `ff02::1:ff00:0/104`, the solicited-node multicast prefix (RFC 4291 §2.7.1); the last 24 bits
/// are not compared with the target, as Linux does not (`ipv6_addr_is_solict_mult`).
#[inline(always)]
pub fn is_solicited_node(addr: &[u8; 16]) -> bool {
    addr[0] == 0xff
        && addr[1] == 0x02
        && u64::from_ne_bytes([
            addr[2], addr[3], addr[4], addr[5], addr[6], addr[7], addr[8], addr[9],
        ]) == 0
        && addr[10] == 0
        && addr[11] == 1
        && addr[12] == 0xff
}

/// The checks on the IPv6 header of an NS or NA: hop limit, ICMPv6 length, and whether the frame
/// holds all of it. `captured` is how many bytes the frame has from the start of the ICMPv6
/// message on (Ethernet padding included).
#[inline(always)]
pub fn check_ip(ip: &Ipv6Hdr, captured: usize) -> Result<(), NdInvalid> {
    if ip.hop_limit != HOP_LIMIT {
        return Err(NdInvalid::HopLimit);
    }
    let len = ip.payload_len();
    if len < MESSAGE_LEN {
        return Err(NdInvalid::TooShort);
    }
    if captured < len {
        return Err(NdInvalid::Truncated);
    }
    Ok(())
}

/// The checks on the fixed part of the message, once [`check_ip`] passed: code, target, and the
/// destination rules of an NA and of a DAD probe.
#[inline(always)]
pub fn check_message(ip: &Ipv6Hdr, msg: &NdMessage) -> Result<(), NdInvalid> {
    if msg.code != 0 {
        return Err(NdInvalid::Code);
    }
    if is_multicast(&msg.target) {
        return Err(NdInvalid::MulticastTarget);
    }
    if msg.icmp_type == crate::op::NEIGHBOR_ADVERTISEMENT {
        if is_multicast(&ip.dst) && msg.flags & crate::na_flag::SOLICITED != 0 {
            return Err(NdInvalid::SolicitedToMulticast);
        }
    } else if is_unspecified(&ip.src) && !is_solicited_node(&ip.dst) {
        return Err(NdInvalid::DadDestination);
    }
    Ok(())
}

/// Where the option walk reads the bytes of one message. Offsets count from the start of the
/// ICMPv6 message; the walk only asks for bytes inside the ICMPv6 length, which [`check_ip`]
/// found in the frame, so `None` (the kernel's bounds check failing anyway) is a truncation.
pub trait OptionBytes {
    /// The type and length octets of the option at `offset`.
    fn header(&self, offset: usize) -> Option<[u8; 2]>;
    /// The six octets after the type and length of the option at `offset`.
    fn mac(&self, offset: usize) -> Option<[u8; 6]>;
}

/// The link-layer address the options carry, as a record has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LinkLayer {
    pub present: bool,
    /// Zero when not present.
    pub mac: [u8; 6],
}

/// Walks the options of a message of ICMPv6 length `len` (checked by [`check_ip`]), at most
/// [`MAX_OPTIONS`] of them, and returns the first link-layer address option of type `wanted`.
///
/// A zero-length option is malformed (a walk that did not stop there would never advance), and
/// so is one that runs past `len`; each step advances by at least 8 octets, and there are at most
/// [`MAX_OPTIONS`] steps.
#[inline(always)]
pub fn walk_options<B: OptionBytes>(
    bytes: &B,
    len: usize,
    wanted: u8,
) -> Result<LinkLayer, NdInvalid> {
    let mut found = LinkLayer::default();
    let mut offset = MESSAGE_LEN;
    // Unrolled by hand: the verifier must see a bounded walk (MAX_OPTIONS steps).
    step(bytes, len, wanted, &mut offset, &mut found)?;
    step(bytes, len, wanted, &mut offset, &mut found)?;
    step(bytes, len, wanted, &mut offset, &mut found)?;
    step(bytes, len, wanted, &mut offset, &mut found)?;
    Ok(found)
}

const _: () = assert!(MAX_OPTIONS == 4, "walk_options calls `step` MAX_OPTIONS times");

/// One option of the walk: checks it and steps over it; past the last option it does nothing.
#[inline(always)]
fn step<B: OptionBytes>(
    bytes: &B,
    len: usize,
    wanted: u8,
    offset: &mut usize,
    found: &mut LinkLayer,
) -> Result<(), NdInvalid> {
    let at = *offset;
    if at >= len {
        return Ok(());
    }
    // At least the type and length octets must fit; with a length above zero, 8 octets must.
    if at + 2 > len {
        return Err(NdInvalid::BadOption);
    }
    let [kind, units] = bytes.header(at).ok_or(NdInvalid::Truncated)?;
    if units == 0 {
        return Err(NdInvalid::BadOption);
    }
    let size = units as usize * OPTION_UNIT;
    if at + size > len {
        return Err(NdInvalid::BadOption);
    }
    if kind == wanted && !found.present {
        // An Ethernet address fills exactly one unit; Linux drops a message whose link-layer
        // option has another length ("invalid link-layer address length").
        if units != 1 {
            return Err(NdInvalid::BadOption);
        }
        found.mac = bytes.mac(at).ok_or(NdInvalid::Truncated)?;
        found.present = true;
    }
    *offset = at + size;
    Ok(())
}

/// The check that needs the options: a DAD probe carries no source link-layer address.
#[inline(always)]
pub fn check_options(ip: &Ipv6Hdr, msg: &NdMessage, link: &LinkLayer) -> Result<(), NdInvalid> {
    if msg.icmp_type == crate::op::NEIGHBOR_SOLICITATION && is_unspecified(&ip.src) && link.present
    {
        return Err(NdInvalid::DadWithLinkLayer);
    }
    Ok(())
}

/// Whether an NS or NA is one that de-duplication never folds: a DAD probe (an NS from `::`) or
/// an unsolicited NA (S=0), the ND counterparts of an ARP probe and a gratuitous ARP.
#[inline(always)]
pub fn is_announcement_or_probe(ip: &Ipv6Hdr, msg: &NdMessage) -> bool {
    if msg.icmp_type == crate::op::NEIGHBOR_ADVERTISEMENT {
        msg.flags & crate::na_flag::SOLICITED == 0
    } else {
        is_unspecified(&ip.src)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{na_flag, op};
    use std::vec;
    use std::vec::Vec;

    const SRC: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a];
    const TARGET: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0b];
    const SOLICITED_NODE: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0x0b];
    const ALL_NODES: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

    fn ip(src: [u8; 16], dst: [u8; 16], len: u16) -> Ipv6Hdr {
        Ipv6Hdr {
            version_class_flow: [0x60, 0, 0, 0],
            payload_len: len.to_be_bytes(),
            next_header: NEXT_HEADER_ICMPV6,
            hop_limit: 255,
            src,
            dst,
        }
    }

    fn msg(icmp_type: u8, flags: u8) -> NdMessage {
        NdMessage { icmp_type, flags, target: TARGET, ..Default::default() }
    }

    /// Options as bytes after the 24-byte fixed part.
    struct Bytes(Vec<u8>);

    impl OptionBytes for Bytes {
        fn header(&self, offset: usize) -> Option<[u8; 2]> {
            self.0.get(offset..offset + 2)?.try_into().ok()
        }
        fn mac(&self, offset: usize) -> Option<[u8; 6]> {
            self.0.get(offset + 2..offset + 8)?.try_into().ok()
        }
    }

    fn message_with(options: &[u8]) -> Bytes {
        let mut b = vec![0u8; MESSAGE_LEN];
        b.extend_from_slice(options);
        Bytes(b)
    }

    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 0x0a];
    const SLLA: [u8; 8] = [1, 1, 2, 0, 0, 0, 0, 0x0a];
    const TLLA: [u8; 8] = [2, 1, 2, 0, 0, 0, 0, 0x0a];
    const NONCE: [u8; 8] = [14, 1, 1, 2, 3, 4, 5, 6];

    fn walk(options: &[u8], wanted: u8) -> Result<LinkLayer, NdInvalid> {
        let bytes = message_with(options);
        walk_options(&bytes, bytes.0.len(), wanted)
    }

    #[test]
    fn only_icmpv6_right_after_an_ipv6_header_can_be_nd() {
        let mut h = ip(SRC, ALL_NODES, 24);
        assert!(h.carries_icmpv6());
        h.next_header = 0; // Hop-by-Hop (MLD, jumbograms)
        assert!(!h.carries_icmpv6());
        h.next_header = NEXT_HEADER_ICMPV6;
        h.version_class_flow[0] = 0x40;
        assert!(!h.carries_icmpv6());
        assert!(is_nd_type(135) && is_nd_type(136));
        for other in [128, 129, 130, 133, 134, 137, 143] {
            assert!(!is_nd_type(other), "{other}");
        }
    }

    #[test]
    fn ip_checks_hop_limit_then_length_then_capture() {
        let mut h = ip(SRC, TARGET, 32);
        assert_eq!(check_ip(&h, 32), Ok(()));
        assert_eq!(check_ip(&h, 60), Ok(()), "padding after the message is fine");
        assert_eq!(check_ip(&h, 31), Err(NdInvalid::Truncated));
        h.payload_len = 23u16.to_be_bytes();
        assert_eq!(check_ip(&h, 100), Err(NdInvalid::TooShort));
        h.hop_limit = 254;
        assert_eq!(check_ip(&h, 100), Err(NdInvalid::HopLimit));
    }

    #[test]
    fn message_checks_follow_rfc_4861_7_1() {
        let unicast = ip(SRC, TARGET, 32);
        assert_eq!(check_message(&unicast, &msg(op::NEIGHBOR_SOLICITATION, 0)), Ok(()));
        let mut bad_code = msg(op::NEIGHBOR_SOLICITATION, 0);
        bad_code.code = 1;
        assert_eq!(check_message(&unicast, &bad_code), Err(NdInvalid::Code));
        let mut mcast_target = msg(op::NEIGHBOR_ADVERTISEMENT, 0);
        mcast_target.target = ALL_NODES;
        assert_eq!(check_message(&unicast, &mcast_target), Err(NdInvalid::MulticastTarget));

        // NA: S=1 only to a unicast destination.
        let to_all = ip(TARGET, ALL_NODES, 32);
        let na = |flags| msg(op::NEIGHBOR_ADVERTISEMENT, flags);
        assert_eq!(check_message(&to_all, &na(na_flag::OVERRIDE)), Ok(()));
        assert_eq!(check_message(&to_all, &na(na_flag::ROUTER | na_flag::OVERRIDE)), Ok(()));
        assert_eq!(
            check_message(&to_all, &na(na_flag::SOLICITED)),
            Err(NdInvalid::SolicitedToMulticast)
        );
        assert_eq!(check_message(&ip(TARGET, SRC, 32), &na(na_flag::ALL)), Ok(()));

        // DAD: from :: only to a solicited-node address.
        let ns = msg(op::NEIGHBOR_SOLICITATION, 0);
        assert_eq!(check_message(&ip([0; 16], SOLICITED_NODE, 32), &ns), Ok(()));
        assert_eq!(check_message(&ip([0; 16], ALL_NODES, 32), &ns), Err(NdInvalid::DadDestination));
        assert_eq!(check_message(&ip([0; 16], TARGET, 32), &ns), Err(NdInvalid::DadDestination));
        // A unicast NS (reachability confirmation) may go anywhere.
        assert_eq!(check_message(&ip(SRC, ALL_NODES, 32), &ns), Ok(()));
    }

    #[test]
    fn solicited_node_prefix_is_ff02_1_ff_slash_104() {
        assert!(is_solicited_node(&SOLICITED_NODE));
        let mut other_low_bits = SOLICITED_NODE;
        other_low_bits[13..].copy_from_slice(&[0x12, 0x34, 0x56]);
        assert!(is_solicited_node(&other_low_bits));
        for i in 0..13 {
            let mut bent = SOLICITED_NODE;
            bent[i] ^= 0x10;
            assert!(!is_solicited_node(&bent), "byte {i}");
        }
    }

    #[test]
    fn option_walk_finds_the_wanted_link_layer_address() {
        let slla = |mac| LinkLayer { present: true, mac };
        assert_eq!(walk(&[], 1), Ok(LinkLayer::default()));
        assert_eq!(walk(&SLLA, 1), Ok(slla(MAC)));
        assert_eq!(walk(&TLLA, 2), Ok(slla(MAC)));
        // The other kind is skipped, like any option arpwatch does not use.
        assert_eq!(walk(&SLLA, 2), Ok(LinkLayer::default()));
        assert_eq!(walk(&[NONCE, SLLA].concat(), 1), Ok(slla(MAC)));
        assert_eq!(walk(&[NONCE, NONCE, NONCE, SLLA].concat(), 1), Ok(slla(MAC)));
        // The first one counts.
        let mut second = SLLA;
        second[7] = 0x0b;
        assert_eq!(walk(&[SLLA, second].concat(), 1), Ok(slla(MAC)));
        // A longer unknown option (16 octets) is stepped over whole.
        let long = [200, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(walk(&[&long[..], &SLLA].concat(), 1), Ok(slla(MAC)));
    }

    #[test]
    fn option_walk_stops_at_its_bound() {
        // A fifth option is neither searched nor checked.
        let four = [NONCE, NONCE, NONCE, NONCE].concat();
        assert_eq!(walk(&[&four[..], &SLLA].concat(), 1), Ok(LinkLayer::default()));
        assert_eq!(walk(&[&four[..], &[1, 0]].concat(), 1), Ok(LinkLayer::default()));
    }

    #[test]
    fn zero_length_overlong_and_cut_options_are_malformed() {
        assert_eq!(walk(&[1, 0, 2, 0, 0, 0, 0, 0x0a], 1), Err(NdInvalid::BadOption));
        assert_eq!(
            walk(&[&NONCE[..], &[14, 0, 0, 0, 0, 0, 0, 0]].concat(), 1),
            Err(NdInvalid::BadOption)
        );
        // Length 2 (16 octets) with 8 in the message.
        assert_eq!(walk(&[14, 2, 0, 0, 0, 0, 0, 0], 1), Err(NdInvalid::BadOption));
        // One octet left: not even a type and length.
        assert_eq!(walk(&[14], 1), Err(NdInvalid::BadOption));
        // Type and length, then the message ends.
        assert_eq!(walk(&[1, 1, 2, 0], 1), Err(NdInvalid::BadOption));
        // A source link-layer option of two units is not an Ethernet address; as another kind
        // it would just be skipped.
        let two_units = [1, 2, 2, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(walk(&two_units, 1), Err(NdInvalid::BadOption));
        assert_eq!(walk(&two_units, 2), Ok(LinkLayer::default()));
    }

    #[test]
    fn option_walk_never_reads_past_the_icmpv6_length() {
        // The frame goes on (padding) but the message ends after the fixed part: no option.
        let bytes = message_with(&SLLA);
        assert_eq!(walk_options(&bytes, MESSAGE_LEN, 1), Ok(LinkLayer::default()));
    }

    #[test]
    fn dad_probe_carries_no_source_link_layer_address() {
        let ns = msg(op::NEIGHBOR_SOLICITATION, 0);
        let dad = ip([0; 16], SOLICITED_NODE, 32);
        let with = LinkLayer { present: true, mac: MAC };
        assert_eq!(check_options(&dad, &ns, &LinkLayer::default()), Ok(()));
        assert_eq!(check_options(&dad, &ns, &with), Err(NdInvalid::DadWithLinkLayer));
        assert_eq!(check_options(&ip(SRC, SOLICITED_NODE, 32), &ns, &with), Ok(()));
    }

    #[test]
    fn probes_and_unsolicited_advertisements_are_never_folded() {
        let ns = msg(op::NEIGHBOR_SOLICITATION, 0);
        assert!(is_announcement_or_probe(&ip([0; 16], SOLICITED_NODE, 32), &ns));
        assert!(!is_announcement_or_probe(&ip(SRC, SOLICITED_NODE, 32), &ns));
        let na = |flags| msg(op::NEIGHBOR_ADVERTISEMENT, flags);
        assert!(is_announcement_or_probe(&ip(TARGET, ALL_NODES, 32), &na(na_flag::OVERRIDE)));
        assert!(!is_announcement_or_probe(&ip(TARGET, SRC, 32), &na(na_flag::SOLICITED)));
    }

    #[test]
    fn record_flags_keep_r_s_o_of_an_advertisement_only() {
        assert_eq!(msg(op::NEIGHBOR_ADVERTISEMENT, 0xff).record_flags(), na_flag::ALL);
        assert_eq!(msg(op::NEIGHBOR_SOLICITATION, 0xff).record_flags(), 0);
        assert_eq!(msg(op::NEIGHBOR_ADVERTISEMENT, 0).link_layer_option(), 2);
        assert_eq!(msg(op::NEIGHBOR_SOLICITATION, 0).link_layer_option(), 1);
    }

    #[test]
    fn every_reason_has_a_distinct_text() {
        for (i, a) in NdInvalid::ALL.iter().enumerate() {
            assert_eq!(*a as usize, i);
            for b in &NdInvalid::ALL[i + 1..] {
                assert_ne!(a.as_str(), b.as_str());
            }
        }
    }
}
