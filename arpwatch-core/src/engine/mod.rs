//! The detection engine: observations in, events out, nothing else (sans-I/O). Time advances
//! only through observation timestamps and [`Engine::tick`]; there is no clock, no I/O, no global
//! state, and the same input always gives the same events in the same order.
//!
//! The detections are those of SPEC §3, described for operators in `docs/events.md`. A *claim* of
//! IP X by MAC M is a reply with SPA = X, SHA = M, or a gratuitous ARP (SPA = TPA = X) from M; the
//! sender of a plain request claims its SPA only weakly: that makes a binding (`new_binding`) but
//! never an owner change, since every host puts its own address in the requests it sends and a
//! scanner or a host with secondary addresses would otherwise look like a conflict. It is a
//! conflict (a multi-responder of the `sender` form) only against another MAC's recent claim.
//!
//! What a frame's sender claims is worked out once per frame (`ClaimContext`); each detector is a
//! small method over it that reports its own events, and `Engine::on_sender` runs them in the
//! order their events come out.

mod announcer;
mod budget;
mod lifecycle;
mod query;
mod senders;
mod state;
mod table;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use crate::cluster::Declaration;
use crate::config::{EngineConfig, Exemptions, Thresholds};
use crate::event::{
    Announced, Condition, Detail, Event, EventKind, Misplaced, Requester, ResponderForm, Seen,
    StormScope,
};
use crate::observation::{ClaimKind, Direction, MacAddr, Observation, Timestamp};
use crate::pools::{PoolRule, Pools};

pub use query::WatchedIps;

use announcer::{Announcers, Pending, Resolved};
use budget::InfoBudget;
use lifecycle::{ConditionKey, Conditions, Evidence, Report};
use senders::Senders;
use state::{
    Binding, EgressClaim, EgressClaims, IfaceState, Interleave, IpRare, IpState, IpTable,
    OwnerChange, PendingRequests, PendingTable, Probe, StrongClaim, MAX_EGRESS_IFACES,
};
use table::LruTable;

/// The windows over which the status API counts an IP's requests.
const REQUEST_WINDOW: std::time::Duration =
    std::time::Duration::from_secs(crate::status::REQUEST_WINDOW_SECS);

/// Counters for a metrics exporter. Gauges (`tracked_*`, `pending_requests`,
/// `active_conditions`) are current sizes; the rest only grow.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub observations: u64,
    /// Observations that were claims (replies and gratuitous ARP).
    pub claims: u64,
    pub tracked_ips: usize,
    /// (IP, MAC) bindings over all tracked IPs.
    pub tracked_macs: usize,
    pub tracked_senders: usize,
    pub tracked_interfaces: usize,
    /// Watched IPs with a request waiting for a claim.
    pub pending_requests: usize,
    /// Lasting conditions between `start` and `end`.
    pub active_conditions: usize,
    pub evictions: Evictions,
    /// Events emitted, indexed by [`EventKind::index`].
    pub events: [u64; EventKind::ALL.len()],
    /// Informational events beyond their interface's budget, summarised in its `storm` instead
    /// of emitted, indexed by [`EventKind::index`].
    pub summarised: [u64; EventKind::ALL.len()],
}

impl EngineStats {
    pub fn events_of(&self, kind: EventKind) -> u64 {
        self.events[kind.index()]
    }

    pub fn summarised_of(&self, kind: EventKind) -> u64 {
        self.summarised[kind.index()]
    }
}

/// State dropped because a cap was reached (least recently seen first).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evictions {
    pub ips: u64,
    /// Bindings dropped from an IP that had `max_macs_per_ip` of them.
    pub macs: u64,
    pub senders: u64,
    pub interfaces: u64,
    pub pending_requests: u64,
    /// Lasting conditions closed early (reported `end`) because too many were active.
    pub conditions: u64,
}

pub struct Engine {
    thresholds: Thresholds,
    exemptions: Exemptions,
    full_view: bool,
    pools: Pools,
    /// The latest time given; observations from before it are taken as happening now.
    now: Timestamp,
    ips: IpTable,
    senders: Senders,
    ifaces: LruTable<Arc<str>, IfaceState>,
    next_iface_id: u32,
    pending: PendingTable,
    conditions: Conditions,
    stats: EngineStats,
    /// Reused for the MACs of a multi-responder, so the hot path does not allocate.
    scratch_macs: Vec<MacAddr>,
    /// The declared announcers of VIPs, for `announcer_mismatch`.
    announcers: Announcers,
    /// How many informational events each interface may still report one by one.
    budget: InfoBudget,
}

impl Engine {
    /// An engine for `config`.
    pub fn new(config: &EngineConfig) -> Engine {
        let caps = &config.caps;
        let max_macs_per_ip = caps.max_macs_per_ip.max(2);
        Engine {
            thresholds: config.thresholds.clone(),
            exemptions: config.exemptions.clone(),
            full_view: config.full_view,
            pools: Pools::new(&config.pools),
            now: Timestamp::default(),
            ips: IpTable::new(caps.max_tracked_ips, max_macs_per_ip),
            senders: Senders::new(caps.max_tracked_senders),
            ifaces: LruTable::new(caps.max_interfaces),
            next_iface_id: 0,
            pending: PendingTable::new(caps.max_tracked_ips),
            conditions: Conditions::new(
                caps.max_tracked_ips
                    .saturating_add(caps.max_tracked_senders)
                    .saturating_add(caps.max_interfaces),
                max_macs_per_ip,
            ),
            stats: EngineStats::default(),
            // Grows to the largest multi-responder seen, never to a configured size.
            scratch_macs: Vec::new(),
            announcers: Announcers::default(),
            budget: InfoBudget::new(caps.max_interfaces),
        }
    }

