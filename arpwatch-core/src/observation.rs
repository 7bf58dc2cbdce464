//! One ARP frame or IPv6 Neighbor Discovery message as user space sees it, whatever its source
//! (the kernel ring buffer or a capture file). The engine, the raw output and the tests all speak
//! this type.
//!
//! Neighbor Discovery is ARP for IPv6 (RFC 4861), and an observation puts an NS or NA in ARP's
//! terms, so that every detection has one definition for both protocols (SPEC §3):
//!
//! | field | ARP | Neighbor Solicitation | Neighbor Advertisement |
//! |---|---|---|---|
//! | `op` | request, reply | request | reply |
//! | `sha` | sender MAC | source link-layer option, else the Ethernet source | target link-layer option, else the Ethernet source |
//! | `spa` | sender IP | IPv6 source (`::` for DAD) | the target: the address it claims |
//! | `tha` | target MAC | zero | Ethernet destination |
//! | `tpa` | target IP | the target: the address asked for | IPv6 destination: the solicitor |
//!
//! What only ND has (addresses as on the wire, whether the option was there, the NA flags) is in
//! [`Observation::nd`], which the raw output writes.

use serde::{Serialize, Serializer};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use arpwatch_common::{direction, na_flag, op, proto, NeighRecord, MAX_VLAN_TAGS};

/// Wall-clock time in nanoseconds since the Unix epoch (UTC). The engine never reads a clock: its
/// notion of "now" is the timestamp of the last observation or tick it was given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub const fn from_nanos(ns: u64) -> Self {
        Timestamp(ns)
    }

    pub const fn from_secs(secs: u64) -> Self {
        Timestamp(secs * 1_000_000_000)
    }

    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// Time elapsed since `earlier`, zero if `earlier` is later (captures are not always ordered).
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }

    pub fn saturating_add(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(d.as_nanos().min(u64::MAX as u128) as u64))
    }

    /// RFC 3339 in UTC with nanosecond precision, e.g. `2026-11-21T10:00:00.123456789Z`.
    pub fn to_rfc3339(self) -> String {
        self.rfc3339().as_str().to_owned()
    }

    /// The RFC 3339 text without allocating (every output line has one): UTC, the fraction of
    /// the second with its trailing zeros trimmed and left out when zero, e.g.
    /// `2026-11-21T10:00:00.25Z`. Nanoseconds past `i64::MAX` count back from the epoch, as
    /// they always have been (a signed offset from 1970).
    pub fn rfc3339(self) -> Rfc3339 {
        let ns = self.0 as i64;
        let secs = ns.div_euclid(1_000_000_000);
        let nanos = ns.rem_euclid(1_000_000_000) as u32;
        let mut text = Rfc3339 { bytes: *b"0000-00-00T00:00:00.000000000Z", len: 0 };
        let b = &mut text.bytes;
        b[..19].copy_from_slice(&second_text(secs));
        let mut end = 19;
        if nanos != 0 {
            put_digits(&mut b[20..29], nanos);
            end = 29;
            while b[end - 1] == b'0' {
                end -= 1;
            }
        }
        b[end] = b'Z';
        text.len = end as u8 + 1;
        text
    }
}

/// `YYYY-MM-DDTHH:MM:SS` of the second `secs` after the epoch. The last one is kept per thread:
/// the lines written one after another (a capture's frames, a batch of events) mostly share it.
fn second_text(secs: i64) -> [u8; 19] {
    thread_local! {
        static LAST: std::cell::Cell<Option<(i64, [u8; 19])>> = const { std::cell::Cell::new(None) };
    }
    if let Some((last, text)) = LAST.get() {
        if last == secs {
            return text;
        }
    }
    let (days, day_secs) = (secs.div_euclid(86_400), secs.rem_euclid(86_400) as u32);
    let (year, month, day) = civil_from_days(days);
    let mut text = *b"0000-00-00T00:00:00";
    put_digits(&mut text[0..4], year);
    put_digits(&mut text[5..7], month);
    put_digits(&mut text[8..10], day);
    put_digits(&mut text[11..13], day_secs / 3600);
    put_digits(&mut text[14..16], day_secs / 60 % 60);
    put_digits(&mut text[17..19], day_secs % 60);
    LAST.set(Some((secs, text)));
    text
}

