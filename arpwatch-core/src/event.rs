//! The events the engine reports, as the domain sees them: when, about which IP, where the
//! evidence was seen, the pool of the IP, what happened (one variant per kind, with its own
//! fields) and what the pipeline added afterwards (the node, this host's interface: see
//! [`crate::enrich`]). How an event is written out, the JSON line of schema v1 and the text
//! line, is [`crate::wire`]'s business; what each field means for an operator is in
//! `docs/events.md` and `docs/schema/arpwatch-events.schema.json`.

use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

use crate::cluster::Announcer;
use crate::observation::{ClaimKind, Direction, MacAddr, Observation, Timestamp, VlanTags};

/// The name of a kind of event, for counters, filters and the `event` field.
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
    AnnouncerMismatch,
}

impl EventKind {
    pub const ALL: [EventKind; 13] = [
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
        EventKind::AnnouncerMismatch,
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
            EventKind::AnnouncerMismatch => "announcer_mismatch",
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
            | EventKind::Unanswered
            | EventKind::AnnouncerMismatch => Severity::Critical,
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

/// Where a lasting condition (multi_responder, flapping, unanswered, storm, announcer_mismatch) is in its lifecycle.
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

impl From<ClaimKind> for Announced {
    fn from(kind: ClaimKind) -> Self {
        match kind {
            ClaimKind::Gratuitous => Announced::Gratuitous,
            ClaimKind::Reply => Announced::Reply,
            ClaimKind::Request => Announced::Request,
        }
    }
}

/// Which form of evidence made a `multi_responder`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResponderForm {
    /// Two or more MACs replied to the same requester within the reply window.
    Strong,
    /// Claims from two or more MACs kept alternating (A, B, A, B) within the concurrency window,
    /// or one MAC claimed again after another only answered.
    Sustained,
    /// A MAC sent requests from the IP (its own address, as far as its requests go) while
    /// another MAC claimed it within the concurrency window.
    Sender,
}

impl ResponderForm {
    pub fn as_str(self) -> &'static str {
        match self {
            ResponderForm::Strong => "strong",
            ResponderForm::Sustained => "sustained",
            ResponderForm::Sender => "sender",
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

/// One event.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// When it happened: the observation's time, or the moment a timer ran out.
    pub ts: Timestamp,
    /// The IP the event is about; for a storm, see `docs/events.md`.
    pub ip: IpAddr,
    /// Where the evidence was seen.
    pub seen: Seen,
    /// The configured pool the IP belongs to, for the kinds that name it.
    pub pool: Option<Arc<str>>,
    /// What happened.
    pub detail: Detail,
    /// What the pipeline adds after the engine ([`crate::enrich::Annotator`]).
    pub context: Context,
}

impl Event {
    /// An event as the engine reports it, with an empty [`Context`].
    pub fn new(
        ts: Timestamp,
        ip: IpAddr,
        seen: Seen,
        pool: Option<Arc<str>>,
        detail: Detail,
    ) -> Self {
        Event { ts, ip, seen, pool, detail, context: Context::default() }
    }

    pub fn kind(&self) -> EventKind {
        self.detail.kind()
    }

    /// Fixed per kind.
    pub fn severity(&self) -> Severity {
        self.kind().severity()
    }

    /// Where a lasting condition is in its lifecycle; `None` for other kinds.
    pub fn state(&self) -> Option<ConditionState> {
        self.lifecycle().map(|l| l.state)
    }

    pub fn lifecycle(&self) -> Option<&Lifecycle> {
        match &self.detail {
            Detail::Lasting { lifecycle, .. } => Some(lifecycle),
            _ => None,
        }
    }

    /// The MAC the event is about, the one that may be this host's own: the sender, the prober,
    /// the storming source, the last (or answering) owner of an unanswered IP, the sender of the
    /// requests that contradict a multi-responder's claims, else the new owner.
    pub fn subject_mac(&self) -> Option<MacAddr> {
        self.detail.subject_mac()
    }
}

/// Where the evidence of an event was seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    /// The interface (in a replay: the capture's interface name, or what `replay` names it).
    pub iface: Arc<str>,
    /// VLAN ids of the frame, outermost first.
    pub vlan: VlanTags,
    /// Whether the frame arrived or was sent by this host; not reported for `flapping` and
    /// `storm`.
    pub direction: Option<Direction>,
}

impl Seen {
    /// Where `obs` was seen.
    pub fn of(obs: &Observation) -> Seen {
        Seen { iface: obs.iface.clone(), vlan: obs.vlan, direction: Some(obs.direction) }
    }
}

/// What the pipeline knows about an event beyond the engine: who observed it, whether its MAC
/// is this host's own, and the cluster context (the nodes of its MACs, the Services of its IP,
/// the declared announcer), all absent when unknown.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// The observer (`NODE_NAME`, else the hostname).
    pub node: Option<Arc<str>>,
    /// This host's interface that owns the event's MAC ([`Event::subject_mac`]), when that MAC
    /// is one of this host's own (known to a live pipeline only).
    pub local_iface: Option<Arc<str>>,
    /// The node owning the event's `mac`.
    pub mac_node: Option<Arc<str>>,
    /// The nodes owning `old_mac` and `new_mac`.
    pub old_node: Option<Arc<str>>,
    pub new_node: Option<Arc<str>>,
    /// The node of each MAC of `macs` that has one, in the order of `macs`.
    pub mac_nodes: Vec<(MacAddr, Arc<str>)>,
    /// The MACs of `macs` (or `mac` when there is no list) that belong to no known node.
    pub foreign_macs: Vec<MacAddr>,
    /// The interface name of each MAC of the event (`mac`, `macs`, `old_mac`, `new_mac`) on its
    /// node, when its node published it.
    pub mac_ifaces: Vec<(MacAddr, Arc<str>)>,
    /// The LoadBalancer Services of the IP, as "namespace/name", sorted.
    pub services: Vec<Arc<str>>,
    /// The node declared to announce the IP.
    pub announcer: Option<Announcer>,
    /// The cluster snapshot is older than its freshness limit (the API unreachable): the
    /// cluster fields above are left out.
    pub stale: bool,
}

