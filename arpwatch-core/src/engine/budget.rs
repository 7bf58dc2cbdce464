//! The budget of informational events per interface. One `new_binding` (and one `gratuitous`)
//! per spoofed frame would bury the anomalies under a million lines a second, so each interface
//! reports informational events (`new_binding`, `gratuitous`, `probe`) one by one only while a
//! token bucket allows: `info_burst_per_iface` at once, refilled at `info_rate_per_iface` a
//! second of observation time. Those beyond are summarised in the interface's `storm` (counts
//! per kind, a few MACs, since when) and counted in the metrics. Anomalies, and every event about
//! a pool IP, never ask the budget: the caller reports them whatever it says.

use std::net::{IpAddr, Ipv4Addr};

use super::lifecycle::{ConditionKey, Evidence, Report};
use super::table::LruTable;
use crate::config::Thresholds;
use crate::event::{Event, EventKind};
use crate::observation::{MacAddr, Observation, Timestamp};

/// One event's worth of tokens: a token bucket counted in nanoseconds of refill at one event a
/// second, so that any rate refills exactly, in integers.
const EVENT: u64 = 1_000_000_000;

pub(super) struct InfoBudget {
    /// By the interface's id in the engine's interface table (cheaper to hash than its name, as
    /// for its storm); an interface forgotten there and seen again starts afresh here too.
    buckets: LruTable<u32, Bucket>,
    /// The current observation's informational events beyond its interface's budget, kind and
    /// MAC, for the engine to add to the interface's storm (then cleared).
    summarised: Vec<(EventKind, MacAddr)>,
}

struct Bucket {
    tokens: u64,
    refilled: Timestamp,
}

impl InfoBudget {
    /// Buckets for at most `interfaces` interfaces; the least recently seen is forgotten beyond
    /// (it starts with a full burst when it comes back).
    pub fn new(interfaces: usize) -> Self {
        InfoBudget { buckets: LruTable::new(interfaces), summarised: Vec::new() }
    }

    /// Whether the informational event `kind` about `mac`, seen at `ts` on the interface whose
    /// id is `iface_id`, may be reported on its own; if not, it is noted in `summarised`. `ts`
    /// never goes back (the engine's time).
    pub fn admit(
        &mut self,
        thresholds: &Thresholds,
        iface_id: u32,
        ts: Timestamp,
        kind: EventKind,
        mac: MacAddr,
    ) -> bool {
        let rate = u64::from(thresholds.info_rate_per_iface);
        if rate == 0 {
            return true;
        }
        // Read at every event, so that a reload applies at once.
        let capacity = u64::from(thresholds.info_burst_per_iface).saturating_mul(EVENT);
        let fresh = || Bucket { tokens: capacity, refilled: ts };
        let bucket = self.buckets.get_or_insert_with(iface_id, fresh).0;
        let elapsed = ts.as_nanos().saturating_sub(bucket.refilled.as_nanos());
        bucket.tokens = bucket.tokens.saturating_add(elapsed.saturating_mul(rate)).min(capacity);
        bucket.refilled = ts;
        if bucket.tokens >= EVENT {
            bucket.tokens -= EVENT;
            return true;
        }
        self.summarised.push((kind, mac));
        false
    }
}

impl super::Engine {
    /// The informational events of this observation that were beyond its interface's budget
    /// (`iface_rate` its frame rate): evidence for the interface's `storm`, which adds them to
    /// its summary (and starts if it was not open: an interface over its budget is storming as
    /// far as the log is concerned, whatever its frame rate).
    pub(super) fn report_summarised(
        &mut self,
        obs: &Observation,
        ts: Timestamp,
        iface_id: u32,
        iface_rate: u64,
        out: &mut Vec<Event>,
    ) {
        if self.budget.summarised.is_empty() {
            return;
        }
        for (kind, _) in &self.budget.summarised {
            self.stats.summarised[kind.index()] += 1;
        }
        // A frame is counted once: over the frame-rate threshold it is already.
        let counted = iface_rate > u64::from(self.thresholds.storm_rate_per_iface);
        self.conditions.summarise(
            Evidence {
                key: ConditionKey::StormIface(iface_id),
                ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                ts,
                count: u64::from(!counted),
                macs: &[],
            },
            &self.budget.summarised,
            self.thresholds.report_interval,
            || Report::iface_storm(&obs.iface, iface_rate),
            out,
        );
        self.budget.summarised.clear();
    }
}