    /// Feeds one observation; appends the events it causes (and those of timers that expired
    /// before it) to `out`.
    pub fn observe(&mut self, obs: &Observation, out: &mut Vec<Event>) {
        let first_new = out.len();
        let ts = obs.ts.max(self.now);
        if let Some(repeat) = self.folded_request_time(obs) {
            // Requests the kernel folded into this one were sent before it, the latest at
            // `repeat`: they wait for their own reply from then, among the other timers.
            self.advance(repeat.max(self.now), out);
            self.on_folded_requests(obs, repeat);
        }
        self.advance(ts, out);
        self.stats.observations += 1;

        let (iface_id, iface_rate) = self.check_storms(obs, ts, out);
        self.check_sender_mismatch(obs, ts, out);

        if obs.is_probe() {
            self.on_probe(obs, ts, iface_id, out);
        } else if let Some(kind) = obs.claim() {
            self.on_sender(obs, ts, kind, iface_id, out);
            if kind == ClaimKind::Request {
                // Folded repeats of unknown time count with this request.
                let folded = if obs.last_repeat.is_some() { 0 } else { u64::from(obs.repeats) };
                self.on_request(obs, ts, 1 + folded);
            }
        }
        self.report_summarised(obs, ts, iface_id, iface_rate, out);
        self.count_events(&out[first_new..]);
    }

    /// Advances time to `now` without an observation: reports requests that went unanswered and
    /// conditions that ended. Call it at [`Engine::next_deadline`] in a live run (and whenever
    /// else is convenient: early calls do nothing), and once at the end of a replay with the time
    /// the replay should be judged at.
    pub fn tick(&mut self, now: Timestamp, out: &mut Vec<Event>) {
        let first_new = out.len();
        let now = now.max(self.now);
        self.advance(now, out);
        self.count_events(&out[first_new..]);
    }

