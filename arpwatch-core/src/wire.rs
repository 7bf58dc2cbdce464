//! The output formats: how a domain [`Event`] is written out, as the JSON line of schema v1
//! (`--format json`) or as a text line (`--format text`), and how a raw observation is
//! (`--raw`). Both event formats are made from one ordered list of fields, [`Record::visit`],
//! over [`Record`], the event laid out field by field as the output has it: a field added to the
//! domain [`Event`] reaches both formats through a member of `Record`, set in [`Record::of`] and
//! written in `Record::visit`.
//!
//! The JSON lines are written by the `json` module straight into a reused byte buffer; the `Serialize`
//! impls here make the same bytes through serde (for `serde_json::to_value` and as the reference
//! the tests hold the writer to).
//!
//! The field set is the output contract of SPEC §4, documented field by field in
//! `docs/events.md` and `docs/schema/arpwatch-events.schema.json`.

use std::fmt;
use std::io::{self, Write};
use std::net::IpAddr;
use std::sync::Arc;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::cluster::Announcer;
use crate::event::{
    Announced, Condition, ConditionState, Detail, Event, EventKind, Misplaced, ResponderForm,
    Severity, StormScope, Summarised,
};
use crate::observation::{ArpOp, Direction, MacAddr, NaFlags, Observation, Proto, Timestamp};

mod json;

/// Version of the event schema, carried in every event as `"schema"`. Raised when a field changes
/// meaning or disappears; adding an optional field does not raise it.
pub const SCHEMA_VERSION: u32 = 1;

/// Appends `event` as one JSON line to `out`.
pub fn write_json_line(out: &mut Vec<u8>, event: &Event) {
    let mut object = json::Object::new(out);
    Record::of(event).visit(&mut object);
    object.end();
    out.push(b'\n');
}

/// Writes `event` as one text line.
pub fn write_text_line(out: &mut impl Write, event: &Event) -> io::Result<()> {
    writeln!(out, "{}", Record::of(event))
}

/// The text line of `event`, without its newline.
pub fn text_line(event: &Event) -> String {
    Record::of(event).to_string()
}

/// Appends a raw observation as one JSON line to `out`: the bytes serde makes of
/// [`RawLine`], written by hand (`json::raw_line`; the tests hold the two together).
pub fn write_observation_json_line(out: &mut Vec<u8>, obs: &Observation) {
    json::raw_line(out, obs);
    out.push(b'\n');
}

/// The raw line of an observation (`--raw`): the frame as the wire had it, in the terms of its
/// own protocol. Fields every line has, then ARP's `op`, `sha`, `spa`, `tha`, `tpa`, or ND's
/// `op`, `src`, `dst`, `target`, `lladdr` and (for an advertisement) `flags`.
pub struct RawLine<'a>(pub &'a Observation);

impl RawLine<'_> {
    /// The fields of the raw line, in order.
    pub fn visit(&self, sink: &mut impl FieldSink) {
        use Value::*;
        let obs = self.0;
        sink.field(key!("ts"), Time(obs.ts));
        sink.field(key!("iface"), Str(&obs.iface));
        sink.field(key!("ifindex"), U64(obs.ifindex.into()));
        sink.field(key!("direction"), Name(obs.direction.as_str()));
        sink.field(key!("vlan"), Vlan(obs.vlan.as_slice()));
        sink.field(key!("proto"), Name(obs.proto().as_str()));
        match &obs.nd {
            None => {
                sink.field(key!("op"), Name(arp_op(obs.op)));
                sink.field(key!("eth_src"), Mac(obs.eth_src));
                sink.field(key!("eth_dst"), Mac(obs.eth_dst));
                sink.field(key!("sha"), Mac(obs.sha));
                sink.field(key!("spa"), Ip(obs.spa));
                sink.field(key!("tha"), Mac(obs.tha));
                sink.field(key!("tpa"), Ip(obs.tpa));
            }
            Some(nd) => {
                sink.field(key!("op"), Name(nd_op(obs.op)));
                sink.field(key!("eth_src"), Mac(obs.eth_src));
                sink.field(key!("eth_dst"), Mac(obs.eth_dst));
                sink.field(key!("src"), Ip(nd.src.into()));
                sink.field(key!("dst"), Ip(nd.dst.into()));
                sink.field(key!("target"), Ip(nd.target.into()));
                sink.field(key!("lladdr"), nd.lladdr.map_or(Null, Mac));
                if obs.op == ArpOp::Reply {
                    sink.field(key!("flags"), NaFlags(nd.flags));
                }
            }
        }
    }
}

impl Serialize for RawLine<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_fields(s, |sink| self.visit(sink))
    }
}

