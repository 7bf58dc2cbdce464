//! The events the engine reports: one `Event` per JSON line (`--format json`) or per text line
//! (`--format text`). The field set is the output contract of SPEC §4 and is documented, field by
//! field, in `docs/events.md` and `docs/schema/arpwatch-events.schema.json`.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::sync::Arc;

use serde::Serialize;

use crate::observation::{Direction, MacAddr, Timestamp, VlanTags};

/// Version of the event schema, carried in every event as `"schema"`. Raised when a field changes
/// meaning or disappears; adding an optional field does not raise it.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    NewBinding,
    MultiResponder,
    OwnerChange,
    Flapping,
    UnexpectedInterface,
    UnknownResponder,
    Unanswered,
    Gratuitous,
    Probe,
    ProbeConflict,
    SenderMismatch,
    Storm,
}

impl EventKind {
    pub const ALL: [EventKind; 12] = [
        EventKind::NewBinding,
        EventKind::MultiResponder,
        EventKind::OwnerChange,
        EventKind::Flapping,
        EventKind::UnexpectedInterface,
        EventKind::UnknownResponder,
        EventKind::Unanswered,
        EventKind::Gratuitous,
        EventKind::Probe,
        EventKind::ProbeConflict,
        EventKind::SenderMismatch,
        EventKind::Storm,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::NewBinding => "new_binding",
            EventKind::MultiResponder => "multi_responder",
            EventKind::OwnerChange => "owner_change",
            EventKind::Flapping => "flapping",
            EventKind::UnexpectedInterface => "unexpected_interface",
            EventKind::UnknownResponder => "unknown_responder",
            EventKind::Unanswered => "unanswered",
            EventKind::Gratuitous => "gratuitous",
            EventKind::Probe => "probe",
            EventKind::ProbeConflict => "probe_conflict",
            EventKind::SenderMismatch => "sender_mismatch",
            EventKind::Storm => "storm",
        }
    }

    /// Position in [`EventKind::ALL`], for per-kind counters.
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn severity(self) -> Severity {
        match self {
            EventKind::NewBinding | EventKind::Gratuitous | EventKind::Probe => Severity::Info,
            EventKind::OwnerChange
            | EventKind::UnexpectedInterface
            | EventKind::ProbeConflict
            | EventKind::SenderMismatch
            | EventKind::Storm => Severity::Warning,
            EventKind::MultiResponder
            | EventKind::Flapping
            | EventKind::UnknownResponder
            | EventKind::Unanswered => Severity::Critical,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Where a lasting condition (multi_responder, flapping, unanswered, storm) is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConditionState {
    Start,
    Ongoing,
    End,
}

impl ConditionState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionState::Start => "start",
            ConditionState::Ongoing => "ongoing",
            ConditionState::End => "end",
        }
    }
}

/// How a binding or a new owner was learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Announced {
    /// Gratuitous ARP (request or reply with SPA = TPA).
    Gratuitous,
    /// A plain reply.
    Reply,
    /// The sender fields of a plain request (a weak claim; only for `new_binding`).
    Request,
}

impl Announced {
    pub fn as_str(self) -> &'static str {
        match self {
            Announced::Gratuitous => "gratuitous",
            Announced::Reply => "reply",
            Announced::Request => "request",
        }
    }
}

/// Which form of evidence made a `multi_responder`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResponderForm {
    /// Two or more MACs replied to the same requester within the reply window.
    Strong,
    /// Claims from two or more MACs interleaved (A, B, A) within the concurrency window.
    Sustained,
}

impl ResponderForm {
    pub fn as_str(self) -> &'static str {
        match self {
            ResponderForm::Strong => "strong",
            ResponderForm::Sustained => "sustained",
        }
    }
}

/// What a `storm` is counted over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StormScope {
    /// All ARP frames of one interface.
    Iface,
    /// All ARP frames sent by one Ethernet source MAC.
    Mac,
}