    /// When the engine next needs to be given the time (a [`Engine::tick`]) if no observation
    /// comes first: the earliest reply deadline of a waiting request or end of a quiet
    /// condition, end of the grace period of a mismatch with a declared announcer (or now, when
    /// a new declaration ends a condition). Every event a timer makes is dated at such a
    /// deadline, so a caller that ticks at it reports `unanswered`, `announcer_mismatch` and
    /// `end` when they happen. `None` when no timer is running.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let resolved = (!self.announcers.resolved.is_empty()).then_some(self.now);
        [
            resolved,
            self.pending.next_deadline(),
            self.announcers.next_deadline(),
            self.conditions.next_end(self.thresholds.quiet_window),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// How many MACs claimed `ip` (a reply or an announcement) within the concurrency window
    /// before the latest time the engine was given: more than one is what a multi-responder is
    /// made of. Read by the per-IP metrics, so they count claimants the engine's way.
    pub fn claimants(&self, ip: IpAddr) -> usize {
        let window = self.thresholds.concurrency_window;
        self.ips.peek(&ip).map_or(0, |st| st.claimants(self.now, window))
    }

    pub fn stats(&self) -> EngineStats {
        let mut stats = self.stats.clone();
        stats.tracked_ips = self.ips.len();
        stats.tracked_macs = self.ips.bindings;
        stats.evictions.ips = self.ips.evicted;
        stats.evictions.macs = self.ips.evicted_bindings;
        stats.tracked_senders = self.senders.len();
        stats.evictions.senders = self.senders.evicted;
        stats.tracked_interfaces = self.ifaces.len();
        stats.pending_requests = self.pending.len();
        stats.active_conditions = self.conditions.len();
        stats.evictions.conditions = self.conditions.evicted;
        stats
    }

    fn count_events(&mut self, events: &[Event]) {
        for e in events {
            self.stats.events[e.kind().index()] += 1;
        }
    }

    /// Runs the timers due by `now` in time order: unanswered requests, mismatches with a
    /// declared announcer past their grace period, and quiet conditions (on a tie, in that
    /// order). Conditions a new declaration resolved end first, at the time they were resolved.
    fn advance(&mut self, now: Timestamp, out: &mut Vec<Event>) {
        for Resolved { ip, owner } in std::mem::take(&mut self.announcers.resolved) {
            self.end_mismatch(ip, owner, self.now, out);
        }
        self.now = now;
        let quiet = self.thresholds.quiet_window;
        loop {
            let due = |t: Option<Timestamp>| t.filter(|d| *d <= now);
            let request_due = due(self.pending.next_deadline());
            let grace_due = due(self.announcers.next_deadline());
            let end_due = due(self.conditions.next_end(quiet));
            let first = [request_due, grace_due, end_due].into_iter().flatten().min();
            match first {
                None => break,
                Some(t) if request_due == Some(t) => {
                    if let Some((ip, pending)) = self.pending.pop_due(now) {
                        self.expire_request(ip, pending, out);
                    }
                }
                Some(t) if grace_due == Some(t) => {
                    if let Some((ip, pending)) = self.announcers.pop_due(now) {
                        self.start_mismatch(ip, pending, out);
                    }
                }
                Some(_) => self.conditions.end_stalest(quiet, out),
            }
        }
    }

    /// Requests for `ip` that got no claim by their deadline: `unanswered`, and for a VIP with a
    /// declared announcer evidence of a mismatch.
    fn expire_request(&mut self, ip: IpAddr, pending: PendingRequests, out: &mut Vec<Event>) {
        let (first, deadline, count) = (pending.first, pending.deadline, pending.count);
        let seen = Seen {
            iface: pending.iface.clone(),
            vlan: pending.vlan,
            direction: Some(pending.direction),
        };
        self.expire_unanswered(ip, pending, out);
        self.mismatch_evidence(ip, None, first, deadline, count, seen, out);
    }

    fn expire_unanswered(&mut self, ip: IpAddr, pending: PendingRequests, out: &mut Vec<Event>) {
        let deadline = pending.deadline;
        let Some(st) = self.ips.peek_mut(&ip) else {
            return;
        };
        st.requests_mut().judged(deadline, pending.count, false, REQUEST_WINDOW);
        let streak = st.rare_mut().unanswered.extend(
            pending.requester,
            pending.from_requester,
            pending.first,
            deadline,
            self.thresholds.quiet_window,
        );
        let key = ConditionKey::Unanswered(ip);
        let active = self.conditions.is_active(&key);
        if !active && streak < u64::from(self.thresholds.unanswered_after) {
            return;
        }
        let count = if active { pending.count } else { streak };
        let owner = st.owner();
        let pool = self.pools.find(ip).map(|p| p.name.clone());
        self.conditions.evidence(
            Evidence { key, ip, ts: deadline, count, macs: &[] },
            self.thresholds.report_interval,
            || Report {
                seen: Seen {
                    iface: pending.iface,
                    vlan: pending.vlan,
                    direction: Some(pending.direction),
                },
                pool,
                condition: Condition::Unanswered { mac: owner, requester: pending.requester },
            },
            out,
        );
    }

    /// Storm accounting per interface and per Ethernet source; returns the interface's id and
    /// its frame rate.
    fn check_storms(
        &mut self,
        obs: &Observation,
        ts: Timestamp,
        out: &mut Vec<Event>,
    ) -> (u32, u64) {
        let report_interval = self.thresholds.report_interval;
        let iface = match self.ifaces.get_mut(&*obs.iface) {
            Some(iface) => iface,
            None => {
                let id = self.next_iface_id;
                self.next_iface_id = self.next_iface_id.wrapping_add(1);
                let fresh = IfaceState { id, rate: Default::default() };
                let (iface, forgotten) =
                    self.ifaces.get_or_insert_with(obs.iface.clone(), || fresh);
                if forgotten.is_some() {
                    self.stats.evictions.interfaces += 1;
                }
                iface
            }
        };
        let iface_id = iface.id;
        let iface_rate = iface.rate.record(ts, obs.frames());
        if iface_rate > u64::from(self.thresholds.storm_rate_per_iface) {
            self.conditions.evidence(
                Evidence {
                    key: ConditionKey::StormIface(iface_id),
                    ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                    ts,
                    count: 1,
                    macs: &[],
                },
                report_interval,
                || Report::iface_storm(&obs.iface, iface_rate),
                out,
            );
        }

        // A MAC's first frame is not above any rate (unless it carries repeats, which track it).
        let Some(sender) = self.senders.frame_from(obs.eth_src, ts, obs.frames()) else {
            return (iface_id, iface_rate);
        };
        let rate = sender.rate.record(ts, obs.frames());
        if rate > u64::from(self.thresholds.storm_rate_per_mac) {
            self.conditions.evidence(
                Evidence {
                    key: ConditionKey::StormMac(obs.eth_src),
                    ip: obs.spa,
                    ts,
                    count: 1,
                    macs: &[],
                },
                report_interval,
                || Report {
                    seen: Seen { iface: obs.iface.clone(), vlan: obs.vlan, direction: None },
                    pool: None,
                    condition: Condition::Storm {
                        scope: StormScope::Mac,
                        mac: Some(obs.eth_src),
                        rate,
                    },
                },
                out,
            );
        }
        (iface_id, iface_rate)
    }

    fn check_sender_mismatch(&mut self, obs: &Observation, ts: Timestamp, out: &mut Vec<Event>) {
        if obs.eth_src == obs.sha || self.exemptions.allows_sender_mismatch(obs.sha, obs.eth_src) {
            return;
        }
        let interval = self.thresholds.report_interval;
        let sender = self.senders.track(obs.sha).rare_mut();
        if sender.mismatch_eth_src != Some(obs.eth_src) {
            sender.mismatch_eth_src = Some(obs.eth_src);
            sender.mismatch = Default::default();
        }
        let Some(count) = sender.mismatch.admit(ts, interval) else {
            return;
        };
        let ip = if obs.spa.is_unspecified() { obs.tpa } else { obs.spa };
        let pool = self.pools.find(ip).map(|p| p.name.clone());
        let detail = Detail::SenderMismatch { mac: obs.sha, eth_src: obs.eth_src, count };
        out.push(Event::new(ts, ip, Seen::of(obs), pool, detail));
    }

    /// An address probe (RFC 5227 ARP probe, RFC 4862 duplicate address detection): harmless
    /// unless the IP is bound to another MAC or another host probes it at the same time. A clean
    /// probe is remembered for the reply timeout: a claim from another MAC within it answers the
    /// probe (a host defending its address), which is the conflict too.
    fn on_probe(&mut self, obs: &Observation, ts: Timestamp, iface_id: u32, out: &mut Vec<Event>) {
        let target = obs.tpa;
        if target.is_unspecified() {
            return;
        }
        let mac = obs.sha;
        let window = self.thresholds.reply_timeout;
        let st = self.ips.peek(&target);
        let holder = st.and_then(|st| st.holder_other_than(mac)).map(|b| (b.mac, b.last_seen));
        let rival = st
            .and_then(|st| st.probe())
            .filter(|p| p.mac != mac && ts.saturating_since(p.at) <= window)
            .map(|p| (p.mac, p.at));
        let detail = match holder.or(rival) {
            Some((holder, holder_last_seen)) => {
                Detail::ProbeConflict { mac, holder, holder_last_seen }
            }
            None => {
                self.ips.track(target);
                if let Some(st) = self.ips.peek_mut(&target) {
                    st.rare_mut().probe = Some(Probe { mac, at: ts });
                }
                if !self.pools.contains(target)
                    && !self.budget.admit(&self.thresholds, iface_id, ts, EventKind::Probe, mac)
                {
                    return;
                }
                Detail::Probe { mac }
            }
        };
        out.push(Event::new(ts, target, Seen::of(obs), None, detail));
    }

    /// The sender of a frame (SHA, SPA): its binding, and for a strong claim the detectors, in
    /// the order their events are reported.
    fn on_sender(
        &mut self,
        obs: &Observation,
        ts: Timestamp,
        kind: ClaimKind,
        iface_id: u32,
        out: &mut Vec<Event>,
    ) {
        if kind == ClaimKind::Reply {
            self.senders.answered(obs.sha, obs.spa, ts);
        }
        let claim = ClaimContext::new(obs, ts, kind, iface_id, &self.pools, &self.thresholds);
        let (st, binding) = self.ips.bind(claim.ip, claim.mac, ts);
        claim.report_binding(binding.is_new, &mut self.budget, out);
        if !kind.is_strong() {
            let exempt = |owner: MacAddr| {
                self.senders.is_proxy(owner)
                    || self.exemptions.is_ha_mac(owner)
                    || self.exemptions.is_ha_mac(claim.mac)
            };
            let conditions = &mut self.conditions;
            claim.detect_contradicted_owner(st, binding.index, exempt, conditions, out);
            return;
        }
        self.stats.claims += 1;
        claim.answer_probe(st, out);

        // Before the claim is applied: whether this reply follows another MAC's reply to the
        // same requester decides whether it can take the IP over.
        let co_responders = &mut self.scratch_macs;
        claim.find_co_responders(st, co_responders);
        let follower = !co_responders.is_empty();
        let outcome = st.claim(claim.strong(binding.index, follower), claim.thresholds);

        let interleave = outcome.interleave.as_ref();
        let conflict =
            claim.detect_multi_responder(st, co_responders, interleave, &mut self.conditions, out);
        let change = outcome.owner_change.as_ref();
        claim.report_owner_change(st, change, conflict, &mut self.conditions, out);
        claim.check_pool_rules(&mut st.bindings[binding.index], out);
        claim.answer_pending_requests(
            st.rare_if_any(),
            &mut self.pending,
            &mut self.conditions,
            out,
        );
        if obs.direction == Direction::Egress {
            claim.check_egress_interfaces(self.ips.egress(claim.ip), out);
        }
        if !self.announcers.is_empty() {
            self.check_announcer(obs, ts, out);
        }
    }

    /// When the latest request the kernel folded into `obs` was sent, if `obs` is a plain
    /// request that stands for folded ones and the source says when.
    fn folded_request_time(&self, obs: &Observation) -> Option<Timestamp> {
        if obs.repeats == 0 || obs.claim() != Some(ClaimKind::Request) {
            return None;
        }
        obs.last_repeat.map(|t| t.min(obs.ts))
    }

    /// The requests folded into `obs`, the latest sent at `sent`: waiting for a reply as if seen
    /// then, unless a claim of the target came after them (it answered them).
    fn on_folded_requests(&mut self, obs: &Observation, sent: Timestamp) {
        let answered = self
            .ips
            .peek(&obs.tpa)
            .and_then(|st| st.bindings.iter().filter_map(|b| b.last_claim()).max())
            .is_some_and(|claimed| claimed >= sent);
        if !answered {
            self.on_request(obs, sent, u64::from(obs.repeats));
        }
    }

    /// `requests` identical plain requests, the latest sent at `sent`: if the target is watched
    /// and the reply would be visible, wait for it. Requests sent while earlier ones for the
    /// target wait time out with them.
    fn on_request(&mut self, obs: &Observation, sent: Timestamp, requests: u64) {
        if !(self.full_view || obs.direction == Direction::Egress) || obs.tpa.is_unspecified() {
            return;
        }
        let target = obs.tpa;
        let in_pool = self.pools.contains(target) || self.announcers.watches.contains_key(&target);
        if in_pool {
            self.ips.track(target);
        }
        // Outside the pools, only an IP some MAC owns is waited for.
        let watched = self.ips.peek_mut(&target).filter(|st| in_pool || st.owner().is_some());
        let Some(st) = watched else {
            return;
        };
        st.requests_mut().seen(sent.max(self.now), requests, REQUEST_WINDOW);
        let requester = Requester { mac: obs.sha, ip: obs.spa };
        if let Some(pending) = self.pending.get_mut(&target) {
            pending.count += requests;
            if pending.requester == requester {
                pending.from_requester += requests;
            }
            return;
        }
        let pending = PendingRequests {
            first: sent,
            // A folded request learned of after its deadline times out when the record that
            // carried it came: timer events stay in time order.
            deadline: sent.saturating_add(self.thresholds.reply_timeout).max(obs.ts.max(self.now)),
            count: requests,
            requester,
            from_requester: requests,
            iface: obs.iface.clone(),
            vlan: obs.vlan,
            direction: obs.direction,
        };
        if self.pending.insert(target, pending) {
            self.stats.evictions.pending_requests += 1;
        }
    }

    /// Takes a new configuration (a reload) and keeps everything learnt: bindings, owners,
    /// pending requests, open conditions, rate meters, statistics.
    ///
    /// Thresholds, exemptions, `full_view` and pools apply from the next observation or tick:
    /// state already held is judged by the new values from then on (a pending request expires
    /// after the new reply timeout, an open condition ends after the new quiet window), and an
    /// open condition keeps the pool name it started with until it ends. Caps stay as they were
    /// at start, since shrinking a cap would evict state without evidence that it is stale; a
    /// new cap takes effect at the next start.
    /// The pools as the engine looks IPs up in them, for readers that must agree with it.
    pub fn pools(&self) -> &Pools {
        &self.pools
    }

    /// The declared announcers of VIPs from now on (from
    /// [`ClusterSnapshot::declarations`](crate::cluster::ClusterSnapshot::declarations)), for
    /// `announcer_mismatch`.
    ///
    /// A VIP whose declaration is unchanged keeps its state. A changed one starts afresh: a
    /// mismatch still in its grace period is forgotten (the status following the wire is a
    /// normal failover), and an open `announcer_mismatch` ends if the new declaration allows the
    /// VIP's current owner; a withdrawn one ends its condition. Those ends are reported at the
    /// next observation or tick, dated at the latest time the engine was given
    /// ([`Engine::next_deadline`] says so). A declared VIP is watched for unanswered requests
    /// like a pool's IP.
    pub fn set_declarations(&mut self, declarations: Vec<(IpAddr, Declaration)>) {
        let ips = &self.ips;
        self.announcers.replace(declarations, |ip| ips.peek(&ip).and_then(|st| st.owner()));
    }

    /// A claim of a declared VIP: by an undeclared MAC, evidence of a mismatch; by a declared
    /// one with no undeclared claim within the concurrency window, the end of any mismatch.
    fn check_announcer(&mut self, obs: &Observation, ts: Timestamp, out: &mut Vec<Event>) {
        let (ip, mac) = (obs.spa, obs.sha);
        let window = self.thresholds.concurrency_window;
        let Some(watch) = self.announcers.get_mut(&ip) else {
            return;
        };
        if !watch.allows(mac) {
            watch.last_wrong = Some(ts);
            self.mismatch_evidence(ip, Some(mac), ts, ts, 1, Seen::of(obs), out);
            return;
        }
        if watch.last_wrong.is_some_and(|t| ts.saturating_since(t) <= window) {
            // Undeclared MACs answer alongside: still a mismatch (and a multi_responder), but
            // one that only their claims keep alive; silence is answered.
            if watch.pending.as_ref().is_some_and(|p| p.macs.is_empty()) {
                self.announcers.clear_pending(ip);
            }
            return;
        }
        self.announcers.clear_pending(ip);
        self.end_mismatch(ip, Some(mac), ts, out);
    }

    /// Evidence of a mismatch for a declared `ip`: a claim by the undeclared `mac`, or (`mac`
    /// `None`) `count` requests, the first sent at `since`, that got no answer by `ts`. Adds to
    /// the open condition, or the pending mismatch, or starts one that becomes a condition at
    /// the end of the grace period.
    #[allow(clippy::too_many_arguments)]
    fn mismatch_evidence(
        &mut self,
        ip: IpAddr,
        mac: Option<MacAddr>,
        since: Timestamp,
        ts: Timestamp,
        count: u64,
        seen: Seen,
        out: &mut Vec<Event>,
    ) {
        let Some(watch) = self.announcers.get_mut(&ip) else {
            return;
        };
        watch.mac = mac;
        let key = ConditionKey::AnnouncerMismatch(ip);
        if self.conditions.is_active(&key) {
            let announcer = watch.declaration.announcer.clone();
            let pool = self.pools.find(ip).map(|p| p.name.clone());
            self.conditions.evidence(
                Evidence { key, ip, ts, count, macs: mac.as_slice() },
                self.thresholds.report_interval,
                || Report {
                    seen,
                    pool,
                    condition: Condition::AnnouncerMismatch { mac, announcer },
                },
                out,
            );
            return;
        }
        if let Some(pending) = &mut watch.pending {
            pending.count += count;
            if let Some(mac) = mac {
                if !pending.macs.contains(&mac) && pending.macs.len() < announcer::MAX_PENDING_MACS
                {
                    pending.macs.push(mac);
                }
            }
            pending.seen = seen;
            return;
        }
        let deadline = since.saturating_add(self.thresholds.announcer_grace).max(ts);
        let pending = Pending { since, deadline, count, macs: mac.into_iter().collect(), seen };
        self.announcers.start_pending(ip, pending);
    }

    /// A mismatch that lasted its grace period: `announcer_mismatch` starts, dated at the end
    /// of the grace period, its `first_seen` the beginning of the mismatch.
    fn start_mismatch(&mut self, ip: IpAddr, pending: Pending, out: &mut Vec<Event>) {
        let Some(watch) = self.announcers.get_mut(&ip) else {
            return;
        };
        let (mac, announcer) = (watch.mac, watch.declaration.announcer.clone());
        let pool = self.pools.find(ip).map(|p| p.name.clone());
        self.conditions.evidence_since(
            Evidence {
                key: ConditionKey::AnnouncerMismatch(ip),
                ip,
                ts: pending.deadline,
                count: pending.count,
                macs: &pending.macs,
            },
            pending.since,
            self.thresholds.report_interval,
            || Report {
                seen: pending.seen,
                pool,
                condition: Condition::AnnouncerMismatch { mac, announcer },
            },
            out,
        );
    }

    /// Ends the `announcer_mismatch` of `ip`, if open, naming `owner` (the MAC that answers).
    fn end_mismatch(
        &mut self,
        ip: IpAddr,
        owner: Option<MacAddr>,
        ts: Timestamp,
        out: &mut Vec<Event>,
    ) {
        self.conditions.end(
            &ConditionKey::AnnouncerMismatch(ip),
            ts,
            |condition| {
                if let Condition::AnnouncerMismatch { mac, .. } = condition {
                    *mac = owner;
                }
            },
            out,
        );
    }

    pub fn reconfigure(&mut self, config: &EngineConfig) {
        self.thresholds = config.thresholds.clone();
        self.exemptions = config.exemptions.clone();
        self.full_view = config.full_view;
        self.pools = Pools::new(&config.pools);
    }
}

/// One frame's sender (SHA, SPA) claiming its IP, computed once per frame and read by every
/// detector. The detectors are methods on it that take exactly the state they change, so that
/// they can run while the IP's state is borrowed from the engine.
struct ClaimContext<'a> {
    obs: &'a Observation,
    /// The observation's time, or the engine's if the observation is older.
    ts: Timestamp,
    ip: IpAddr,
    mac: MacAddr,
    kind: ClaimKind,
    announced: Announced,
    /// The Override flag of a Neighbor Advertisement.
    override_: Option<bool>,
    /// Whom a plain reply answered.
    reply_to: Option<Requester>,
    /// The pool the IP belongs to.
    pool: Option<&'a PoolRule>,
    /// The id of the frame's interface, for the per-binding `unexpected_interface` throttle.
    iface_id: u32,
    thresholds: &'a Thresholds,
}