/// The name of an ARP operation in the raw line.
fn arp_op(op: ArpOp) -> &'static str {
    match op {
        ArpOp::Request => "request",
        ArpOp::Reply => "reply",
    }
}

/// The name of a Neighbor Discovery message in the raw line.
fn nd_op(op: ArpOp) -> &'static str {
    match op {
        ArpOp::Request => "neighbor_solicitation",
        ArpOp::Reply => "neighbor_advertisement",
    }
}

/// Writes a raw observation as one text line.
pub fn write_observation_text_line(out: &mut impl Write, obs: &Observation) -> io::Result<()> {
    writeln!(out, "{}", observation_text(obs))
}

/// One readable line for a person at a terminal, e.g.
/// `2026-11-21T10:00:00Z eth0 ingress 192.0.2.240 is-at 02:00:00:00:0a:01 to 192.0.2.99 (02:00:00:00:00:99) [eth 02:00:00:00:0a:01 > 02:00:00:00:00:99]`.
/// An ND message reads the same way, e.g.
/// `... eth0 ingress ndp 2001:db8::100 is-at 02:00:00:00:0a:01 to 2001:db8::99 (02:00:00:00:00:99) solicited override [eth ...]`.
pub fn observation_text(obs: &Observation) -> String {
    let mut what = match obs.op {
        ArpOp::Request if obs.is_probe() => format!("probe who-has {} from {}", obs.tpa, obs.sha),
        ArpOp::Request => format!("who-has {} tell {} ({})", obs.tpa, obs.spa, obs.sha),
        ArpOp::Reply => format!("{} is-at {} to {} ({})", obs.spa, obs.sha, obs.tpa, obs.tha),
    };
    if let Some(nd) = &obs.nd {
        what.insert_str(0, "ndp ");
        if nd.lladdr.is_none() {
            what.push_str(" no-lladdr");
        }
        for (set, name) in [
            (nd.flags.router, "router"),
            (nd.flags.solicited, "solicited"),
            (nd.flags.override_, "override"),
        ] {
            if set {
                what.push(' ');
                what.push_str(name);
            }
        }
    }
    let gratuitous = if obs.is_gratuitous() { " gratuitous" } else { "" };
    let vlan = match obs.vlan.as_slice() {
        [] => String::new(),
        ids => format!(" vlan={ids:?}"),
    };
    format!(
        "{} {} {}{vlan} {what}{gratuitous} [eth {} > {}]",
        obs.ts.to_rfc3339(),
        obs.iface,
        obs.direction.as_str(),
        obs.eth_src,
        obs.eth_dst
    )
}

