//! What a running agent knows right now, as the status API (`/api/v1/...`), `arpwatch status`
//! and the status page show it: per watched IP its owner and since when, the MACs claiming it,
//! the last owner change, the open conditions and how its requests fare; the open conditions;
//! the latest events; the kernel's counters. Pure data: the engine fills what it knows
//! ([`crate::engine::Engine::ip_status`]), [`annotate`] adds the names the cluster context
//! gives, and the shell adds the events and the kernel counters. `docs/api.md` documents every
//! field; `docs/schema/arpwatch-api.schema.json` is its JSON Schema.

use std::net::IpAddr;
use std::sync::Arc;

use serde::Serialize;

use crate::enrich::Annotator;
use crate::event::{ConditionState, EventKind};
use crate::observation::{MacAddr, Proto, Timestamp};

/// Version of the status API, carried in every response as `"api_version"` and in its paths
/// (`/api/v1/`). Raised when a field changes meaning or disappears; adding a field does not
/// raise it.
pub const API_VERSION: u32 = 1;

/// Everything the status page shows, in one value.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StatusView {
    /// When the view was made (the agent's time).
    pub generated: Timestamp,
    /// The observer (`NODE_NAME`, else the hostname).
    pub node: Option<Arc<str>>,
    /// Watched IPs (pool IPs and IPs with an owner), by address, at most a bounded number.
    pub ips: Vec<IpStatus>,
    /// Every open lasting condition (storms included), oldest evidence first.
    pub conditions: Vec<OpenCondition>,
    /// The latest events, oldest first, each as the JSON object of its output line.
    pub recent_events: Vec<serde_json::Value>,
    /// The kernel programs' counters, when the agent watches live.
    pub kernel: Option<KernelCounters>,
    /// Some watched IPs (or events) were left out to keep the view bounded.
    pub truncated: bool,
}

/// One watched IP.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IpStatus {
    pub ip: IpAddr,
    /// `arp` for IPv4, `ndp` for IPv6.
    pub proto: Proto,
    /// The configured (or cluster) pool the IP belongs to.
    pub pool: Option<Arc<str>>,
    /// The LoadBalancer Services of the IP, as "namespace/name", sorted.
    pub services: Vec<Arc<str>>,
    /// The MAC the network follows for this IP, and since when.
    pub owner: Option<Owner>,
    /// The MACs that claimed the IP (a reply or an announcement) within the concurrency
    /// window, in the order they were first seen with it.
    pub claims: Vec<Claimant>,
    /// The latest change of owner.
    pub last_owner_change: Option<OwnerChangeRecord>,
    /// The open lasting conditions about this IP.
    pub conditions: Vec<OpenCondition>,
    /// How the requests for this IP fared lately.
    pub requests: RequestStats,
}

/// The owner of an IP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Owner {
    pub mac: MacAddr,
    /// When this MAC became the owner (its first claim, or the owner change to it).
    pub since: Timestamp,
    /// Its last claim of the IP.
    pub last_claim: Option<Timestamp>,
    /// The node the MAC belongs to, and its interface there, when the cluster context says.
    pub node: Option<Arc<str>>,
    pub iface: Option<Arc<str>>,
}

/// A MAC that claimed the IP within the concurrency window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Claimant {
    pub mac: MacAddr,
    /// Claims since `since`: its claims of the IP with no pause longer than the concurrency
    /// window between them.
    pub count: u64,
    /// The first claim counted in `count`.
    pub since: Timestamp,
    /// Its latest claim.
    pub last: Timestamp,
    pub node: Option<Arc<str>>,
    pub iface: Option<Arc<str>>,
}

/// The latest change of owner of an IP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OwnerChangeRecord {
    pub at: Timestamp,
    pub old_mac: MacAddr,
    pub new_mac: MacAddr,
    /// From the old owner's last claim to the new owner's claim, when the old owner's binding
    /// was still remembered: how long the IP had no answer during a failover.
    pub gap_ms: Option<u64>,
    /// Reported as an `owner_change` event; false for a move between the MACs of an open
    /// `multi_responder`, which counts as that incident's evidence instead.
    pub reported: bool,
    pub old_node: Option<Arc<str>>,
    pub new_node: Option<Arc<str>>,
}

/// An open lasting condition, as its latest report says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OpenCondition {
    /// Its kind, as the `event` field of its events names it.
    pub event: EventKind,
    /// The IP of its `start` (`0.0.0.0` for a storm on an interface).
    pub ip: IpAddr,
    /// `start` until an `ongoing` was reported, then `ongoing`.
    pub state: ConditionState,
    /// Its start, and its latest evidence.
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// Evidence counted since the start.
    pub count: u64,
    /// Every MAC involved, in the order they became involved.
    pub macs: Vec<MacAddr>,
    /// The interface where its latest evidence was seen.
    pub iface: Arc<str>,
    pub pool: Option<Arc<str>>,
}

/// Requests for an IP that the engine waited on a claim for (requests for a pool IP or an
/// owned IP, sent by this host, or by anyone with `full_view`), counted since `since`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RequestStats {
    /// Where the counts start: the counters cover between one and two windows of
    /// [`REQUEST_WINDOW_SECS`].
    pub since: Option<Timestamp>,
    pub seen: u64,
    /// Answered by a claim within the reply timeout.
    pub answered: u64,
    /// Not answered within the reply timeout.
    pub unanswered: u64,
    /// Still waiting for a claim.
    pub waiting: u64,
    /// The latest request.
    pub last_request: Option<Timestamp>,
    /// The latest claim of the IP by any MAC.
    pub last_answer: Option<Timestamp>,
}