impl StormScope {
    pub fn as_str(self) -> &'static str {
        match self {
            StormScope::Iface => "iface",
            StormScope::Mac => "mac",
        }
    }
}

fn vlan_is_empty(v: &VlanTags) -> bool {
    v.as_slice().is_empty()
}

/// One event. Fields that do not apply are `None` (or empty) and are left out of the JSON.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// Schema version, always [`SCHEMA_VERSION`].
    pub schema: u32,
    pub ts: Timestamp,
    pub event: EventKind,
    pub severity: Severity,
    /// The IP the event is about; for a storm, see `docs/events.md`.
    pub ip: Ipv4Addr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<ConditionState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub macs: Vec<MacAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_mac: Option<MacAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_mac: Option<MacAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eth_src: Option<MacAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iface: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ifaces: Vec<Arc<str>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_ifaces: Vec<Arc<str>>,
    #[serde(skip_serializing_if = "vlan_is_empty")]
    pub vlan: VlanTags,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub announced: Option<Announced>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gap_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub form: Option<ResponderForm>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requester_mac: Option<MacAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requester_ip: Option<Ipv4Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<StormScope>,
    /// The event's MAC (`mac`, else `new_mac`) belongs to this host (set by the live pipeline,
    /// which knows the host's interfaces; the engine itself does not).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub local: bool,
    /// This host's interface that owns that MAC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_iface: Option<Arc<str>>,
    pub node: Arc<str>,
}

impl Event {
    /// An event with only the fields every event has; the severity follows from the kind.
    pub fn new(kind: EventKind, ts: Timestamp, ip: Ipv4Addr, node: Arc<str>) -> Self {
        Event {
            schema: SCHEMA_VERSION,
            ts,
            event: kind,
            severity: kind.severity(),
            ip,
            state: None,
            mac: None,
            macs: Vec::new(),
            old_mac: None,
            new_mac: None,
            eth_src: None,
            iface: None,
            ifaces: Vec::new(),
            allowed_ifaces: Vec::new(),
            vlan: VlanTags::NONE,
            direction: None,
            count: None,
            first_seen: None,
            last_seen: None,
            announced: None,
            gap_ms: None,
            form: None,
            pool: None,
            requester_mac: None,
            requester_ip: None,
            rate: None,
            scope: None,
            local: false,
            local_iface: None,
            node,
        }
    }

    /// The MAC the event is about: `mac`, else the new owner's.
    pub fn subject_mac(&self) -> Option<MacAddr> {
        self.mac.or(self.new_mac)
    }

    /// One line for a person at a terminal, e.g.
    /// `2026-11-21T10:00:01Z CRITICAL multi_responder 192.0.2.10 macs=[02:00:00:00:00:01,02:00:00:00:00:02] iface=eth0 state=start`.
    pub fn to_text_line(&self) -> String {
        let mut line = String::with_capacity(128);
        let _ = write!(
            line,
            "{} {} {} {}",
            self.ts.to_rfc3339(),
            self.severity.as_str().to_ascii_uppercase(),
            self.event.as_str(),
            self.ip
        );
        let mut field = |name: &str, value: &dyn std::fmt::Display| {
            let _ = write!(line, " {name}={value}");
        };
        if let Some(v) = self.state {
            field("state", &v.as_str());
        }
        if let Some(v) = self.mac {
            field("mac", &v);
        }
        if !self.macs.is_empty() {
            field("macs", &List(&self.macs));
        }
        if let Some(v) = self.old_mac {
            field("old_mac", &v);
        }
        if let Some(v) = self.new_mac {
            field("new_mac", &v);
        }
        if let Some(v) = self.eth_src {
            field("eth_src", &v);
        }
        if let Some(v) = &self.iface {
            field("iface", v);
        }
        if !self.ifaces.is_empty() {
            field("ifaces", &List(&self.ifaces));
        }
        if !self.allowed_ifaces.is_empty() {
            field("allowed_ifaces", &List(&self.allowed_ifaces));
        }
        if !self.vlan.as_slice().is_empty() {
            field("vlan", &List(self.vlan.as_slice()));
        }
        if let Some(v) = self.direction {
            field("direction", &direction_str(v));
        }
        if let Some(v) = self.announced {
            field("announced", &v.as_str());
        }
        if let Some(v) = self.gap_ms {
            field("gap_ms", &v);
        }
        if let Some(v) = self.form {
            field("form", &v.as_str());
        }
        if let Some(v) = &self.pool {
            field("pool", v);
        }
        if let Some(v) = &self.local_iface {
            field("local_iface", v);
        }
        if let Some(v) = self.requester_mac {
            field("requester_mac", &v);
        }
        if let Some(v) = self.requester_ip {
            field("requester_ip", &v);
        }
        if let Some(v) = self.rate {
            field("rate", &v);
        }
        if let Some(v) = self.scope {
            field("scope", &v.as_str());
        }
        if let Some(v) = self.count {
            field("count", &v);
        }
        if let Some(v) = self.first_seen {
            field("first_seen", &v.to_rfc3339());
        }
        if let Some(v) = self.last_seen {
            field("last_seen", &v.to_rfc3339());
        }
        field("node", &self.node);
        line
    }
}

