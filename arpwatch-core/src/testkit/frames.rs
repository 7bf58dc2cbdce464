//! Frames as bytes on the wire: [`ArpFrame`], an Ethernet/ARP frame whose every field can be bent
//! out of shape, the same frame as a Linux cooked capture (v1 and v2) or in 802.3 LLC/SNAP,
//! [`NdFrame`], an IPv6 Neighbor Solicitation or Advertisement bendable the same way, the other
//! IPv6 frames a Neighbor Discovery parser must leave alone (Router Advertisement, MLD, TCP), and
//! the common non-ARP frame ([`ipv4_tcp_frame`]). The kernel tests, the decoder and replay tests,
//! the benches, the storm generator and the fuzz seeds all build their frames here.

use arpwatch_common::nd::{option, NEXT_HEADER_ICMPV6};
use arpwatch_common::{direction, ipv4_field, na_flag, op, proto, NeighRecord, MAX_VLAN_TAGS};

pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_RARP: u16 = 0x8035;
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const TPID_8021Q: u16 = 0x8100;
pub const TPID_8021AD: u16 = 0x88a8;

pub const BROADCAST: [u8; 6] = [0xff; 6];
/// The shortest Ethernet frame a NIC sends (without the FCS): shorter ones are padded to it.
pub const ETHERNET_MIN_LEN: usize = 60;
/// An 802.2 LLC header with SNAP and the zero OUI carrying ethertype ARP, as 802.3 frames carry it.
pub const LLC_SNAP_ARP: [u8; 8] = [0xaa, 0xaa, 0x03, 0x00, 0x00, 0x00, 0x08, 0x06];

/// `sll_pkttype` values of Linux cooked captures (`<linux/if_packet.h>`).
pub const PACKET_HOST: u8 = 0;
pub const PACKET_BROADCAST: u8 = 1;
pub const PACKET_MULTICAST: u8 = 2;
pub const PACKET_OUTGOING: u8 = 4;
/// `ARPHRD_ETHER`, the device type a cooked capture records for Ethernet.
const ARPHRD_ETHER: u16 = 1;

/// An Ethernet frame carrying an ARP body whose every field can be bent out of shape. Built with
/// [`request`](Self::request), [`reply`](Self::reply) or [`gratuitous`](Self::gratuitous), then
/// changed field by field; [`bytes`](Self::bytes) lays it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArpFrame {
    pub eth_dst: [u8; 6],
    pub eth_src: [u8; 6],
    /// (tpid, tci), outermost first.
    pub tags: Vec<(u16, u16)>,
    pub ethertype: u16,
    pub htype: u16,
    pub ptype: u16,
    pub hlen: u8,
    pub plen: u8,
    pub op: u16,
    pub sha: [u8; 6],
    pub spa: [u8; 4],
    pub tha: [u8; 6],
    pub tpa: [u8; 4],
    /// Zero bytes after the body up to this length, as a NIC pads a short frame.
    pub pad_to: Option<usize>,
    /// Cut the laid-out frame (whatever its link layer) to this many bytes.
    pub truncate: Option<usize>,
}

impl ArpFrame {
    /// `sha`/`spa` asks who has `tpa`, broadcast.
    pub fn request(sha: [u8; 6], spa: [u8; 4], tpa: [u8; 4]) -> Self {
        ArpFrame {
            eth_dst: BROADCAST,
            eth_src: sha,
            tags: Vec::new(),
            ethertype: ETH_P_ARP,
            htype: 1,
            ptype: ETH_P_IP,
            hlen: 6,
            plen: 4,
            op: 1,
            sha,
            spa,
            tha: [0; 6],
            tpa,
            pad_to: None,
            truncate: None,
        }
    }

    /// `sha` tells `tha`/`tpa` that `spa` is at `sha`, unicast.
    pub fn reply(sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) -> Self {
        ArpFrame { eth_dst: tha, op: 2, tha, ..ArpFrame::request(sha, spa, tpa) }
    }

    /// A gratuitous announcement of `ip` by `mac` (request or reply), broadcast.
    pub fn gratuitous(op: u16, mac: [u8; 6], ip: [u8; 4]) -> Self {
        ArpFrame {
            op,
            tha: if op == 2 { BROADCAST } else { [0; 6] },
            ..ArpFrame::request(mac, ip, ip)
        }
    }

    /// The frame with these VLAN tags, (tpid, tci) outermost first.
    pub fn tagged(mut self, tags: &[(u16, u16)]) -> Self {
        self.tags = tags.to_vec();
        self
    }

