//! Crafted Ethernet frames for the kernel and decoder tests.

pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_RARP: u16 = 0x8035;
pub const ETH_P_IP: u16 = 0x0800;
pub const TPID_8021Q: u16 = 0x8100;
pub const TPID_8021AD: u16 = 0x88a8;

pub const BROADCAST: [u8; 6] = [0xff; 6];

/// An Ethernet frame carrying an ARP body whose every field can be bent out of shape.
#[derive(Clone, Debug)]
pub struct ArpFrame {
    pub eth_dst: [u8; 6],
    pub eth_src: [u8; 6],
    /// (tpid, vlan id), outermost first.
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
    /// Cut the frame to this many bytes.
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

    pub fn tagged(mut self, tags: &[(u16, u16)]) -> Self {
        self.tags = tags.to_vec();
        self
    }

    pub fn bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64);
        b.extend_from_slice(&self.eth_dst);
        b.extend_from_slice(&self.eth_src);
        for (tpid, vid) in &self.tags {
            b.extend_from_slice(&tpid.to_be_bytes());
            b.extend_from_slice(&vid.to_be_bytes());
        }
        b.extend_from_slice(&self.ethertype.to_be_bytes());
        b.extend_from_slice(&self.htype.to_be_bytes());
        b.extend_from_slice(&self.ptype.to_be_bytes());
        b.push(self.hlen);
        b.push(self.plen);
        b.extend_from_slice(&self.op.to_be_bytes());
        b.extend_from_slice(&self.sha);
        b.extend_from_slice(&self.spa);
        b.extend_from_slice(&self.tha);
        b.extend_from_slice(&self.tpa);
        if let Some(len) = self.truncate {
            b.truncate(len);
        }
        b
    }
}

/// A minimal IPv4/TCP SYN frame: the common non-ARP case.
pub fn ipv4_tcp_frame(src: [u8; 6], dst: [u8; 6]) -> Vec<u8> {
    let mut b = Vec::with_capacity(54);
    b.extend_from_slice(&dst);
    b.extend_from_slice(&src);
    b.extend_from_slice(&ETH_P_IP.to_be_bytes());
    // IPv4 header: version 4, IHL 5, total length 40, TTL 64, protocol TCP, 192.0.2.1 -> 192.0.2.2.
    b.extend_from_slice(&[0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2]);
    // TCP header: ports 40000 -> 80, SYN.
    b.extend_from_slice(&[
        0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
    ]);
    b
}

/// `"02:00:5e:00:01:0a"` as bytes.
pub fn mac_bytes(mac: &str) -> [u8; 6] {
    let mut out = [0u8; 6];
    for (byte, part) in out.iter_mut().zip(mac.split(':')) {
        *byte = u8::from_str_radix(part, 16).expect("hex octet");
    }
    out
}

/// `"192.0.2.10"` as bytes.
pub fn ip_bytes(ip: &str) -> [u8; 4] {
    ip.parse::<std::net::Ipv4Addr>().expect("IPv4 address").octets()
}