impl<'a> ClaimContext<'a> {
    fn new(
        obs: &'a Observation,
        ts: Timestamp,
        kind: ClaimKind,
        iface_id: u32,
        pools: &'a Pools,
        thresholds: &'a Thresholds,
    ) -> Self {
        ClaimContext {
            obs,
            ts,
            ip: obs.spa,
            mac: obs.sha,
            kind,
            announced: Announced::from(kind),
            override_: obs.override_flag(),
            reply_to: (kind == ClaimKind::Reply).then_some(Requester { mac: obs.tha, ip: obs.tpa }),
            pool: pools.find(obs.spa),
            iface_id,
            thresholds,
        }
    }

    /// An event about this frame.
    fn event(&self, pool: Option<Arc<str>>, detail: Detail) -> Event {
        Event::new(self.ts, self.ip, Seen::of(self.obs), pool, detail)
    }

    fn pool_name(&self) -> Option<Arc<str>> {
        self.pool.map(|p| p.name.clone())
    }

    /// `new_binding` for an (IP, MAC) pair not known before, and `gratuitous` for an
    /// announcement, whatever the binding; beyond the interface's budget they are summarised,
    /// except for a pool IP.
    fn report_binding(&self, is_new: bool, budget: &mut InfoBudget, out: &mut Vec<Event>) {
        let mac = self.mac;
        let mut admit = |kind| {
            self.pool.is_some() || budget.admit(self.thresholds, self.iface_id, self.ts, kind, mac)
        };
        if is_new && admit(EventKind::NewBinding) {
            out.push(self.event(None, Detail::NewBinding { mac, announced: self.announced }));
        }
        if self.kind == ClaimKind::Gratuitous && admit(EventKind::Gratuitous) {
            out.push(self.event(None, Detail::Gratuitous { mac, override_: self.override_ }));
        }
    }