    /// The frame padded with zeros to the Ethernet minimum of 60 bytes.
    pub fn padded(mut self) -> Self {
        self.pad_to = Some(ETHERNET_MIN_LEN);
        self
    }

    /// The frame cut to `len` bytes.
    pub fn cut(mut self, len: usize) -> Self {
        self.truncate = Some(len);
        self
    }

    /// The frame changed by `f`, for one bent field: `request.with(|f| f.hlen = 8)`.
    pub fn with(mut self, f: impl FnOnce(&mut ArpFrame)) -> Self {
        f(&mut self);
        self
    }

    /// The 28-byte ARP body, uncut.
    pub fn body(&self) -> [u8; 28] {
        let mut b = [0u8; 28];
        b[0..2].copy_from_slice(&self.htype.to_be_bytes());
        b[2..4].copy_from_slice(&self.ptype.to_be_bytes());
        b[4] = self.hlen;
        b[5] = self.plen;
        b[6..8].copy_from_slice(&self.op.to_be_bytes());
        b[8..14].copy_from_slice(&self.sha);
        b[14..18].copy_from_slice(&self.spa);
        b[18..24].copy_from_slice(&self.tha);
        b[24..28].copy_from_slice(&self.tpa);
        b
    }

    /// What follows the link header's type field: the TCI and type of each tag after the first,
    /// then the body and the padding. The type field itself is the first tag's TPID, or the
    /// ethertype when there is no tag.
    fn after_type(&self) -> (u16, Vec<u8>) {
        let mut rest = Vec::with_capacity(64);
        let mut types = self.tags.iter().map(|(tpid, _)| *tpid).chain([self.ethertype]);
        let first = types.next().unwrap_or(self.ethertype);
        for ((_, tci), inner) in self.tags.iter().zip(types) {
            rest.extend_from_slice(&tci.to_be_bytes());
            rest.extend_from_slice(&inner.to_be_bytes());
        }
        rest.extend_from_slice(&self.body());
        (first, rest)
    }

    fn finish(&self, mut frame: Vec<u8>) -> Vec<u8> {
        if let Some(len) = self.pad_to {
            if frame.len() < len {
                frame.resize(len, 0);
            }
        }
        if let Some(len) = self.truncate {
            frame.truncate(len);
        }
        frame
    }

    /// The Ethernet II frame.
    pub fn bytes(&self) -> Vec<u8> {
        let (first, rest) = self.after_type();
        self.finish(ethernet(self.eth_dst, self.eth_src, &[], first, &rest))
    }

    /// The frame written into `buf` (padding and truncation applied); returns its length. Does
    /// not allocate: the storm generator builds millions of frames a second with it.
    ///
    /// # Panics
    /// When `buf` is shorter than the frame.
    pub fn write_to(&self, buf: &mut [u8]) -> usize {
        let mut len = 0;
        let mut put = |bytes: &[u8]| {
            buf[len..len + bytes.len()].copy_from_slice(bytes);
            len += bytes.len();
        };
        put(&self.eth_dst);
        put(&self.eth_src);
        for (tpid, tci) in &self.tags {
            put(&tpid.to_be_bytes());
            put(&tci.to_be_bytes());
        }
        put(&self.ethertype.to_be_bytes());
        put(&self.body());
        if let Some(pad) = self.pad_to {
            if len < pad {
                buf[len..pad].fill(0);
                len = pad;
            }
        }
        self.truncate.map_or(len, |cut| cut.min(len))
    }

    /// The same ARP packet in 802.3 encapsulation: a length instead of the type, then an LLC/SNAP
    /// header carrying ethertype ARP. Tags come before the length.
    pub fn llc_snap_bytes(&self) -> Vec<u8> {
        let mut payload = LLC_SNAP_ARP.to_vec();
        payload.extend_from_slice(&self.body());
        let tags: Vec<_> = self.tags.clone();
        self.finish(ethernet(self.eth_dst, self.eth_src, &tags, payload.len() as u16, &payload))
    }

    /// The frame as a Linux cooked capture v1 records it (`LINKTYPE_LINUX_SLL`): `packet_type`
    /// and `eth_src` as the link-layer address, then the type field and what follows it.
    pub fn linux_sll(&self, packet_type: u8) -> Vec<u8> {
        let (first, rest) = self.after_type();
        self.finish(linux_sll(packet_type, &self.eth_src, first, &rest))
    }

    /// The frame as a Linux cooked capture v2 records it (`LINKTYPE_LINUX_SLL2`).
    pub fn linux_sll2(&self, packet_type: u8) -> Vec<u8> {
        let (first, rest) = self.after_type();
        self.finish(linux_sll2(packet_type, &self.eth_src, first, &rest))
    }