/// One field value as the formats write it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    U64(u64),
    Bool(bool),
    /// An absent optional value written out (the raw line's `lladdr`).
    Null,
    Str(&'a str),
    /// A word of the schema's own (an event kind, a severity, a state...): written as it is,
    /// since none has anything to escape.
    Name(&'static str),
    Mac(MacAddr),
    Ip(IpAddr),
    Time(Timestamp),
    Macs(&'a [MacAddr]),
    Names(&'a [Arc<str>]),
    Vlan(&'a [u16]),
    /// An object from MAC to a name (`mac_nodes`, `mac_ifaces`).
    MacNames(&'a [(MacAddr, Arc<str>)]),
    /// The object `{"node", "interfaces", "source"}`.
    Announcer(&'a Announcer),
    /// The object `{"router", "solicited", "override"}` of a Neighbor Advertisement.
    NaFlags(NaFlags),
}

/// A field's name, with the JSON text that opens its member (`,"name":`) made at compile time
/// by the `key!` macro: every event line writes some twenty of them, each in one copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key {
    pub name: &'static str,
    /// `,"name":`; without its comma for an object's first member.
    member: &'static str,
}

/// The [`Key`] of the field `name` (a literal, which has nothing to escape).
macro_rules! key {
    ($name:literal) => {
        $crate::wire::Key::new($name, concat!(",\"", $name, "\":"))
    };
}
pub(crate) use key;

impl Key {
    /// Made by the `key!` macro, which writes `member` from `name`.
    pub(crate) const fn new(name: &'static str, member: &'static str) -> Key {
        Key { name, member }
    }
}

/// Receives the fields of an event or a raw line, in the order of the JSON line.
pub trait FieldSink {
    fn field(&mut self, key: Key, value: Value<'_>);
}

/// Calls `sink` with every present field of `event`, in the order of the JSON line.
pub fn visit_fields(event: &Event, sink: &mut impl FieldSink) {
    Record::of(event).visit(sink);
}

/// An event laid out as schema v1 has it: one member per field of the output, `None` (or empty)
/// where absent. Serialises to the JSON line; displays as the text line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Record<'a> {
    pub ts: Timestamp,
    pub event: EventKind,
    pub severity: Severity,
    pub ip: IpAddr,
    pub proto: Option<Proto>,
    pub state: Option<ConditionState>,
    pub mac: Option<MacAddr>,
    pub macs: &'a [MacAddr],
    pub old_mac: Option<MacAddr>,
    pub new_mac: Option<MacAddr>,
    pub eth_src: Option<MacAddr>,
    pub iface: &'a str,
    pub ifaces: &'a [Arc<str>],
    pub allowed_ifaces: &'a [Arc<str>],
    pub vlan: &'a [u16],
    pub direction: Option<Direction>,
    pub count: Option<u64>,
    pub first_seen: Option<Timestamp>,
    pub last_seen: Option<Timestamp>,
    pub announced: Option<Announced>,
    pub override_: Option<bool>,
    pub gap_ms: Option<u64>,
    pub form: Option<ResponderForm>,
    pub pool: Option<&'a str>,
    pub requester_mac: Option<MacAddr>,
    pub requester_ip: Option<IpAddr>,
    pub rate: Option<u64>,
    pub scope: Option<StormScope>,
    /// An interface storm's informational events beyond the budget.
    pub summarised: Option<&'a Summarised>,
    pub local_iface: Option<&'a str>,
    pub node: Option<&'a str>,
    pub mac_node: Option<&'a str>,
    pub old_node: Option<&'a str>,
    pub new_node: Option<&'a str>,
    pub mac_nodes: &'a [(MacAddr, Arc<str>)],
    pub foreign_macs: &'a [MacAddr],
    pub mac_ifaces: &'a [(MacAddr, Arc<str>)],
    pub services: &'a [Arc<str>],
    pub announcer: Option<&'a Announcer>,
    /// `context: "stale"`.
    pub context_stale: bool,
}

impl<'a> Record<'a> {
    pub fn of(event: &'a Event) -> Record<'a> {
        let mut r = Record {
            ts: event.ts,
            event: event.kind(),
            severity: event.severity(),
            ip: event.ip,
            proto: Some(Proto::of(event.ip)),
            state: None,
            mac: None,
            macs: &[],
            old_mac: None,
            new_mac: None,
            eth_src: None,
            iface: &event.seen.iface,
            ifaces: &[],
            allowed_ifaces: &[],
            vlan: event.seen.vlan.as_slice(),
            direction: event.seen.direction,
            count: None,
            first_seen: None,
            last_seen: None,
            announced: None,
            override_: None,
            gap_ms: None,
            form: None,
            pool: event.pool.as_deref(),
            requester_mac: None,
            requester_ip: None,
            rate: None,
            scope: None,
            summarised: None,
            local_iface: event.context.local_iface.as_deref(),
            node: event.context.node.as_deref(),
            mac_node: event.context.mac_node.as_deref(),
            old_node: event.context.old_node.as_deref(),
            new_node: event.context.new_node.as_deref(),
            mac_nodes: &event.context.mac_nodes,
            foreign_macs: &event.context.foreign_macs,
            mac_ifaces: &event.context.mac_ifaces,
            services: &event.context.services,
            announcer: event.context.announcer.as_ref(),
            context_stale: event.context.stale,
        };
        match &event.detail {
            Detail::NewBinding { mac, announced } => {
                r.mac = Some(*mac);
                r.announced = Some(*announced);
            }
            Detail::Gratuitous { mac, override_ } => {
                r.mac = Some(*mac);
                r.override_ = *override_;
            }
            Detail::Probe { mac } => r.mac = Some(*mac),
            Detail::ProbeConflict { mac, holder, holder_last_seen } => {
                r.mac = Some(*mac);
                r.old_mac = Some(*holder);
                r.last_seen = Some(*holder_last_seen);
            }
            Detail::OwnerChange { old_mac, new_mac, announced, gap_ms, override_ } => {
                r.old_mac = Some(*old_mac);
                r.new_mac = Some(*new_mac);
                r.announced = Some(*announced);
                r.gap_ms = *gap_ms;
                r.override_ = *override_;
            }
            Detail::UnknownResponder { mac, announced, count, override_ } => {
                r.mac = Some(*mac);
                r.announced = Some(*announced);
                r.count = Some(*count);
                r.override_ = *override_;
            }
            Detail::UnexpectedInterface { mac, count, misplaced } => {
                r.mac = Some(*mac);
                r.count = Some(*count);
                match misplaced {
                    Misplaced::OutsidePool { allowed_ifaces } => r.allowed_ifaces = allowed_ifaces,
                    Misplaced::SeveralInterfaces { ifaces, macs } => {
                        r.ifaces = ifaces;
                        r.macs = macs;
                    }
                }
            }
            Detail::SenderMismatch { mac, eth_src, count } => {
                r.mac = Some(*mac);
                r.eth_src = Some(*eth_src);
                r.count = Some(*count);
            }
            Detail::Lasting { lifecycle, condition } => {
                r.state = Some(lifecycle.state);
                r.count = Some(lifecycle.count);
                r.first_seen = Some(lifecycle.first_seen);
                r.last_seen = Some(lifecycle.last_seen);
                r.macs = &lifecycle.macs;
                r.summarised = lifecycle.summarised.as_deref();
                match condition {
                    Condition::MultiResponder { form, requester, sender } => {
                        r.form = Some(*form);
                        r.mac = *sender;
                        r.requester_mac = requester.map(|q| q.mac);
                        r.requester_ip = requester.map(|q| q.ip);
                    }
                    Condition::Flapping { old_mac, new_mac } => {
                        r.old_mac = Some(*old_mac);
                        r.new_mac = Some(*new_mac);
                    }
                    Condition::Unanswered { mac, requester } => {
                        r.mac = *mac;
                        r.requester_mac = Some(requester.mac);
                        r.requester_ip = Some(requester.ip);
                    }
                    Condition::Storm { scope, mac, rate } => {
                        if *scope == StormScope::Iface {
                            // Counts the interface's frames of both protocols.
                            r.proto = None;
                        }
                        r.scope = Some(*scope);
                        r.mac = *mac;
                        r.rate = Some(*rate);
                    }
                    Condition::AnnouncerMismatch { mac, announcer } => {
                        r.mac = *mac;
                        // The declaration the engine judged by, even when the annotator's
                        // snapshot has moved on (or is stale).
                        r.announcer = Some(announcer);
                    }
                }
            }
        }
        r
    }

    /// The fields of the output, in order; absent ones (`None`, empty lists) are skipped.
    pub fn visit(&self, sink: &mut impl FieldSink) {
        use Value::*;
        // A field with `None` is absent.
        let mut field = |name, value: Option<Value<'a>>| {
            if let Some(value) = value {
                sink.field(name, value);
            }
        };
        // An empty list is absent.
        let list = |value: Value<'a>, empty: bool| (!empty).then_some(value);
        field(key!("schema"), Some(U64(SCHEMA_VERSION.into())));
        field(key!("ts"), Some(Time(self.ts)));
        field(key!("event"), Some(Name(self.event.as_str())));
        field(key!("severity"), Some(Name(self.severity.as_str())));
        field(key!("ip"), Some(Ip(self.ip)));
        field(key!("proto"), self.proto.map(|v| Name(v.as_str())));
        field(key!("state"), self.state.map(|v| Name(v.as_str())));
        field(key!("mac"), self.mac.map(Mac));
        field(key!("macs"), list(Macs(self.macs), self.macs.is_empty()));
        field(key!("old_mac"), self.old_mac.map(Mac));
        field(key!("new_mac"), self.new_mac.map(Mac));
        field(key!("eth_src"), self.eth_src.map(Mac));
        field(key!("iface"), Some(Str(self.iface)));
        field(key!("ifaces"), list(Names(self.ifaces), self.ifaces.is_empty()));
        field(
            key!("allowed_ifaces"),
            list(Names(self.allowed_ifaces), self.allowed_ifaces.is_empty()),
        );
        field(key!("vlan"), list(Vlan(self.vlan), self.vlan.is_empty()));
        field(key!("direction"), self.direction.map(|v| Name(v.as_str())));
        field(key!("count"), self.count.map(U64));
        field(key!("first_seen"), self.first_seen.map(Time));
        field(key!("last_seen"), self.last_seen.map(Time));
        field(key!("announced"), self.announced.map(|v| Name(v.as_str())));
        field(key!("override"), self.override_.map(Bool));
        field(key!("gap_ms"), self.gap_ms.map(U64));
        field(key!("form"), self.form.map(|v| Name(v.as_str())));
        field(key!("pool"), self.pool.map(Str));
        field(key!("requester_mac"), self.requester_mac.map(Mac));
        field(key!("requester_ip"), self.requester_ip.map(Ip));
        field(key!("rate"), self.rate.map(U64));
        field(key!("scope"), self.scope.map(|v| Name(v.as_str())));
        let summarised = self.summarised;
        field(key!("summarised_since"), summarised.map(|s| Time(s.since)));
        field(key!("summarised_new_binding"), summarised.map(|s| U64(s.new_binding)));
        field(key!("summarised_gratuitous"), summarised.map(|s| U64(s.gratuitous)));
        field(key!("summarised_probe"), summarised.map(|s| U64(s.probe)));
        field(key!("sample_macs"), summarised.map(|s| Macs(&s.sample_macs)));
        field(key!("local"), self.local_iface.map(|_| Bool(true)));
        field(key!("local_iface"), self.local_iface.map(Str));
        field(key!("node"), self.node.map(Str));
        field(key!("mac_node"), self.mac_node.map(Str));
        field(key!("old_node"), self.old_node.map(Str));
        field(key!("new_node"), self.new_node.map(Str));
        field(key!("mac_nodes"), list(MacNames(self.mac_nodes), self.mac_nodes.is_empty()));
        field(key!("foreign_macs"), list(Macs(self.foreign_macs), self.foreign_macs.is_empty()));
        field(key!("mac_ifaces"), list(MacNames(self.mac_ifaces), self.mac_ifaces.is_empty()));
        field(key!("services"), list(Names(self.services), self.services.is_empty()));
        field(key!("announcer"), self.announcer.map(Announcer));
        field(key!("context"), self.context_stale.then_some(Name("stale")));
    }
}

impl Serialize for Value<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Value::U64(v) => s.serialize_u64(v),
            Value::Bool(v) => s.serialize_bool(v),
            Value::Null => s.serialize_none(),
            Value::Str(v) | Value::Name(v) => s.serialize_str(v),
            Value::Mac(v) => v.serialize(s),
            Value::Ip(v) => v.serialize(s),
            Value::Time(v) => v.serialize(s),
            Value::Macs(v) => v.serialize(s),
            Value::Names(v) => v.serialize(s),
            Value::Vlan(v) => v.serialize(s),
            Value::MacNames(v) => {
                let mut map = s.serialize_map(Some(v.len()))?;
                for (mac, name) in v {
                    map.serialize_entry(mac, &**name)?;
                }
                map.end()
            }
            Value::Announcer(v) => {
                let mut map = s.serialize_map(Some(3))?;
                map.serialize_entry("node", &*v.node)?;
                map.serialize_entry("interfaces", &v.interfaces)?;
                map.serialize_entry("source", v.source.as_str())?;
                map.end()
            }
            Value::NaFlags(v) => v.serialize(s),
        }
    }
}

/// The JSON line: one member per present field, in [`Record::visit`] order.
impl Serialize for Record<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_fields(s, |sink| self.visit(sink))
    }
}

