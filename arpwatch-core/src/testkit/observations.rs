//! Observations built fluently: `frame(secs).reply(A, VIP).to(CLIENT, CLIENT_IP)` is a reply from
//! `A` for `VIP` to the client, seen `secs` after [`T0`] on ingress of `eth0` (ifindex 2). Addresses
//! are given as text (`"02:00:00:00:00:0a"`, `"192.0.2.10"`, `"2001:db8::10"`), as
//! [`MacAddr`]/[`IpAddr`] or as bytes. Neighbor Discovery messages are built the same way
//! ([`Frame::solicit`], [`Frame::advertise`], [`Frame::dad`]) and read like ARP (see
//! [`crate::observation`]). The engine, metrics and bench inputs are built here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, OnceLock};

use crate::observation::{
    ArpOp, Direction, MacAddr, NaFlags, NdFields, Observation, Timestamp, VlanTags,
};

/// 2026-11-21T10:00:00Z, in seconds since the Unix epoch: the fake clock's zero.
pub const T0_SECS: u64 = 1_795_255_200;

/// `secs` after [`T0_SECS`], rounded to the nanosecond.
pub fn at(secs: f64) -> Timestamp {
    Timestamp::from_nanos(((T0_SECS as f64 + secs) * 1e9).round() as u64)
}

/// A MAC address from its text.
///
/// # Panics
/// On anything but six hex octets.
pub fn mac(s: &str) -> MacAddr {
    s.parse().unwrap_or_else(|e| panic!("{e}"))
}

/// An IPv4 or IPv6 address from its text.
///
/// # Panics
/// On anything but an IP address.
pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or_else(|e| panic!("{s:?}: {e}"))
}

/// Anything a test names a MAC address with.
pub trait IntoMac {
    fn into_mac(self) -> MacAddr;
}

impl IntoMac for MacAddr {
    fn into_mac(self) -> MacAddr {
        self
    }
}

impl IntoMac for [u8; 6] {
    fn into_mac(self) -> MacAddr {
        MacAddr(self)
    }
}

impl IntoMac for &str {
    fn into_mac(self) -> MacAddr {
        mac(self)
    }
}

impl IntoMac for &String {
    fn into_mac(self) -> MacAddr {
        mac(self)
    }
}

/// Anything a test names an IP address with.
pub trait IntoIp {
    fn into_ip(self) -> IpAddr;
}

impl IntoIp for IpAddr {
    fn into_ip(self) -> IpAddr {
        self
    }
}

impl IntoIp for Ipv4Addr {
    fn into_ip(self) -> IpAddr {
        self.into()
    }
}

impl IntoIp for Ipv6Addr {
    fn into_ip(self) -> IpAddr {
        self.into()
    }
}

impl IntoIp for [u8; 4] {
    fn into_ip(self) -> IpAddr {
        Ipv4Addr::from(self).into()
    }
}

impl IntoIp for &str {
    fn into_ip(self) -> IpAddr {
        ip(self)
    }
}

impl IntoIp for &String {
    fn into_ip(self) -> IpAddr {
        ip(self)
    }
}

fn ipv6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V6(ip) => ip,
        IpAddr::V4(ip) => panic!("{ip} is not an IPv6 address"),
    }
}

/// The solicited-node multicast address of `target` (`ff02::1:ffXX:XXXX`, RFC 4291 §2.7.1) and
/// its Ethernet group address (`33:33:ff:XX:XX:XX`), where solicitations for it are sent.
pub fn solicited_node(target: Ipv6Addr) -> (Ipv6Addr, MacAddr) {
    let t = target.octets();
    let ip = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(t[13]),
        u16::from_be_bytes([t[14], t[15]]),
    );
    (ip, MacAddr([0x33, 0x33, 0xff, t[13], t[14], t[15]]))
}

/// `ff02::1`, where unsolicited advertisements go, and its Ethernet group address.
pub const ALL_NODES: (Ipv6Addr, MacAddr) =
    (Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1), MacAddr([0x33, 0x33, 0, 0, 0, 1]));

/// An observation under construction; `.0` is the observation itself. Starts as a broadcast
/// request with every address zero, at ingress of `eth0` (ifindex 2), no VLAN tag, no repeats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame(pub Observation);

/// An observation seen `secs` after [`T0_SECS`].
pub fn frame(secs: f64) -> Frame {
    Frame::at(at(secs))
}