    /// The record a kernel program writes for this frame, and the decoder returns for it, if it
    /// is valid: the frame's fields with `ts_boot_ns` and `ifindex` 0, ingress. VLAN ids are the
    /// low 12 bits of each TCI.
    pub fn expected_record(&self) -> NeighRecord {
        NeighRecord {
            ts_boot_ns: 0,
            last_suppressed_ns: 0,
            ifindex: 0,
            suppressed: 0,
            direction: direction::INGRESS,
            proto: proto::ARP,
            op: self.op as u8,
            vlan_count: self.tags.len().min(MAX_VLAN_TAGS) as u8,
            vlan: vlan_ids(&self.tags),
            eth_src: self.eth_src,
            eth_dst: self.eth_dst,
            sha: self.sha,
            tha: self.tha,
            nd_flags: 0,
            lladdr_present: 0,
            _pad0: [0; 6],
            spa: ipv4_field(self.spa),
            tpa: ipv4_field(self.tpa),
            nd_target: [0; 16],
        }
    }
}

/// The VLAN ids of `tags` as a record has them: the low 12 bits of each TCI, outermost first.
fn vlan_ids(tags: &[(u16, u16)]) -> [u16; MAX_VLAN_TAGS] {
    let mut vlan = [0u16; MAX_VLAN_TAGS];
    for (slot, (_, tci)) in vlan.iter_mut().zip(tags) {
        *slot = tci & 0x0fff;
    }
    vlan
}

/// An IPv6 address as 16 bytes from its text (`"2001:db8::10"`, `"fe80::a"`).
///
/// # Panics
/// On anything but an IPv6 address.
pub fn ipv6_bytes(ip: &str) -> [u8; 16] {
    ip.parse::<std::net::Ipv6Addr>().unwrap_or_else(|e| panic!("{ip:?}: {e}")).octets()
}

/// The unspecified address `::`, the source of a duplicate address detection probe.
pub const UNSPECIFIED: [u8; 16] = [0; 16];
/// `ff02::1`, all nodes: where an unsolicited Neighbor Advertisement goes.
pub const ALL_NODES: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

/// The solicited-node multicast address of `target`: `ff02::1:ff` and its last 24 bits.
pub fn solicited_node(target: [u8; 16]) -> [u8; 16] {
    let mut addr = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0];
    addr[13..].copy_from_slice(&target[13..]);
    addr
}

/// The Ethernet multicast address an IPv6 multicast `addr` maps to: `33:33` and its last 32 bits.
pub fn multicast_mac(addr: [u8; 16]) -> [u8; 6] {
    [0x33, 0x33, addr[12], addr[13], addr[14], addr[15]]
}

/// One option of a Neighbor Discovery message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NdOption {
    /// A source (type 1) or target (type 2) link-layer address option: one unit, a MAC.
    LinkLayer { kind: u8, mac: [u8; 6] },
    /// A Nonce option (type 14, one unit), as Linux's DAD probes carry.
    Nonce([u8; 6]),
    /// Any bytes, laid out as given: for options of length 0, overlong ones and the like.
    Raw(Vec<u8>),
}

impl NdOption {
    pub fn source(mac: [u8; 6]) -> NdOption {
        NdOption::LinkLayer { kind: option::SOURCE_LINK_LAYER, mac }
    }

    pub fn target(mac: [u8; 6]) -> NdOption {
        NdOption::LinkLayer { kind: option::TARGET_LINK_LAYER, mac }
    }

    fn bytes(&self) -> Vec<u8> {
        match self {
            NdOption::LinkLayer { kind, mac } => [&[*kind, 1][..], mac].concat(),
            NdOption::Nonce(nonce) => [&[option::NONCE, 1][..], nonce].concat(),
            NdOption::Raw(bytes) => bytes.clone(),
        }
    }
}

/// An Ethernet frame carrying an IPv6 Neighbor Solicitation or Advertisement whose every field
/// can be bent out of shape. Built with [`solicitation`](Self::solicitation),
/// [`dad_probe`](Self::dad_probe), [`advertisement`](Self::advertisement) or
/// [`unsolicited`](Self::unsolicited), then changed field by field; [`bytes`](Self::bytes) lays it
/// out with a correct ICMPv6 checksum (over the message as built, before any cut).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NdFrame {
    pub eth_dst: [u8; 6],
    pub eth_src: [u8; 6],
    /// (tpid, tci), outermost first.
    pub tags: Vec<(u16, u16)>,
    pub ethertype: u16,
    /// The first byte of the IPv6 header: version (high 4 bits) and traffic class.
    pub version_byte: u8,
    pub hop_limit: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// A Hop-by-Hop Options header (8 bytes, PadN) between IPv6 and ICMPv6.
    pub hop_by_hop: bool,
    pub icmp_type: u8,
    pub code: u8,
    /// The first byte after the checksum: an NA's R, S, O flags.
    pub flags: u8,
    pub target: [u8; 16],
    pub options: Vec<NdOption>,
    /// The IPv6 payload length to write instead of the true one.
    pub payload_len: Option<u16>,
    /// Zero bytes after the message up to this length, as a NIC pads a short frame.
    pub pad_to: Option<usize>,
    /// Cut the laid-out frame (whatever its link layer) to this many bytes.
    pub truncate: Option<usize>,
}

