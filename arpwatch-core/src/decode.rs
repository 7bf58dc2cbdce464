//! The user-space twin of the kernel parser: turns one captured frame into the record of an ARP
//! frame or an IPv6 Neighbor Solicitation or Advertisement, with the same rules and the same
//! outcomes as the kernel programs (`arpwatch-ebpf`), so that a replayed capture and a live run
//! agree on what is ARP or ND, what is malformed and what is ignored.
//!
//! The decoder is pure: no allocation, no panic, any byte slice in. It fills the very
//! [`NeighRecord`] the kernel writes, and [`NeighFrame::into_observation`] goes through
//! [`Observation::from_record`], so there is one conversion from wire fields to an observation.
//!
//! Link layers ([`LinkType`]):
//! - **Ethernet** (`LINKTYPE_ETHERNET`, 1), with up to two VLAN tags (802.1Q 0x8100, 802.1ad
//!   0x88a8) before the ARP or IPv6 ethertype.
//! - **Linux cooked capture** v1 (`LINKTYPE_LINUX_SLL`, 113) and v2 (`LINKTYPE_LINUX_SLL2`, 276), what
//!   `tcpdump -i any` writes. Their protocol field takes the place of the ethertype (0x0806 for
//!   ARP, 0x86dd for IPv6; VLAN tags may follow it as on Ethernet). They record no Ethernet header, so: `eth_src` is the recorded
//!   link-layer address when it is six bytes long (the sender's MAC), else zero; `eth_dst` is the
//!   broadcast address for `PACKET_BROADCAST` frames and zero otherwise (the capture does not say
//!   which MAC a unicast or multicast frame was sent to); and [`NeighFrame::link_direction`] is
//!   egress for `PACKET_OUTGOING` (sent by the capturing host), ingress for every other packet type.
//!
//! Outcomes: [`Decoded::Neigh`] for a valid Ethernet/IPv4 request or reply
//! ([`ArpEthIpv4::is_supported`]) or a valid Neighbor Solicitation or Advertisement (the rule of
//! `arpwatch_common::nd`: RFC 4861 §7.1 without the ICMPv6 checksum, which neither parser
//! verifies), [`Decoded::Malformed`] for a frame that claims ARP but is not one arpwatch decodes
//! and for an NS or NA that fails §7.1, [`Decoded::Other`] for everything else (RARP 0x8035,
//! IPv4, other IPv6 and ICMPv6, ND behind an extension header, and frames too short to carry a
//! link header, which the kernel counts as frames only).

use std::sync::Arc;

use arpwatch_common::nd::{self, Ipv6Hdr, NdInvalid, NdMessage, OptionBytes, IPV6_HEADER_LEN};
use arpwatch_common::{
    direction, ethertype, ipv4_field, proto, ArpEthIpv4, NeighRecord, ARP_FIXED_HEADER_LEN,
    MAX_VLAN_TAGS,
};

use crate::observation::{Direction, Observation, Timestamp};

/// Values of the type field below this are an 802.3 length (Ethernet) or a Linux pseudo-protocol
/// such as `ETH_P_802_2` (cooked capture): either way an 802.2 LLC header follows.
const FIRST_ETHERTYPE: u16 = 0x0600;
/// An 802.2 LLC header with SNAP (DSAP 0xaa, SSAP 0xaa, UI) and the zero OUI, which carries an
/// Ethernet type: here ARP.
const LLC_SNAP_ARP: [u8; 8] = [0xaa, 0xaa, 0x03, 0x00, 0x00, 0x00, 0x08, 0x06];
/// The low 12 bits of a tag control field are the VLAN id.
const VLAN_ID_MASK: u16 = 0x0fff;

/// `sll_pkttype` values from `<linux/if_packet.h>` that change what is recorded.
const PACKET_BROADCAST: u16 = 1;
const PACKET_OUTGOING: u16 = 4;

/// The link-layer header types arpwatch decodes, by their `LINKTYPE_*` number (the `network` field
/// of a pcap header, the `LinkType` of a pcapng interface).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    Ethernet,
    LinuxSll,
    LinuxSll2,
}

impl LinkType {
    /// The link type for a `LINKTYPE_*` number, `None` for one arpwatch does not decode.
    pub const fn from_code(linktype: u32) -> Option<LinkType> {
        match linktype {
            1 => Some(LinkType::Ethernet),
            113 => Some(LinkType::LinuxSll),
            276 => Some(LinkType::LinuxSll2),
            _ => None,
        }
    }

    /// Decodes one frame that starts with this link layer's header.
    pub fn decode(self, frame: &[u8]) -> Decoded {
        match self {
            LinkType::Ethernet => decode_ethernet(frame),
            LinkType::LinuxSll => decode_linux_sll(frame),
            LinkType::LinuxSll2 => decode_linux_sll2(frame),
        }
    }
}

/// What one frame turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A valid Ethernet/IPv4 ARP request or reply, or a valid Neighbor Solicitation or
    /// Advertisement.
    Neigh(NeighFrame),
    /// Neither ARP nor ND; the kernel counts such a frame only in `frames`.
    Other,
    /// Claims to be ARP but is not one arpwatch decodes, or an NS or NA that fails RFC 4861 §7.1;
    /// never becomes an observation.
    Malformed(MalformedReason),
}

