//! The configuration file (TOML, `--config FILE`), parsed once into plain structs: the text is
//! deserialized straight into them, each value checked where it is read, so an error names its
//! key. Every key, its default and an example are in `docs/config.md`;
//! `deploy/arpwatch.example.toml` is a complete file. Reading the file is the shell's business;
//! this module starts from its text ([`Config::from_toml`]). Flags override fields of
//! [`EngineConfig`] directly (all fields are public); call [`EngineConfig::validate`] after
//! overriding.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

use crate::observation::MacAddr;

/// Everything a configuration file can set.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    pub engine: EngineConfig,
}

/// What the detection engine needs to know: the top level of the file.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// The observer sees all traffic of the segment (a capture file, a SPAN/mirror port), so a
    /// request that anyone sends and nobody answers can be reported as `unanswered`. Off, only
    /// requests this host sent (egress) are followed, since replies to other hosts are not seen.
    pub full_view: bool,
    pub pools: Vec<Pool>,
    pub thresholds: Thresholds,
    pub exemptions: Exemptions,
    pub caps: Caps,
}

/// A set of floating IPs (a MetalLB address pool, a kube-vip range, a VRRP VIP) and who may
/// answer for them.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    pub name: String,
    /// Networks, host bits cleared (see [`parse_cidr`]).
    #[serde(deserialize_with = "list")]
    pub cidrs: Vec<IpNet>,
    /// Interfaces on which claims for the pool are expected; empty means any.
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// MACs allowed to claim the pool's IPs; empty means any.
    #[serde(default, deserialize_with = "list")]
    pub macs: Vec<MacAddr>,
    /// A pool from the cluster's load balancer: the interfaces of the *announcing nodes* it may
    /// be announced from (MetalLB `L2Advertisement.spec.interfaces`), not the observer's.
    #[serde(skip)]
    pub node_interfaces: Vec<String>,
    /// MACs of the pool's nodes on their other interfaces: such a claim is the node answering on
    /// an interface it should not (`unexpected_interface`), not a foreign device.
    #[serde(skip)]
    pub misplaced_macs: Vec<MacAddr>,
}