/// A JSON object with one member per field that `visit` gives its sink.
fn serialize_fields<S: Serializer>(
    s: S,
    visit: impl FnOnce(&mut Members<S::SerializeMap>),
) -> Result<S::Ok, S::Error> {
    let mut members = Members { map: s.serialize_map(None)?, error: None };
    visit(&mut members);
    match members.error {
        Some(error) => Err(error),
        None => members.map.end(),
    }
}

/// The members of a serde map, from fields; the first error stops it.
struct Members<M: SerializeMap> {
    map: M,
    error: Option<M::Error>,
}

impl<M: SerializeMap> FieldSink for Members<M> {
    fn field(&mut self, key: Key, value: Value<'_>) {
        if self.error.is_none() {
            self.error = self.map.serialize_entry(key.name, &value).err();
        }
    }
}

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Value::U64(v) => write!(f, "{v}"),
            Value::Bool(v) => write!(f, "{v}"),
            Value::Null => f.write_str("null"),
            Value::Str(v) | Value::Name(v) => f.write_str(v),
            Value::Mac(v) => write!(f, "{v}"),
            Value::Ip(v) => write!(f, "{v}"),
            Value::Time(v) => f.write_str(v.rfc3339().as_str()),
            Value::Macs(v) => write_list(f, v),
            Value::Names(v) => write_list(f, v),
            Value::Vlan(v) => write_list(f, v),
            Value::MacNames(v) => {
                f.write_str("{")?;
                for (i, (mac, name)) in v.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{mac}={name}")?;
                }
                f.write_str("}")
            }
            Value::Announcer(v) => {
                write!(f, "{{node={},interfaces=", v.node)?;
                write_list(f, &v.interfaces)?;
                write!(f, ",source={}}}", v.source.as_str())
            }
            Value::NaFlags(v) => write!(
                f,
                "{{router={},solicited={},override={}}}",
                v.router, v.solicited, v.override_
            ),
        }
    }
}