/// Why a frame that claims to be ARP, or an NS or NA, was rejected. All of these land in the
/// `malformed` counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MalformedReason {
    /// Ethertype 0x0806 with fewer than the 28 bytes of an Ethernet/IPv4 ARP body.
    Truncated,
    /// An ARP body whose hardware type, protocol type, address lengths or operation is not
    /// Ethernet/IPv4 request or reply (IEEE 802 htype 6, RARP op 3, hlen 255 ...).
    Unsupported,
    /// ARP behind a third VLAN tag: more than [`MAX_VLAN_TAGS`].
    TooManyVlanTags,
    /// ARP in 802.3 LLC/SNAP encapsulation rather than Ethernet II. The kernel program counts
    /// these as non-ARP, because its non-ARP path compares the Ethernet II type and nothing more
    /// (SPEC §5); user space can afford to look, and calls them what they are.
    LlcSnap,
    /// An NS or NA whose IPv6 hop limit is not 255 (it crossed a router).
    NdHopLimit,
    /// An NS or NA whose ICMPv6 length (the IPv6 payload length) is below 24 octets.
    NdTooShort,
    /// An NS or NA cut before the ICMPv6 length its IPv6 header gives.
    NdTruncated,
    /// An NS or NA whose ICMPv6 code is not 0.
    NdCode,
    /// An NS or NA for a multicast target.
    NdMulticastTarget,
    /// A solicited NA (S=1) to a multicast destination.
    NdSolicitedToMulticast,
    /// A DAD probe (NS from `::`) not sent to a solicited-node multicast address.
    NdDadDestination,
    /// An ND option of length zero, one running past the message, or a link-layer address option
    /// that is not one Ethernet address long.
    NdBadOption,
    /// A DAD probe (NS from `::`) with a source link-layer address option.
    NdDadWithLinkLayer,
}

impl From<NdInvalid> for MalformedReason {
    fn from(why: NdInvalid) -> Self {
        match why {
            NdInvalid::HopLimit => MalformedReason::NdHopLimit,
            NdInvalid::TooShort => MalformedReason::NdTooShort,
            NdInvalid::Truncated => MalformedReason::NdTruncated,
            NdInvalid::Code => MalformedReason::NdCode,
            NdInvalid::MulticastTarget => MalformedReason::NdMulticastTarget,
            NdInvalid::SolicitedToMulticast => MalformedReason::NdSolicitedToMulticast,
            NdInvalid::DadDestination => MalformedReason::NdDadDestination,
            NdInvalid::BadOption => MalformedReason::NdBadOption,
            NdInvalid::DadWithLinkLayer => MalformedReason::NdDadWithLinkLayer,
        }
    }
}

impl MalformedReason {
    pub const fn as_str(self) -> &'static str {
        match self {
            MalformedReason::Truncated => "truncated ARP body",
            MalformedReason::Unsupported => "not an Ethernet/IPv4 request or reply",
            MalformedReason::TooManyVlanTags => "more than two VLAN tags",
            MalformedReason::LlcSnap => "ARP in 802.3 LLC/SNAP encapsulation",
            MalformedReason::NdHopLimit => "Neighbor Discovery with a hop limit other than 255",
            MalformedReason::NdTooShort => "Neighbor Discovery message shorter than 24 octets",
            MalformedReason::NdTruncated => "Neighbor Discovery message cut short",
            MalformedReason::NdCode => "Neighbor Discovery with an ICMPv6 code other than 0",
            MalformedReason::NdMulticastTarget => "Neighbor Discovery for a multicast target",
            MalformedReason::NdSolicitedToMulticast => {
                "solicited Neighbor Advertisement to a multicast destination"
            }
            MalformedReason::NdDadDestination => {
                "DAD probe not sent to a solicited-node multicast address"
            }
            MalformedReason::NdBadOption => {
                "Neighbor Discovery option of length 0, past the message, or not an Ethernet address"
            }
            MalformedReason::NdDadWithLinkLayer => {
                "DAD probe with a source link-layer address option"
            }
        }
    }
}

/// A valid ARP frame or ND message, as the record the kernel program would have written for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeighFrame {
    record: NeighRecord,
    link_direction: Option<Direction>,
}

impl NeighFrame {
    /// The fields of the frame in the kernel's record layout. The parts that do not come from
    /// the frame are zero: `ts_boot_ns`, `ifindex`, and `direction` (ingress).
    pub fn record(&self) -> &NeighRecord {
        &self.record
    }

    /// The direction the link layer recorded: Linux cooked captures mark frames the capturing
    /// host sent; Ethernet says nothing (`None`).
    pub fn link_direction(&self) -> Option<Direction> {
        self.link_direction
    }

    /// The observation of this frame, seen at `ts` on `iface` (`ifindex`) in `direction`.
    pub fn into_observation(
        self,
        ts: Timestamp,
        iface: Arc<str>,
        ifindex: u32,
        direction: Direction,
    ) -> Observation {
        // The record's own ifindex and direction are zero (ingress): set on the observation
        // rather than on a copy of the record, which a replay would make for every frame.
        let mut observation = Observation::from_record(&self.record, ts, iface);
        observation.ifindex = ifindex;
        observation.direction = direction;
        observation
    }
}

