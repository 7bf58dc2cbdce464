//! Lasting conditions (multi_responder, flapping, unanswered, storm, announcer_mismatch): one `start`, then `ongoing`
//! at most once per report interval (or at once when a MAC joins: a new responder is news the
//! operator should not wait for), then `end` once the condition has had no evidence for the quiet
//! window.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use lru::LruCache;

use crate::event::{
    Condition, ConditionState, Detail, Event, EventKind, Lifecycle, Seen, StormScope, Summarised,
};
use crate::observation::{MacAddr, Timestamp, VlanTags};
use crate::status::OpenCondition;

/// What a lasting condition is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum ConditionKey {
    MultiResponder(IpAddr),
    Flapping(IpAddr),
    Unanswered(IpAddr),
    /// By the interface's id in the engine's interface table: a storm is judged per frame, and
    /// an id is cheaper to hash than the name (an interface forgotten and seen again gets a new
    /// id, and its old storm ends when it goes quiet).
    StormIface(u32),
    StormMac(MacAddr),
    AnnouncerMismatch(IpAddr),
}

/// The key as one 128-bit word, its variant in the top byte: conditions are looked up several
/// times per frame, and one write hashes faster than the derived variant-by-variant writes. An
/// IPv6 address that fills the top byte can share a word with another key, which costs only a
/// comparison.
impl Hash for ConditionKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let ip_bits = |ip: IpAddr| match ip {
            IpAddr::V4(v4) => u128::from(v4.to_bits()),
            IpAddr::V6(v6) => v6.to_bits(),
        };
        let (variant, value) = match *self {
            ConditionKey::MultiResponder(ip) => (0u8, ip_bits(ip)),
            ConditionKey::Flapping(ip) => (1, ip_bits(ip)),
            ConditionKey::Unanswered(ip) => (2, ip_bits(ip)),
            ConditionKey::StormIface(id) => (3, u128::from(id)),
            ConditionKey::StormMac(MacAddr([a, b, c, d, e, f])) => {
                (4, u128::from(u64::from_be_bytes([0, 0, a, b, c, d, e, f])))
            }
            ConditionKey::AnnouncerMismatch(ip) => (5, ip_bits(ip)),
        };
        state.write_u128(value ^ (u128::from(variant) << 120));
    }
}

/// What a report of a condition says besides its lifecycle: where the evidence was seen, the
/// pool, and the kind-specific details. Each report replaces the previous one whole.
pub(super) struct Report {
    pub seen: Seen,
    pub pool: Option<Arc<str>>,
    pub condition: Condition,
}

impl Report {
    /// A storm on the interface `iface`, at `rate` frames a second.
    pub fn iface_storm(iface: &Arc<str>, rate: u64) -> Report {
        Report {
            seen: Seen { iface: iface.clone(), vlan: VlanTags::NONE, direction: None },
            pool: None,
            condition: Condition::Storm { scope: StormScope::Iface, mac: None, rate },
        }
    }
}

struct Active {
    /// The IP of the `start`; later evidence does not change it.
    ip: IpAddr,
    started: Timestamp,
    last_evidence: Timestamp,
    last_report: Timestamp,
    count: u64,
    macs: Vec<MacAddr>,
    /// The informational events an interface storm stands for (see [`Conditions::summarise`]).
    summarised: Option<Box<Summarised>>,
    /// The details of the last report, repeated by `ongoing` and `end` until replaced.
    report: Report,
    /// What the last report was: `start`, or `ongoing` once one was reported.
    state: ConditionState,
}

impl Active {
    fn event(&self, ts: Timestamp, state: ConditionState) -> Event {
        let lifecycle = Lifecycle {
            state,
            count: self.count,
            first_seen: self.started,
            last_seen: self.last_evidence,
            macs: self.macs.clone(),
            summarised: self.summarised.clone(),
        };
        let detail = Detail::Lasting { lifecycle, condition: self.report.condition.clone() };
        Event::new(ts, self.ip, self.report.seen.clone(), self.report.pool.clone(), detail)
    }

    fn open(&self) -> OpenCondition {
        OpenCondition {
            event: self.report.condition.kind(),
            ip: self.ip,
            state: self.state,
            first_seen: self.started,
            last_seen: self.last_evidence,
            count: self.count,
            macs: self.macs.clone(),
            iface: self.report.seen.iface.clone(),
            pool: self.report.pool.clone(),
        }
    }
}

/// Evidence for one condition, as the detectors see it.
pub(super) struct Evidence<'a> {
    pub key: ConditionKey,
    pub ip: IpAddr,
    pub ts: Timestamp,
    /// How much to add to `count`; on a start, the whole count so far.
    pub count: u64,
    /// MACs involved, in the order they became involved.
    pub macs: &'a [MacAddr],
}

/// The active conditions, least recently evidenced first, so that expiry looks only at the front.
pub(super) struct Conditions {
    active: LruCache<ConditionKey, Active>,
    cap: usize,
    max_macs: usize,
    pub evicted: u64,
}

impl Conditions {
    pub fn new(cap: usize, max_macs: usize) -> Self {
        Conditions { active: LruCache::unbounded(), cap: cap.max(1), max_macs, evicted: 0 }
    }

    pub fn len(&self) -> usize {
        self.active.len()
    }

    pub fn is_active(&self, key: &ConditionKey) -> bool {
        self.active.contains(key)
    }

    /// An active condition's details as last reported, and the MACs involved so far.
    pub fn peek(&self, key: &ConditionKey) -> Option<(&Condition, &[MacAddr])> {
        self.active.peek(key).map(|c| (&c.report.condition, c.macs.as_slice()))
    }