impl Pool {
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.cidrs.iter().any(|net| net.contains(&ip))
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Thresholds {
    /// Replies from two MACs to the same requester within this time are a strong multi-responder.
    #[serde(deserialize_with = "duration")]
    pub reply_window: Duration,
    /// Claims interleaving A, B, A within this time are a sustained multi-responder.
    #[serde(deserialize_with = "duration")]
    pub concurrency_window: Duration,
    /// This many owner changes of one IP within `flap_window` are flapping.
    pub flap_count: u32,
    #[serde(deserialize_with = "duration")]
    pub flap_window: Duration,
    /// A request for a watched IP with no claim for it within this time is unanswered.
    #[serde(deserialize_with = "duration")]
    pub reply_timeout: Duration,
    /// `unanswered` starts once this many consecutive requests for the IP went unanswered.
    pub unanswered_after: u32,
    /// ARP frames per second on one interface above which it is a storm.
    pub storm_rate_per_iface: u32,
    /// ARP frames per second from one Ethernet source above which it is a storm.
    pub storm_rate_per_mac: u32,
    /// Informational events (`new_binding`, `gratuitous`, `probe`) per second one interface may
    /// report one by one once its burst is spent; those beyond are summarised in its `storm`.
    /// 0 turns the budget off: every informational event is reported.
    pub info_rate_per_iface: u32,
    /// Informational events one interface may report at once before its rate applies.
    pub info_burst_per_iface: u32,
    /// A lasting condition is reported `ongoing` at most this often.
    #[serde(deserialize_with = "duration")]
    pub report_interval: Duration,
    /// A lasting condition ends after this long without new evidence.
    #[serde(deserialize_with = "duration")]
    pub quiet_window: Duration,
    /// A VIP answered by a MAC its declared announcer does not allow (or not answered) for
    /// longer than this is `announcer_mismatch`; a normal failover converges within a second or
    /// two.
    #[serde(deserialize_with = "duration")]
    pub announcer_grace: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            reply_window: Duration::from_secs(1),
            concurrency_window: Duration::from_secs(10),
            flap_count: 3,
            flap_window: Duration::from_secs(60),
            reply_timeout: Duration::from_secs(1),
            unanswered_after: 2,
            storm_rate_per_iface: 500,
            storm_rate_per_mac: 50,
            // A busy segment has a few new hosts a minute and an HA announcement every few
            // seconds; the burst lets a /23 be learnt in full when arpwatch starts (or every
            // host re-resolves after a switch reboot).
            info_rate_per_iface: 20,
            info_burst_per_iface: 500,
            report_interval: Duration::from_secs(60),
            quiet_window: Duration::from_secs(30),
            announcer_grace: Duration::from_secs(5),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Exemptions {
    /// MACs whose ARP sender address may differ from the Ethernet source (MS NLB, some bonds).
    #[serde(deserialize_with = "list")]
    pub sender_mismatch_macs: Vec<MacAddr>,
    /// HA virtual-MAC prefixes. A virtual MAC is sent by whichever router is master, often from
    /// that router's own Ethernet address, so it never raises `sender_mismatch`.
    #[serde(deserialize_with = "list")]
    pub ha_mac_prefixes: Vec<MacPrefix>,
}

impl Exemptions {
    pub const VRRP_PREFIX: MacPrefix =
        MacPrefix { octets: [0x00, 0x00, 0x5e, 0x00, 0x01, 0], len: 5 };
    pub const HSRP_PREFIX: MacPrefix =
        MacPrefix { octets: [0x00, 0x00, 0x0c, 0x07, 0xac, 0], len: 5 };

    pub fn is_ha_mac(&self, mac: MacAddr) -> bool {
        self.ha_mac_prefixes.iter().any(|p| p.matches(mac))
    }

    /// Whether a frame whose ARP sender `sha` differs from its Ethernet source `eth_src` is
    /// expected.
    pub fn allows_sender_mismatch(&self, sha: MacAddr, eth_src: MacAddr) -> bool {
        self.sender_mismatch_macs.iter().any(|m| *m == sha || *m == eth_src) || self.is_ha_mac(sha)
    }
}

impl Default for Exemptions {
    fn default() -> Self {
        Exemptions {
            sender_mismatch_macs: Vec::new(),
            ha_mac_prefixes: vec![Self::VRRP_PREFIX, Self::HSRP_PREFIX],
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Caps {
    /// IPs with state (bindings, owner, timers); the least recently seen is evicted beyond it.
    pub max_tracked_ips: usize,
    /// MACs remembered per IP; the least recently seen is evicted beyond it.
    pub max_macs_per_ip: usize,
    /// Ethernet sources with storm and sender-mismatch state.
    pub max_tracked_senders: usize,
    /// Interfaces with storm state.
    pub max_interfaces: usize,
}

impl Default for Caps {
    fn default() -> Self {
        Caps {
            max_tracked_ips: 262_144,
            max_macs_per_ip: 16,
            max_tracked_senders: 65_536,
            max_interfaces: 1_024,
        }
    }
}

/// The first one to six octets of a MAC address, e.g. `00:00:5e:00:01`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MacPrefix {
    octets: [u8; 6],
    len: u8,
}

impl MacPrefix {
    pub fn matches(&self, mac: MacAddr) -> bool {
        // Byte by byte, not as slices (a call to memcmp): a request from a claimed IP asks twice
        // per prefix, and most MACs differ in their first byte.
        let n = self.len as usize;
        mac.0.iter().zip(&self.octets).take(n).all(|(a, b)| a == b)
    }
}

impl FromStr for MacPrefix {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let mut prefix = MacPrefix { octets: [0; 6], len: 0 };
        for part in s.split([':', '-']) {
            if prefix.len == 6 || part.len() != 2 {
                return Err(());
            }
            prefix.octets[prefix.len as usize] = u8::from_str_radix(part, 16).map_err(|_| ())?;
            prefix.len += 1;
        }
        Ok(prefix)
    }
}

impl fmt::Display for MacPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.octets[..self.len as usize].iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A key with a value the engine cannot use.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct InvalidKey {
    pub key: String,
    pub message: String,
}

impl InvalidKey {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        InvalidKey { key: key.into(), message: message.into() }
    }
}

/// The most a configuration file may be. Parsing holds the whole document in memory, up to about
/// a hundred times the text, so this bounds what loading a file can cost.
pub const MAX_FILE_BYTES: usize = 1 << 20;
/// The most pools a configuration may declare (the file and `--pool` together).
pub const MAX_POOLS: usize = 10_000;
/// The most CIDRs all pools together may list.
pub const MAX_CIDRS: usize = 65_536;
/// The longest a pool name may be: it is carried in events and metric labels.
pub const MAX_POOL_NAME_BYTES: usize = 256;

impl Config {
    /// Parses and validates configuration text; the error names the key, not the file.
    pub fn from_toml(text: &str) -> Result<Config, InvalidKey> {
        if text.len() > MAX_FILE_BYTES {
            return Err(too_large());
        }
        let engine: EngineConfig = parse_toml(text)?;
        engine.validate()?;
        Ok(Config { engine })
    }

    /// [`from_toml`](Self::from_toml) for the bytes of a file, which must be UTF-8 text. A reader
    /// need not read more than [`MAX_FILE_BYTES`] + 1 bytes: anything longer is refused.
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Config, InvalidKey> {
        if bytes.len() > MAX_FILE_BYTES {
            return Err(too_large());
        }
        let text = std::str::from_utf8(bytes).map_err(|err| {
            let at = err.valid_up_to();
            let line_start = bytes[..at].iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            InvalidKey::new(
                format!("line {}", line_of_bytes(bytes, at)),
                format!(
                    "byte {:#04x} at column {} is not UTF-8 text (a configuration is UTF-8)",
                    bytes[at],
                    at - line_start + 1
                ),
            )
        })?;
        Config::from_toml(text)
    }
}

fn too_large() -> InvalidKey {
    InvalidKey::new(
        "file",
        format!("larger than {} MiB, the most a configuration may be", MAX_FILE_BYTES >> 20),
    )
}

/// The shortest and the longest every duration in `[thresholds]` may be.
pub const DURATION_RANGE: RangeInclusive<Duration> =
    Duration::from_millis(1)..=Duration::from_secs(24 * 3600);

impl Thresholds {
    /// Every duration key, with its value.
    fn durations(&self) -> [(&'static str, Duration); 7] {
        [
            ("thresholds.reply_window", self.reply_window),
            ("thresholds.concurrency_window", self.concurrency_window),
            ("thresholds.flap_window", self.flap_window),
            ("thresholds.reply_timeout", self.reply_timeout),
            ("thresholds.report_interval", self.report_interval),
            ("thresholds.quiet_window", self.quiet_window),
            ("thresholds.announcer_grace", self.announcer_grace),
        ]
    }

    /// Every count and rate, with its value and its valid range.
    fn counts(&self) -> [(&'static str, u64, RangeInclusive<u64>); 6] {
        [
            // One owner change is not a flap; the changes are remembered per IP.
            ("thresholds.flap_count", self.flap_count.into(), 2..=100),
            ("thresholds.unanswered_after", self.unanswered_after.into(), 1..=1_000),
            ("thresholds.storm_rate_per_iface", self.storm_rate_per_iface.into(), 1..=10_000_000),
            ("thresholds.storm_rate_per_mac", self.storm_rate_per_mac.into(), 1..=10_000_000),
            ("thresholds.info_rate_per_iface", self.info_rate_per_iface.into(), 0..=10_000_000),
            // A budget that admits nothing would summarise everything: turn it off with the rate.
            ("thresholds.info_burst_per_iface", self.info_burst_per_iface.into(), 1..=10_000_000),
        ]
    }
}

impl Caps {
    /// Every cap, with its value and its valid range. The upper ends bound memory: about 300
    /// bytes per tracked IP, so 16 Mi IPs is several GiB.
    fn ranges(&self) -> [(&'static str, usize, RangeInclusive<usize>); 4] {
        [
            ("caps.max_tracked_ips", self.max_tracked_ips, 1..=1 << 24),
            ("caps.max_macs_per_ip", self.max_macs_per_ip, 2..=256),
            ("caps.max_tracked_senders", self.max_tracked_senders, 1..=1 << 24),
            ("caps.max_interfaces", self.max_interfaces, 1..=65_536),
        ]
    }
}

/// A duration as the file could write it: `500ms`, `30s`, `1.5s`.
fn show_duration(d: Duration) -> String {
    if d >= Duration::from_secs(3600) && d.as_nanos().is_multiple_of(3_600_000_000_000) {
        format!("{}h", d.as_secs() / 3600)
    } else if d >= Duration::from_secs(60) && d.as_nanos().is_multiple_of(60_000_000_000) {
        format!("{}m", d.as_secs() / 60)
    } else if d < Duration::from_secs(1) && d.as_nanos().is_multiple_of(1_000_000) && !d.is_zero() {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// `value` outside `range`, in one sentence: "N is too small (at least MIN)", or for a duration
/// "D is too short (at least MIN)".
fn out_of_range<T: PartialOrd>(
    value: T,
    range: &RangeInclusive<T>,
    shown: impl Fn(&T) -> String,
    [small, large]: [&str; 2],
) -> Option<String> {
    if value < *range.start() {
        Some(format!("{} is too {small} (at least {})", shown(&value), shown(range.start())))
    } else if value > *range.end() {
        Some(format!("{} is too {large} (at most {})", shown(&value), shown(range.end())))
    } else {
        None
    }
}

const SIZE_WORDS: [&str; 2] = ["small", "large"];
const DURATION_WORDS: [&str; 2] = ["short", "long"];

impl EngineConfig {
    /// Checks the ranges the engine relies on, naming the offending key as in the file.
    pub fn validate(&self) -> Result<(), InvalidKey> {
        let t = &self.thresholds;
        for (key, value) in t.durations() {
            if let Some(problem) =
                out_of_range(value, &DURATION_RANGE, |d| show_duration(*d), DURATION_WORDS)
            {
                return Err(InvalidKey::new(key, problem));
            }
        }
        for (key, value, range) in t.counts() {
            if let Some(problem) = out_of_range(value, &range, u64::to_string, SIZE_WORDS) {
                return Err(InvalidKey::new(key, problem));
            }
        }
        for (key, value, range) in self.caps.ranges() {
            if let Some(problem) = out_of_range(value, &range, usize::to_string, SIZE_WORDS) {
                return Err(InvalidKey::new(key, problem));
            }
        }
        if self.pools.len() > MAX_POOLS {
            return Err(InvalidKey::new(
                "pools",
                format!("{} pools are too many (at most {MAX_POOLS})", self.pools.len()),
            ));
        }
        // Thousands of pools must load fast: names are checked against a map, not each other.
        let mut names: HashMap<&str, usize> = HashMap::with_capacity(self.pools.len());
        let mut cidrs = 0;
        for (i, pool) in self.pools.iter().enumerate() {
            if pool.name.is_empty() {
                return Err(InvalidKey::new(format!("pools[{i}].name"), "must not be empty"));
            }
            if pool.name.len() > MAX_POOL_NAME_BYTES {
                return Err(InvalidKey::new(
                    format!("pools[{i}].name"),
                    format!(
                        "{} is too long (at most {MAX_POOL_NAME_BYTES} bytes)",
                        quoted(&pool.name)
                    ),
                ));
            }
            if pool.cidrs.is_empty() {
                return Err(InvalidKey::new(
                    format!("pools[{i}].cidrs"),
                    "must list at least one CIDR",
                ));
            }
            cidrs += pool.cidrs.len();
            if cidrs > MAX_CIDRS {
                return Err(InvalidKey::new(
                    format!("pools[{i}].cidrs"),
                    format!("brings the CIDRs of all pools to {cidrs}, too many (at most {MAX_CIDRS} in all)"),
                ));
            }
            if let Some(j) = pool.interfaces.iter().position(String::is_empty) {
                return Err(InvalidKey::new(
                    format!("pools[{i}].interfaces[{j}]"),
                    "must not be empty",
                ));
            }
            if let Some(j) = names.insert(&pool.name, i) {
                return Err(InvalidKey::new(
                    format!("pools[{i}].name"),
                    format!("{} is already the name of pools[{j}]", quoted(&pool.name)),
                ));
            }
        }
        Ok(())
    }
}

fn parse_toml<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, InvalidKey> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let key = err.path().to_string();
        let inner = err.into_inner();
        // The parser's messages come in lines ("invalid table header", "expected `.`, `]`").
        let lines: Vec<&str> =
            inner.message().lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        let message = shorten_quotes(&lines.join("; "));
        let key = if key == "." || key.is_empty() {
            match inner.span() {
                Some(span) => format!("line {}", line_of(text, span.start)),
                None => "file".to_owned(),
            }
        } else {
            key
        };
        InvalidKey { key: shorten(&key, MAX_SHOWN_KEY_CHARS), message }
    })
}

fn line_of(text: &str, offset: usize) -> usize {
    line_of_bytes(text.as_bytes(), offset)
}

fn line_of_bytes(bytes: &[u8], offset: usize) -> usize {
    bytes[..offset.min(bytes.len())].iter().filter(|b| **b == b'\n').count() + 1
}

/// How much of a value from the file an error shows: a 1 MB string is not echoed back.
const MAX_SHOWN_VALUE_CHARS: usize = 40;
/// How much of a key path an error shows.
const MAX_SHOWN_KEY_CHARS: usize = 60;
/// How long a whole message from the TOML parser may be.
const MAX_MESSAGE_CHARS: usize = 400;

/// The first `max` characters of `s`, and `…` when there was more.
fn shorten(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_owned(),
    }
}

/// A value from the file as an error quotes it: in double quotes with escapes, so that it stays on
/// one line, and cut short (saying how long it was) when it is long.
fn quoted(s: &str) -> String {
    if s.chars().count() <= MAX_SHOWN_VALUE_CHARS {
        format!("{s:?}")
    } else {
        format!("{:?} ({} bytes)", shorten(s, MAX_SHOWN_VALUE_CHARS), s.len())
    }
}

/// A message from serde or the TOML parser with every long quoted part (`"..."`, which may hold
/// backslash escapes, or `` `...` ``: where they echo values and keys from the file) cut short,
/// and the whole bounded.
fn shorten_quotes(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE_CHARS + 8));
    let mut chars = message.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c != '"' && c != '`' {
            continue;
        }
        // The quoted part, up to its closing quote or the end of the message.
        let (mut inside, mut escaped, mut closed) = (0, false, false);
        for q in chars.by_ref() {
            if q == c && !escaped {
                closed = true;
                break;
            }
            escaped = c == '"' && q == '\\' && !escaped;
            inside += 1;
            if inside <= MAX_SHOWN_VALUE_CHARS {
                out.push(q);
            } else if inside == MAX_SHOWN_VALUE_CHARS + 1 {
                out.push('…');
            }
        }
        if closed {
            out.push(c);
        }
    }
    shorten(&out, MAX_MESSAGE_CHARS)
}