/// What the link header says besides the protocol: filled into the record once ARP or ND is
/// found.
#[derive(Clone, Copy)]
struct LinkHeader {
    eth_src: [u8; 6],
    eth_dst: [u8; 6],
    direction: Option<Direction>,
}

/// Decodes an Ethernet II frame (with or without VLAN tags, as on the wire or in a
/// `LINKTYPE_ETHERNET` capture).
pub fn decode_ethernet(frame: &[u8]) -> Decoded {
    let Some((eth_dst, rest)) = frame.split_first_chunk::<6>() else {
        return Decoded::Other;
    };
    let Some((eth_src, rest)) = rest.split_first_chunk::<6>() else {
        return Decoded::Other;
    };
    let Some((ether_type, payload)) = rest.split_first_chunk::<2>() else {
        return Decoded::Other;
    };
    let link = LinkHeader { eth_src: *eth_src, eth_dst: *eth_dst, direction: None };
    decode_payload(u16::from_be_bytes(*ether_type), payload, link)
}

/// Decodes a Linux cooked capture v1 frame: packet type (2), ARPHRD type (2), link-layer address
/// length (2), link-layer address (8, zero-padded), protocol (2).
pub fn decode_linux_sll(frame: &[u8]) -> Decoded {
    let Some((packet_type, rest)) = frame.split_first_chunk::<2>() else {
        return Decoded::Other;
    };
    let Some((_arphrd_type, rest)) = rest.split_first_chunk::<2>() else {
        return Decoded::Other;
    };
    let Some((address_len, rest)) = rest.split_first_chunk::<2>() else {
        return Decoded::Other;
    };
    let Some((address, rest)) = rest.split_first_chunk::<8>() else {
        return Decoded::Other;
    };
    let Some((protocol, payload)) = rest.split_first_chunk::<2>() else {
        return Decoded::Other;
    };
    let link = cooked_link_header(
        u16::from_be_bytes(*packet_type),
        u16::from_be_bytes(*address_len),
        address,
    );
    decode_payload(u16::from_be_bytes(*protocol), payload, link)
}

/// Decodes a Linux cooked capture v2 frame: protocol (2), reserved (2), interface index (4),
/// ARPHRD type (2), packet type (1), link-layer address length (1), link-layer address (8).
pub fn decode_linux_sll2(frame: &[u8]) -> Decoded {
    let Some((protocol, rest)) = frame.split_first_chunk::<2>() else {
        return Decoded::Other;
    };
    let Some((_reserved_and_ifindex, rest)) = rest.split_first_chunk::<6>() else {
        return Decoded::Other;
    };
    let Some((_arphrd_type, rest)) = rest.split_first_chunk::<2>() else {
        return Decoded::Other;
    };
    let Some((&packet_type, rest)) = rest.split_first() else {
        return Decoded::Other;
    };
    let Some((&address_len, rest)) = rest.split_first() else {
        return Decoded::Other;
    };
    let Some((address, payload)) = rest.split_first_chunk::<8>() else {
        return Decoded::Other;
    };
    let link = cooked_link_header(u16::from(packet_type), u16::from(address_len), address);
    decode_payload(u16::from_be_bytes(*protocol), payload, link)
}

fn cooked_link_header(packet_type: u16, address_len: u16, address: &[u8; 8]) -> LinkHeader {
    let mut eth_src = [0; 6];
    if address_len == 6 {
        eth_src.copy_from_slice(&address[..6]);
    }
    let eth_dst = if packet_type == PACKET_BROADCAST { [0xff; 6] } else { [0; 6] };
    let direction =
        if packet_type == PACKET_OUTGOING { Direction::Egress } else { Direction::Ingress };
    LinkHeader { eth_src, eth_dst, direction: Some(direction) }
}

fn is_vlan(ether_type: u16) -> bool {
    ether_type == ethertype::VLAN_8021Q || ether_type == ethertype::VLAN_8021AD
}

/// Everything after the link header's type field: the VLAN walk, then the ARP body or the IPv6
/// packet, step for step as in the kernel program's `observe`.
fn decode_payload(mut ether_type: u16, mut payload: &[u8], link: LinkHeader) -> Decoded {
    let mut vlan = [0u16; MAX_VLAN_TAGS];
    let mut vlan_count = 0;
    while is_vlan(ether_type) {
        // A tag cut short ends the frame as non-ARP, as in the kernel.
        let Some((tag, rest)) = payload.split_first_chunk::<4>() else {
            return Decoded::Other;
        };
        let inner_type = u16::from_be_bytes([tag[2], tag[3]]);
        if vlan_count == MAX_VLAN_TAGS {
            // The kernel peeks behind a third tag so that ARP hidden there is counted, not
            // ignored; it looks no deeper.
            return if inner_type == ethertype::ARP {
                Decoded::Malformed(MalformedReason::TooManyVlanTags)
            } else {
                Decoded::Other
            };
        }
        vlan[vlan_count] = u16::from_be_bytes([tag[0], tag[1]]) & VLAN_ID_MASK;
        vlan_count += 1;
        ether_type = inner_type;
        payload = rest;
    }

    if ether_type == ethertype::IPV6 {
        return decode_nd(payload, vlan, vlan_count, link);
    }
    if ether_type != ethertype::ARP {
        if ether_type < FIRST_ETHERTYPE && payload.starts_with(&LLC_SNAP_ARP) {
            return Decoded::Malformed(MalformedReason::LlcSnap);
        }
        return Decoded::Other;
    }
    let Some(arp) = arp_body(payload) else {
        return Decoded::Malformed(MalformedReason::Truncated);
    };
    if !ArpEthIpv4::is_supported(&fixed_header(&arp)) {
        return Decoded::Malformed(MalformedReason::Unsupported);
    }
    Decoded::Neigh(NeighFrame {
        record: NeighRecord {
            ts_boot_ns: 0,
            ifindex: 0,
            direction: direction::INGRESS,
            proto: proto::ARP,
            op: arp.op_code(),
            vlan_count: vlan_count as u8,
            vlan,
            eth_src: link.eth_src,
            eth_dst: link.eth_dst,
            sha: arp.sha,
            tha: arp.tha,
            spa: ipv4_field(arp.spa),
            tpa: ipv4_field(arp.tpa),
            ..NeighRecord::default()
        },
        link_direction: link.direction,
    })
}