/// Writes `value` in decimal into all of `out`, zero-padded on the left.
fn put_digits(out: &mut [u8], mut value: u32) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// The proleptic Gregorian date of a day counted from 1970-01-01 (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (u32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year as u32, month as u32, day as u32)
}

/// A timestamp's RFC 3339 text, on the stack ([`Timestamp::rfc3339`]).
#[derive(Clone, Copy)]
pub struct Rfc3339 {
    bytes: [u8; 30],
    len: u8,
}

impl Rfc3339 {
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and separators are ever written.
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.rfc3339().as_str())
    }
}

/// An Ethernet MAC address, printed lower-case with colons.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const ZERO: MacAddr = MacAddr([0; 6]);
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);

    pub fn is_zero(&self) -> bool {
        *self == Self::ZERO
    }

    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Group (multicast or broadcast) addresses have the low bit of the first octet set.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl MacAddr {
    /// The lower-case colon form without allocating (every output line has MACs).
    pub fn text(self) -> MacText {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = *b"00:00:00:00:00:00";
        for (i, byte) in self.0.into_iter().enumerate() {
            text[3 * i] = HEX[usize::from(byte >> 4)];
            text[3 * i + 1] = HEX[usize::from(byte & 0xf)];
        }
        MacText(text)
    }
}

/// A MAC address's text, on the stack ([`MacAddr::text`]).
#[derive(Clone, Copy)]
pub struct MacText([u8; 17]);

impl MacText {
    pub fn as_str(&self) -> &str {
        // Only hex digits and colons are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text().as_str())
    }
}

/// Error for a MAC address that is not six hex octets separated by `:` or `-`.
#[derive(Debug, thiserror::Error)]
#[error("'{0}' is not a MAC address (expected six hex octets such as 02:00:5e:00:01:0a)")]
pub struct MacParseError(String);

impl FromStr for MacAddr {
    type Err = MacParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in out.iter_mut() {
            let part = parts.next().ok_or_else(|| MacParseError(s.to_owned()))?;
            if part.len() != 2 {
                return Err(MacParseError(s.to_owned()));
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| MacParseError(s.to_owned()))?;
        }
        if parts.next().is_some() {
            return Err(MacParseError(s.to_owned()));
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.text().as_str())
    }
}

impl<'de> serde::Deserialize<'de> for MacAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }
}

/// The protocol a frame spoke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Arp,
    Ndp,
}

impl Proto {
    pub const fn as_str(self) -> &'static str {
        match self {
            Proto::Arp => "arp",
            Proto::Ndp => "ndp",
        }
    }

    /// The protocol that resolves `ip`: ARP for IPv4, Neighbor Discovery for IPv6.
    pub const fn of(ip: IpAddr) -> Proto {
        match ip {
            IpAddr::V4(_) => Proto::Arp,
            IpAddr::V6(_) => Proto::Ndp,
        }
    }
}

/// What a frame does: asks (an ARP request, a Neighbor Solicitation) or answers and announces (an
/// ARP reply, a Neighbor Advertisement).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ArpOp {
    Request,
    Reply,
}

/// The flags of a Neighbor Advertisement (RFC 4861 §4.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct NaFlags {
    /// R: the sender is a router.
    pub router: bool,
    /// S: an answer to a solicitation; an advertisement without it is an announcement.
    pub solicited: bool,
    /// O: replaces a neighbour's cached MAC. Without it a host that cached another MAC keeps it
    /// (only marks it stale), so a takeover announced with O clear does not move the clients.
    #[serde(rename = "override")]
    pub override_: bool,
}

