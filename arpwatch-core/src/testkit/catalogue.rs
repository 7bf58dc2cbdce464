//! One table of crafted Ethernet frames and what arpwatch's rules make of each: valid ARP requests
//! and replies (tagged, padded, with a trailer), every way a frame can claim ARP and be malformed,
//! valid IPv6 Neighbor Solicitations and Advertisements (with and without their link-layer
//! option, DAD probes, every NA flag, tags), every way an NS or NA fails RFC 4861 §7.1, and
//! frames that are neither (IPv4, other IPv6 and ICMPv6, ND behind an extension header; some of
//! them cut where a parser could stumble). The decoder's
//! unit tests hold `crate::decode` to it, the privileged `kernel_differential` test holds the
//! kernel's XDP and TC programs to it on the same bytes, and the fuzz seeds start from it.
//!
//! Every frame is one BPF_PROG_TEST_RUN accepts for both the XDP and the TC program: at least an
//! Ethernet header long (14 bytes; the kernel refuses to run a program on less, as
//! tests/kernel_test_run.rs shows, so shorter runts are the decoder's alone), and an untagged IPv4
//! or IPv6 frame at least as long as that protocol's header (the skb test run refuses less with
//! EINVAL before the classifier runs).

use arpwatch_common::{na_flag, proto, NeighRecord};

use super::frames::*;
use crate::decode::MalformedReason;

pub const NODE_A: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0a];
pub const NODE_B: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0b];
pub const CLIENT_IP: [u8; 4] = [192, 0, 2, 1];
pub const VIP: [u8; 4] = [192, 0, 2, 10];
/// NODE_A's link-local address.
pub const LINK_LOCAL_A: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0a];
pub const CLIENT_IP6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01];
pub const VIP6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];

/// How a parser counts a frame: a record and `arp` or `ndp`, `malformed`, or only `frames`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    Arp,
    Ndp,
    Malformed,
    Other,
}

impl Class {
    pub const ALL: [Class; 4] = [Class::Arp, Class::Ndp, Class::Malformed, Class::Other];

    /// The class of a valid frame's record.
    pub fn of(record: &NeighRecord) -> Class {
        if record.proto == proto::NDP {
            Class::Ndp
        } else {
            Class::Arp
        }
    }
}

/// What the user-space decoder must return for a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// A valid ARP frame or ND message, with the record both parsers must produce for it
    /// (`ts_boot_ns` and `ifindex` 0, ingress).
    Valid(NeighRecord),
    Malformed(MalformedReason),
    Other,
}

impl Expected {
    pub fn class(&self) -> Class {
        match self {
            Expected::Valid(record) => Class::of(record),
            Expected::Malformed(_) => Class::Malformed,
            Expected::Other => Class::Other,
        }
    }
}

/// A class the kernel gives a frame on purpose where the decoder gives another, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelDiffers {
    pub kernel: Class,
    pub why: &'static str,
}

#[derive(Clone, Debug)]
pub struct Case {
    pub name: &'static str,
    pub bytes: Vec<u8>,
    pub decoded: Expected,
    /// `None` where the kernel must count the frame as the decoder classes it.
    pub kernel_differs: Option<KernelDiffers>,
}

impl Case {
    /// How the kernel programs must count this frame.
    pub fn kernel_class(&self) -> Class {
        self.kernel_differs.map_or(self.decoded.class(), |d| d.kernel)
    }
}

/// The decoder looks inside 802.3 frames; the kernel does not (decode.rs, `MalformedReason::LlcSnap`).
const LLC_SNAP_IS_NOT_ARP_IN_THE_KERNEL: KernelDiffers = KernelDiffers {
    kernel: Class::Other,
    why: "the kernel's non-ARP path compares the Ethernet II type and nothing more (SPEC §5), so \
          ARP in 802.3 LLC/SNAP is not ARP there; the decoder can afford to look and calls it \
          malformed",
};