/// Who asked: the (SHA, SPA) of a request, the (THA, TPA) of the reply to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requester {
    pub mac: MacAddr,
    pub ip: IpAddr,
}

/// What happened, per kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Detail {
    /// An (IP, MAC) pair seen for the first time as the sender of a frame.
    NewBinding { mac: MacAddr, announced: Announced },
    /// An announcement from `mac`: a gratuitous ARP frame or an unsolicited Neighbor
    /// Advertisement (with its Override flag, `override_`).
    Gratuitous { mac: MacAddr, override_: Option<bool> },
    /// An RFC 5227 probe from `mac` for the IP.
    Probe { mac: MacAddr },
    /// A probe from `mac` for an IP bound to `holder`, last seen at `holder_last_seen`.
    ProbeConflict { mac: MacAddr, holder: MacAddr, holder_last_seen: Timestamp },
    /// The owner of the IP changed; `gap_ms` from the old owner's last claim to this one, when
    /// the old owner's binding is still remembered.
    /// `override_` is the Override flag of the Neighbor Advertisement that made the change: a
    /// change announced without it does not move neighbours that cached the old MAC.
    OwnerChange {
        old_mac: MacAddr,
        new_mac: MacAddr,
        announced: Announced,
        gap_ms: Option<u64>,
        override_: Option<bool>,
    },
    /// A claim for a pool IP from a MAC outside the pool; `count` occurrences since the previous
    /// report.
    UnknownResponder { mac: MacAddr, announced: Announced, count: u64, override_: Option<bool> },
    /// A claim by `mac` on an interface it should not be on; `count` occurrences since the
    /// previous report.
    UnexpectedInterface { mac: MacAddr, count: u64, misplaced: Misplaced },
    /// The Ethernet source `eth_src` of a frame differs from its ARP sender `mac`; `count`
    /// occurrences since the previous report.
    SenderMismatch { mac: MacAddr, eth_src: MacAddr, count: u64 },
    /// A lasting condition: where it is in its lifecycle, and what it is.
    Lasting { lifecycle: Lifecycle, condition: Condition },
}

impl Detail {
    pub fn kind(&self) -> EventKind {
        match self {
            Detail::NewBinding { .. } => EventKind::NewBinding,
            Detail::Gratuitous { .. } => EventKind::Gratuitous,
            Detail::Probe { .. } => EventKind::Probe,
            Detail::ProbeConflict { .. } => EventKind::ProbeConflict,
            Detail::OwnerChange { .. } => EventKind::OwnerChange,
            Detail::UnknownResponder { .. } => EventKind::UnknownResponder,
            Detail::UnexpectedInterface { .. } => EventKind::UnexpectedInterface,
            Detail::SenderMismatch { .. } => EventKind::SenderMismatch,
            Detail::Lasting { condition, .. } => condition.kind(),
        }
    }

    /// See [`Event::subject_mac`].
    pub fn subject_mac(&self) -> Option<MacAddr> {
        match self {
            Detail::NewBinding { mac, .. }
            | Detail::Gratuitous { mac, .. }
            | Detail::Probe { mac }
            | Detail::ProbeConflict { mac, .. }
            | Detail::UnknownResponder { mac, .. }
            | Detail::UnexpectedInterface { mac, .. }
            | Detail::SenderMismatch { mac, .. } => Some(*mac),
            Detail::OwnerChange { new_mac, .. } => Some(*new_mac),
            Detail::Lasting { condition, .. } => match condition {
                Condition::MultiResponder { sender, .. } => *sender,
                Condition::Flapping { new_mac, .. } => Some(*new_mac),
                Condition::Unanswered { mac, .. }
                | Condition::Storm { mac, .. }
                | Condition::AnnouncerMismatch { mac, .. } => *mac,
            },
        }
    }
}

