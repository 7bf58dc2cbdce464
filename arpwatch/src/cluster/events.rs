//! Findings recorded where operators look first (`kubectl describe svc`): one Kubernetes Event
//! (`events.k8s.io/v1`) on a Service when a condition about one of its VIPs starts.
//!
//! One reporter per condition, cluster-wide, without talking between nodes: the Event's name is
//! the same on every node, [`event_name`]`(service, reason, VIP)`, and the node whose create
//! succeeds owns it. A create refused with 409 AlreadyExists means another node reports that
//! condition (unless the existing Event names this node as its reporting instance, say after a
//! restart): this node leaves it alone. The owner folds repeats, and later starts of the same
//! condition, into the Event's `series` (a merge patch of `series.count` and
//! `series.lastObservedTime`), as client-go's event recorder does. An Event the API server has
//! expired (1 h by default) is created anew by the next node that sees the condition.
//!
//! The pipeline never waits: findings go through a bounded channel to the reporter task; when the
//! channel is full they are dropped and counted (`arpwatch_kubernetes_events_dropped_total`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use arpwatch_core::event::{ConditionState, Detail, Event, EventKind};
use arpwatch_core::observation::Timestamp;
use arpwatch_core::wire;
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use k8s_openapi::api::events::v1::Event as KubeEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

use super::convert::micro_time;
use super::{status_is, Contact, KubeMetrics};

/// Findings waiting for the reporter; beyond it they are dropped and counted.
pub const QUEUE: usize = 256;
/// `reportingController` of every Event arpwatch writes.
pub const CONTROLLER: &str = "arpwatch.io/arpwatch";
/// `action` of every Event arpwatch writes: it observed, it did nothing.
const ACTION: &str = "Observed";
/// The longest `note` the API server accepts.
const MAX_NOTE: usize = 1024;
/// The `resource` label of the errors of Event writes.
const EVENTS: &str = "events";

/// The conditions reported on Services, by the Event `reason` they get.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    MultipleResponders,
    Unanswered,
    AnnouncerMismatch,
    UnknownResponder,
    Flapping,
    UnexpectedInterface,
}

impl Reason {
    pub fn of(kind: EventKind) -> Option<Reason> {
        Some(match kind {
            EventKind::MultiResponder => Reason::MultipleResponders,
            EventKind::Unanswered => Reason::Unanswered,
            EventKind::AnnouncerMismatch => Reason::AnnouncerMismatch,
            EventKind::UnknownResponder => Reason::UnknownResponder,
            EventKind::Flapping => Reason::Flapping,
            EventKind::UnexpectedInterface => Reason::UnexpectedInterface,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::MultipleResponders => "MultipleResponders",
            Reason::Unanswered => "Unanswered",
            Reason::AnnouncerMismatch => "AnnouncerMismatch",
            Reason::UnknownResponder => "UnknownResponder",
            Reason::Flapping => "Flapping",
            Reason::UnexpectedInterface => "UnexpectedInterface",
        }
    }
}

/// A condition about a Service's VIP, for the reporter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub namespace: String,
    pub service: String,
    pub reason: Reason,
    pub ip: IpAddr,
    /// The event's line, for the Event's `note`.
    pub note: String,
    pub at: Timestamp,
    /// The condition starts (rather than repeats).
    pub starts: bool,
}

impl Finding {
    /// What `event` says about each of `services` (the Services of its IP, as
    /// "namespace/name"): nothing unless it is one of the reported conditions, starting or
    /// repeating (an end is not reported).
    pub fn of(event: &Event, services: &[Arc<str>]) -> Vec<Finding> {
        let Some(reason) = Reason::of(event.kind()) else {
            return Vec::new();
        };
        let starts = match &event.detail {
            Detail::UnknownResponder { count, .. } | Detail::UnexpectedInterface { count, .. } => {
                *count <= 1
            }
            _ => match event.state() {
                Some(ConditionState::Start) => true,
                Some(ConditionState::Ongoing) => false,
                Some(ConditionState::End) | None => return Vec::new(),
            },
        };
        if services.is_empty() {
            return Vec::new();
        }
        let note = note(&wire::text_line(event));
        services
            .iter()
            .filter_map(|s| s.split_once('/'))
            .map(|(namespace, service)| Finding {
                namespace: namespace.to_owned(),
                service: service.to_owned(),
                reason,
                ip: event.ip,
                note: note.clone(),
                at: event.ts,
                starts,
            })
            .collect()
    }

    /// The Event this finding is recorded in, the same on every node.
    pub fn event_name(&self) -> String {
        event_name(&self.service, self.reason, self.ip)
    }
}

/// The event's text line without its time (the Event has its own), cut to what a note may hold.
fn note(line: &str) -> String {
    let line = line.split_once(' ').map_or(line, |(_, rest)| rest);
    if line.len() <= MAX_NOTE {
        return line.to_owned();
    }
    let mut end = MAX_NOTE - '…'.len_utf8();
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

/// `arpwatch-<service>-<reason, lower case>-<FNV-1a 32 of the VIP's text, 8 hex digits>`: one
/// name per (Service, condition, VIP), the same on every node and in every version.
pub fn event_name(service: &str, reason: Reason, ip: IpAddr) -> String {
    let hash = ip
        .to_string()
        .bytes()
        .fold(0x811c_9dc5_u32, |hash, byte| (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193));
    format!("arpwatch-{service}-{}-{hash:08x}", reason.as_str().to_ascii_lowercase())
}

/// The pipeline's end of the channel; cloning it is cheap.
#[derive(Clone)]
pub struct EventSink {
    tx: mpsc::Sender<Finding>,
    dropped: Counter,
}

impl EventSink {
    /// Hands the findings of `event` to the reporter, never waiting: those that do not fit are
    /// dropped and counted.
    pub fn offer(&self, event: &Event, services: &[Arc<str>]) {
        for finding in Finding::of(event, services) {
            if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(finding) {
                self.dropped.inc();
            }
        }
    }
}

/// What this node knows of an Event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ownership {
    /// This node created it; its series count so far.
    Ours { count: i32 },
    /// Another node reports this condition.
    Theirs,
}