fn direction_str(d: Direction) -> &'static str {
    match d {
        Direction::Ingress => "ingress",
        Direction::Egress => "egress",
    }
}

/// `[a,b,c]` for the text format.
struct List<'a, T>(&'a [T]);

impl<T: std::fmt::Display> std::fmt::Display for List<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[")?;
        for (i, item) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{item}")?;
        }
        f.write_str("]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(last: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, last])
    }

    fn sample() -> Event {
        let mut e = Event::new(
            EventKind::MultiResponder,
            Timestamp::from_secs(1_795_255_201),
            Ipv4Addr::new(192, 0, 2, 10),
            "node-a".into(),
        );
        e.state = Some(ConditionState::Start);
        e.macs = vec![mac(1), mac(2)];
        e.iface = Some("eth0".into());
        e.vlan = VlanTags::from_slice(&[123]).unwrap();
        e.count = Some(2);
        e
    }

    #[test]
    fn json_carries_the_contract_fields_and_omits_absent_ones() {
        let json = serde_json::to_value(sample()).unwrap();
        assert_eq!(json["schema"], 1);
        assert_eq!(json["ts"], "2026-11-21T10:00:01Z");
        assert_eq!(json["event"], "multi_responder");
        assert_eq!(json["severity"], "critical");
        assert_eq!(json["ip"], "192.0.2.10");
        assert_eq!(json["state"], "start");
        assert_eq!(json["macs"], serde_json::json!(["02:00:00:00:00:01", "02:00:00:00:00:02"]));
        assert_eq!(json["vlan"], serde_json::json!([123]));
        assert_eq!(json["node"], "node-a");
        let obj = json.as_object().unwrap();
        for absent in ["mac", "old_mac", "ifaces", "gap_ms", "pool", "rate", "direction"] {
            assert!(!obj.contains_key(absent), "{absent} should be omitted: {json}");
        }
    }

    #[test]
    fn text_line_is_one_readable_line() {
        let line = sample().to_text_line();
        assert_eq!(
            line,
            "2026-11-21T10:00:01Z CRITICAL multi_responder 192.0.2.10 state=start \
             macs=[02:00:00:00:00:01,02:00:00:00:00:02] iface=eth0 vlan=[123] count=2 node=node-a"
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn severities_follow_the_spec() {
        use EventKind::*;
        for kind in EventKind::ALL {
            let expected = match kind {
                NewBinding | Gratuitous | Probe => Severity::Info,
                OwnerChange | UnexpectedInterface | ProbeConflict | SenderMismatch | Storm => {
                    Severity::Warning
                }
                MultiResponder | Flapping | UnknownResponder | Unanswered => Severity::Critical,
            };
            assert_eq!(kind.severity(), expected, "{}", kind.as_str());
            assert_eq!(EventKind::ALL[kind.index()], kind);
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }
}