impl Frame {
    /// An observation seen at `ts`.
    pub fn at(ts: Timestamp) -> Frame {
        // One shared name: building millions of bench inputs costs no allocation for it.
        static ETH0: OnceLock<Arc<str>> = OnceLock::new();
        Frame(Observation {
            ts,
            iface: ETH0.get_or_init(|| "eth0".into()).clone(),
            ifindex: 2,
            direction: Direction::Ingress,
            vlan: VlanTags::NONE,
            op: ArpOp::Request,
            eth_src: MacAddr::ZERO,
            eth_dst: MacAddr::BROADCAST,
            sha: MacAddr::ZERO,
            spa: Ipv4Addr::UNSPECIFIED.into(),
            tha: MacAddr::ZERO,
            tpa: Ipv4Addr::UNSPECIFIED.into(),
            nd: None,
            repeats: 0,
            last_repeat: None,
        })
    }

    /// Sent by `sha` (also the Ethernet source) for `spa`, with `op`.
    pub fn sender(mut self, op: ArpOp, sha: impl IntoMac, spa: impl IntoIp) -> Self {
        let sha = sha.into_mac();
        self.0.op = op;
        self.0.sha = sha;
        self.0.eth_src = sha;
        self.0.spa = spa.into_ip();
        self
    }

    /// A plain reply from `sha` for `spa`, to the requester given with [`to`](Self::to).
    pub fn reply(self, sha: impl IntoMac, spa: impl IntoIp) -> Self {
        self.sender(ArpOp::Reply, sha, spa)
    }

    /// A request from (`sha`, `spa`); the target is given with [`asking`](Self::asking).
    pub fn request(self, sha: impl IntoMac, spa: impl IntoIp) -> Self {
        self.sender(ArpOp::Request, sha, spa)
    }

    /// The address a request asks for (a solicitation's target, sent to its solicited-node
    /// address).
    pub fn asking(mut self, tpa: impl IntoIp) -> Self {
        self.0.tpa = tpa.into_ip();
        if let Some(nd) = &mut self.0.nd {
            nd.target = ipv6(self.0.tpa);
            (nd.dst, self.0.eth_dst) = solicited_node(nd.target);
        }
        self
    }

    /// Addressed to `tha` (also the Ethernet destination) at `tpa`.
    pub fn to(mut self, tha: impl IntoMac, tpa: impl IntoIp) -> Self {
        let tha = tha.into_mac();
        self.0.tha = tha;
        self.0.eth_dst = tha;
        self.0.tpa = tpa.into_ip();
        if let Some(nd) = &mut self.0.nd {
            nd.dst = ipv6(self.0.tpa);
        }
        self
    }

    /// A Neighbor Solicitation from `mac` (with its source link-layer option) at `src`; the
    /// target is given with [`asking`](Self::asking).
    pub fn solicit(self, mac: impl IntoMac, src: impl IntoIp) -> Self {
        let mut f = self.sender(ArpOp::Request, mac, src);
        f.0.nd = Some(NdFields {
            src: ipv6(f.0.spa),
            dst: Ipv6Addr::UNSPECIFIED,
            target: Ipv6Addr::UNSPECIFIED,
            lladdr: Some(f.0.sha),
            flags: NaFlags::default(),
        });
        f
    }

    /// A duplicate address detection probe from `mac` for `target`: an NS from `::` without a
    /// link-layer option.
    pub fn dad(self, mac: impl IntoMac, target: impl IntoIp) -> Self {
        self.solicit(mac, Ipv6Addr::UNSPECIFIED).asking(target).without_lladdr()
    }

    /// A Neighbor Advertisement from `mac` (with its target link-layer option) for `target`,
    /// with R, S, O as in `flags`. Unsolicited ones go to all nodes; a solicited one is
    /// addressed with [`to`](Self::to).
    pub fn advertise(self, mac: impl IntoMac, target: impl IntoIp, flags: NaFlags) -> Self {
        let mut f = self.sender(ArpOp::Reply, mac, target);
        let target = ipv6(f.0.spa);
        f.0.nd =
            Some(NdFields { src: target, dst: ALL_NODES.0, target, lladdr: Some(f.0.sha), flags });
        f.0.tpa = ALL_NODES.0.into();
        f.0.eth_dst = ALL_NODES.1;
        f
    }

    /// Without the link-layer address option: the sender is known by its Ethernet source only.
    pub fn without_lladdr(mut self) -> Self {
        if let Some(nd) = &mut self.0.nd {
            nd.lladdr = None;
        }
        self
    }

