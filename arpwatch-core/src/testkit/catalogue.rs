//! One table of crafted Ethernet frames and what arpwatch's rules make of each: valid requests and
//! replies (tagged, padded, with a trailer), every way a frame can claim ARP and be malformed, and
//! frames that are not ARP at all (some of them cut where a parser could stumble). The decoder's
//! unit tests hold `crate::decode` to it, the privileged `kernel_differential` test holds the
//! kernel's XDP and TC programs to it on the same bytes, and the fuzz seeds start from it.
//!
//! Every frame is one BPF_PROG_TEST_RUN accepts for both the XDP and the TC program: at least an
//! Ethernet header long (14 bytes; the kernel refuses to run a program on less, as
//! tests/kernel_test_run.rs shows, so shorter runts are the decoder's alone), and an untagged IPv4
//! or IPv6 frame at least as long as that protocol's header (the skb test run refuses less with
//! EINVAL before the classifier runs).

use arpwatch_common::NeighRecord;

use super::frames::*;
use crate::decode::MalformedReason;

pub const NODE_A: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0a];
pub const NODE_B: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0b];
pub const CLIENT_IP: [u8; 4] = [192, 0, 2, 1];
pub const VIP: [u8; 4] = [192, 0, 2, 10];

/// How a parser counts a frame: a record and `arp`, `malformed`, or only `frames`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    Arp,
    Malformed,
    NotArp,
}

/// What the user-space decoder must return for a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// A valid frame, with the record both parsers must produce for it (`ts_boot_ns` and
    /// `ifindex` 0, ingress).
    Arp(NeighRecord),
    Malformed(MalformedReason),
    NotArp,
}

impl Expected {
    pub fn class(&self) -> Class {
        match self {
            Expected::Arp(_) => Class::Arp,
            Expected::Malformed(_) => Class::Malformed,
            Expected::NotArp => Class::NotArp,
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
    kernel: Class::NotArp,
    why: "the kernel's non-ARP path compares the Ethernet II type and nothing more (SPEC §5), so \
          ARP in 802.3 LLC/SNAP is not ARP there; the decoder can afford to look and calls it \
          malformed",
};

fn valid(name: &'static str, frame: ArpFrame) -> Case {
    Case {
        name,
        bytes: frame.bytes(),
        decoded: Expected::Arp(frame.expected_record()),
        kernel_differs: None,
    }
}

fn malformed(name: &'static str, bytes: Vec<u8>, reason: MalformedReason) -> Case {
    Case { name, bytes, decoded: Expected::Malformed(reason), kernel_differs: None }
}

fn not_arp(name: &'static str, bytes: Vec<u8>) -> Case {
    Case { name, bytes, decoded: Expected::NotArp, kernel_differs: None }
}

/// Every case, in a fixed order.
pub fn cases() -> Vec<Case> {
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

/// Which [`MalformedReason`] a case stands for, as an index; exhaustive, so a new reason breaks
/// the build here until the table has a case for it.
pub fn reason_index(reason: MalformedReason) -> usize {
    match reason {
        MalformedReason::Truncated => 0,
        MalformedReason::Unsupported => 1,
        MalformedReason::TooManyVlanTags => 2,
        MalformedReason::LlcSnap => 3,
    }
}

/// How many [`MalformedReason`]s there are.
pub const MALFORMED_REASONS: usize = 4;

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
        for class in [Class::Arp, Class::Malformed, Class::NotArp] {
            assert!(cases.iter().any(|c| c.kernel_class() == class));
        }
    }
}