    /// A claim within the reply timeout of another MAC's address probe answers it: the address
    /// is taken (a host defending it, or an NA answering duplicate address detection), a
    /// `probe_conflict` naming the prober. The prober's own announcement ends its probe quietly.
    fn answer_probe(&self, st: &mut IpState, out: &mut Vec<Event>) {
        let Some(probe) = st.take_probe() else {
            return;
        };
        if probe.mac == self.mac
            || self.ts.saturating_since(probe.at) > self.thresholds.reply_timeout
        {
            return;
        }
        let detail =
            Detail::ProbeConflict { mac: probe.mac, holder: self.mac, holder_last_seen: self.ts };
        out.push(self.event(None, detail));
    }

    /// Fills `macs` with the other MACs that replied to the same requester within the reply
    /// window: the strong form of a multi-responder.
    fn find_co_responders(&self, st: &IpState, macs: &mut Vec<MacAddr>) {
        macs.clear();
        if let Some(requester) = self.reply_to {
            st.co_responders(self.mac, requester, self.ts, self.thresholds.reply_window, macs);
        }
    }

    /// This claim as the IP's state applies it, by the binding at `binding`; a `follower`
    /// answers a requester another MAC has just answered.
    fn strong(&self, binding: usize, follower: bool) -> StrongClaim {
        let announced = self.kind == ClaimKind::Gratuitous;
        StrongClaim { binding, ts: self.ts, reply_to: self.reply_to, follower, announced }
    }