pub struct Reporter {
    client: Client,
    /// `reportingInstance`: `arpwatch-<node>`.
    instance: String,
    known: HashMap<(String, String), Ownership>,
    metrics: KubeMetrics,
    contact: Arc<Contact>,
    failing: bool,
}

/// The channel between the pipeline and the reporter.
pub fn channel(metrics: &KubeMetrics) -> (EventSink, mpsc::Receiver<Finding>) {
    let (tx, rx) = mpsc::channel(QUEUE);
    (EventSink { tx, dropped: metrics.events_dropped.clone() }, rx)
}

impl Reporter {
    pub fn new(client: Client, node: &str, metrics: KubeMetrics, contact: Arc<Contact>) -> Self {
        Reporter {
            client,
            instance: super::lease::lease_name(node),
            known: HashMap::new(),
            metrics,
            contact,
            failing: false,
        }
    }

    pub async fn run(mut self, mut findings: mpsc::Receiver<Finding>) {
        while let Some(finding) = findings.recv().await {
            let name = finding.event_name();
            match self.report(&finding, &name).await {
                Ok(()) => {
                    if std::mem::take(&mut self.failing) {
                        log::info!("kubernetes: recording Events works again");
                    }
                }
                Err(err) => {
                    self.metrics.error(EVENTS);
                    if !std::mem::replace(&mut self.failing, true) {
                        log::warn!(
                            "kubernetes: could not record Event {}/{name}: {err}",
                            finding.namespace
                        );
                    }
                }
            }
        }
    }

    async fn report(&mut self, finding: &Finding, name: &str) -> Result<(), kube::Error> {
        let key = (finding.namespace.clone(), name.to_owned());
        let api: Api<KubeEvent> = Api::namespaced(self.client.clone(), &finding.namespace);
        match self.known.get(&key).copied() {
            Some(Ownership::Ours { count }) => {
                match self.contact.heard(add_to_series(&api, name, count + 1, finding.at).await) {
                    Ok(()) => {
                        self.known.insert(key, Ownership::Ours { count: count + 1 });
                        return Ok(());
                    }
                    // Expired: created anew below.
                    Err(err) if status_is(&err, 404) => {
                        self.known.remove(&key);
                    }
                    Err(err) => return Err(err),
                }
            }
            // The owner may have gone: a new start asks again.
            Some(Ownership::Theirs) if finding.starts => {}
            Some(Ownership::Theirs) => return Ok(()),
            // A repeat of a condition whose start was not seen (dropped, or from before a
            // restart) is treated as its start.
            None => {}
        }
        let uid = self.service_uid(finding).await;
        let event = self.new_event(finding, name, uid);
        let ownership = match self.contact.heard(api.create(&PostParams::default(), &event).await) {
            Ok(_) => Ownership::Ours { count: 1 },
            Err(err) if status_is(&err, 409) => {
                let existing = self.contact.heard(api.get(name).await)?;
                if existing.reporting_instance.as_deref() == Some(self.instance.as_str()) {
                    let count = existing.series.map_or(1, |s| s.count);
                    self.contact.heard(add_to_series(&api, name, count + 1, finding.at).await)?;
                    Ownership::Ours { count: count + 1 }
                } else {
                    Ownership::Theirs
                }
            }
            Err(err) => return Err(err),
        };
        self.known.insert(key, ownership);
        Ok(())
    }

    /// The Service's uid, which `kubectl describe` matches Events on; `None` if it cannot be read.
    async fn service_uid(&self, finding: &Finding) -> Option<String> {
        let api: Api<Service> = Api::namespaced(self.client.clone(), &finding.namespace);
        let service = self.contact.heard(api.get(&finding.service).await).ok()?;
        service.metadata.uid
    }

    fn new_event(&self, finding: &Finding, name: &str, uid: Option<String>) -> KubeEvent {
        new_event(finding, name, &self.instance, uid)
    }
}

pub fn new_event(finding: &Finding, name: &str, instance: &str, uid: Option<String>) -> KubeEvent {
    KubeEvent {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(finding.namespace.clone()),
            ..ObjectMeta::default()
        },
        event_time: Some(micro_time(finding.at)),
        reporting_controller: Some(CONTROLLER.to_owned()),
        reporting_instance: Some(instance.to_owned()),
        action: Some(ACTION.to_owned()),
        reason: Some(finding.reason.as_str().to_owned()),
        note: Some(finding.note.clone()),
        type_: Some("Warning".to_owned()),
        regarding: Some(ObjectReference {
            api_version: Some("v1".to_owned()),
            kind: Some("Service".to_owned()),
            namespace: Some(finding.namespace.clone()),
            name: Some(finding.service.clone()),
            uid,
            ..ObjectReference::default()
        }),
        ..KubeEvent::default()
    }
}

/// The JSON merge patch that folds one more occurrence into an Event's series.
pub fn series_patch(count: i32, at: Timestamp) -> serde_json::Value {
    serde_json::json!({ "series": { "count": count, "lastObservedTime": micro_time(at) } })
}

async fn add_to_series(
    api: &Api<KubeEvent>,
    name: &str,
    count: i32,
    at: Timestamp,
) -> Result<(), kube::Error> {
    let patch = series_patch(count, at);
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.map(drop)
}

#[cfg(test)]
mod tests;