/// The options of an ICMPv6 message, for the shared option walk.
struct SliceOptions<'a>(&'a [u8]);

impl OptionBytes for SliceOptions<'_> {
    fn header(&self, offset: usize) -> Option<[u8; 2]> {
        self.0.get(offset..)?.first_chunk().copied()
    }

    fn mac(&self, offset: usize) -> Option<[u8; 6]> {
        self.0.get(offset.checked_add(2)?..)?.first_chunk().copied()
    }
}

/// The IPv6 packet at the start of `packet`, in the steps of the kernel's `observe_nd`: not ND
/// unless ICMPv6 follows the fixed header directly and its type is NS or NA, then the shared
/// rule (`arpwatch_common::nd`) in its order.
fn decode_nd(
    packet: &[u8],
    vlan: [u16; MAX_VLAN_TAGS],
    vlan_count: usize,
    link: LinkHeader,
) -> Decoded {
    let Some(ip) = ipv6_header(packet) else {
        return Decoded::Other;
    };
    if !ip.carries_icmpv6() {
        return Decoded::Other;
    }
    let icmp = packet.get(IPV6_HEADER_LEN..).unwrap_or_default();
    if !icmp.first().is_some_and(|t| nd::is_nd_type(*t)) {
        return Decoded::Other;
    }
    if let Err(why) = nd::check_ip(&ip, icmp.len()) {
        return Decoded::Malformed(why.into());
    }
    let Some(msg) = nd_message(icmp) else {
        // Not reached: `check_ip` found at least 24 bytes. The kernel has the same branch.
        return Decoded::Malformed(MalformedReason::NdTruncated);
    };
    if let Err(why) = nd::check_message(&ip, &msg) {
        return Decoded::Malformed(why.into());
    }
    let link_layer =
        match nd::walk_options(&SliceOptions(icmp), ip.payload_len(), msg.link_layer_option()) {
            Ok(found) => found,
            Err(why) => return Decoded::Malformed(why.into()),
        };
    if let Err(why) = nd::check_options(&ip, &msg, &link_layer) {
        return Decoded::Malformed(why.into());
    }
    Decoded::Neigh(NeighFrame {
        record: NeighRecord {
            ts_boot_ns: 0,
            last_suppressed_ns: 0,
            ifindex: 0,
            suppressed: 0,
            direction: direction::INGRESS,
            proto: proto::NDP,
            op: msg.icmp_type,
            vlan_count: vlan_count as u8,
            vlan,
            eth_src: link.eth_src,
            eth_dst: link.eth_dst,
            sha: link_layer.mac,
            tha: [0; 6],
            nd_flags: msg.record_flags(),
            lladdr_present: u8::from(link_layer.present),
            _pad0: [0; 6],
            spa: ip.src,
            tpa: ip.dst,
            nd_target: msg.target,
        },
        link_direction: link.direction,
    })
}

/// The 40-byte IPv6 header at the start of `bytes`, if there are that many.
fn ipv6_header(bytes: &[u8]) -> Option<Ipv6Hdr> {
    let (version_class_flow, bytes) = bytes.split_first_chunk()?;
    let (payload_len, bytes) = bytes.split_first_chunk()?;
    let (&next_header, bytes) = bytes.split_first()?;
    let (&hop_limit, bytes) = bytes.split_first()?;
    let (src, bytes) = bytes.split_first_chunk()?;
    let (dst, _) = bytes.split_first_chunk()?;
    Some(Ipv6Hdr {
        version_class_flow: *version_class_flow,
        payload_len: *payload_len,
        next_header,
        hop_limit,
        src: *src,
        dst: *dst,
    })
}

/// The 24-byte fixed part of an NS or NA at the start of `bytes`, if there are that many.
fn nd_message(bytes: &[u8]) -> Option<NdMessage> {
    let (&icmp_type, bytes) = bytes.split_first()?;
    let (&code, bytes) = bytes.split_first()?;
    let (checksum, bytes) = bytes.split_first_chunk()?;
    let (&flags, bytes) = bytes.split_first()?;
    let (reserved, bytes) = bytes.split_first_chunk()?;
    let (target, _) = bytes.split_first_chunk()?;
    Some(NdMessage {
        icmp_type,
        code,
        checksum: *checksum,
        flags,
        reserved: *reserved,
        target: *target,
    })
}