impl NaFlags {
    pub const fn from_bits(bits: u8) -> NaFlags {
        NaFlags {
            router: bits & na_flag::ROUTER != 0,
            solicited: bits & na_flag::SOLICITED != 0,
            override_: bits & na_flag::OVERRIDE != 0,
        }
    }
}

/// What a Neighbor Discovery message carries beyond ARP's terms, as on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NdFields {
    /// IPv6 source (`::` for a duplicate address detection probe).
    pub src: Ipv6Addr,
    /// IPv6 destination.
    pub dst: Ipv6Addr,
    /// The address solicited or advertised.
    pub target: Ipv6Addr,
    /// The source (NS) or target (NA) link-layer address option, when present.
    pub lladdr: Option<MacAddr>,
    /// An advertisement's flags; all clear for a solicitation.
    pub flags: NaFlags,
}

/// The VLAN ids a frame carried, outermost first (at most two).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct VlanTags {
    ids: [u16; MAX_VLAN_TAGS],
    len: u8,
}

impl VlanTags {
    pub const NONE: VlanTags = VlanTags { ids: [0; MAX_VLAN_TAGS], len: 0 };

    /// Tags from a list; `None` if there are more than arpwatch decodes.
    pub fn from_slice(ids: &[u16]) -> Option<Self> {
        if ids.len() > MAX_VLAN_TAGS {
            return None;
        }
        let mut tags = VlanTags::NONE;
        tags.ids[..ids.len()].copy_from_slice(ids);
        tags.len = ids.len() as u8;
        Some(tags)
    }

    pub fn as_slice(&self) -> &[u16] {
        &self.ids[..self.len as usize]
    }

    /// The innermost VLAN id, the one that names the L2 segment, if any.
    pub fn innermost(&self) -> Option<u16> {
        self.as_slice().last().copied()
    }
}

impl Serialize for VlanTags {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_slice().serialize(s)
    }
}

/// One valid ARP frame or Neighbor Discovery message, in ARP's terms (see the module doc). Its
/// raw line (`--raw`) is written by [`crate::wire`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub ts: Timestamp,
    /// Interface name at the time of the observation (for a capture file: the capture's interface
    /// name when it records one).
    pub iface: Arc<str>,
    pub ifindex: u32,
    pub direction: Direction,
    pub vlan: VlanTags,
    pub op: ArpOp,
    pub eth_src: MacAddr,
    pub eth_dst: MacAddr,
    pub sha: MacAddr,
    pub spa: IpAddr,
    pub tha: MacAddr,
    pub tpa: IpAddr,
    /// The message as Neighbor Discovery has it; `None` for ARP.
    pub nd: Option<NdFields>,
    /// Identical frames the kernel folded into this one (same sender, target, op, interface and
    /// direction within the de-duplication interval): this observation stands for `1 + repeats`
    /// frames. Not part of the raw line, which shows one frame as seen.
    pub repeats: u32,
    /// When the latest of those repeats was seen, when `repeats > 0` and the source knows it: a
    /// folded retransmission of a request has its own reply deadline.
    pub last_repeat: Option<Timestamp>,
}