    /// `owner_change` when the claim took the IP over, and `flapping` evidence when that
    /// completes enough changes within the flap window or the IP is flapping already. A move
    /// between two MACs of the IP's open multi-responder incident is that incident's evidence
    /// instead (counted once with the claim's own, `counted`), not an alarm of its own.
    fn report_owner_change(
        &self,
        st: &mut IpState,
        change: Option<&OwnerChange>,
        counted: bool,
        conditions: &mut Conditions,
        out: &mut Vec<Event>,
    ) {
        let Some(change) = change else {
            return;
        };
        let (ip, mac) = (self.ip, self.mac);
        let in_incident = conditions
            .peek(&ConditionKey::MultiResponder(ip))
            .is_some_and(|(_, macs)| macs.contains(&change.old) && macs.contains(&mac));
        if in_incident {
            if !counted {
                // The open incident keeps its own form; no MAC joins.
                self.multi_responder_evidence(ResponderForm::Sustained, &[], conditions, out);
            }
            return;
        }
        let detail = Detail::OwnerChange {
            old_mac: change.old,
            new_mac: mac,
            announced: self.announced,
            gap_ms: change.gap.map(|g| g.as_millis() as u64),
            override_: self.override_,
        };
        out.push(self.event(self.pool_name(), detail));
        if let Some(last) = st.last_change_mut() {
            last.reported = true;
        }
        let flaps = st.count_owner_change(self.ts, self.thresholds);
        let key = ConditionKey::Flapping(ip);
        let active = conditions.is_active(&key);
        if !(flaps.flapping || active) {
            return;
        }
        // Once flapping, each change adds one; the start counts the changes that made it.
        let count = if active { 1 } else { flaps.recent_changes };
        conditions.evidence(
            Evidence { key, ip, ts: self.ts, count, macs: &[change.old, mac] },
            self.thresholds.report_interval,
            || Report {
                seen: Seen { iface: self.obs.iface.clone(), vlan: self.obs.vlan, direction: None },
                pool: self.pool_name(),
                condition: Condition::Flapping { old_mac: change.old, new_mac: mac },
            },
            out,
        );
    }