/// `[a,b,c]` for the text line.
fn write_list<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
    f.write_str("[")?;
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        write!(f, "{item}")?;
    }
    f.write_str("]")
}

/// Fields the text line shows in its head (`schema`, `proto` and `local` it leaves out: the
/// version is the program's, the address says its protocol, and `local_iface` says it).
const TEXT_HEAD: [&str; 7] = ["schema", "ts", "event", "severity", "ip", "proto", "local"];

/// The text line, for a person at a terminal: time, severity in capitals, event, IP, then the
/// other present fields as `key=value` in [`Record::visit`] order, e.g.
/// `2026-11-21T10:00:01Z CRITICAL multi_responder 192.0.2.10 state=start macs=[02:00:00:00:00:01,02:00:00:00:00:02] iface=eth0 ...`.
impl fmt::Display for Record<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Pairs<'f, 'g> {
            f: &'f mut fmt::Formatter<'g>,
            result: fmt::Result,
        }
        impl FieldSink for Pairs<'_, '_> {
            fn field(&mut self, key: Key, value: Value<'_>) {
                let name = key.name;
                if self.result.is_ok() && !TEXT_HEAD.contains(&name) {
                    self.result = write!(self.f, " {name}={value}");
                }
            }
        }
        write!(
            f,
            "{} {} {} {}",
            self.ts.rfc3339().as_str(),
            self.severity.as_str().to_ascii_uppercase(),
            self.event.as_str(),
            self.ip
        )?;
        let mut pairs = Pairs { f, result: Ok(()) };
        self.visit(&mut pairs);
        pairs.result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Lifecycle, Requester, Seen};
    use crate::observation::VlanTags;

    fn mac(last: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, last])
    }

    fn sample() -> Event {
        let at = Timestamp::from_secs(1_795_255_201);
        let seen = Seen {
            iface: "eth0".into(),
            vlan: VlanTags::from_slice(&[123]).unwrap(),
            direction: Some(Direction::Ingress),
        };
        let detail = Detail::Lasting {
            lifecycle: Lifecycle {
                state: ConditionState::Start,
                count: 1,
                first_seen: at,
                last_seen: at,
                macs: vec![mac(1), mac(2)],
                summarised: None,
            },
            condition: Condition::MultiResponder {
                form: ResponderForm::Strong,
                requester: Some(Requester { mac: mac(0x99), ip: [192, 0, 2, 99].into() }),
                sender: None,
            },
        };
        let mut e = Event::new(at, [192, 0, 2, 10].into(), seen, None, detail);
        e.context.node = Some("node-a".into());
        e
    }

    fn json_line(e: &Event) -> String {
        let mut out = Vec::new();
        write_json_line(&mut out, e);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn json_carries_the_contract_fields_and_omits_absent_ones() {
        let json: serde_json::Value = serde_json::from_str(&json_line(&sample())).unwrap();
        assert_eq!(json["schema"], 1);
        assert_eq!(json["ts"], "2026-11-21T10:00:01Z");
        assert_eq!(json["event"], "multi_responder");
        assert_eq!(json["severity"], "critical");
        assert_eq!(json["ip"], "192.0.2.10");
        assert_eq!(json["state"], "start");
        assert_eq!(json["macs"], serde_json::json!(["02:00:00:00:00:01", "02:00:00:00:00:02"]));
        assert_eq!(json["vlan"], serde_json::json!([123]));
        assert_eq!(json["direction"], "ingress");
        assert_eq!(json["node"], "node-a");
        let obj = json.as_object().unwrap();
        for absent in ["mac", "old_mac", "ifaces", "gap_ms", "pool", "rate", "local", "local_iface"]
        {
            assert!(!obj.contains_key(absent), "{absent} should be omitted: {json}");
        }
    }

    #[test]
    fn json_line_keeps_the_field_order_of_schema_v1() {
        let mut e = sample();
        e.pool = Some("vips".into());
        e.context.local_iface = Some("eth1".into());
        assert_eq!(
            json_line(&e),
            concat!(
                r#"{"schema":1,"ts":"2026-11-21T10:00:01Z","event":"multi_responder","#,
                r#""severity":"critical","ip":"192.0.2.10","proto":"arp","state":"start","#,
                r#""macs":["02:00:00:00:00:01","02:00:00:00:00:02"],"iface":"eth0","vlan":[123],"#,
                r#""direction":"ingress","count":1,"first_seen":"2026-11-21T10:00:01Z","#,
                r#""last_seen":"2026-11-21T10:00:01Z","form":"strong","pool":"vips","#,
                r#""requester_mac":"02:00:00:00:00:99","requester_ip":"192.0.2.99","local":true,"#,
                r#""local_iface":"eth1","node":"node-a"}"#,
                "\n"
            )
        );
    }

    #[test]
    fn text_line_is_one_readable_line_in_the_json_order() {
        let line = text_line(&sample());
        assert_eq!(
            line,
            "2026-11-21T10:00:01Z CRITICAL multi_responder 192.0.2.10 state=start \
             macs=[02:00:00:00:00:01,02:00:00:00:00:02] iface=eth0 vlan=[123] direction=ingress \
             count=1 first_seen=2026-11-21T10:00:01Z last_seen=2026-11-21T10:00:01Z form=strong \
             requester_mac=02:00:00:00:00:99 requester_ip=192.0.2.99 node=node-a"
        );
        assert!(!line.contains('\n'));
        let docs = include_str!("../../docs/events.md");
        assert!(docs.contains(&line), "docs/events.md shows the text line of this event");
    }

    #[test]
    fn an_announcer_mismatch_with_its_cluster_context_is_the_line_docs_show() {
        use crate::cluster::{Announcer, AnnouncerSource};
        let t = |s: u64| Timestamp::from_secs(1_795_255_200 + s);
        let announcer = Announcer {
            node: "node-a".into(),
            interfaces: vec!["eth0".into()],
            source: AnnouncerSource::MetalLb,
        };
        let b = MacAddr([2, 0, 0, 0, 0x0b, 1]);
        let detail = Detail::Lasting {
            lifecycle: Lifecycle {
                state: ConditionState::Start,
                count: 5,
                first_seen: t(1),
                last_seen: t(6),
                macs: vec![b],
                summarised: None,
            },
            condition: Condition::AnnouncerMismatch { mac: Some(b), announcer: announcer.clone() },
        };
        let seen = Seen {
            iface: "eth0".into(),
            vlan: VlanTags::NONE,
            direction: Some(Direction::Ingress),
        };
        let mut e =
            Event::new(t(6), [192, 0, 2, 240].into(), seen, Some("metallb/default".into()), detail);
        e.context.node = Some("node-c".into());
        e.context.mac_node = Some("node-b".into());
        e.context.mac_nodes = vec![(b, "node-b".into())];
        e.context.mac_ifaces = vec![(b, "eth0".into())];
        e.context.services = vec!["web/front".into()];
        e.context.announcer = Some(announcer);
        let line = json_line(&e);
        let docs = include_str!("../../docs/events.md");
        assert!(docs.contains(line.trim_end()), "docs/events.md shows {line}");
        let text = text_line(&e);
        assert!(
            text.ends_with(
                " node=node-c mac_node=node-b mac_nodes={02:00:00:00:0b:01=node-b} \
                 mac_ifaces={02:00:00:00:0b:01=eth0} services=[web/front] \
                 announcer={node=node-a,interfaces=[eth0],source=metallb}"
            ),
            "{text}"
        );
    }

    #[test]
    fn both_formats_come_from_one_field_list() {
        struct Names(Vec<&'static str>);
        impl FieldSink for Names {
            fn field(&mut self, key: Key, _: Value<'_>) {
                self.0.push(key.name);
            }
        }
        let e = sample();
        let mut names = Names(Vec::new());
        visit_fields(&e, &mut names);
        let json: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&json_line(&e)).unwrap();
        let text = text_line(&e);
        let keys: Vec<&str> =
            text.split(' ').skip(4).map(|pair| pair.split_once('=').unwrap().0).collect();
        assert_eq!(json.len(), names.0.len());
        let body: Vec<&str> = names.0.iter().copied().filter(|n| !TEXT_HEAD.contains(n)).collect();
        assert_eq!(keys, body);
    }

    #[test]
    fn a_neighbor_discovery_message_has_its_own_raw_line() {
        use crate::observation::NaFlags;
        use crate::testkit::observations::frame;
        let flags = NaFlags { router: false, solicited: true, override_: false };
        let na = frame(0.0)
            .advertise("02:00:00:00:00:0a", "2001:db8::100", flags)
            .to("02:00:00:00:00:99", "2001:db8::99")
            .build();
        let mut line = Vec::new();
        write_observation_json_line(&mut line, &na);
        assert_eq!(
            String::from_utf8(line).unwrap(),
            concat!(
                r#"{"ts":"2026-11-21T10:00:00Z","iface":"eth0","ifindex":2,"direction":"ingress","#,
                r#""vlan":[],"proto":"ndp","op":"neighbor_advertisement","#,
                r#""eth_src":"02:00:00:00:00:0a","eth_dst":"02:00:00:00:00:99","#,
                r#""src":"2001:db8::100","dst":"2001:db8::99","target":"2001:db8::100","#,
                r#""lladdr":"02:00:00:00:00:0a","#,
                r#""flags":{"router":false,"solicited":true,"override":false}}"#,
                "\n"
            )
        );
        assert_eq!(
            observation_text(&na),
            "2026-11-21T10:00:00Z eth0 ingress ndp 2001:db8::100 is-at 02:00:00:00:00:0a to \
             2001:db8::99 (02:00:00:00:00:99) solicited [eth 02:00:00:00:00:0a > 02:00:00:00:00:99]"
        );

        let dad = frame(1.0).dad("02:00:00:00:00:0c", "2001:db8::100").build();
        let json = serde_json::to_value(RawLine(&dad)).unwrap();
        assert_eq!(
            (json["op"].as_str(), json["src"].as_str()),
            (Some("neighbor_solicitation"), Some("::"))
        );
        assert_eq!(
            (json["dst"].as_str(), json["eth_dst"].as_str()),
            (Some("ff02::1:ff00:100"), Some("33:33:ff:00:01:00"))
        );
        assert!(json["lladdr"].is_null() && json.get("flags").is_none(), "{json}");
        assert_eq!(
            observation_text(&dad),
            "2026-11-21T10:00:01Z eth0 ingress ndp probe who-has 2001:db8::100 from \
             02:00:00:00:00:0c no-lladdr [eth 02:00:00:00:00:0c > 33:33:ff:00:01:00]"
        );
    }

    /// The observation of every valid catalogue frame, ARP and ND, on interfaces whose names
    /// need escaping and ones that do not, both directions, at times with and without fractions.
    fn catalogue_observations() -> Vec<Observation> {
        use crate::decode::{decode_ethernet, Decoded};
        use crate::testkit::catalogue;
        let ifaces: [Arc<str>; 3] =
            ["eth0".into(), "br-\"lab\"\\1".into(), "tab\there\u{1}é".into()];
        let observations: Vec<Observation> = catalogue::cases()
            .into_iter()
            .enumerate()
            .filter_map(|(i, case)| match decode_ethernet(&case.bytes) {
                Decoded::Neigh(frame) => Some(frame.into_observation(
                    Timestamp(1_795_255_200_000_000_000 + i as u64 * 250_000_000),
                    ifaces[i % 3].clone(),
                    i as u32,
                    if i % 2 == 0 { Direction::Ingress } else { Direction::Egress },
                )),
                _ => None,
            })
            .collect();
        assert!(observations.iter().any(|o| o.nd.is_some()), "ND frames");
        assert!(observations.iter().any(|o| o.nd.is_none()), "ARP frames");
        assert!(observations.iter().any(|o| !o.vlan.as_slice().is_empty()), "tagged frames");
        observations
    }

    /// What serde_json makes of a `Serialize` value, as a line.
    fn serde_line(value: &impl Serialize) -> String {
        serde_json::to_string(value).unwrap() + "\n"
    }

    #[test]
    fn the_raw_line_writer_makes_serdes_bytes_for_every_catalogue_frame() {
        for obs in catalogue_observations() {
            let mut line = Vec::new();
            write_observation_json_line(&mut line, &obs);
            assert_eq!(String::from_utf8(line).unwrap(), serde_line(&RawLine(&obs)));
        }
    }

    /// The catalogue's frames through an engine watching a pool, then their addresses claimed
    /// by other MACs, a storm of new ones and the timers: every event, annotated with a node
    /// name to escape, is the line serde makes of its `Record`.
    #[test]
    fn the_event_writer_makes_serdes_bytes_for_the_engines_events() {
        use crate::config::Config;
        use crate::engine::Engine;
        use crate::enrich::Annotator;
        let config = Config::from_toml(
            "[[pools]]\nname = \"vips\"\ncidrs = [\"192.0.2.0/24\", \"2001:db8::/32\"]\n",
        )
        .unwrap();
        let mut engine = Engine::new(&config.engine);
        let mut events = Vec::new();
        let observations = catalogue_observations();
        let later = |obs: &Observation, secs: u64, mac: u8| {
            let mut obs = obs.clone();
            obs.ts = Timestamp(obs.ts.0 + secs * 1_000_000_000);
            obs.sha = MacAddr([2, 0, 0, 0, 0xee, mac]);
            obs
        };
        for obs in &observations {
            engine.observe(obs, &mut events);
        }
        for (i, obs) in observations.iter().enumerate() {
            engine.observe(&later(obs, 20, i as u8), &mut events);
        }
        for i in 0..=255 {
            engine.observe(&later(&observations[0], 40, i), &mut events);
        }
        engine.tick(Timestamp::from_secs(1_795_259_000), &mut events);
        let annotator = Annotator::new("node-\"a\"");
        let mut kinds = std::collections::BTreeSet::new();
        events.push(sample());
        for mut event in events {
            annotator.annotate(&mut event);
            kinds.insert(event.kind());
            let mut line = Vec::new();
            write_json_line(&mut line, &event);
            assert_eq!(String::from_utf8(line).unwrap(), serde_line(&Record::of(&event)));
        }
        assert!(kinds.len() >= 8, "{kinds:?}");
    }
}