impl Observation {
    /// Builds an observation from a kernel record. `ts` is the record's boot-time stamp already
    /// converted to wall-clock time by the caller, which owns the clock.
    pub fn from_record(record: &NeighRecord, ts: Timestamp, iface: Arc<str>) -> Self {
        let vlan_len = (record.vlan_count as usize).min(MAX_VLAN_TAGS);
        let eth_src = MacAddr(record.eth_src);
        let eth_dst = MacAddr(record.eth_dst);
        let (op, sha, spa, tha, tpa, nd) = if record.proto == proto::NDP {
            let nd = NdFields {
                src: Ipv6Addr::from(record.spa),
                dst: Ipv6Addr::from(record.tpa),
                target: Ipv6Addr::from(record.nd_target),
                lladdr: (record.lladdr_present != 0).then_some(MacAddr(record.sha)),
                flags: NaFlags::from_bits(record.nd_flags),
            };
            let sha = nd.lladdr.unwrap_or(eth_src);
            if record.op == op::NEIGHBOR_ADVERTISEMENT {
                (ArpOp::Reply, sha, nd.target.into(), eth_dst, nd.dst.into(), Some(nd))
            } else {
                (ArpOp::Request, sha, nd.src.into(), MacAddr::ZERO, nd.target.into(), Some(nd))
            }
        } else {
            let ipv4 =
                |field: [u8; 16]| IpAddr::V4(Ipv4Addr::new(field[0], field[1], field[2], field[3]));
            let op = if record.op == op::REPLY { ArpOp::Reply } else { ArpOp::Request };
            (op, MacAddr(record.sha), ipv4(record.spa), MacAddr(record.tha), ipv4(record.tpa), None)
        };
        Observation {
            ts,
            iface,
            ifindex: record.ifindex,
            direction: if record.direction == direction::EGRESS {
                Direction::Egress
            } else {
                Direction::Ingress
            },
            vlan: VlanTags::from_slice(&record.vlan[..vlan_len]).unwrap_or_default(),
            op,
            eth_src,
            eth_dst,
            sha,
            spa,
            tha,
            tpa,
            nd,
            repeats: record.suppressed,
            last_repeat: None,
        }
    }

    pub fn proto(&self) -> Proto {
        if self.nd.is_some() {
            Proto::Ndp
        } else {
            Proto::Arp
        }
    }

    /// An announcement: an ARP request or reply whose sender and target protocol addresses are
    /// the same non-zero IP (RFC 5227 §2.3, MetalLB and kube-vip failover, keepalived), or an
    /// unsolicited Neighbor Advertisement.
    pub fn is_gratuitous(&self) -> bool {
        match &self.nd {
            Some(nd) => self.op == ArpOp::Reply && !nd.flags.solicited,
            None => self.spa == self.tpa && !self.spa.is_unspecified(),
        }
    }

    /// How many frames this observation stands for.
    pub fn frames(&self) -> u64 {
        1 + u64::from(self.repeats)
    }

    /// An address probe: an RFC 5227 ARP probe (sender IP 0.0.0.0) or a duplicate address
    /// detection Neighbor Solicitation (source `::`, RFC 4862 §5.4).
    pub fn is_probe(&self) -> bool {
        self.op == ArpOp::Request && self.spa.is_unspecified()
    }

    /// The Override flag of a Neighbor Advertisement; `None` for anything else.
    pub fn override_flag(&self) -> Option<bool> {
        self.nd.filter(|_| self.op == ArpOp::Reply).map(|nd| nd.flags.override_)
    }

    /// How this frame's sender (SHA, SPA) claims its IP, if it does. The one definition of a
    /// claim, for the engine and the metrics alike: a probe, a zero sender IP or a zero sender
    /// MAC claims nothing.
    pub fn claim(&self) -> Option<ClaimKind> {
        if self.spa.is_unspecified() || self.sha.is_zero() {
            return None;
        }
        Some(if self.is_gratuitous() {
            ClaimKind::Gratuitous
        } else if self.op == ArpOp::Reply {
            ClaimKind::Reply
        } else {
            ClaimKind::Request
        })
    }
}

/// How a frame's sender claims its IP (see [`Observation::claim`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimKind {
    /// Gratuitous request or reply (SPA = TPA): a claim.
    Gratuitous,
    /// Plain reply: a claim.
    Reply,
    /// Plain request: a weak claim that makes a binding but never takes an IP over, since every
    /// host puts its own address in the requests it sends.
    Request,
}