    /// `multi_responder` evidence from this claim: the strong form when `macs` (the
    /// co-responders, found before the claim was applied) is not empty, else the sustained
    /// form when the claim completed an interleaving that shows both MACs holding the IP (not
    /// one hand-back). `macs` becomes the MACs involved, in the order they were first seen with
    /// the IP. Returns whether there was evidence.
    fn detect_multi_responder(
        &self,
        st: &IpState,
        macs: &mut Vec<MacAddr>,
        interleave: Option<&Interleave>,
        conditions: &mut Conditions,
        out: &mut Vec<Event>,
    ) -> bool {
        let form = if !macs.is_empty() {
            ResponderForm::Strong
        } else if let Some(interleave) = interleave.filter(|i| i.is_concurrent()) {
            macs.push(interleave.with);
            ResponderForm::Sustained
        } else {
            return false;
        };
        macs.push(self.mac);
        st.order_by_first_seen(macs);
        self.multi_responder_evidence(form, macs, conditions, out);
        true
    }

    /// A plain request from the IP by another MAC than the one that claimed it within the
    /// concurrency window: its target takes this MAC for the IP (a request's sender updates the
    /// receiver's cache), while the owner's claims told others the opposite. Two MACs hold the
    /// IP: `multi_responder` evidence of the `sender` form (the half of a man-in-the-middle that
    /// poisons a gateway about a victim that keeps talking). Not when `exempt(owner)` says the
    /// owner answers for many IPs (proxy ARP) or either MAC is an HA virtual MAC.
    /// `sender` is the index of this MAC's binding.
    fn detect_contradicted_owner(
        &self,
        st: &IpState,
        sender: usize,
        exempt: impl FnOnce(MacAddr) -> bool,
        conditions: &mut Conditions,
        out: &mut Vec<Event>,
    ) {
        let Some((at, owner)) = st.owner_binding().filter(|(at, _)| *at != sender) else {
            return;
        };
        let window = self.thresholds.concurrency_window;
        let claimed_lately =
            owner.last_claim().is_some_and(|t| self.ts.saturating_since(t) <= window);
        if !claimed_lately || exempt(owner.mac) {
            return;
        }
        // In the order they were first seen, as the positions of their bindings say.
        let macs = if at < sender { [owner.mac, self.mac] } else { [self.mac, owner.mac] };
        self.multi_responder_evidence(ResponderForm::Sender, &macs, conditions, out);
    }