/// An IPv4 or IPv6 network such as `192.0.2.240/28` or `2001:db8::/120`; a bare address is a
/// /32 or /128. Host bits are cleared (`192.0.2.10/24` is `192.0.2.0/24`). The one parser for
/// pools, in the file and on the command line.
pub fn parse_cidr(s: &str) -> Result<IpNet, NotACidr> {
    let parsed = if s.contains('/') {
        s.parse::<IpNet>().ok()
    } else {
        s.parse::<IpAddr>().ok().map(IpNet::from)
    };
    parsed.map(|net| net.trunc()).ok_or_else(|| NotACidr(s.to_owned()))
}

/// Text that [`parse_cidr`] refused; the command line words its own message around it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{} is not an IPv4 or IPv6 CIDR (write e.g. 192.0.2.240/28 or 2001:db8::/120)", quoted(.0))]
pub struct NotACidr(pub String);

/// A value the file writes as a string, with the sentence that says what is wrong with it. The
/// error is raised where the value is read, so it names the key and the index in a list.
trait FromFileText: Sized {
    fn from_file_text(s: &str) -> Result<Self, String>;
}

impl FromFileText for IpNet {
    fn from_file_text(s: &str) -> Result<Self, String> {
        parse_cidr(s).map_err(|err| err.to_string())
    }
}