impl NdFrame {
    /// `mac` at `src` asks who has `target`, to the target's solicited-node address, with its
    /// source link-layer address.
    pub fn solicitation(mac: [u8; 6], src: [u8; 16], target: [u8; 16]) -> Self {
        let dst = solicited_node(target);
        NdFrame {
            eth_dst: multicast_mac(dst),
            eth_src: mac,
            tags: Vec::new(),
            ethertype: ETH_P_IPV6,
            version_byte: 0x60,
            hop_limit: 255,
            src,
            dst,
            hop_by_hop: false,
            icmp_type: op::NEIGHBOR_SOLICITATION,
            code: 0,
            flags: 0,
            target,
            options: vec![NdOption::source(mac)],
            payload_len: None,
            pad_to: None,
            truncate: None,
        }
    }

    /// A duplicate address detection probe by `mac` for `target`: from `::` to the solicited-node
    /// address, without a source link-layer address option.
    pub fn dad_probe(mac: [u8; 6], target: [u8; 16]) -> Self {
        NdFrame {
            src: UNSPECIFIED,
            options: Vec::new(),
            ..NdFrame::solicitation(mac, target, target)
        }
    }

    /// `mac` answers `dst_mac`/`dst` that `target` is at `mac`: solicited and override (S, O),
    /// with the target link-layer address.
    pub fn advertisement(mac: [u8; 6], target: [u8; 16], dst_mac: [u8; 6], dst: [u8; 16]) -> Self {
        NdFrame {
            eth_dst: dst_mac,
            src: target,
            dst,
            icmp_type: op::NEIGHBOR_ADVERTISEMENT,
            flags: na_flag::SOLICITED | na_flag::OVERRIDE,
            options: vec![NdOption::target(mac)],
            ..NdFrame::solicitation(mac, target, target)
        }
    }

    /// `mac` announces `target` to all nodes: unsolicited, override (O), with the target
    /// link-layer address (what `ndisc_notify` and a failover send).
    pub fn unsolicited(mac: [u8; 6], target: [u8; 16]) -> Self {
        NdFrame {
            flags: na_flag::OVERRIDE,
            ..NdFrame::advertisement(mac, target, multicast_mac(ALL_NODES), ALL_NODES)
        }
    }

    /// The frame with these VLAN tags, (tpid, tci) outermost first.
    pub fn tagged(mut self, tags: &[(u16, u16)]) -> Self {
        self.tags = tags.to_vec();
        self
    }

    /// The message with these options instead of its own.
    pub fn options(mut self, options: Vec<NdOption>) -> Self {
        self.options = options;
        self
    }

    /// The frame padded with zeros to the Ethernet minimum of 60 bytes.
    pub fn padded(mut self) -> Self {
        self.pad_to = Some(ETHERNET_MIN_LEN);
        self
    }

    /// The frame cut to `len` bytes.
    pub fn cut(mut self, len: usize) -> Self {
        self.truncate = Some(len);
        self
    }

    /// The frame changed by `f`, for one bent field: `ns.with(|f| f.hop_limit = 254)`.
    pub fn with(mut self, f: impl FnOnce(&mut NdFrame)) -> Self {
        f(&mut self);
        self
    }

    /// The ICMPv6 message: header, flags and reserved, target, options; checksum included.
    pub fn message(&self) -> Vec<u8> {
        let mut m = vec![self.icmp_type, self.code, 0, 0, self.flags, 0, 0, 0];
        m.extend_from_slice(&self.target);
        for o in &self.options {
            m.extend(o.bytes());
        }
        let sum = icmpv6_checksum(self.src, self.dst, &m);
        m[2..4].copy_from_slice(&sum.to_be_bytes());
        m
    }