/// The length of one window of [`RequestStats`] (5 minutes).
pub const REQUEST_WINDOW_SECS: u64 = 300;

/// The kernel programs' counters per direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KernelCounters {
    pub ingress: DirectionCounters,
    pub egress: DirectionCounters,
}

/// The kernel counters of one direction (see `docs/metrics.md`, `arpwatch_kernel_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DirectionCounters {
    pub frames: u64,
    pub arp: u64,
    pub ndp: u64,
    pub malformed: u64,
    pub ring_full_drops: u64,
    pub suppressed: u64,
}

/// Adds what the cluster context knows to `status`: the nodes and interfaces of its MACs and
/// the Services of its IP. Without a cluster snapshot nothing changes.
pub fn annotate(status: &mut IpStatus, annotator: &Annotator) {
    let Some(cluster) = annotator.cluster() else {
        return;
    };
    if !cluster.is_stale() {
        status.services = cluster.services(status.ip).to_vec();
    }
    let name = |mac: MacAddr| -> (Option<Arc<str>>, Option<Arc<str>>) {
        match annotator.mac_owner(mac).filter(|o| !o.stale) {
            Some(o) => (Some(o.node), o.iface),
            None => (None, None),
        }
    };
    if let Some(owner) = &mut status.owner {
        (owner.node, owner.iface) = name(owner.mac);
    }
    for claimant in &mut status.claims {
        (claimant.node, claimant.iface) = name(claimant.mac);
    }
    if let Some(change) = &mut status.last_owner_change {
        change.old_node = name(change.old_mac).0;
        change.new_node = name(change.new_mac).0;
    }
}

/// A small view with every field set, for the status page's tests and examples.
#[cfg(any(test, feature = "testkit"))]
pub fn sample() -> StatusView {
    let at = |s: u64| Timestamp::from_secs(1_790_000_000 + s);
    let mac = |s: &str| s.parse::<MacAddr>().unwrap_or_default();
    let (a, b) = (mac("02:00:00:00:00:0a"), mac("02:00:00:00:00:0b"));
    let vip: IpAddr = [192, 0, 2, 10].into();
    let multi = OpenCondition {
        event: EventKind::MultiResponder,
        ip: vip,
        state: ConditionState::Ongoing,
        first_seen: at(100),
        last_seen: at(160),
        count: 12,
        macs: vec![a, b],
        iface: "eth0".into(),
        pool: Some("vips".into()),
    };
    let claimant = |m: MacAddr, node: &str, iface: &str| Claimant {
        mac: m,
        count: 6,
        since: at(100),
        last: at(160),
        node: Some(node.into()),
        iface: Some(iface.into()),
    };
    let ip = IpStatus {
        ip: vip,
        proto: Proto::Arp,
        pool: Some("vips".into()),
        services: vec!["shop/web".into()],
        owner: Some(Owner {
            mac: b,
            since: at(160),
            last_claim: Some(at(160)),
            node: Some("node-b".into()),
            iface: Some("eth0".into()),
        }),
        claims: vec![claimant(a, "node-a", "eth0"), claimant(b, "node-b", "eth0")],
        last_owner_change: Some(OwnerChangeRecord {
            at: at(90),
            old_mac: a,
            new_mac: b,
            gap_ms: Some(1500),
            reported: true,
            old_node: Some("node-a".into()),
            new_node: Some("node-b".into()),
        }),
        conditions: vec![multi.clone()],
        requests: RequestStats {
            since: Some(at(0)),
            seen: 40,
            answered: 38,
            unanswered: 2,
            waiting: 0,
            last_request: Some(at(159)),
            last_answer: Some(at(160)),
        },
    };
    let quiet = IpStatus {
        ip: [192, 0, 2, 11].into(),
        proto: Proto::Arp,
        pool: Some("vips".into()),
        services: Vec::new(),
        owner: None,
        claims: Vec::new(),
        last_owner_change: None,
        conditions: Vec::new(),
        requests: RequestStats::default(),
    };
    let event = serde_json::json!({
        "schema": 1, "ts": "2026-09-21T13:49:20Z", "event": "multi_responder",
        "severity": "critical", "ip": "192.0.2.10", "state": "start",
        "macs": ["02:00:00:00:00:0a", "02:00:00:00:00:0b"]
    });
    StatusView {
        generated: at(161),
        node: Some("node-a".into()),
        ips: vec![ip, quiet],
        conditions: vec![multi],
        recent_events: vec![event],
        kernel: Some(KernelCounters {
            ingress: DirectionCounters {
                frames: 1000,
                arp: 900,
                ring_full_drops: 3,
                ..Default::default()
            },
            egress: DirectionCounters { frames: 10, arp: 10, ..Default::default() },
        }),
        truncated: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sample_serialises_with_the_contracts_names() {
        let v = serde_json::to_value(sample()).unwrap();
        assert_eq!(v["ips"][0]["conditions"][0]["event"], "multi_responder");
        assert_eq!(v["ips"][0]["owner"]["mac"], "02:00:00:00:00:0b");
        assert_eq!(v["ips"][0]["proto"], "arp");
        assert_eq!(v["conditions"][0]["state"], "ongoing");
        assert_eq!(v["kernel"]["ingress"]["ring_full_drops"], 3);
        assert!(v["generated"].as_str().unwrap().ends_with('Z'));
    }
}