impl FromFileText for MacAddr {
    fn from_file_text(s: &str) -> Result<Self, String> {
        s.parse().map_err(|_| {
            format!(
                "{} is not a MAC address (write six hex octets such as 02:00:5e:00:01:0a)",
                quoted(s)
            )
        })
    }
}

impl FromFileText for MacPrefix {
    fn from_file_text(s: &str) -> Result<Self, String> {
        s.parse().map_err(|_| {
            format!(
                "{} is not a MAC prefix (write one to six hex octets such as 00:00:5e:00:01)",
                quoted(s)
            )
        })
    }
}

/// One element of a list of [`FromFileText`] values.
struct FileText<T>(T);

impl<'de, T: FromFileText> Deserialize<'de> for FileText<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        T::from_file_text(&s).map(FileText).map_err(serde::de::Error::custom)
    }
}

/// `deserialize_with` for a list of [`FromFileText`] values.
fn list<'de, D: Deserializer<'de>, T: FromFileText>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Vec::<FileText<T>>::deserialize(d)?.into_iter().map(|FileText(v)| v).collect())
}

/// `deserialize_with` for a duration as written in the file (see [`RawDuration`]).
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    RawDuration::deserialize(d)?.parse().map_err(serde::de::Error::custom)
}

/// A duration as written in the file: a string with a unit (`"500ms"`, `"1.1s"`, `"2m"`, `"1h"`)
/// or a number of seconds (`10`, `1.5`). Not a shadow of a config struct but the two written
/// forms of one value; a value of neither form (a list, a table, a boolean) is refused saying
/// what a duration looks like.
enum RawDuration {
    Seconds(f64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Written;
        impl serde::de::Visitor<'_> for Written {
            type Value = RawDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"500ms\", \"1.1s\", \"2m\" or a number of seconds")
            }
            fn visit_f64<E>(self, v: f64) -> Result<RawDuration, E> {
                Ok(RawDuration::Seconds(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<RawDuration, E> {
                Ok(RawDuration::Seconds(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<RawDuration, E> {
                Ok(RawDuration::Seconds(v as f64))
            }
            fn visit_str<E>(self, v: &str) -> Result<RawDuration, E> {
                Ok(RawDuration::Text(v.to_owned()))
            }
        }
        d.deserialize_any(Written)
    }
}

impl RawDuration {
    fn parse(&self) -> Result<Duration, String> {
        let bad = |what: &str| {
            format!("{what} is not a duration (write e.g. \"500ms\", \"1.1s\", \"2m\" or a number of seconds)")
        };
        let (number, unit_secs, shown) = match self {
            RawDuration::Seconds(s) => (*s, 1.0, s.to_string()),
            RawDuration::Text(s) => {
                let t = s.trim();
                let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
                let (num, unit) = t.split_at(split);
                let unit_secs = match unit.trim() {
                    "ms" => 1e-3,
                    "s" | "" => 1.0,
                    "m" => 60.0,
                    "h" => 3600.0,
                    _ => return Err(bad(&quoted(s))),
                };
                let number = num.parse::<f64>().map_err(|_| bad(&quoted(s)))?;
                (number, unit_secs, quoted(s))
            }
        };
        let secs = number * unit_secs;
        if secs.is_nan() || secs < 0.0 {
            return Err(bad(&shown));
        }
        // Refused here already, before `Duration` could overflow; `validate` checks the rest.
        let longest = DURATION_RANGE.end();
        if secs > longest.as_secs_f64() {
            return Err(format!("{shown} is too long (at most {})", show_duration(*longest)));
        }
        Ok(Duration::from_secs_f64(secs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Config::from_toml(text).unwrap_err().to_string()
    }

    #[test]
    fn empty_file_gives_the_documented_defaults() {
        let config = Config::from_toml("").unwrap();
        assert_eq!(config, Config::default());
        let t = &config.engine.thresholds;
        assert_eq!(t.reply_window, Duration::from_secs(1));
        assert_eq!(t.concurrency_window, Duration::from_secs(10));
        assert_eq!((t.flap_count, t.flap_window), (3, Duration::from_secs(60)));
        assert!(!config.engine.full_view);
        let ex = &config.engine.exemptions;
        assert!(ex.is_ha_mac("00:00:5e:00:01:07".parse().unwrap()));
        assert!(ex.is_ha_mac("00:00:0c:07:ac:01".parse().unwrap()));
        assert!(!ex.is_ha_mac("00:00:5e:00:02:07".parse().unwrap()));
    }

    #[test]
    fn the_announcer_grace_defaults_to_5s_and_is_checked_like_every_duration() {
        assert_eq!(Thresholds::default().announcer_grace, Duration::from_secs(5));
        let config = Config::from_toml("[thresholds]\nannouncer_grace = \"2s\"").unwrap();
        assert_eq!(config.engine.thresholds.announcer_grace, Duration::from_secs(2));
        let err = Config::from_toml("[thresholds]\nannouncer_grace = \"25h\"").unwrap_err();
        assert_eq!(err.key, "thresholds.announcer_grace");
        assert!(err.message.contains("too long"), "{err}");
    }

    #[test]
    fn the_info_budget_defaults_to_20_a_second_after_500_and_a_rate_of_0_turns_it_off() {
        let t = Thresholds::default();
        assert_eq!((t.info_rate_per_iface, t.info_burst_per_iface), (20, 500));
        let config =
            Config::from_toml("[thresholds]\ninfo_rate_per_iface = 0\ninfo_burst_per_iface = 7")
                .unwrap();
        let t = &config.engine.thresholds;
        assert_eq!((t.info_rate_per_iface, t.info_burst_per_iface), (0, 7));
        assert_eq!(
            err("[thresholds]\ninfo_rate_per_iface = 10000001\n"),
            "thresholds.info_rate_per_iface: 10000001 is too large (at most 10000000)"
        );
        assert!(err("[thresholds]\ninfo_rate_per_iface = -1\n")
            .starts_with("thresholds.info_rate_per_iface: "));
        assert_eq!(
            err("[thresholds]\ninfo_burst_per_iface = 0\n"),
            "thresholds.info_burst_per_iface: 0 is too small (at least 1)"
        );
    }

    #[test]
    fn the_example_file_in_deploy_is_valid() {
        let text = include_str!("../../deploy/arpwatch.example.toml");
        let config = Config::from_toml(text).unwrap();
        assert_eq!(config.engine.pools.len(), 2);
        assert_eq!(config.engine.pools[0].name, "metallb-default");
    }

    #[test]
    fn a_full_file_is_parsed_with_humane_durations() {
        let config = Config::from_toml(
            r#"
            full_view = true
            [thresholds]
            reply_window = "500ms"
            concurrency_window = 12
            flap_window = "1.5m"
            reply_timeout = 1.5
            report_interval = "1.1s"
            flap_count = 4
            [exemptions]
            sender_mismatch_macs = ["02:00:00:00:00:aa"]
            ha_mac_prefixes = ["00:00:5e:00:01"]
            [caps]
            max_tracked_ips = 1000
            [[pools]]
            name = "vips"
            cidrs = ["192.0.2.240/28", "198.51.100.7"]
            interfaces = ["eth0"]
            macs = ["02:00:00:00:00:01"]
            "#,
        )
        .unwrap();
        let e = config.engine;
        assert!(e.full_view);
        assert_eq!(e.thresholds.reply_window, Duration::from_millis(500));
        assert_eq!(e.thresholds.concurrency_window, Duration::from_secs(12));
        assert_eq!(e.thresholds.flap_window, Duration::from_secs(90));
        assert_eq!(e.thresholds.reply_timeout, Duration::from_millis(1500));
        assert_eq!(e.thresholds.report_interval, Duration::from_millis(1100));
        assert_eq!(e.thresholds.flap_count, 4);
        assert_eq!(e.caps.max_tracked_ips, 1000);
        assert_eq!(e.exemptions.ha_mac_prefixes.len(), 1);
        assert!(e.pools[0].contains([192, 0, 2, 250].into()));
        assert!(e.pools[0].contains([198, 51, 100, 7].into()));
        assert!(!e.pools[0].contains([198, 51, 100, 8].into()));
    }

    #[test]
    fn a_bad_cidr_names_its_index() {
        assert_eq!(
            err("[[pools]]\nname = \"a\"\ncidrs = [\"192.0.2.0/24\", \"198.51.100.0/33\"]\n"),
            "pools[0].cidrs[1]: \"198.51.100.0/33\" is not an IPv4 or IPv6 CIDR (write e.g. 192.0.2.240/28 or 2001:db8::/120)"
        );
    }

    #[test]
    fn an_unknown_key_is_named_with_its_table() {
        let msg = err("[thresholds]\nreply_windw = \"1s\"\n");
        assert!(msg.starts_with("thresholds"), "{msg}");
        assert!(msg.contains("unknown field `reply_windw`"), "{msg}");
        let msg = err("colour = 1\n");
        assert!(msg.contains("unknown field `colour`"), "{msg}");
    }

    #[test]
    fn bad_values_name_the_key() {
        assert_eq!(
            err("[thresholds]\nreply_window = \"fast\"\n"),
            "thresholds.reply_window: \"fast\" is not a duration (write e.g. \"500ms\", \"1.1s\", \"2m\" or a number of seconds)"
        );
        assert_eq!(
            err("[thresholds]\nquiet_window = 0\n"),
            "thresholds.quiet_window: 0s is too short (at least 1ms)"
        );
        assert!(err("[thresholds]\nflap_count = 1\n")
            .starts_with("thresholds.flap_count: 1 is too small"));
        assert!(err("[caps]\nmax_macs_per_ip = 1\n")
            .starts_with("caps.max_macs_per_ip: 1 is too small"));
        assert!(err("[[pools]]\nname = \"a\"\ncidrs = [\"192.0.2.1\"]\nmacs = [\"zz\"]\n")
            .starts_with("pools[0].macs[0]: \"zz\" is not a MAC address"));
        assert!(err("[exemptions]\nha_mac_prefixes = [\"00:00:5e:00:01:02:03\"]\n")
            .starts_with("exemptions.ha_mac_prefixes[0]: "));
        assert_eq!(
            err("[[pools]]\nname = \"a\"\ncidrs = [\"192.0.2.1\"]\n[[pools]]\nname = \"a\"\ncidrs = [\"192.0.2.2\"]\n"),
            "pools[1].name: \"a\" is already the name of pools[0]"
        );
        let msg = err("[thresholds]\nflap_count = \"three\"\n");
        assert!(msg.starts_with("thresholds.flap_count: "), "{msg}");
    }

    #[test]
    fn every_cap_count_and_duration_has_a_range_and_a_value_outside_names_its_key() {
        // (key, table, smallest valid, largest valid) as written in the file.
        let ranges: [(&str, &str, &str, &str); 15] = [
            ("reply_window", "thresholds", "\"1ms\"", "\"24h\""),
            ("concurrency_window", "thresholds", "0.001", "86400"),
            ("flap_window", "thresholds", "\"1ms\"", "\"1440m\""),
            ("reply_timeout", "thresholds", "\"1ms\"", "\"24h\""),
            ("report_interval", "thresholds", "\"1ms\"", "\"24h\""),
            ("quiet_window", "thresholds", "\"1ms\"", "\"24h\""),
            ("flap_count", "thresholds", "2", "100"),
            ("unanswered_after", "thresholds", "1", "1000"),
            ("storm_rate_per_iface", "thresholds", "1", "10000000"),
            ("storm_rate_per_mac", "thresholds", "1", "10000000"),
            ("info_burst_per_iface", "thresholds", "1", "10000000"),
            ("max_tracked_ips", "caps", "1", "16777216"),
            ("max_macs_per_ip", "caps", "2", "256"),
            ("max_tracked_senders", "caps", "1", "16777216"),
            ("max_interfaces", "caps", "1", "65536"),
        ];
        for (key, table, min, max) in ranges {
            let file = |value: &str| format!("[{table}]\n{key} = {value}\n");
            for valid in [min, max] {
                assert!(Config::from_toml(&file(valid)).is_ok(), "{key} = {valid}");
            }
            let below = match min {
                "\"1ms\"" | "0.001" => "\"0.5ms\"".to_owned(),
                n => (n.parse::<u64>().unwrap() - 1).to_string(),
            };
            let above = match max {
                "\"24h\"" | "86400" | "\"1440m\"" => "\"1441m\"".to_owned(),
                n => (n.parse::<u64>().unwrap() + 1).to_string(),
            };
            for (invalid, why) in [(below, "(at least "), (above, "(at most ")] {
                let msg = err(&file(&invalid));
                assert!(msg.starts_with(&format!("{table}.{key}: ")), "{key} = {invalid}: {msg}");
                assert!(msg.contains(why), "{key} = {invalid}: {msg}");
            }
        }
        // The values of the crash reports: a usage error, not an allocation.
        for huge in ["9223372036854775807", "20000000000"] {
            assert_eq!(
                err(&format!("[caps]\nmax_macs_per_ip = {huge}\n")),
                format!("caps.max_macs_per_ip: {huge} is too large (at most 256)")
            );
        }
        assert_eq!(
            err("[thresholds]\nflap_window = 1e30\n"),
            "thresholds.flap_window: 1000000000000000000000000000000 is too long (at most 24h)"
        );
        assert_eq!(
            err("[thresholds]\nreply_timeout = \"0.1ms\"\n"),
            "thresholds.reply_timeout: 0.0001s is too short (at least 1ms)"
        );
        // Flags override the file, so `validate` checks what they set too.
        let mut engine = EngineConfig::default();
        engine.caps.max_tracked_ips = usize::MAX;
        assert!(engine.validate().unwrap_err().to_string().starts_with("caps.max_tracked_ips: "));
    }

    /// `n` pools of one /32 each, `[[pools]]` tables as an operator writes them.
    fn pools_file(n: u32) -> String {
        (0..n)
            .map(|i| {
                let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
                format!("[[pools]]\nname = \"pool-{i}\"\ncidrs = [\"{ip}\"]\n")
            })
            .collect()
    }

    #[test]
    fn a_file_may_declare_at_most_10000_pools_and_65536_cidrs() {
        let config = Config::from_toml(&pools_file(10_000)).unwrap();
        assert_eq!(config.engine.pools.len(), MAX_POOLS);
        assert_eq!(err(&pools_file(10_001)), "pools: 10001 pools are too many (at most 10000)");

        let cidrs = |n: u32| -> String {
            let list: Vec<String> = (0..n)
                .map(|i| format!("\"{}\"", std::net::Ipv4Addr::from(0x0a00_0000 + i)))
                .collect();
            format!("[[pools]]\nname = \"a\"\ncidrs = [{}]\n", list.join(","))
        };
        assert!(Config::from_toml(&cidrs(65_536)).is_ok());
        assert_eq!(
            err(&format!("{}{}", pools_file(1), cidrs(65_536))),
            "pools[1].cidrs: brings the CIDRs of all pools to 65537, too many (at most 65536 in all)"
        );

        // Past the size a file may have, nothing is parsed.
        let comment = format!("# {}\n", "x".repeat(1000));
        let huge = comment.repeat(MAX_FILE_BYTES / comment.len() + 1);
        assert_eq!(err(&huge), "file: larger than 1 MiB, the most a configuration may be");
        assert_eq!(
            Config::from_file_bytes(huge.as_bytes()).unwrap_err().to_string(),
            "file: larger than 1 MiB, the most a configuration may be"
        );
    }

    #[test]
    fn a_long_value_is_shown_cut_short_on_one_line() {
        let long = "9".repeat(1_000_000);
        let cases = [
            (format!("[[pools]]\nname = \"{long}\"\ncidrs = [\"192.0.2.1\"]\n"), "pools[0].name: "),
            (format!("[[pools]]\nname = \"a\"\ncidrs = [\"{long}\"]\n"), "pools[0].cidrs[0]: "),
            (
                format!("[[pools]]\nname = \"a\"\ncidrs = [\"192.0.2.1\"]\nmacs = [\"{long}\"]\n"),
                "pools[0].macs[0]: ",
            ),
            (
                format!("[exemptions]\nha_mac_prefixes = [\"{long}\"]\n"),
                "exemptions.ha_mac_prefixes[0]: ",
            ),
            (format!("[thresholds]\nquiet_window = \"{long}\"\n"), "thresholds.quiet_window: "),
            (format!("[thresholds]\nflap_count = \"{long}\"\n"), "thresholds.flap_count: "),
            (format!("a{long} = 1\n"), "a999"),
            (format!("[thresholds]\nx{long} = 1\n"), "thresholds.x999"),
            (format!("[[pools]]\nname = \"a\\n{long}\"\ncidrs = [\"x\"]\n"), "pools[0].cidrs[0]: "),
        ];
        for (text, starts) in cases {
            let msg = err(&text);
            assert!(msg.starts_with(starts), "{}", shorten(&msg, 200));
            assert!(msg.chars().count() < 480, "{} chars: {}", msg.len(), shorten(&msg, 500));
            assert!(!msg.contains('\n'), "{msg}");
        }
        assert_eq!(
            err(&format!("[[pools]]\nname = \"{long}\"\ncidrs = [\"192.0.2.1\"]\n")),
            format!(
                "pools[0].name: \"{}…\" (1000000 bytes) is too long (at most 256 bytes)",
                "9".repeat(40)
            )
        );
        assert_eq!(
            err(&format!("[[pools]]\nname = \"a\"\ncidrs = [\"{long}\"]\n")),
            format!(
                "pools[0].cidrs[0]: \"{}…\" (1000000 bytes) is not an IPv4 or IPv6 CIDR (write e.g. 192.0.2.240/28 or 2001:db8::/120)",
                "9".repeat(40)
            )
        );
        // Quotes and escapes in serde's own messages are cut short too.
        assert_eq!(
            shorten_quotes(&format!("bad `{long}` and \"a\\\"{long}\" end")),
            format!("bad `{}…` and \"a\\\"{}…\" end", "9".repeat(40), "9".repeat(37))
        );
    }

    #[test]
    fn a_file_that_is_not_utf8_names_the_line_and_column() {
        assert_eq!(
            Config::from_file_bytes(b"full_view = true\n# caf\xe9\n").unwrap_err().to_string(),
            "line 2: byte 0xe9 at column 6 is not UTF-8 text (a configuration is UTF-8)"
        );
    }

    #[test]
    fn durations_are_shown_as_the_file_would_write_them() {
        let shown = |ms: u64| show_duration(Duration::from_millis(ms));
        assert_eq!(shown(1), "1ms");
        assert_eq!(shown(500), "500ms");
        assert_eq!(shown(1_000), "1s");
        assert_eq!(shown(1_500), "1.5s");
        assert_eq!(shown(90_000), "90s");
        assert_eq!(shown(120_000), "2m");
        assert_eq!(shown(86_400_000), "24h");
        assert_eq!(show_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn one_cidr_parser_clears_host_bits_and_takes_bare_addresses() {
        let net = |s: &str| parse_cidr(s).map(|n| n.to_string());
        assert_eq!(net("192.0.2.10"), Ok("192.0.2.10/32".to_owned()));
        assert_eq!(net("192.0.2.10/24"), Ok("192.0.2.0/24".to_owned()));
        assert_eq!(net("198.51.100.0/28"), Ok("198.51.100.0/28".to_owned()));
        assert_eq!(net("2001:db8::10/64"), Ok("2001:db8::/64".to_owned()));
        assert_eq!(net("2001:DB8::100"), Ok("2001:db8::100/128".to_owned()));
        for bad in
            ["192.0.2.0/33", "192.0.2", "2001:db8::/129", "2001:db8:::1", "", "/24", "192.0.2.1/"]
        {
            assert_eq!(parse_cidr(bad), Err(NotACidr(bad.to_owned())), "{bad}");
        }
        let config = Config::from_toml("[[pools]]\nname = \"a\"\ncidrs = [\"192.0.2.77/24\"]\n");
        assert_eq!(config.unwrap().engine.pools[0].cidrs[0].to_string(), "192.0.2.0/24");
    }

    #[test]
    fn an_empty_interface_name_is_refused() {
        assert_eq!(
            err(
                "[[pools]]\nname = \"a\"\ncidrs = [\"192.0.2.1\"]\ninterfaces = [\"eth0\", \"\"]\n"
            ),
            "pools[0].interfaces[1]: must not be empty"
        );
        let msg = err("[[pools]]\nname = \"a\"\ncidrs = [\"192.0.2.1\"]\nmac = []\n");
        assert!(msg.starts_with("pools[0].mac: unknown field `mac`"), "{msg}");
    }

    #[test]
    fn a_syntax_error_names_the_line() {
        let msg = err("full_view = true\n[thresholds\n");
        assert_eq!(msg, "line 2: invalid table header; expected `.`, `]`");
    }

    #[test]
    fn a_duration_of_the_wrong_type_says_what_a_duration_looks_like() {
        assert_eq!(
            err("[thresholds]\nreply_window = [1]\n"),
            "thresholds.reply_window: invalid type: sequence, expected a duration such as \"500ms\", \"1.1s\", \"2m\" or a number of seconds"
        );
        assert!(err("[thresholds]\nreply_window = -1\n")
            .starts_with("thresholds.reply_window: -1 is not a duration"));
    }
}