fn valid(name: &'static str, frame: ArpFrame) -> Case {
    Case {
        name,
        bytes: frame.bytes(),
        decoded: Expected::Valid(frame.expected_record()),
        kernel_differs: None,
    }
}

fn valid_nd(name: &'static str, frame: NdFrame) -> Case {
    Case {
        name,
        bytes: frame.bytes(),
        decoded: Expected::Valid(frame.expected_record()),
        kernel_differs: None,
    }
}

fn malformed(name: &'static str, bytes: Vec<u8>, reason: MalformedReason) -> Case {
    Case { name, bytes, decoded: Expected::Malformed(reason), kernel_differs: None }
}

fn not_arp(name: &'static str, bytes: Vec<u8>) -> Case {
    Case { name, bytes, decoded: Expected::Other, kernel_differs: None }
}

/// Every case, in a fixed order: the ARP cases, then the Neighbor Discovery ones.
pub fn cases() -> Vec<Case> {
    let mut cases = arp_cases();
    cases.extend(nd_cases());
    cases
}

/// The ARP cases and the common non-ARP frames.
pub fn arp_cases() -> Vec<Case> {
    use MalformedReason::*;
    let request = || ArpFrame::request(NODE_A, CLIENT_IP, VIP);
    let reply = || ArpFrame::reply(NODE_B, VIP, NODE_A, CLIENT_IP);
    let q = |tci| (TPID_8021Q, tci);
    let ad = |tci| (TPID_8021AD, tci);
    let three_tags = [ad(10), q(20), q(30)];
    let bent = |f: fn(&mut ArpFrame)| request().with(f).bytes();
    let mut with_trailer = reply().bytes();
    with_trailer.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    let llc_snap_ipv4 = {
        let mut payload = vec![0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00];
        payload.extend(ipv4_tcp_packet());
        ethernet(NODE_B, NODE_A, &[], payload.len() as u16, &payload)
    };

    vec![
        // ------------------------------------------------------------------ valid
        valid("request", request()),
        valid("reply", reply()),
        valid("gratuitous request", ArpFrame::gratuitous(1, NODE_B, VIP)),
        valid("gratuitous reply", ArpFrame::gratuitous(2, NODE_B, VIP)),
        valid("RFC 5227 probe", ArpFrame::request(NODE_A, [0; 4], VIP)),
        valid("unicast request", request().with(|f| f.eth_dst = NODE_B)),
        valid("request padded to 60 bytes", request().padded()),
        Case { bytes: with_trailer, ..valid("reply with a 4-byte trailer", reply()) },
        // Priority bits set in the TCI must not leak into the VLAN id.
        valid("one 802.1Q tag", reply().tagged(&[q(0xe000 | 123)])),
        valid("802.1Q priority tag (VLAN 0)", request().tagged(&[q(0x6000)])),
        valid("QinQ: 802.1ad then 802.1Q", request().tagged(&[ad(0x2000 | 300), q(0xe000 | 4094)])),
        valid("two 802.1Q tags", reply().tagged(&[q(10), q(20)])),
        valid("QinQ, padded", ArpFrame::gratuitous(2, NODE_A, VIP).tagged(&[ad(7), q(8)]).padded()),
        // ------------------------------------------------------------------ malformed
        malformed(
            "third VLAN tag before ARP",
            request().tagged(&three_tags).bytes(),
            TooManyVlanTags,
        ),
        malformed(
            "third VLAN tag before ARP, nothing after it",
            request().tagged(&three_tags).cut(26).bytes(),
            TooManyVlanTags,
        ),
        malformed("bare Ethernet header claiming ARP", request().cut(14).bytes(), Truncated),
        malformed("body cut after the fixed header", request().cut(14 + 8).bytes(), Truncated),
        malformed("body cut to 27 bytes", request().cut(14 + 27).bytes(), Truncated),
        malformed(
            "802.1Q-tagged body cut to 20 bytes",
            request().tagged(&[q(5)]).cut(18 + 20).bytes(),
            Truncated,
        ),
        malformed(
            "QinQ body cut to 27 bytes",
            request().tagged(&[ad(1), q(2)]).cut(22 + 27).bytes(),
            Truncated,
        ),
        // 46 bytes of body, as a NIC pads a bare header, but htype, ptype and lengths are 0.
        malformed(
            "bare header claiming ARP, padded with zeros",
            padded(request().cut(14).bytes()),
            Unsupported,
        ),
        malformed("hlen 8", bent(|f| f.hlen = 8), Unsupported),
        malformed("hlen 0", bent(|f| f.hlen = 0), Unsupported),
        malformed("plen 16", bent(|f| f.plen = 16), Unsupported),
        malformed("plen 6", bent(|f| f.plen = 6), Unsupported),
        malformed("htype 6 (IEEE 802)", bent(|f| f.htype = 6), Unsupported),
        malformed("ptype IPv6", bent(|f| f.ptype = ETH_P_IPV6), Unsupported),
        malformed("op 3 (RARP request) with ethertype ARP", bent(|f| f.op = 3), Unsupported),
        malformed("op 0", bent(|f| f.op = 0), Unsupported),
        malformed("op 257", bent(|f| f.op = 0x0101), Unsupported),
        malformed(
            "802.1Q-tagged, hlen 8",
            request().tagged(&[q(5)]).with(|f| f.hlen = 8).bytes(),
            Unsupported,
        ),
        malformed(
            "QinQ, htype 0",
            reply().tagged(&[ad(1), q(2)]).with(|f| f.htype = 0).bytes(),
            Unsupported,
        ),
        Case {
            kernel_differs: Some(LLC_SNAP_IS_NOT_ARP_IN_THE_KERNEL),
            ..malformed("ARP in 802.3 LLC/SNAP", request().llc_snap_bytes(), LlcSnap)
        },
        Case {
            kernel_differs: Some(LLC_SNAP_IS_NOT_ARP_IN_THE_KERNEL),
            ..malformed(
                "ARP in 802.3 LLC/SNAP behind an 802.1Q tag",
                request().tagged(&[q(9)]).llc_snap_bytes(),
                LlcSnap,
            )
        },
        // ------------------------------------------------------------------ not ARP
        not_arp(
            "RARP (ethertype 0x8035), op 3",
            request().with(|f| (f.ethertype, f.op) = (ETH_P_RARP, 3)).bytes(),
        ),
        not_arp("IPv4 TCP", ipv4_tcp_frame(NODE_A, NODE_B)),
        not_arp("IPv4 TCP, padded", padded(ipv4_tcp_frame(NODE_A, NODE_B))),
        not_arp("IPv6 ethertype", ethernet(NODE_B, NODE_A, &[], ETH_P_IPV6, &[0x60; 40])),
        not_arp(
            "IPv4 ethertype, zero padding only",
            padded(ethernet(NODE_B, NODE_A, &[], ETH_P_IP, &[])),
        ),
        not_arp(
            "802.1Q-tagged IPv4",
            ethernet(NODE_B, NODE_A, &[q(123)], ETH_P_IP, &ipv4_tcp_packet()),
        ),
        not_arp(
            "QinQ IPv4",
            ethernet(NODE_B, NODE_A, &[ad(1), q(2)], ETH_P_IP, &ipv4_tcp_packet()),
        ),
        not_arp(
            "third VLAN tag before IPv4",
            ethernet(NODE_B, NODE_A, &three_tags, ETH_P_IP, &ipv4_tcp_packet()),
        ),
        not_arp("ARP cut inside an 802.1Q tag", request().tagged(&[q(5)]).cut(16).bytes()),
        not_arp("ARP cut inside the second tag", request().tagged(&[ad(1), q(2)]).cut(20).bytes()),
        not_arp("ARP cut inside the third tag", request().tagged(&three_tags).cut(24).bytes()),
        not_arp(
            "ARP behind TPID 0x9100 (pre-standard QinQ)",
            request().tagged(&[(0x9100, 5)]).bytes(),
        ),
        not_arp(
            "802.3 spanning tree (LLC, not SNAP)",
            ethernet(
                [0x01, 0x80, 0xc2, 0, 0, 0],
                NODE_A,
                &[],
                38,
                &[0x42, 0x42, 0x03, 0, 0, 0, 0, 0],
            ),
        ),
        not_arp("IPv4 in 802.3 LLC/SNAP", llc_snap_ipv4),
    ]
}

