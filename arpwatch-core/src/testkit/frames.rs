//! Frames as bytes on the wire: [`ArpFrame`], an Ethernet/ARP frame whose every field can be bent
//! out of shape, the same frame as a Linux cooked capture (v1 and v2) or in 802.3 LLC/SNAP, and
//! the common non-ARP frame ([`ipv4_tcp_frame`]). The kernel tests, the decoder and replay tests,
//! the benches, the storm generator and the fuzz seeds all build their frames here.

use arpwatch_common::{direction, ipv4_field, proto, NeighRecord, MAX_VLAN_TAGS};

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
        let mut vlan = [0u16; MAX_VLAN_TAGS];
        for (slot, (_, tci)) in vlan.iter_mut().zip(&self.tags) {
            *slot = tci & 0x0fff;
        }
        NeighRecord {
            ts_boot_ns: 0,
            ifindex: 0,
            direction: direction::INGRESS,
            proto: proto::ARP,
            op: self.op as u8,
            vlan_count: self.tags.len().min(MAX_VLAN_TAGS) as u8,
            vlan,
            eth_src: self.eth_src,
            eth_dst: self.eth_dst,
            sha: self.sha,
            tha: self.tha,
            spa: ipv4_field(self.spa),
            tpa: ipv4_field(self.tpa),
            ..NeighRecord::default()
        }
    }
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
    fn llc_snap_puts_a_length_and_the_snap_header_before_the_body() {
        let f = ArpFrame::request(A, [192, 0, 2, 1], [192, 0, 2, 10]);
        let b = f.llc_snap_bytes();
        assert_eq!(&b[12..14], &36u16.to_be_bytes());
        assert_eq!(&b[14..22], &LLC_SNAP_ARP);
        assert_eq!(&b[22..], &f.body());
    }
}
