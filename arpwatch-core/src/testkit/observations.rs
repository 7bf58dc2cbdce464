//! Observations built fluently: `frame(secs).reply(A, VIP).to(CLIENT, CLIENT_IP)` is a reply from
//! `A` for `VIP` to the client, seen `secs` after [`T0`] on ingress of `eth0` (ifindex 2). Addresses
//! are given as text (`"02:00:00:00:00:0a"`, `"192.0.2.10"`), as [`MacAddr`]/[`Ipv4Addr`] or as
//! bytes. The engine, metrics and bench inputs are built here.

use std::net::Ipv4Addr;
use std::sync::{Arc, OnceLock};

use crate::observation::{ArpOp, Direction, MacAddr, Observation, Timestamp, VlanTags};

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

/// An IPv4 address from its text.
///
/// # Panics
/// On anything but an IPv4 address.
pub fn ip(s: &str) -> Ipv4Addr {
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

/// Anything a test names an IPv4 address with.
pub trait IntoIp {
    fn into_ip(self) -> Ipv4Addr;
}

impl IntoIp for Ipv4Addr {
    fn into_ip(self) -> Ipv4Addr {
        self
    }
}

impl IntoIp for [u8; 4] {
    fn into_ip(self) -> Ipv4Addr {
        Ipv4Addr::from(self)
    }
}

impl IntoIp for &str {
    fn into_ip(self) -> Ipv4Addr {
        ip(self)
    }
}

impl IntoIp for &String {
    fn into_ip(self) -> Ipv4Addr {
        ip(self)
    }
}

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
            spa: Ipv4Addr::UNSPECIFIED,
            tha: MacAddr::ZERO,
            tpa: Ipv4Addr::UNSPECIFIED,
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

    /// The address a request asks for.
    pub fn asking(mut self, tpa: impl IntoIp) -> Self {
        self.0.tpa = tpa.into_ip();
        self
    }

    /// Addressed to `tha` (also the Ethernet destination) at `tpa`.
    pub fn to(mut self, tha: impl IntoMac, tpa: impl IntoIp) -> Self {
        let tha = tha.into_mac();
        self.0.tha = tha;
        self.0.eth_dst = tha;
        self.0.tpa = tpa.into_ip();
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

    /// An Ethernet source other than the sender hardware address.
    pub fn eth_src(mut self, src: impl IntoMac) -> Self {
        self.0.eth_src = src.into_mac();
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