/// The 28-byte Ethernet/IPv4 ARP body at the start of `bytes`, if there are that many. Extra
/// bytes (Ethernet padding, a trailer) are ignored, as in the kernel.
fn arp_body(bytes: &[u8]) -> Option<ArpEthIpv4> {
    let (htype, bytes) = bytes.split_first_chunk()?;
    let (ptype, bytes) = bytes.split_first_chunk()?;
    let (&hlen, bytes) = bytes.split_first()?;
    let (&plen, bytes) = bytes.split_first()?;
    let (op, bytes) = bytes.split_first_chunk()?;
    let (sha, bytes) = bytes.split_first_chunk()?;
    let (spa, bytes) = bytes.split_first_chunk()?;
    let (tha, bytes) = bytes.split_first_chunk()?;
    let (tpa, _) = bytes.split_first_chunk()?;
    Some(ArpEthIpv4 {
        htype: *htype,
        ptype: *ptype,
        hlen,
        plen,
        op: *op,
        sha: *sha,
        spa: *spa,
        tha: *tha,
        tpa: *tpa,
    })
}

/// The first [`ARP_FIXED_HEADER_LEN`] bytes of the body, the input of the shared validity rule.
fn fixed_header(arp: &ArpEthIpv4) -> [u8; ARP_FIXED_HEADER_LEN] {
    [
        arp.htype[0],
        arp.htype[1],
        arp.ptype[0],
        arp.ptype[1],
        arp.hlen,
        arp.plen,
        arp.op[0],
        arp.op[1],
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observation::{ArpOp, MacAddr};
    use crate::testkit::catalogue::{self, Expected};
    use crate::testkit::frames::{
        self, solicited_node, ArpFrame as Wire, NdFrame, BROADCAST, ETH_P_ARP, LLC_SNAP_ARP,
    };
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
    const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
    const IP_A: [u8; 4] = [192, 0, 2, 10];
    const IP_B: [u8; 4] = [192, 0, 2, 11];

    /// MAC_A at IP_A asks for IP_B, broadcast.
    fn request() -> Wire {
        Wire::request(MAC_A, IP_A, IP_B)
    }

    fn arp_frame(decoded: Decoded) -> NeighFrame {
        match decoded {
            Decoded::Neigh(frame) => frame,
            other => panic!("expected ARP, got {other:?}"),
        }
    }

    /// The frame's fields as an observation; `NeighFrame` has no second conversion to test.
    fn observe(frame: NeighFrame) -> Observation {
        frame.into_observation(Timestamp(0), "test".into(), 0, Direction::Ingress)
    }

    fn malformed(frame: &[u8]) -> MalformedReason {
        match decode_ethernet(frame) {
            Decoded::Malformed(reason) => reason,
            other => panic!("expected malformed, got {other:?}"),
        }
    }

    /// The crafted-frame table the kernel programs are held to (tests/kernel_differential.rs),
    /// here for the decoder alone: the same outcome, the same record, no link direction.
    #[test]
    fn every_catalogue_frame_decodes_as_the_table_says() {
        for case in catalogue::cases() {
            let decoded = decode_ethernet(&case.bytes);
            match (case.decoded, decoded) {
                (Expected::Valid(record), Decoded::Neigh(frame)) => {
                    assert_eq!(*frame.record(), record, "{}", case.name);
                    assert_eq!(frame.link_direction(), None, "{}", case.name);
                }
                (Expected::Malformed(want), Decoded::Malformed(got)) => {
                    assert_eq!(got, want, "{}", case.name)
                }
                (Expected::Other, Decoded::Other) => {}
                (want, got) => panic!("{}: expected {want:?}, decoded {got:?}", case.name),
            }
        }
    }

    #[test]
    fn request_keeps_every_field() {
        let frame = arp_frame(decode_ethernet(&request().bytes()));
        assert_eq!(observe(frame).op, ArpOp::Request);
        assert_eq!(observe(frame).vlan.as_slice(), &[] as &[u16]);
        assert_eq!(observe(frame).eth_dst, MacAddr::BROADCAST);
        assert_eq!(observe(frame).eth_src, MacAddr(MAC_A));
        assert_eq!(observe(frame).sha, MacAddr(MAC_A));
        assert_eq!(observe(frame).spa, Ipv4Addr::from(IP_A));
        assert_eq!(observe(frame).tha, MacAddr::ZERO);
        assert_eq!(observe(frame).tpa, Ipv4Addr::from(IP_B));
        assert_eq!(frame.link_direction(), None);
        assert_eq!(frame.record().ts_boot_ns, 0);
        assert_eq!(frame.record().ifindex, 0);
    }

    #[test]
    fn reply_becomes_an_observation_through_the_kernel_record() {
        let frame = arp_frame(decode_ethernet(&Wire::reply(MAC_B, IP_B, MAC_A, IP_A).bytes()));
        let obs =
            frame.into_observation(Timestamp::from_secs(7), "eth1".into(), 3, Direction::Egress);
        assert_eq!(obs.op, ArpOp::Reply);
        assert_eq!(obs.ts, Timestamp::from_secs(7));
        assert_eq!(&*obs.iface, "eth1");
        assert_eq!(obs.ifindex, 3);
        assert_eq!(obs.direction, Direction::Egress);
        assert_eq!(obs.eth_dst, MacAddr(MAC_A));
        assert_eq!(obs.sha, MacAddr(MAC_B));
        assert_eq!(obs.spa, Ipv4Addr::from(IP_B));
        assert_eq!(obs.tha, MacAddr(MAC_A));
        assert_eq!(obs.tpa, Ipv4Addr::from(IP_A));
        assert!(!obs.is_gratuitous());
    }

    #[test]
    fn gratuitous_request_is_decoded_like_any_request() {
        let frame = arp_frame(decode_ethernet(&Wire::gratuitous(1, MAC_A, IP_A).bytes()));
        let obs = frame.into_observation(Timestamp(0), "lo".into(), 1, Direction::Ingress);
        assert!(obs.is_gratuitous());
        assert!(!obs.is_probe());
    }

    #[test]
    fn ethernet_padding_after_the_body_is_ignored() {
        arp_frame(decode_ethernet(&request().padded().bytes()));
    }

    #[test]
    fn one_8021q_tag_gives_its_vlan_id() {
        let frame = request().tagged(&[(0x8100, 0xe07b)]).bytes();
        // Priority 7 and DEI 0 in the top bits of the TCI are not part of the id.
        assert_eq!(observe(arp_frame(decode_ethernet(&frame))).vlan.as_slice(), &[123]);
    }

    #[test]
    fn q_in_q_gives_outer_then_inner_vlan_id() {
        let frame = request().tagged(&[(0x88a8, 100), (0x8100, 200)]).bytes();
        assert_eq!(observe(arp_frame(decode_ethernet(&frame))).vlan.as_slice(), &[100, 200]);
    }

    #[test]
    fn arp_behind_a_third_tag_is_malformed_and_other_protocols_there_are_not_arp() {
        let tags = [(0x88a8, 1), (0x8100, 2), (0x8100, 3)];
        assert_eq!(malformed(&request().tagged(&tags).bytes()), MalformedReason::TooManyVlanTags);
        let ipv4 = frames::ethernet(BROADCAST, MAC_A, &tags, 0x0800, &[0; 40]);
        assert_eq!(decode_ethernet(&ipv4), Decoded::Other);
    }

    #[test]
    fn truncated_body_is_malformed() {
        for len in [0, 7, 8, 27] {
            let frame = request().cut(14 + len).bytes();
            assert_eq!(malformed(&frame), MalformedReason::Truncated, "body of {len} bytes");
        }
        let tagged = request().tagged(&[(0x8100, 5)]).cut(18 + 20).bytes();
        assert_eq!(malformed(&tagged), MalformedReason::Truncated);
    }

    #[test]
    fn truncated_vlan_tag_is_not_arp() {
        let frame = frames::ethernet(BROADCAST, MAC_A, &[], 0x8100, &[0x00, 0x05, 0x08]);
        assert_eq!(decode_ethernet(&frame), Decoded::Other);
    }

    #[test]
    fn wrong_address_lengths_types_or_op_are_unsupported() {
        type Bend = fn(&mut Wire);
        let cases: [(&str, Bend); 6] = [
            ("htype IEEE 802", |f| f.htype = 6),
            ("ptype IPv6", |f| f.ptype = 0x86dd),
            ("hlen", |f| f.hlen = 255),
            ("plen", |f| f.plen = 255),
            ("RARP request op", |f| f.op = 3),
            ("op 0", |f| f.op = 0),
        ];
        for (what, bend) in cases {
            let frame = request().with(bend).bytes();
            assert_eq!(malformed(&frame), MalformedReason::Unsupported, "{what}");
        }
    }

    #[test]
    fn rarp_ipv4_and_runts_are_not_arp() {
        let rarp = request().with(|f| f.ethertype = 0x8035).bytes();
        assert_eq!(decode_ethernet(&rarp), Decoded::Other);
        assert_eq!(decode_ethernet(&frames::ipv4_tcp_frame(MAC_A, MAC_B)), Decoded::Other);
        let full = request().bytes();
        for len in 0..14 {
            assert_eq!(decode_ethernet(&full[..len]), Decoded::Other, "runt of {len} bytes");
        }
    }

    #[test]
    fn llc_snap_arp_is_malformed_but_other_8023_frames_are_not_arp() {
        assert_eq!(malformed(&request().llc_snap_bytes()), MalformedReason::LlcSnap);
        let stp = [0x42, 0x42, 0x03, 0, 0, 0, 0, 0];
        assert_eq!(
            decode_ethernet(&frames::ethernet(BROADCAST, MAC_A, &[], 38, &stp)),
            Decoded::Other
        );
    }

    #[test]
    fn linux_sll_broadcast_request_takes_source_from_the_link_address() {
        let frame = arp_frame(decode_linux_sll(&request().linux_sll(frames::PACKET_BROADCAST)));
        assert_eq!(observe(frame).eth_src, MacAddr(MAC_A));
        assert_eq!(observe(frame).eth_dst, MacAddr::BROADCAST);
        assert_eq!(frame.link_direction(), Some(Direction::Ingress));
        assert_eq!(observe(frame).spa, Ipv4Addr::from(IP_A));
    }

    #[test]
    fn linux_sll_outgoing_reply_is_egress_with_unknown_destination() {
        let reply = Wire::reply(MAC_A, IP_A, MAC_B, IP_B);
        let frame = arp_frame(decode_linux_sll(&reply.linux_sll(frames::PACKET_OUTGOING)));
        assert_eq!(frame.link_direction(), Some(Direction::Egress));
        assert_eq!(observe(frame).eth_dst, MacAddr::ZERO);
        assert_eq!(observe(frame).op, ArpOp::Reply);
    }

    #[test]
    fn linux_sll_without_a_six_byte_address_has_zero_source() {
        let sll = frames::linux_sll(frames::PACKET_HOST, &[], ETH_P_ARP, &request().body());
        let frame = arp_frame(decode_linux_sll(&sll));
        assert_eq!(observe(frame).eth_src, MacAddr::ZERO);
        assert_eq!(observe(frame).eth_dst, MacAddr::ZERO);
    }

    #[test]
    fn linux_sll_vlan_protocol_walks_the_tag() {
        let sll = request().tagged(&[(0x8100, 42)]).linux_sll(frames::PACKET_BROADCAST);
        assert_eq!(observe(arp_frame(decode_linux_sll(&sll))).vlan.as_slice(), &[42]);
    }

    #[test]
    fn linux_sll_rejects_like_ethernet() {
        let bad = request().with(|f| f.hlen = 14).linux_sll(frames::PACKET_HOST);
        assert_eq!(decode_linux_sll(&bad), Decoded::Malformed(MalformedReason::Unsupported));
        let ipv4 = frames::linux_sll(frames::PACKET_HOST, &MAC_A, 0x0800, &[0; 28]);
        assert_eq!(decode_linux_sll(&ipv4), Decoded::Other);
        // ETH_P_802_2 (4): an 802.2 LLC header follows, here with SNAP and ARP.
        let snap = [&LLC_SNAP_ARP[..], &request().body()].concat();
        assert_eq!(
            decode_linux_sll(&frames::linux_sll(frames::PACKET_HOST, &MAC_A, 0x0004, &snap)),
            Decoded::Malformed(MalformedReason::LlcSnap)
        );
        let full = request().linux_sll(frames::PACKET_HOST);
        for len in 0..16 {
            assert_eq!(decode_linux_sll(&full[..len]), Decoded::Other, "runt of {len} bytes");
        }
    }

    #[test]
    fn linux_sll2_request_and_outgoing_reply() {
        let frame = arp_frame(decode_linux_sll2(&request().linux_sll2(frames::PACKET_BROADCAST)));
        assert_eq!(observe(frame).eth_src, MacAddr(MAC_A));
        assert_eq!(observe(frame).eth_dst, MacAddr::BROADCAST);
        assert_eq!(frame.link_direction(), Some(Direction::Ingress));

        let reply = Wire::reply(MAC_A, IP_A, MAC_B, IP_B);
        let frame = arp_frame(decode_linux_sll2(&reply.linux_sll2(frames::PACKET_OUTGOING)));
        assert_eq!(frame.link_direction(), Some(Direction::Egress));
        assert_eq!(observe(frame).tpa, Ipv4Addr::from(IP_B));

        // The cooked v2 header is 20 bytes: 10 bytes of body.
        let truncated = request().cut(20 + 10).linux_sll2(frames::PACKET_HOST);
        assert_eq!(decode_linux_sll2(&truncated), Decoded::Malformed(MalformedReason::Truncated));
        let full = request().linux_sll2(frames::PACKET_HOST);
        for len in 0..20 {
            assert_eq!(decode_linux_sll2(&full[..len]), Decoded::Other, "runt of {len} bytes");
        }
    }

    fn ns() -> NdFrame {
        NdFrame::solicitation(MAC_A, catalogue::LINK_LOCAL_A, catalogue::VIP6)
    }

    #[test]
    fn neighbor_solicitation_keeps_every_field_and_reads_as_a_request() {
        let frame = arp_frame(decode_ethernet(&ns().bytes()));
        assert_eq!(*frame.record(), ns().expected_record());
        let obs = observe(frame);
        assert_eq!(obs.op, ArpOp::Request);
        assert_eq!(obs.spa, IpAddr::from(catalogue::LINK_LOCAL_A));
        assert_eq!(obs.tpa, IpAddr::from(catalogue::VIP6));
        assert_eq!(obs.sha, MacAddr(MAC_A));
        let nd = obs.nd.expect("an ND observation");
        assert_eq!(nd.lladdr, Some(MacAddr(MAC_A)));
        assert_eq!(nd.dst, Ipv6Addr::from(solicited_node(catalogue::VIP6)));
    }

    #[test]
    fn unsolicited_advertisement_reads_as_a_gratuitous_reply_for_its_target() {
        let na = NdFrame::unsolicited(MAC_B, catalogue::VIP6);
        let obs = observe(arp_frame(decode_ethernet(&na.bytes())));
        assert_eq!(obs.op, ArpOp::Reply);
        assert_eq!(obs.spa, IpAddr::from(catalogue::VIP6));
        assert_eq!(obs.sha, MacAddr(MAC_B));
        assert!(obs.is_gratuitous());
        assert_eq!(obs.override_flag(), Some(true));
    }

    #[test]
    fn dad_probe_reads_as_a_probe() {
        let obs = observe(arp_frame(decode_ethernet(
            &NdFrame::dad_probe(MAC_A, catalogue::VIP6).bytes(),
        )));
        assert!(obs.is_probe());
        assert_eq!(obs.nd.and_then(|nd| nd.lladdr), None);
    }

    #[test]
    fn nd_in_linux_cooked_captures_decodes_like_on_ethernet() {
        let sll = ns().linux_sll(frames::PACKET_MULTICAST);
        let frame = arp_frame(decode_linux_sll(&sll));
        assert_eq!(frame.link_direction(), Some(Direction::Ingress));
        let want = NeighRecord { eth_dst: [0; 6], ..ns().expected_record() };
        assert_eq!(*frame.record(), want);

        let na = NdFrame::advertisement(MAC_B, catalogue::VIP6, MAC_A, catalogue::LINK_LOCAL_A);
        let frame = arp_frame(decode_linux_sll2(&na.linux_sll2(frames::PACKET_OUTGOING)));
        assert_eq!(frame.link_direction(), Some(Direction::Egress));
        assert_eq!(*frame.record(), NeighRecord { eth_dst: [0; 6], ..na.expected_record() });

        let tagged = ns().tagged(&[(0x8100, 42)]).linux_sll(frames::PACKET_MULTICAST);
        assert_eq!(observe(arp_frame(decode_linux_sll(&tagged))).vlan.as_slice(), &[42]);

        let bad = ns().with(|f| f.hop_limit = 64).linux_sll2(frames::PACKET_HOST);
        assert_eq!(decode_linux_sll2(&bad), Decoded::Malformed(MalformedReason::NdHopLimit));
        let tcp =
            frames::linux_sll(frames::PACKET_HOST, &MAC_A, 0x86dd, &frames::ipv6_tcp_packet());
        assert_eq!(decode_linux_sll(&tcp), Decoded::Other);
    }

    #[test]
    fn every_nd_reason_maps_to_its_own_malformed_reason_with_a_text() {
        let mut seen = std::collections::HashSet::new();
        for why in arpwatch_common::nd::NdInvalid::ALL {
            let reason = MalformedReason::from(why);
            assert!(seen.insert(reason), "{why:?}");
            assert!(!reason.as_str().is_empty());
        }
    }

    #[test]
    fn every_prefix_of_an_nd_frame_is_other_or_malformed_never_valid() {
        // Cut anywhere before its end, a valid NS is never recorded: the IPv6 payload length
        // says how long the message is.
        let full = ns().bytes();
        for len in 0..full.len() {
            let decoded = decode_ethernet(&full[..len]);
            assert!(!matches!(decoded, Decoded::Neigh(_)), "cut to {len}: {decoded:?}");
            if len > 14 + 40 {
                assert_eq!(decoded, Decoded::Malformed(MalformedReason::NdTruncated), "{len}");
            }
        }
    }

    #[test]
    fn link_types_map_from_their_pcap_numbers() {
        assert_eq!(LinkType::from_code(1), Some(LinkType::Ethernet));
        assert_eq!(LinkType::from_code(113), Some(LinkType::LinuxSll));
        assert_eq!(LinkType::from_code(276), Some(LinkType::LinuxSll2));
        assert_eq!(LinkType::from_code(105), None); // 802.11
        let frame = request().bytes();
        assert_eq!(LinkType::Ethernet.decode(&frame), decode_ethernet(&frame));
    }

    /// Every prefix of every crafted frame, and pseudo-random frames biased towards the
    /// interesting type values, decode without panicking on every link type.
    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut samples = vec![
            request().tagged(&[(0x88a8, 1), (0x8100, 2)]).bytes(),
            request().tagged(&[(0x88a8, 1), (0x8100, 2), (0x8100, 3)]).bytes(),
            frames::linux_sll(frames::PACKET_OUTGOING, &MAC_A, 0x8100, &[0, 1, 0x08, 0x06]),
            request().linux_sll2(frames::PACKET_BROADCAST),
            ns().linux_sll(frames::PACKET_MULTICAST),
            ns().tagged(&[(0x8100, 1)]).linux_sll2(frames::PACKET_HOST),
        ];
        samples.extend(catalogue::cases().into_iter().map(|case| case.bytes));
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            let mut frame = Vec::new();
            for _ in 0..(state % 80) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let byte = match state % 9 {
                    0 => 0x08,
                    1 => 0x06,
                    2 => 0x81,
                    3 => 0x86,
                    4 => 0xdd,
                    5 => 58,
                    6 => 135,
                    7 => 255,
                    _ => (state >> 32) as u8,
                };
                frame.push(byte);
            }
            samples.push(frame);
        }
        for sample in &samples {
            for len in 0..=sample.len() {
                for link in [LinkType::Ethernet, LinkType::LinuxSll, LinkType::LinuxSll2] {
                    link.decode(&sample[..len]);
                }
            }
        }
    }
}