    /// The IPv6 packet: header (with the payload length as bent), the Hop-by-Hop header if any,
    /// the message.
    pub fn packet(&self) -> Vec<u8> {
        let mut payload = Vec::new();
        if self.hop_by_hop {
            // Next header ICMPv6, length 0 (8 bytes), a PadN option of 4 bytes of padding.
            payload.extend_from_slice(&[NEXT_HEADER_ICMPV6, 0, 1, 4, 0, 0, 0, 0]);
        }
        payload.extend(self.message());
        let next_header = if self.hop_by_hop { 0 } else { NEXT_HEADER_ICMPV6 };
        let mut p = ipv6_packet(next_header, self.hop_limit, self.src, self.dst, &payload);
        p[0] = self.version_byte;
        if let Some(len) = self.payload_len {
            p[4..6].copy_from_slice(&len.to_be_bytes());
        }
        p
    }

    /// What follows the link header's type field, as [`ArpFrame`] lays it out.
    fn after_type(&self) -> (u16, Vec<u8>) {
        let mut rest = Vec::with_capacity(128);
        let mut types = self.tags.iter().map(|(tpid, _)| *tpid).chain([self.ethertype]);
        let first = types.next().unwrap_or(self.ethertype);
        for ((_, tci), inner) in self.tags.iter().zip(types) {
            rest.extend_from_slice(&tci.to_be_bytes());
            rest.extend_from_slice(&inner.to_be_bytes());
        }
        rest.extend(self.packet());
        (first, rest)
    }

    fn finish(&self, mut frame: Vec<u8>) -> Vec<u8> {
        if let Some(len) = self.pad_to {
            if frame.len() < len {
                frame.resize(len, 0);
            }
        }
        if let Some(len) = self.truncate {
            frame.truncate(len);
        }
        frame
    }

    /// The Ethernet II frame.
    pub fn bytes(&self) -> Vec<u8> {
        let (first, rest) = self.after_type();
        self.finish(ethernet(self.eth_dst, self.eth_src, &[], first, &rest))
    }

    /// The frame as a Linux cooked capture v1 records it, `eth_src` as the link-layer address.
    pub fn linux_sll(&self, packet_type: u8) -> Vec<u8> {
        let (first, rest) = self.after_type();
        self.finish(linux_sll(packet_type, &self.eth_src, first, &rest))
    }

    /// The frame as a Linux cooked capture v2 records it.
    pub fn linux_sll2(&self, packet_type: u8) -> Vec<u8> {
        let (first, rest) = self.after_type();
        self.finish(linux_sll2(packet_type, &self.eth_src, first, &rest))
    }

    /// The link-layer address the message carries as a record has it: its first link-layer
    /// option of the kind its type uses (source for an NS, target for an NA).
    pub fn lladdr(&self) -> Option<[u8; 6]> {
        let wanted = if self.icmp_type == op::NEIGHBOR_ADVERTISEMENT {
            option::TARGET_LINK_LAYER
        } else {
            option::SOURCE_LINK_LAYER
        };
        self.options.iter().find_map(|o| match o {
            NdOption::LinkLayer { kind, mac } if *kind == wanted => Some(*mac),
            _ => None,
        })
    }

    /// The record a kernel program writes for this frame, and the decoder returns for it, if it
    /// is valid: `ts_boot_ns` and `ifindex` 0, ingress.
    pub fn expected_record(&self) -> NeighRecord {
        let lladdr = self.lladdr();
        NeighRecord {
            ts_boot_ns: 0,
            last_suppressed_ns: 0,
            ifindex: 0,
            suppressed: 0,
            direction: direction::INGRESS,
            proto: proto::NDP,
            op: self.icmp_type,
            vlan_count: self.tags.len().min(MAX_VLAN_TAGS) as u8,
            vlan: vlan_ids(&self.tags),
            eth_src: self.eth_src,
            eth_dst: self.eth_dst,
            sha: lladdr.unwrap_or([0; 6]),
            tha: [0; 6],
            nd_flags: if self.icmp_type == op::NEIGHBOR_ADVERTISEMENT {
                self.flags & na_flag::ALL
            } else {
                0
            },
            lladdr_present: u8::from(lladdr.is_some()),
            _pad0: [0; 6],
            spa: self.src,
            tpa: self.dst,
            nd_target: self.target,
        }
    }
}

/// The ICMPv6 checksum of `message` (its checksum field zero) from `src` to `dst` (RFC 8200 §8.1).
pub fn icmpv6_checksum(src: [u8; 16], dst: [u8; 16], message: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
        }
    };
    add(&src);
    add(&dst);
    add(&(message.len() as u32).to_be_bytes());
    add(&[0, 0, 0, NEXT_HEADER_ICMPV6]);
    add(message);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv6 header (version 6, payload length of `payload`) followed by `payload`.