    /// A gratuitous ARP (SPA = TPA) of `op` from `sha` for `addr`, broadcast.
    pub fn announce(self, op: ArpOp, sha: impl IntoMac, addr: impl IntoIp) -> Self {
        let mut f = self.sender(op, sha, addr);
        f.0.tpa = f.0.spa;
        f
    }

    /// An RFC 5227 probe from `sha` for `tpa` (sender address 0.0.0.0).
    pub fn probe(self, sha: impl IntoMac, tpa: impl IntoIp) -> Self {
        self.sender(ArpOp::Request, sha, Ipv4Addr::UNSPECIFIED).asking(tpa)
    }

    /// Seen on `iface` (a `&str` or a shared `Arc<str>`).
    pub fn on(mut self, iface: impl Into<Arc<str>>) -> Self {
        self.0.iface = iface.into();
        self
    }

    pub fn ifindex(mut self, ifindex: u32) -> Self {
        self.0.ifindex = ifindex;
        self
    }

    /// Sent by this host (seen by the egress program).
    pub fn egress(self) -> Self {
        self.direction(Direction::Egress)
    }

    pub fn direction(mut self, direction: Direction) -> Self {
        self.0.direction = direction;
        self
    }

    /// An Ethernet source other than the sender hardware address (for an ND message without
    /// its link-layer option, also the sender's MAC as arpwatch reads it).
    pub fn eth_src(mut self, src: impl IntoMac) -> Self {
        self.0.eth_src = src.into_mac();
        if self.0.nd.is_some_and(|nd| nd.lladdr.is_none()) {
            self.0.sha = self.0.eth_src;
        }
        self
    }

    /// An Ethernet destination other than the one `to` or the broadcast default gave.
    pub fn eth_dst(mut self, dst: impl IntoMac) -> Self {
        self.0.eth_dst = dst.into_mac();
        self
    }

    /// The VLAN ids, outermost first.
    ///
    /// # Panics
    /// With more than two ids.
    pub fn vlan(mut self, ids: &[u16]) -> Self {
        self.0.vlan = VlanTags::from_slice(ids).expect("at most two VLAN ids");
        self
    }

    /// Identical frames the kernel folded into this one.
    pub fn repeats(mut self, repeats: u32) -> Self {
        self.0.repeats = repeats;
        self
    }

    /// When the latest folded repeat was seen, `secs` after [`T0_SECS`] like [`frame`].
    pub fn last_repeat(mut self, secs: f64) -> Self {
        self.0.last_repeat = Some(at(secs));
        self
    }

    pub fn build(self) -> Observation {
        self.0
    }
}

/// A `&Frame` is taken wherever a `&Observation` is: `engine.observe(&frame(0.0).probe(A, VIP), ..)`.
impl std::ops::Deref for Frame {
    type Target = Observation;

    fn deref(&self) -> &Observation {
        &self.0
    }
}

impl From<Frame> for Observation {
    fn from(frame: Frame) -> Observation {
        frame.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_to_a_requester_fills_both_layers() {
        let obs = frame(1.5)
            .reply("02:00:00:00:00:0a", "192.0.2.10")
            .to(MacAddr([2, 0, 0, 0, 0, 0x99]), [192, 0, 2, 99])
            .build();
        assert_eq!(obs.ts, Timestamp::from_nanos(1_795_255_201_500_000_000));
        assert_eq!((obs.op, obs.direction, obs.ifindex), (ArpOp::Reply, Direction::Ingress, 2));
        assert_eq!((obs.sha, obs.eth_src), (mac("02:00:00:00:00:0a"), mac("02:00:00:00:00:0a")));
        assert_eq!((obs.tha, obs.eth_dst), (mac("02:00:00:00:00:99"), mac("02:00:00:00:00:99")));
        assert_eq!((obs.spa, obs.tpa), (ip("192.0.2.10"), ip("192.0.2.99")));
    }

    #[test]
    fn announcements_probes_and_requests_stay_broadcast() {
        let g = frame(0.0).announce(ArpOp::Reply, "02:00:00:00:00:0b", "192.0.2.10").build();
        assert!(g.is_gratuitous() && g.eth_dst.is_broadcast());
        let p = frame(0.0).probe([2, 0, 0, 0, 0, 0x0c], "192.0.2.10").build();
        assert!(p.is_probe() && p.spa.is_unspecified());
        let r = frame(0.0).request("02:00:00:00:00:0c", "192.0.2.1").asking("192.0.2.2").build();
        assert_eq!((r.op, r.tha, r.eth_dst), (ArpOp::Request, MacAddr::ZERO, MacAddr::BROADCAST));
    }
}