/// The names of the eight combinations of an NA's R, S, O flags, by their bits (R 4, S 2, O 1).
const NA_FLAG_NAMES: [&str; 8] = [
    "NA flags: none",
    "NA flags: O",
    "NA flags: S",
    "NA flags: S, O",
    "NA flags: R",
    "NA flags: R, O",
    "NA flags: R, S",
    "NA flags: R, S, O",
];

/// Valid and malformed Neighbor Solicitations and Advertisements, and the IPv6 frames that are
/// not ND.
pub fn nd_cases() -> Vec<Case> {
    use MalformedReason::*;
    let ns = || NdFrame::solicitation(NODE_A, LINK_LOCAL_A, VIP6);
    let dad = || NdFrame::dad_probe(NODE_A, VIP6);
    let na = || NdFrame::advertisement(NODE_B, VIP6, NODE_A, LINK_LOCAL_A);
    let unsolicited = || NdFrame::unsolicited(NODE_B, VIP6);
    let q = |tci| (TPID_8021Q, tci);
    let ad = |tci| (TPID_8021AD, tci);
    let nonce = NdOption::Nonce([1, 2, 3, 4, 5, 6]);
    let raw = |bytes: &[u8]| NdOption::Raw(bytes.to_vec());
    let bad = |name, frame: NdFrame, reason| malformed(name, frame.bytes(), reason);
    let mut with_trailer = dad().bytes();
    with_trailer.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    let four_nonces = vec![nonce.clone(), nonce.clone(), nonce.clone(), nonce.clone()];

    let mut cases = vec![
        // ------------------------------------------------------------------ valid
        valid_nd("NS with source link-layer address", ns()),
        valid_nd(
            "NS, unicast reachability check without options",
            ns().options(vec![]).with(|f| (f.dst, f.eth_dst) = (VIP6, NODE_B)),
        ),
        valid_nd("DAD probe", dad()),
        valid_nd("DAD probe with a nonce", dad().options(vec![nonce.clone()])),
        valid_nd(
            "NS, nonce then source link-layer address",
            ns().options(vec![nonce.clone(), NdOption::source(NODE_A)]),
        ),
        valid_nd(
            "NS, a 16-octet unknown option then source link-layer address",
            ns().options(vec![
                raw(&[200, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
                NdOption::source(NODE_A),
            ]),
        ),
        valid_nd(
            "NS with two source link-layer addresses: the first counts",
            ns().options(vec![NdOption::source(NODE_A), NdOption::source(NODE_B)]),
        ),
        valid_nd(
            "NS carrying a target link-layer option only (ignored)",
            ns().options(vec![NdOption::target(NODE_B)]),
        ),
        valid_nd("solicited NA with target link-layer address", na()),
        valid_nd(
            "solicited NA without options (R, S as routers send them)",
            na().options(vec![]).with(|f| f.flags = na_flag::ROUTER | na_flag::SOLICITED),
        ),
        valid_nd("unsolicited NA to all nodes", unsolicited()),
        valid_nd("unsolicited NA without options", unsolicited().options(vec![])),
        valid_nd("NA with the reserved bits set", na().with(|f| f.flags = 0xff)),
        {
            // The walk looks at four options (nd::MAX_OPTIONS): the fifth is not found.
            let frame =
                na().options([four_nonces.clone(), vec![NdOption::target(NODE_B)]].concat());
            let record = NeighRecord { sha: [0; 6], lladdr_present: 0, ..frame.expected_record() };
            Case {
                decoded: Expected::Valid(record),
                ..valid_nd("NA, link-layer option fifth: beyond the walk, not searched", frame)
            }
        },
        valid_nd(
            "NA, zero-length fifth option: beyond the walk, not checked",
            na().options([four_nonces.clone(), vec![raw(&[1, 0, 0, 0, 0, 0, 0, 0])]].concat()),
        ),
        valid_nd("NS, one 802.1Q tag", ns().tagged(&[q(0xe000 | 123)])),
        valid_nd("NA, QinQ", na().tagged(&[ad(0x2000 | 300), q(4094)])),
        valid_nd("DAD probe, 802.1Q tag", dad().tagged(&[q(7)])),
        Case { bytes: with_trailer, ..valid_nd("DAD probe with a 4-byte trailer", dad()) },
        // ------------------------------------------------------------------ malformed
        bad("NS, hop limit 254", ns().with(|f| f.hop_limit = 254), NdHopLimit),
        bad("NA, hop limit 1", na().with(|f| f.hop_limit = 1), NdHopLimit),
        bad(
            "802.1Q-tagged NS, hop limit 64",
            ns().tagged(&[q(5)]).with(|f| f.hop_limit = 64),
            NdHopLimit,
        ),
        bad("NS, code 1", ns().with(|f| f.code = 1), NdCode),
        bad("NA, code 255", na().with(|f| f.code = 255), NdCode),
        bad(
            "NS, ICMPv6 length 23",
            ns().options(vec![]).with(|f| f.payload_len = Some(23)),
            NdTooShort,
        ),
        bad("NA, ICMPv6 length 0", na().with(|f| f.payload_len = Some(0)), NdTooShort),
        bad(
            "NS, ICMPv6 length beyond the frame",
            ns().with(|f| f.payload_len = Some(40)),
            NdTruncated,
        ),
        bad("NS, target cut", ns().cut(14 + 40 + 20), NdTruncated),
        bad("NA, cut after the ICMPv6 header", na().cut(14 + 40 + 4), NdTruncated),
        bad("NS, cut after the ICMPv6 type", ns().cut(14 + 40 + 1), NdTruncated),
        bad("NA, option cut", na().cut(14 + 40 + 28), NdTruncated),
        bad("QinQ NA, target cut", na().tagged(&[ad(1), q(2)]).cut(22 + 40 + 12), NdTruncated),
        bad("NS for a multicast target", ns().with(|f| f.target = ALL_NODES), NdMulticastTarget),
        bad(
            "NA for a multicast target",
            unsolicited().with(|f| f.target = solicited_node(VIP6)),
            NdMulticastTarget,
        ),
        bad(
            "solicited NA to all nodes",
            unsolicited().with(|f| f.flags = na_flag::SOLICITED | na_flag::OVERRIDE),
            NdSolicitedToMulticast,
        ),
        bad("DAD probe to all nodes", dad().with(|f| f.dst = ALL_NODES), NdDadDestination),
        bad("DAD probe to the target itself", dad().with(|f| f.dst = VIP6), NdDadDestination),
        bad(
            "NS, zero-length option",
            ns().options(vec![raw(&[1, 0, 2, 0, 0, 0, 0, 0x0a])]),
            NdBadOption,
        ),
        bad(
            "NS, zero-length option after a nonce",
            ns().options(vec![nonce.clone(), raw(&[14, 0, 0, 0, 0, 0, 0, 0])]),
            NdBadOption,
        ),
        bad(
            "NA, option running past the message",
            na().options(vec![raw(&[2, 2, 2, 0, 0, 0, 0, 0x0b])]),
            NdBadOption,
        ),
        bad("NS, one octet of options", ns().options(vec![raw(&[1])]), NdBadOption),
        bad(
            "NS, source link-layer option of two units",
            ns().options(vec![raw(&[1, 2, 2, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0])]),
            NdBadOption,
        ),
        bad(
            "DAD probe with a source link-layer address",
            dad().options(vec![NdOption::source(NODE_A)]),
            NdDadWithLinkLayer,
        ),
        bad(
            "DAD probe with a nonce and a source link-layer address",
            dad().options(vec![nonce.clone(), NdOption::source(NODE_A)]),
            NdDadWithLinkLayer,
        ),
        // ------------------------------------------------------------------ not ND
        not_arp("IPv6 TCP", ipv6_tcp_frame(NODE_A, NODE_B)),
        not_arp(
            "802.1Q-tagged IPv6 TCP",
            ethernet(NODE_B, NODE_A, &[q(9)], ETH_P_IPV6, &ipv6_tcp_packet()),
        ),
        not_arp("Router Advertisement", router_advertisement_frame(NODE_B, LINK_LOCAL_A)),
        not_arp("MLDv2 report behind a Hop-by-Hop header", mld_report_frame(NODE_A, LINK_LOCAL_A)),
        not_arp("NS behind a Hop-by-Hop header", ns().with(|f| f.hop_by_hop = true).bytes()),
        not_arp("ICMPv6 echo request", ns().with(|f| f.icmp_type = 128).bytes()),
        not_arp("NS with IP version 4 in its header", ns().with(|f| f.version_byte = 0x45).bytes()),
        not_arp("NS cut after the IPv6 header", ns().cut(14 + 40).bytes()),
        not_arp(
            "802.1Q-tagged NS cut inside the IPv6 header",
            ns().tagged(&[q(5)]).cut(18 + 39).bytes(),
        ),
        not_arp("NS behind a third VLAN tag", ns().tagged(&[ad(10), q(20), q(30)]).bytes()),
    ];
    for bits in 0..8u8 {
        // R (4) is 0x80, S (2) is 0x40, O (1) is 0x20: the bits shifted left by 5.
        let flags = bits << 5;
        cases.push(valid_nd(NA_FLAG_NAMES[bits as usize], na().with(|f| f.flags = flags)));
    }
    cases
}

/// Which [`MalformedReason`] a case stands for, as an index; exhaustive, so a new reason breaks
/// the build here until the table has a case for it.
pub fn reason_index(reason: MalformedReason) -> usize {
    match reason {
        MalformedReason::Truncated => 0,
        MalformedReason::Unsupported => 1,
        MalformedReason::TooManyVlanTags => 2,
        MalformedReason::LlcSnap => 3,
        MalformedReason::NdHopLimit => 4,
        MalformedReason::NdTooShort => 5,
        MalformedReason::NdTruncated => 6,
        MalformedReason::NdCode => 7,
        MalformedReason::NdMulticastTarget => 8,
        MalformedReason::NdSolicitedToMulticast => 9,
        MalformedReason::NdDadDestination => 10,
        MalformedReason::NdBadOption => 11,
        MalformedReason::NdDadWithLinkLayer => 12,
    }
}

/// How many [`MalformedReason`]s there are.
pub const MALFORMED_REASONS: usize = 13;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_frames_are_runnable_and_every_reason_is_covered() {
        let cases = cases();
        let names: HashSet<_> = cases.iter().map(|c| c.name).collect();
        assert_eq!(names.len(), cases.len(), "duplicate case names");
        for case in &cases {
            let len = case.bytes.len();
            assert!(len >= 14, "{}: shorter than an Ethernet header", case.name);
            let l3_header = match u16::from_be_bytes([case.bytes[12], case.bytes[13]]) {
                ETH_P_IP => 20,
                ETH_P_IPV6 => 40,
                _ => 0,
            };
            assert!(len >= 14 + l3_header, "{}: the skb test run would refuse it", case.name);
        }
        let mut reasons = [false; MALFORMED_REASONS];
        for case in &cases {
            if let Expected::Malformed(reason) = case.decoded {
                reasons[reason_index(reason)] = true;
            }
        }
        assert!(reasons.iter().all(|r| *r), "a MalformedReason without a case: {reasons:?}");
        for class in Class::ALL {
            assert!(cases.iter().any(|c| c.kernel_class() == class), "no {class:?} case");
        }
    }
}