pub fn ipv6_packet(
    next_header: u8,
    hop_limit: u8,
    src: [u8; 16],
    dst: [u8; 16],
    payload: &[u8],
) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.push(next_header);
    p.push(hop_limit);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(payload);
    p
}

/// An ICMPv6 message of `icmp_type` (code 0) with `body` after its 4-byte header, checksummed.
fn icmpv6_message(src: [u8; 16], dst: [u8; 16], icmp_type: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![icmp_type, 0, 0, 0];
    m.extend_from_slice(body);
    let sum = icmpv6_checksum(src, dst, &m);
    m[2..4].copy_from_slice(&sum.to_be_bytes());
    m
}

/// A Router Advertisement (ICMPv6 134) from `mac` at link-local `src` to all nodes, with its
/// source link-layer address: ND, but not a message arpwatch records.
pub fn router_advertisement_frame(mac: [u8; 6], src: [u8; 16]) -> Vec<u8> {
    // Current hop limit 64, no flags, router lifetime 1800 s, reachable and retransmit timers 0,
    // then the source link-layer address option.
    let mut body = vec![64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
    body.extend(NdOption::source(mac).bytes());
    let message = icmpv6_message(src, ALL_NODES, 134, &body);
    let packet = ipv6_packet(NEXT_HEADER_ICMPV6, 255, src, ALL_NODES, &message);
    ethernet(multicast_mac(ALL_NODES), mac, &[], ETH_P_IPV6, &packet)
}

/// An MLDv2 report (ICMPv6 143) from `mac` at link-local `src` to `ff02::16`, behind a Hop-by-Hop
/// header with a router alert, hop limit 1: what every IPv6 host sends when it joins a
/// solicited-node group. Not ND.
pub fn mld_report_frame(mac: [u8; 6], src: [u8; 16]) -> Vec<u8> {
    let dst = ipv6_bytes("ff02::16");
    // One record: change to exclude mode (4) for the solicited-node group of `src`.
    let mut body = vec![0, 0, 0, 1, 4, 0, 0, 0];
    body.extend_from_slice(&solicited_node(src));
    let message = icmpv6_message(src, dst, 143, &body);
    // Hop-by-Hop: next header ICMPv6, length 0, router alert (MLD), PadN of 0 bytes.
    let mut payload = vec![NEXT_HEADER_ICMPV6, 0, 5, 2, 0, 0, 1, 0];
    payload.extend(message);
    let packet = ipv6_packet(0, 1, src, dst, &payload);
    ethernet(multicast_mac(dst), mac, &[], ETH_P_IPV6, &packet)
}

/// An IPv6 header and a TCP SYN, 2001:db8::1:40000 -> 2001:db8::2:80: the common IPv6 frame
/// that is not ND.
pub fn ipv6_tcp_packet() -> Vec<u8> {
    let tcp = [0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0];
    ipv6_packet(6, 64, ipv6_bytes("2001:db8::1"), ipv6_bytes("2001:db8::2"), &tcp)
}

/// A minimal IPv6/TCP SYN frame from `src` to `dst` (74 bytes).
pub fn ipv6_tcp_frame(src: [u8; 6], dst: [u8; 6]) -> Vec<u8> {
    ethernet(dst, src, &[], ETH_P_IPV6, &ipv6_tcp_packet())
}

/// An Ethernet II frame: destination, source, each tag `(tpid, tci)`, the type and `payload`.
pub fn ethernet(
    dst: [u8; 6],
    src: [u8; 6],
    tags: &[(u16, u16)],
    ether_type: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut frame = Vec::with_capacity(14 + 4 * tags.len() + payload.len());
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&src);
    for (tpid, tci) in tags {
        frame.extend_from_slice(&tpid.to_be_bytes());
        frame.extend_from_slice(&tci.to_be_bytes());
    }
    frame.extend_from_slice(&ether_type.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// `frame` padded with zeros to the Ethernet minimum, as on the wire.
pub fn padded(mut frame: Vec<u8>) -> Vec<u8> {
    if frame.len() < ETHERNET_MIN_LEN {
        frame.resize(ETHERNET_MIN_LEN, 0);
    }
    frame
}

/// A Linux cooked capture v1 frame: packet type, `ARPHRD_ETHER`, the link-layer address (its
/// length, then 8 bytes zero-padded), `protocol`, then `payload`.
pub fn linux_sll(packet_type: u8, address: &[u8], protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = u16::from(packet_type).to_be_bytes().to_vec();
    frame.extend_from_slice(&ARPHRD_ETHER.to_be_bytes());
    frame.extend_from_slice(&(address.len() as u16).to_be_bytes());
    frame.extend_from_slice(&address_field(address));
    frame.extend_from_slice(&protocol.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// A Linux cooked capture v2 frame: `protocol`, reserved, interface index 4, `ARPHRD_ETHER`,
/// packet type, address length, the address (8 bytes zero-padded), then `payload`.
pub fn linux_sll2(packet_type: u8, address: &[u8], protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = protocol.to_be_bytes().to_vec();
    frame.extend_from_slice(&[0, 0]);
    frame.extend_from_slice(&4u32.to_be_bytes());
    frame.extend_from_slice(&ARPHRD_ETHER.to_be_bytes());
    frame.push(packet_type);
    frame.push(address.len() as u8);
    frame.extend_from_slice(&address_field(address));
    frame.extend_from_slice(payload);
    frame
}

fn address_field(address: &[u8]) -> [u8; 8] {
    let mut field = [0u8; 8];
    let len = address.len().min(8);
    field[..len].copy_from_slice(&address[..len]);
    field
}

/// An IPv4 header and a TCP SYN, 192.0.2.1:40000 -> 192.0.2.2:80: the payload of the common
/// non-ARP frame.
pub fn ipv4_tcp_packet() -> Vec<u8> {
    // IPv4 header: version 4, IHL 5, total length 40, TTL 64, protocol TCP.
    let mut b = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2];
    // TCP header: ports 40000 -> 80, SYN.
    b.extend_from_slice(&[
        0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
    ]);
    b
}

/// A minimal IPv4/TCP SYN frame from `src` to `dst` (54 bytes, unpadded): the common non-ARP case.
pub fn ipv4_tcp_frame(src: [u8; 6], dst: [u8; 6]) -> Vec<u8> {
    ethernet(dst, src, &[], ETH_P_IP, &ipv4_tcp_packet())
}

/// `"02:00:5e:00:01:0a"` as bytes.
///
/// # Panics
/// On anything but six hex octets.
pub fn mac_bytes(mac: &str) -> [u8; 6] {
    super::observations::mac(mac).0
}

/// `"192.0.2.10"` as bytes.
///
/// # Panics
/// On anything but an IPv4 address.
pub fn ip_bytes(ip: &str) -> [u8; 4] {
    match super::observations::ip(ip) {
        std::net::IpAddr::V4(ip) => ip.octets(),
        std::net::IpAddr::V6(ip) => panic!("{ip} is not an IPv4 address"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 6] = [2, 0, 0, 0, 0, 0x0a];
    const B: [u8; 6] = [2, 0, 0, 0, 0, 0x0b];

    #[test]
    fn request_lays_out_header_and_body_in_order() {
        let f = ArpFrame::request(A, [192, 0, 2, 1], [192, 0, 2, 10]);
        let mut want = vec![0xff; 6];
        want.extend(A);
        want.extend([0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        want.extend(A);
        want.extend([192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 192, 0, 2, 10]);
        assert_eq!(f.bytes(), want);
        assert_eq!(f.bytes().len(), 42);
    }

    #[test]
    fn tags_padding_and_cut_apply_in_that_order() {
        let f = ArpFrame::reply(A, [192, 0, 2, 10], B, [192, 0, 2, 1])
            .tagged(&[(TPID_8021AD, 0x2000 | 300), (TPID_8021Q, 7)]);
        let b = f.bytes();
        assert_eq!(&b[12..22], &[0x88, 0xa8, 0x21, 0x2c, 0x81, 0x00, 0, 7, 0x08, 0x06]);
        assert_eq!(b.len(), 50);
        assert_eq!(f.clone().padded().bytes().len(), 60);
        assert_eq!(f.clone().padded().cut(16).bytes(), b[..16]);
        assert_eq!(f.expected_record().vlan, [300, 7]);
        assert_eq!(f.expected_record().vlan_count, 2);
    }

    #[test]
    fn write_to_matches_bytes() {
        let frames = [
            ArpFrame::request(A, [192, 0, 2, 1], [192, 0, 2, 10]),
            ArpFrame::gratuitous(2, B, [192, 0, 2, 10]).tagged(&[(TPID_8021Q, 5)]).padded(),
            ArpFrame::request(A, [192, 0, 2, 1], [192, 0, 2, 10]).cut(20),
        ];
        for f in frames {
            let mut buf = [0xeeu8; 80];
            let len = f.write_to(&mut buf);
            assert_eq!(&buf[..len], &f.bytes()[..]);
        }
    }

    #[test]
    fn cooked_captures_carry_the_type_chain_after_their_header() {
        let f = ArpFrame::request(A, [192, 0, 2, 1], [192, 0, 2, 10]).tagged(&[(TPID_8021Q, 42)]);
        let sll = f.linux_sll(PACKET_BROADCAST);
        assert_eq!(&sll[..16], &[0, 1, 0, 1, 0, 6, 2, 0, 0, 0, 0, 0x0a, 0, 0, 0x81, 0x00]);
        assert_eq!(&sll[16..20], &[0, 42, 0x08, 0x06]);
        assert_eq!(&sll[20..], &f.body());
        let sll2 = f.linux_sll2(PACKET_OUTGOING);
        assert_eq!(&sll2[..2], &[0x81, 0x00]);
        assert_eq!(sll2[10], PACKET_OUTGOING);
        assert_eq!(&sll2[20..24], &[0, 42, 0x08, 0x06]);
    }

    #[test]
    fn solicitation_lays_out_ipv6_icmpv6_and_the_source_link_layer_option() {
        let target = ipv6_bytes("2001:db8::10");
        let f = NdFrame::solicitation(A, ipv6_bytes("fe80::a"), target);
        let b = f.bytes();
        assert_eq!(&b[..6], &[0x33, 0x33, 0xff, 0, 0, 0x10]);
        assert_eq!(&b[12..14], &[0x86, 0xdd]);
        assert_eq!(&b[14..22], &[0x60, 0, 0, 0, 0, 32, 58, 255]);
        assert_eq!(&b[38..54], &ipv6_bytes("ff02::1:ff00:10"));
        // The checksum as computed independently (Python, RFC 8200 §8.1 pseudo-header).
        assert_eq!(&b[54..58], &[135, 0, 0x4b, 0x31]);
        assert_eq!(&b[62..78], &target);
        assert_eq!(&b[78..], &[1, 1, 2, 0, 0, 0, 0, 0x0a]);
        assert_eq!(b.len(), 14 + 40 + 32);
        let r = f.expected_record();
        assert_eq!((r.proto, r.op, r.sha, r.lladdr_present, r.nd_flags), (1, 135, A, 1, 0));
        assert_eq!((r.spa, r.tpa, r.nd_target), (f.src, f.dst, target));
    }

    #[test]
    fn icmpv6_checksum_of_a_message_with_its_checksum_is_zero() {
        let f = NdFrame::unsolicited(B, ipv6_bytes("2001:db8::10"));
        assert_eq!(icmpv6_checksum(f.src, f.dst, &f.message()), 0);
        let odd = [1u8, 2, 3];
        let sum = icmpv6_checksum(f.src, f.dst, &odd);
        assert_ne!(sum, 0);
    }

    #[test]
    fn advertisements_carry_flags_and_the_target_link_layer_option() {
        let target = ipv6_bytes("2001:db8::10");
        let na = NdFrame::advertisement(B, target, A, ipv6_bytes("2001:db8::1"));
        assert_eq!(na.expected_record().nd_flags, na_flag::SOLICITED | na_flag::OVERRIDE);
        assert_eq!(na.expected_record().spa, target);
        let un = NdFrame::unsolicited(B, target).options(vec![]);
        assert_eq!(un.bytes()[..6], [0x33, 0x33, 0, 0, 0, 1]);
        assert_eq!(un.expected_record().lladdr_present, 0);
        assert_eq!(un.expected_record().sha, [0; 6]);
        let dad = NdFrame::dad_probe(A, target);
        assert_eq!(dad.expected_record().spa, UNSPECIFIED);
        assert_eq!(dad.bytes().len(), 14 + 40 + 24);
    }

    #[test]
    fn hop_by_hop_and_bent_lengths_change_the_ipv6_header() {
        let f = NdFrame::dad_probe(A, ipv6_bytes("2001:db8::10"));
        let hbh = f.clone().with(|f| f.hop_by_hop = true).bytes();
        assert_eq!((hbh[20], hbh[54]), (0, 58));
        assert_eq!(&hbh[18..20], &32u16.to_be_bytes());
        let short = f.with(|f| f.payload_len = Some(23)).bytes();
        assert_eq!(&short[18..20], &23u16.to_be_bytes());
    }

    #[test]
    fn llc_snap_puts_a_length_and_the_snap_header_before_the_body() {
        let f = ArpFrame::request(A, [192, 0, 2, 1], [192, 0, 2, 10]);
        let b = f.llc_snap_bytes();
        assert_eq!(&b[12..14], &36u16.to_be_bytes());
        assert_eq!(&b[14..22], &LLC_SNAP_ARP);
        assert_eq!(&b[22..], &f.body());
    }
}