    /// One piece of evidence for the IP's multi-responder incident, involving `macs`: it starts
    /// the incident as `form`, or counts in the open one, which keeps the form (and requester,
    /// sender) it started with: one incident, one story.
    fn multi_responder_evidence(
        &self,
        form: ResponderForm,
        macs: &[MacAddr],
        conditions: &mut Conditions,
        out: &mut Vec<Event>,
    ) {
        let key = ConditionKey::MultiResponder(self.ip);
        let requester = if form == ResponderForm::Strong { self.reply_to } else { None };
        let sender = (form == ResponderForm::Sender).then_some(self.mac);
        let (form, requester, sender) = match conditions.peek(&key) {
            Some((Condition::MultiResponder { form, requester, sender }, _)) => {
                (*form, *requester, *sender)
            }
            _ => (form, requester, sender),
        };
        conditions.evidence(
            Evidence { key, ip: self.ip, ts: self.ts, count: 1, macs },
            self.thresholds.report_interval,
            || Report {
                seen: Seen::of(self.obs),
                pool: self.pool_name(),
                condition: Condition::MultiResponder { form, requester, sender },
            },
            out,
        );
    }

    /// For a pool IP: `unknown_responder` when the pool does not allow the MAC, and
    /// `unexpected_interface` when it does not allow the interface, each throttled per binding.
    fn check_pool_rules(&self, binding: &mut Binding, out: &mut Vec<Event>) {
        let Some(pool) = self.pool else {
            return;
        };
        let (mac, interval) = (self.mac, self.thresholds.report_interval);
        if !pool.allows_mac(mac) {
            if let Some(count) =
                binding.pool_alarms_mut().unknown_responder.admit(self.ts, interval)
            {
                let detail = Detail::UnknownResponder {
                    mac,
                    announced: self.announced,
                    count,
                    override_: self.override_,
                };
                out.push(self.event(Some(pool.name.clone()), detail));
            }
        }
        // Seen on an interface of this host the pool does not allow, or sent by a MAC of one of
        // the pool's nodes on an interface the load balancer does not announce from.
        let allowed_ifaces = if !pool.allows_iface(&self.obs.iface) {
            Some(&pool.interfaces)
        } else if pool.misplaces(mac) {
            Some(&pool.node_interfaces)
        } else {
            None
        };
        if let Some(allowed_ifaces) = allowed_ifaces {
            // Moving to yet another wrong interface is news, not a repeat.
            let binding = binding.pool_alarms_mut();
            if binding.unexpected_iface_id != self.iface_id {
                binding.unexpected_iface_id = self.iface_id;
                binding.unexpected_interface = Default::default();
            }
            if let Some(count) = binding.unexpected_interface.admit(self.ts, interval) {
                let misplaced = Misplaced::OutsidePool { allowed_ifaces: allowed_ifaces.clone() };
                let detail = Detail::UnexpectedInterface { mac, count, misplaced };
                out.push(self.event(Some(pool.name.clone()), detail));
            }
        }
    }

    /// A claim answers the requests for the IP: the streak of unanswered ones and the waiting
    /// ones are forgotten, and an `unanswered` condition ends naming the MAC that answered.
    fn answer_pending_requests(
        &self,
        rare: Option<&mut IpRare>,
        pending: &mut PendingTable,
        conditions: &mut Conditions,
        out: &mut Vec<Event>,
    ) {
        // An IP without its rare part has no streak and no counters.
        let requests = rare.and_then(|rare| {
            rare.unanswered.reset();
            rare.requests.as_mut()
        });
        // Waiting requests were counted as seen, which made the counters.
        if let (Some(answered), Some(requests)) = (pending.remove(&self.ip), requests) {
            requests.judged(self.ts, answered.count, true, REQUEST_WINDOW);
        }
        conditions.end(
            &ConditionKey::Unanswered(self.ip),
            self.ts,
            |condition| {
                if let Condition::Unanswered { mac: answered_by, .. } = condition {
                    *answered_by = Some(self.mac);
                }
            },
            out,
        );
    }

    /// This host answering one IP on two or more of its interfaces within the concurrency
    /// window (`claims` are its recent claims of the IP): `unexpected_interface`, reported again
    /// at once when another interface joins.
    fn check_egress_interfaces(&self, claims: &mut EgressClaims, out: &mut Vec<Event>) {
        let (ts, iface) = (self.ts, &self.obs.iface);
        let window = self.thresholds.concurrency_window;
        claims.ifaces.retain(|c| ts.saturating_since(c.last) <= window);
        if let Some(claim) = claims.ifaces.iter_mut().find(|c| *c.iface == **iface) {
            claim.mac = self.mac;
            claim.last = ts;
        } else if claims.ifaces.len() < MAX_EGRESS_IFACES {
            claims.ifaces.push(EgressClaim { iface: iface.clone(), mac: self.mac, last: ts });
        }
        if claims.ifaces.len() < 2 {
            claims.reported = 0;
            return;
        }
        if claims.ifaces.len() > claims.reported {
            claims.throttle = Default::default();
        }
        let Some(count) = claims.throttle.admit(ts, self.thresholds.report_interval) else {
            return;
        };
        claims.reported = claims.ifaces.len();
        // `ifaces[i]` answered with `macs[i]`: on a node with several NICs on one segment each
        // interface answers with its own MAC (the "wandering IP" incident).
        let misplaced = Misplaced::SeveralInterfaces {
            ifaces: claims.ifaces.iter().map(|c| c.iface.clone()).collect(),
            macs: claims.ifaces.iter().map(|c| c.mac).collect(),
        };
        let detail = Detail::UnexpectedInterface { mac: self.mac, count, misplaced };
        out.push(self.event(self.pool_name(), detail));
    }
}

#[cfg(test)]
mod tests;