    /// The open condition `key`, as the status API shows it.
    pub fn open(&self, key: &ConditionKey) -> Option<OpenCondition> {
        self.active.peek(key).map(Active::open)
    }

    /// At most `limit` open conditions, as the status API shows them, the latest evidenced
    /// first (the cache iterates from the most recently used).
    pub fn latest_open(&self, limit: usize) -> Vec<OpenCondition> {
        self.active.iter().take(limit).map(|(_, c)| c.open()).collect()
    }

    /// Records evidence; reports `start`, or `ongoing` when the report interval has passed or
    /// the set of MACs grew (or a summary began: [`summarise`](Self::summarise)). `report` gives
    /// the details of a report and is called only when one is made, so that the per-frame cost
    /// of a storm stays a lookup and a counter.
    pub fn evidence(
        &mut self,
        ev: Evidence<'_>,
        report_interval: Duration,
        report: impl FnOnce() -> Report,
        out: &mut Vec<Event>,
    ) {
        self.summarise(ev, &[], report_interval, report, out);
    }

    /// [`evidence`](Self::evidence) that also stands for `summarised`, informational events
    /// (kind and MAC) that were beyond their interface's budget: they are added to the
    /// condition's summary before any report, so that every report, the `end` included, carries
    /// the totals. The first ones summarised in an open condition are reported at once, like a
    /// MAC joining: from then on the log no longer shows every informational event.
    pub fn summarise(
        &mut self,
        ev: Evidence<'_>,
        summarised: &[(EventKind, MacAddr)],
        report_interval: Duration,
        report: impl FnOnce() -> Report,
        out: &mut Vec<Event>,
    ) {
        // Whether the summary began with these events.
        let summarise = |summary: &mut Option<Box<Summarised>>| {
            if summarised.is_empty() {
                return false;
            }
            let began = summary.is_none();
            let summary = summary.get_or_insert_with(|| Box::new(Summarised::since(ev.ts)));
            for (kind, mac) in summarised {
                summary.add(*kind, *mac);
            }
            began
        };
        if let Some(cond) = self.active.get_mut(&ev.key) {
            cond.last_evidence = ev.ts;
            cond.count += ev.count;
            let mut grew = summarise(&mut cond.summarised);
            for mac in ev.macs {
                // A full list is not scanned: in a flood it stays full.
                if cond.macs.len() < self.max_macs && !cond.macs.contains(mac) {
                    cond.macs.push(*mac);
                    grew = true;
                }
            }
            if grew || ev.ts.saturating_since(cond.last_report) >= report_interval {
                cond.last_report = ev.ts;
                cond.state = ConditionState::Ongoing;
                cond.report = report();
                out.push(cond.event(ev.ts, ConditionState::Ongoing));
            }
            return;
        }
        if self.active.len() >= self.cap {
            // Too many lasting conditions at once (a flood): the stalest is closed, not lost.
            if let Some((_, cond)) = self.active.pop_lru() {
                self.evicted += 1;
                out.push(cond.event(ev.ts, ConditionState::End));
            }
        }
        let mut macs = ev.macs.to_vec();
        macs.truncate(self.max_macs);
        let mut summary = None;
        summarise(&mut summary);
        let cond = Active {
            ip: ev.ip,
            started: ev.ts,
            last_evidence: ev.ts,
            last_report: ev.ts,
            count: ev.count,
            macs,
            summarised: summary,
            report: report(),
            state: ConditionState::Start,
        };
        out.push(cond.event(ev.ts, ConditionState::Start));
        self.active.push(ev.key, cond);
    }

    /// [`evidence`](Self::evidence) for a condition reported only once it has lasted a while
    /// (a mismatch past its grace period): a `start` says it began at `since`.
    pub fn evidence_since(
        &mut self,
        ev: Evidence<'_>,
        since: Timestamp,
        report_interval: Duration,
        report: impl FnOnce() -> Report,
        out: &mut Vec<Event>,
    ) {
        let (key, first_new) = (ev.key.clone(), out.len());
        self.evidence(ev, report_interval, report, out);
        for event in &mut out[first_new..] {
            if let Detail::Lasting { lifecycle, .. } = &mut event.detail {
                if lifecycle.state == ConditionState::Start {
                    lifecycle.first_seen = since;
                    if let Some(cond) = self.active.peek_mut(&key) {
                        cond.started = since;
                    }
                }
            }
        }
    }

    /// Ends a condition now (an unanswered IP was answered); `update` adds what ended it.
    pub fn end(
        &mut self,
        key: &ConditionKey,
        ts: Timestamp,
        update: impl FnOnce(&mut Condition),
        out: &mut Vec<Event>,
    ) {
        if let Some(mut cond) = self.active.pop(key) {
            update(&mut cond.report.condition);
            cond.last_evidence = ts;
            out.push(cond.event(ts, ConditionState::End));
        }
    }

    /// When the stalest condition ends if no evidence comes.
    pub fn next_end(&self, quiet: Duration) -> Option<Timestamp> {
        self.active.peek_lru().map(|(_, c)| c.last_evidence.saturating_add(quiet))
    }

    /// Ends the stalest condition, reporting it at the moment it became quiet.
    pub fn end_stalest(&mut self, quiet: Duration, out: &mut Vec<Event>) {
        if let Some((_, cond)) = self.active.pop_lru() {
            let ts = cond.last_evidence.saturating_add(quiet);
            out.push(cond.event(ts, ConditionState::End));
        }
    }
}
