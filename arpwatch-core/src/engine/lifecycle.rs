//! Lasting conditions (multi_responder, flapping, unanswered, storm): one `start`, then `ongoing`
//! at most once per report interval (or at once when a MAC joins: a new responder is news the
//! operator should not wait for), then `end` once the condition has had no evidence for the quiet
//! window.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use lru::LruCache;

use crate::event::{ConditionState, Event, EventKind};
use crate::observation::{MacAddr, Timestamp};

/// What a lasting condition is about.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(super) enum ConditionKey {
    MultiResponder(Ipv4Addr),
    Flapping(Ipv4Addr),
    Unanswered(Ipv4Addr),
    StormIface(Arc<str>),
    StormMac(MacAddr),
}

struct Condition {
    started: Timestamp,
    last_evidence: Timestamp,
    last_report: Timestamp,
    count: u64,
    macs: Vec<MacAddr>,
    /// The last event reported, reused for `ongoing` and `end` so they carry the same details.
    report: Event,
}

/// Evidence for one condition, as the detectors see it.
pub(super) struct Evidence<'a> {
    pub key: ConditionKey,
    pub kind: EventKind,
    pub ip: Ipv4Addr,
    pub ts: Timestamp,
    /// How much to add to `count`; on a start, the whole count so far.
    pub count: u64,
    /// MACs involved, in the order they became involved.
    pub macs: &'a [MacAddr],
}

/// The active conditions, least recently evidenced first, so that expiry looks only at the front.
pub(super) struct Conditions {
    active: LruCache<ConditionKey, Condition>,
    cap: usize,
    max_macs: usize,
    node: Arc<str>,
    pub evicted: u64,
}

impl Conditions {
    pub fn new(cap: usize, max_macs: usize, node: Arc<str>) -> Self {
        Conditions { active: LruCache::unbounded(), cap: cap.max(1), max_macs, node, evicted: 0 }
    }

    pub fn len(&self) -> usize {
        self.active.len()
    }

    pub fn is_active(&self, key: &ConditionKey) -> bool {
        self.active.contains(key)
    }

    /// Records evidence; reports `start`, or `ongoing` when the report interval has passed or
    /// the set of MACs grew. `fill` adds the kind-specific fields to a report and is called only
    /// when one is made, so that the per-frame cost of a storm stays a lookup and a counter.
    pub fn evidence(
        &mut self,
        ev: Evidence<'_>,
        report_interval: Duration,
        fill: impl FnOnce(&mut Event),
        out: &mut Vec<Event>,
    ) {
        if let Some(cond) = self.active.get_mut(&ev.key) {
            cond.last_evidence = ev.ts;
            cond.count += ev.count;
            let mut grew = false;
            for mac in ev.macs {
                if !cond.macs.contains(mac) && cond.macs.len() < self.max_macs {
                    cond.macs.push(*mac);
                    grew = true;
                }
            }
            if grew || ev.ts.saturating_since(cond.last_report) >= report_interval {
                cond.last_report = ev.ts;
                fill(&mut cond.report);
                let report = &mut cond.report;
                report.ts = ev.ts;
                report.state = Some(ConditionState::Ongoing);
                report.count = Some(cond.count);
                report.last_seen = Some(ev.ts);
                report.macs.clone_from(&cond.macs);
                out.push(report.clone());
            }
            return;
        }
        if self.active.len() >= self.cap {
            // Too many lasting conditions at once (a flood): the stalest is closed, not lost.
            if let Some((_, cond)) = self.active.pop_lru() {
                self.evicted += 1;
                out.push(Self::end_report(cond, ev.ts));
            }
        }
        let mut report = Event::new(ev.kind, ev.ts, ev.ip, self.node.clone());
        fill(&mut report);
        let mut macs = ev.macs.to_vec();
        macs.truncate(self.max_macs);
        report.state = Some(ConditionState::Start);
        report.count = Some(ev.count);
        report.first_seen = Some(ev.ts);
        report.last_seen = Some(ev.ts);
        report.macs.clone_from(&macs);
        out.push(report.clone());
        self.active.push(
            ev.key,
            Condition {
                started: ev.ts,
                last_evidence: ev.ts,
                last_report: ev.ts,
                count: ev.count,
                macs,
                report,
            },
        );
    }

    /// Ends a condition now (an unanswered IP was answered); `fill` adds what ended it.
    pub fn end(
        &mut self,
        key: &ConditionKey,
        ts: Timestamp,
        fill: impl FnOnce(&mut Event),
        out: &mut Vec<Event>,
    ) {
        if let Some(mut cond) = self.active.pop(key) {
            fill(&mut cond.report);
            cond.last_evidence = ts;
            out.push(Self::end_report(cond, ts));
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
            out.push(Self::end_report(cond, ts));
        }
    }

    fn end_report(cond: Condition, ts: Timestamp) -> Event {
        let mut report = cond.report;
        report.ts = ts;
        report.state = Some(ConditionState::End);
        report.count = Some(cond.count);
        report.first_seen = Some(cond.started);
        report.last_seen = Some(cond.last_evidence);
        report.macs = cond.macs;
        report
    }
}