/// Why an interface was unexpected.
#[derive(Clone, Debug, PartialEq)]
pub enum Misplaced {
    /// A pool IP claimed on an interface outside the pool's; these are the ones it allows.
    OutsidePool { allowed_ifaces: Vec<Arc<str>> },
    /// This host answering the IP on several of its interfaces at once: `ifaces[i]` answered
    /// with `macs[i]`.
    SeveralInterfaces { ifaces: Vec<Arc<str>>, macs: Vec<MacAddr> },
}

/// Where a lasting condition is: the same fields for every kind of condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lifecycle {
    pub state: ConditionState,
    /// Evidence counted since `start`.
    pub count: u64,
    /// The first evidence (the `start`).
    pub first_seen: Timestamp,
    /// The latest evidence.
    pub last_seen: Timestamp,
    /// Every MAC involved, in the order they became involved.
    pub macs: Vec<MacAddr>,
    /// An interface `storm`: the informational events beyond the interface's budget that it
    /// stands for since `start`, when there were any.
    pub summarised: Option<Box<Summarised>>,
}

/// Informational events (`new_binding`, `gratuitous`, `probe`) not reported one by one because
/// their interface was over its budget: how many of each kind, since when, and a few of their
/// MACs. Cumulative, like a condition's `count`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summarised {
    /// The first event summarised.
    pub since: Timestamp,
    pub new_binding: u64,
    pub gratuitous: u64,
    pub probe: u64,
    /// The first distinct MACs of the summarised events, at most [`Summarised::SAMPLE_MACS`]:
    /// enough to look one up, never a list that grows with a flood.
    pub sample_macs: Vec<MacAddr>,
}

impl Summarised {
    pub const SAMPLE_MACS: usize = 8;

    /// Nothing summarised yet, from `since`.
    pub fn since(since: Timestamp) -> Self {
        Summarised { since, new_binding: 0, gratuitous: 0, probe: 0, sample_macs: Vec::new() }
    }

    /// Counts one event of the informational `kind` about `mac`.
    pub fn add(&mut self, kind: EventKind, mac: MacAddr) {
        match kind {
            EventKind::NewBinding => self.new_binding += 1,
            EventKind::Gratuitous => self.gratuitous += 1,
            EventKind::Probe => self.probe += 1,
            // Only informational events are ever summarised.
            _ => return,
        }
        if self.sample_macs.len() < Self::SAMPLE_MACS && !self.sample_macs.contains(&mac) {
            self.sample_macs.push(mac);
        }
    }
}

/// What a lasting condition is, with the details of its latest report.
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    /// Two or more MACs claim the IP at once; `requester` is whom the replies went to (strong
    /// form), `sender` the MAC whose requests from the IP contradicted the claims (sender form).
    MultiResponder { form: ResponderForm, requester: Option<Requester>, sender: Option<MacAddr> },
    /// Owner changes in quick succession; the latest went from `old_mac` to `new_mac`.
    Flapping { old_mac: MacAddr, new_mac: MacAddr },
    /// Requests from `requester` for the IP get no claim; `mac` is the IP's last owner, or on
    /// the `end` the MAC that answered.
    Unanswered { mac: Option<MacAddr>, requester: Requester },
    /// ARP frames over the rate threshold, `rate` per second, on one interface or from one
    /// Ethernet source `mac`.
    Storm { scope: StormScope, mac: Option<MacAddr>, rate: u64 },
    /// A VIP with a declared announcer (MetalLB's `ServiceL2Status`, kube-vip's `vipHost`) is
    /// answered by `mac`, none of the MACs the declaration allows, or (`mac` absent) its
    /// requests go unanswered, for longer than the grace period.
    AnnouncerMismatch { mac: Option<MacAddr>, announcer: Announcer },
}

impl Condition {
    pub fn kind(&self) -> EventKind {
        match self {
            Condition::MultiResponder { .. } => EventKind::MultiResponder,
            Condition::Flapping { .. } => EventKind::Flapping,
            Condition::Unanswered { .. } => EventKind::Unanswered,
            Condition::Storm { .. } => EventKind::Storm,
            Condition::AnnouncerMismatch { .. } => EventKind::AnnouncerMismatch,
        }
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_follow_the_spec() {
        use EventKind::*;
        for kind in EventKind::ALL {
            let expected = match kind {
                NewBinding | Gratuitous | Probe => Severity::Info,
                OwnerChange | UnexpectedInterface | ProbeConflict | SenderMismatch | Storm => {
                    Severity::Warning
                }
                MultiResponder | Flapping | UnknownResponder | Unanswered | AnnouncerMismatch => {
                    Severity::Critical
                }
            };
            assert_eq!(kind.severity(), expected, "{}", kind.as_str());
            assert_eq!(EventKind::ALL[kind.index()], kind);
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }
}