impl ClaimKind {
    /// A claim that can make or change the IP's owner: a reply or an announcement.
    pub fn is_strong(self) -> bool {
        self != ClaimKind::Request
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trips_in_lower_case_colon_form() {
        let mac: MacAddr = "02:AB:cd:00:01:ff".parse().unwrap();
        assert_eq!(mac.to_string(), "02:ab:cd:00:01:ff");
        assert_eq!("02-ab-cd-00-01-ff".parse::<MacAddr>().unwrap(), mac);
        for bad in ["02:ab:cd:00:01", "02:ab:cd:00:01:ff:00", "02:ab:cd:00:01:fg", "2:ab:cd:0:1:f"]
        {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamp_formats_as_rfc3339_utc_with_nanoseconds() {
        let ts = Timestamp::from_nanos(1_700_000_000_123_456_789);
        assert_eq!(ts.to_rfc3339(), "2023-11-14T22:13:20.123456789Z");
    }

    /// The hand-made text is the `time` crate's RFC 3339, which the output had before: across
    /// leap years, month ends, fractions of every length, past `i64::MAX`, and from the cache of
    /// the last second.
    #[test]
    fn timestamp_text_is_the_time_crates_rfc3339() {
        let by_time = |ts: Timestamp| {
            let t = time::OffsetDateTime::UNIX_EPOCH + time::Duration::nanoseconds(ts.0 as i64);
            t.format(&time::format_description::well_known::Rfc3339).unwrap()
        };
        let mut ns: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut cases = vec![0, 1, 1_000_000_000, 951_782_400_000_000_000, u64::MAX, 1 << 63];
        for _ in 0..20_000 {
            ns ^= ns << 13;
            ns ^= ns >> 7;
            ns ^= ns << 17;
            // Whole seconds, and fractions with one to nine digits.
            let fraction = [0, 500_000_000, 120_000_000, 123_456_789, 100][(ns % 5) as usize];
            cases.push(ns);
            cases.push((ns % 4_000_000_000) * 1_000_000_000 + fraction);
        }
        for ns in cases {
            // Then a time in the same second, whose date and time of day come from the cache.
            for ts in [Timestamp::from_nanos(ns), Timestamp::from_nanos(ns ^ 1)] {
                assert_eq!(ts.to_rfc3339(), by_time(ts), "{}", ts.0);
            }
        }
    }

    #[test]
    fn mac_text_is_every_octet_in_lower_case_hex() {
        for byte in 0..=255u8 {
            let mac = MacAddr([byte, 0, 0x0a, byte, 0xff, byte]);
            let by_format = format!("{byte:02x}:00:0a:{byte:02x}:ff:{byte:02x}");
            assert_eq!(mac.text().as_str(), by_format);
        }
    }

    #[test]
    fn record_becomes_observation_with_only_the_meaningful_vlan_ids() {
        let record = NeighRecord {
            ts_boot_ns: 5,
            ifindex: 7,
            direction: direction::INGRESS,
            op: op::REPLY,
            vlan_count: 1,
            vlan: [123, 0],
            eth_src: [2, 0, 0, 0, 0, 1],
            eth_dst: [2, 0, 0, 0, 0, 2],
            sha: [2, 0, 0, 0, 0, 1],
            tha: [2, 0, 0, 0, 0, 2],
            spa: arpwatch_common::ipv4_field([192, 0, 2, 10]),
            tpa: arpwatch_common::ipv4_field([192, 0, 2, 1]),
            ..Default::default()
        };
        let obs = Observation::from_record(&record, Timestamp::from_secs(1), "eth0".into());
        assert_eq!(obs.vlan.as_slice(), &[123]);
        assert_eq!(obs.op, ArpOp::Reply);
        assert_eq!(obs.spa, IpAddr::from([192, 0, 2, 10]));
        let json = serde_json::to_value(crate::wire::RawLine(&obs)).unwrap();
        assert_eq!(json["proto"], "arp");
        assert_eq!(json["vlan"], serde_json::json!([123]));
        assert_eq!(json["direction"], "ingress");
        assert_eq!(json["op"], "reply");
        assert_eq!(json["sha"], "02:00:00:00:00:01");
        assert_eq!(json["tpa"], "192.0.2.1");
        assert_eq!(json["ts"], "1970-01-01T00:00:01Z");
    }

    /// An ND record as the kernel writes it: IPv6 source and destination in `spa`/`tpa`, the
    /// target in `nd_target`, the link-layer option in `sha`.
    fn nd_record(op: u8, lladdr: Option<[u8; 6]>, flags: u8) -> NeighRecord {
        NeighRecord {
            proto: proto::NDP,
            op,
            eth_src: [2, 0, 0, 0, 0, 0x0b],
            eth_dst: [2, 0, 0, 0, 0, 0x99],
            sha: lladdr.unwrap_or_default(),
            lladdr_present: u8::from(lladdr.is_some()),
            nd_flags: flags,
            spa: "2001:db8::b".parse::<Ipv6Addr>().unwrap().octets(),
            tpa: "2001:db8::99".parse::<Ipv6Addr>().unwrap().octets(),
            nd_target: "2001:db8::100".parse::<Ipv6Addr>().unwrap().octets(),
            ..Default::default()
        }
    }

    #[test]
    fn an_advertisement_claims_its_target_for_its_target_link_layer_address() {
        let flags = na_flag::SOLICITED | na_flag::OVERRIDE;
        let record = nd_record(op::NEIGHBOR_ADVERTISEMENT, Some([2, 0, 0, 0, 0, 0x0a]), flags);
        let obs = Observation::from_record(&record, Timestamp::from_secs(1), "eth0".into());
        assert_eq!(obs.proto(), Proto::Ndp);
        assert_eq!(obs.op, ArpOp::Reply);
        assert_eq!(obs.spa, "2001:db8::100".parse::<IpAddr>().unwrap(), "claims the target");
        assert_eq!(obs.sha, MacAddr([2, 0, 0, 0, 0, 0x0a]), "by the target link-layer option");
        assert_eq!(obs.tpa, "2001:db8::99".parse::<IpAddr>().unwrap(), "to the solicitor");
        assert_eq!(obs.tha, MacAddr([2, 0, 0, 0, 0, 0x99]));
        assert_eq!(obs.claim(), Some(ClaimKind::Reply));
        assert_eq!(obs.override_flag(), Some(true));
        let nd = obs.nd.unwrap();
        assert_eq!(nd.src, "2001:db8::b".parse::<Ipv6Addr>().unwrap());
        assert!(nd.flags.solicited && nd.flags.override_ && !nd.flags.router);

        // Without the option, the Ethernet source is the claimant; without S, an announcement.
        let record = nd_record(op::NEIGHBOR_ADVERTISEMENT, None, na_flag::OVERRIDE);
        let obs = Observation::from_record(&record, Timestamp::from_secs(1), "eth0".into());
        assert_eq!(obs.sha, MacAddr([2, 0, 0, 0, 0, 0x0b]));
        assert_eq!(obs.nd.unwrap().lladdr, None);
        assert_eq!(obs.claim(), Some(ClaimKind::Gratuitous));
    }

    #[test]
    fn a_solicitation_is_a_request_from_its_source_and_dad_is_a_probe() {
        let record = nd_record(op::NEIGHBOR_SOLICITATION, Some([2, 0, 0, 0, 0, 0x0c]), 0);
        let obs = Observation::from_record(&record, Timestamp::from_secs(1), "eth0".into());
        assert_eq!((obs.op, obs.sha), (ArpOp::Request, MacAddr([2, 0, 0, 0, 0, 0x0c])));
        assert_eq!(obs.spa, "2001:db8::b".parse::<IpAddr>().unwrap());
        assert_eq!(obs.tpa, "2001:db8::100".parse::<IpAddr>().unwrap(), "asks for the target");
        assert_eq!(obs.claim(), Some(ClaimKind::Request));
        assert_eq!(obs.override_flag(), None);

        let mut dad = nd_record(op::NEIGHBOR_SOLICITATION, None, 0);
        dad.spa = [0; 16];
        let obs = Observation::from_record(&dad, Timestamp::from_secs(1), "eth0".into());
        assert!(obs.is_probe());
        assert_eq!(obs.claim(), None);
        assert_eq!(obs.sha, MacAddr([2, 0, 0, 0, 0, 0x0b]), "the prober is the Ethernet source");
    }
}
