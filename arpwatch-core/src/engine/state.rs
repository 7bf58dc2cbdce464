//! What the engine remembers per IP, per Ethernet source and per interface, and the small
//! counters the detectors share. Everything here is bounded by the caps in `config::Caps`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use super::table::LruTable;
use crate::config::Thresholds;
use crate::event::Requester;
use crate::observation::{Direction, MacAddr, Timestamp, VlanTags};

/// The IPs the engine tracks, least recently seen first, with the counters their bookkeeping
/// moves. Every insertion goes through here, so that forgetting an IP to make room is counted
/// once, together with the bindings it takes with it.
pub(super) struct IpTable {
    states: LruTable<IpAddr, IpState>,
    /// This host's own claims, only ever made by egress frames, so apart from `states`.
    egress: LruTable<IpAddr, EgressClaims>,
    max_macs: usize,
    /// (IP, MAC) bindings over all tracked IPs.
    pub bindings: usize,
    /// IPs forgotten to make room, from either map.
    pub evicted: u64,
    /// Bindings forgotten from an IP that had `max_macs` of them.
    pub evicted_bindings: u64,
}

/// The binding a sender frame touched.
pub(super) struct Bound {
    /// Its index in [`IpState::bindings`].
    pub index: usize,
    /// The (IP, MAC) pair was not known before.
    pub is_new: bool,
}

impl IpTable {
    /// Room for `cap` IPs of at most `max_macs` bindings each (and for `cap` IPs this host claims).
    pub fn new(cap: usize, max_macs: usize) -> Self {
        IpTable {
            states: LruTable::new(cap),
            egress: LruTable::new(cap),
            max_macs,
            bindings: 0,
            evicted: 0,
            evicted_bindings: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn peek(&self, ip: &IpAddr) -> Option<&IpState> {
        self.states.peek(ip)
    }

    pub fn peek_mut(&mut self, ip: &IpAddr) -> Option<&mut IpState> {
        self.states.peek_mut(ip)
    }

    /// Every tracked IP, without making any more recently seen.
    pub fn iter(&self) -> impl Iterator<Item = (&IpAddr, &IpState)> {
        self.states.iter()
    }

    /// Tracks `ip` from now on, if it is not tracked already. An IP that is does not become more
    /// recently seen: only its own frames make it so.
    pub fn track(&mut self, ip: IpAddr) {
        let forgotten = self.states.insert_absent(ip, IpState::default);
        count_forgotten(forgotten, &mut self.evicted, &mut self.bindings);
    }

    /// Records `mac` as the sender of `ip` at `ts`: the IP becomes the most recently seen, and
    /// the binding is found or made. Returns the IP's state and the binding.
    pub fn bind(&mut self, ip: IpAddr, mac: MacAddr, ts: Timestamp) -> (&mut IpState, Bound) {
        let (st, forgotten) = self.states.get_or_insert_with(ip, IpState::default);
        count_forgotten(forgotten, &mut self.evicted, &mut self.bindings);
        let (index, is_new, evicted) = st.touch(mac, ts, self.max_macs);
        if is_new {
            self.bindings += 1;
        }
        if evicted {
            self.bindings -= 1;
            self.evicted_bindings += 1;
        }
        (st, Bound { index, is_new })
    }

    /// This host's claims of `ip`, which become the most recently seen.
    pub fn egress(&mut self, ip: IpAddr) -> &mut EgressClaims {
        let (claims, forgotten) = self.egress.get_or_insert_with(ip, EgressClaims::default);
        if forgotten.is_some() {
            self.evicted += 1;
        }
        claims
    }
}

/// Counts an IP forgotten to make room, and the bindings it took with it.
fn count_forgotten(forgotten: Option<(IpAddr, IpState)>, evicted: &mut u64, bindings: &mut usize) {
    if let Some((_, forgotten)) = forgotten {
        *evicted += 1;
        *bindings -= forgotten.bindings.len();
    }
}

/// Requests for one watched IP that no claim has answered yet.
pub(super) struct PendingRequests {
    /// When the first of them was sent.
    pub first: Timestamp,
    /// When they time out: the first one's reply deadline.
    pub deadline: Timestamp,
    /// Every request for the IP since `first`.
    pub count: u64,
    /// The first requester, and how many of the requests it sent.
    pub requester: Requester,
    pub from_requester: u64,
    pub iface: Arc<str>,
    pub vlan: VlanTags,
    pub direction: Direction,
}

/// The watched IPs with requests waiting for a claim, bounded by a cap (the oldest is forgotten
/// first), with their deadlines in a heap, so that the next one to run out is known without a
/// scan ([`PendingTable::next_deadline`]). A claim answers requests every other frame of a
/// spoofing flood: the deadline of requests answered or forgotten is not searched for, it stays
/// in the heap until it comes to the top, where it is dropped (the top is always a waiting IP's).
pub(super) struct PendingTable {
    by_ip: LruTable<IpAddr, PendingRequests>,
    /// Earliest first, with the stale deadlines not dropped yet.
    by_deadline: BinaryHeap<Reverse<(Timestamp, IpAddr)>>,
}

/// Stale deadlines the heap may hold beyond as many as there are waiting IPs before it is
/// rebuilt from them, so that a small table is not rebuilt at every answer.
const STALE_DEADLINES: usize = 64;

impl PendingTable {
    pub fn new(cap: usize) -> Self {
        PendingTable { by_ip: LruTable::new(cap), by_deadline: BinaryHeap::new() }
    }

    pub fn len(&self) -> usize {
        self.by_ip.len()
    }

    /// The requests waiting for `ip`.
    pub fn peek(&self, ip: &IpAddr) -> Option<&PendingRequests> {
        self.by_ip.peek(ip)
    }

    /// The requests waiting for `ip`; their deadline is not to be changed through this.
    pub fn get_mut(&mut self, ip: &IpAddr) -> Option<&mut PendingRequests> {
        self.by_ip.peek_mut(ip)
    }

    /// Starts waiting for a claim of `ip`, which has no requests waiting. Returns whether
    /// another IP's requests were forgotten to make room.
    pub fn insert(&mut self, ip: IpAddr, pending: PendingRequests) -> bool {
        self.by_deadline.push(Reverse((pending.deadline, ip)));
        let forgotten = self.by_ip.push(ip, pending);
        self.drop_stale_deadlines();
        forgotten.is_some_and(|(forgotten, _)| forgotten != ip)
    }

    /// The requests for `ip` are answered (or are being judged).
    pub fn remove(&mut self, ip: &IpAddr) -> Option<PendingRequests> {
        let pending = self.by_ip.remove(ip)?;
        self.drop_stale_deadlines();
        Some(pending)
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.by_deadline.peek().map(|Reverse((deadline, _))| *deadline)
    }

    /// Takes out the requests with the earliest deadline, if it is `now` or earlier.
    pub fn pop_due(&mut self, now: Timestamp) -> Option<(IpAddr, PendingRequests)> {
        let &Reverse((deadline, ip)) = self.by_deadline.peek()?;
        if deadline > now {
            return None;
        }
        self.by_deadline.pop();
        let pending = self.by_ip.remove(&ip);
        self.drop_stale_deadlines();
        pending.map(|pending| (ip, pending))
    }

    /// Drops the deadlines of requests no longer waiting off the top of the heap, so that the
    /// top is a waiting IP's; rebuilds the heap from the waiting IPs once stale deadlines
    /// outnumber them, so that it stays bounded by the cap.
    fn drop_stale_deadlines(&mut self) {
        if self.by_deadline.len() > 2 * self.by_ip.len() + STALE_DEADLINES {
            let waiting = self.by_ip.iter().map(|(ip, p)| Reverse((p.deadline, *ip)));
            self.by_deadline = waiting.collect();
            return;
        }
        while let Some(&Reverse((deadline, ip))) = self.by_deadline.peek() {
            if self.by_ip.peek(&ip).is_some_and(|p| p.deadline == deadline) {
                return;
            }
            self.by_deadline.pop();
        }
    }
}

/// One MAC seen as the sender of an IP: what every claim updates inline, the rest boxed.
pub(super) struct Binding {
    pub last_seen: Timestamp,
    /// The time of the last claim ([`Binding::last_claim`]); meaningless while `claims` is 0.
    last_claim_at: Timestamp,
    pub claims_since: Timestamp,
    /// Claims of the IP by this MAC since `claims_since`, with no pause longer than the
    /// concurrency window between them (for the status API). Never 0 again after the first
    /// claim, so it also says whether there was one.
    pub claims: u32,
    pub mac: MacAddr,
    /// This MAC is the IP's owner ([`IpState::owner`]). Kept in the binding (in what would be its
    /// padding) rather than as a MAC in the IP's state: the owner's binding is never forgotten
    /// while the IP is tracked, so the owner always has one. As a `bool` it also leaves
    /// [`Bindings`] a niche for its tag.
    is_owner: bool,
    /// A fingerprint of whom its last plain reply answered ([`fingerprint`], 0:
    /// none), in what would be padding: looking for other MACs' replies to a requester (every
    /// reply of a spoofing flood, over all of its IP's bindings) reads the boxed reply only of
    /// the bindings that may hold one.
    replied_to: u32,
    /// Made by the first plain reply or pool alarm of the binding.
    rare: Option<Box<BindingRare>>,
}

/// A requester as 32 bits, never 0: equal requesters give equal fingerprints; different ones
/// rarely do, and then only cost a look at the reply itself.
fn fingerprint(requester: &Requester) -> u32 {
    let ip = match requester.ip {
        IpAddr::V4(ip) => u64::from(u32::from(ip)),
        IpAddr::V6(ip) => {
            let bits = u128::from(ip);
            bits as u64 ^ (bits >> 64) as u64
        }
    };
    let [a, b, c, d, e, f] = requester.mac.0;
    let mac = u64::from_le_bytes([a, b, c, d, e, f, 0, 0]);
    let h = (ip ^ mac.rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (h >> 32) as u32 | 1
}

/// What only some bindings need: the MACs that answer requests, and those a pool alarms about.
pub(super) struct BindingRare {
    /// Last plain reply and whom it answered, for the strong multi-responder form.
    pub last_reply: Option<(Requester, Timestamp)>,
    /// Boxed again: far fewer bindings break a pool's rules than answer requests.
    pool_alarms: Option<Box<PoolAlarms>>,
}

/// The throttles of a binding's pool alarms.
pub(super) struct PoolAlarms {
    pub unknown_responder: Throttle,
    pub unexpected_interface: Throttle,
    /// The interface the `unexpected_interface` throttle is about; another one is news.
    pub unexpected_iface_id: u32,
}

impl Binding {
    fn new(mac: MacAddr, ts: Timestamp) -> Self {
        Binding {
            last_seen: ts,
            last_claim_at: ts,
            claims_since: ts,
            claims: 0,
            mac,
            is_owner: false,
            replied_to: 0,
            rare: None,
        }
    }

    /// Last reply, gratuitous or not, or gratuitous request from this MAC for the IP.
    pub fn last_claim(&self) -> Option<Timestamp> {
        (self.claims > 0).then_some(self.last_claim_at)
    }

    /// The last plain reply of this MAC for the IP, and whom it answered.
    pub fn last_reply(&self) -> Option<(Requester, Timestamp)> {
        self.rare.as_ref().and_then(|rare| rare.last_reply)
    }

    fn set_last_reply(&mut self, requester: Requester, ts: Timestamp) {
        self.rare_mut().last_reply = Some((requester, ts));
        self.replied_to = fingerprint(&requester);
    }

    fn rare_mut(&mut self) -> &mut BindingRare {
        self.rare
            .get_or_insert_with(|| Box::new(BindingRare { last_reply: None, pool_alarms: None }))
    }

    /// The throttles of its pool alarms, made on first use.
    pub fn pool_alarms_mut(&mut self) -> &mut PoolAlarms {
        self.rare_mut().pool_alarms.get_or_insert_with(|| {
            Box::new(PoolAlarms {
                unknown_responder: Throttle::default(),
                unexpected_interface: Throttle::default(),
                unexpected_iface_id: u32::MAX,
            })
        })
    }
}

/// The bindings of one IP, in the order they were first seen. Most IPs only ever have one, which
/// is kept inline; more go to the heap.
pub(super) enum Bindings {
    One(Binding),
    Many(Vec<Binding>),
}

impl Default for Bindings {
    fn default() -> Self {
        Bindings::Many(Vec::new())
    }
}

impl std::ops::Deref for Bindings {
    type Target = [Binding];

    fn deref(&self) -> &[Binding] {
        match self {
            Bindings::One(binding) => std::slice::from_ref(binding),
            Bindings::Many(bindings) => bindings,
        }
    }
}

impl std::ops::DerefMut for Bindings {
    fn deref_mut(&mut self) -> &mut [Binding] {
        match self {
            Bindings::One(binding) => std::slice::from_mut(binding),
            Bindings::Many(bindings) => bindings,
        }
    }
}

impl Bindings {
    fn push(&mut self, binding: Binding) {
        match self {
            Bindings::Many(bindings) if !bindings.is_empty() => bindings.push(binding),
            Bindings::Many(_) => *self = Bindings::One(binding),
            Bindings::One(_) => {
                if let Bindings::One(first) = std::mem::take(self) {
                    *self = Bindings::Many(vec![first, binding]);
                }
            }
        }
    }

    /// Forgets the binding at `index`; the others keep their order.
    fn remove(&mut self, index: usize) {
        match self {
            Bindings::One(_) => *self = Bindings::default(),
            Bindings::Many(bindings) => {
                bindings.remove(index);
            }
        }
    }
}

/// An owner change a claim caused.
pub(super) struct OwnerChange {
    pub old: MacAddr,
    /// Time from the old owner's last claim to this one, when the old owner's binding is still
    /// remembered.
    pub gap: Option<Duration>,
}

/// Where the owner changes of an IP stand towards `flapping`.
pub(super) struct FlapCount {
    /// The latest change completes `flap_count` changes within the flap window.
    pub flapping: bool,
    /// Owner changes remembered for flapping (at most `flap_count`).
    pub recent_changes: u64,
}

/// A strong claim (a reply or an announcement) of the IP by one of its bindings.
pub(super) struct StrongClaim {
    /// The index of the claimant's binding.
    pub binding: usize,
    pub ts: Timestamp,
    /// Whom the claim answered, when it is a plain reply.
    pub reply_to: Option<Requester>,
    /// The claim is a reply to a requester another MAC has just answered: it does not take the
    /// IP over.
    pub follower: bool,
    /// The claim is an announcement (gratuitous ARP), as a takeover is.
    pub announced: bool,
}

/// A claim that completed an A, B, A interleaving within the concurrency window: A claims again
/// after B's claim. On its own that is one hand-back (a failover and a failback); it shows two
/// MACs holding the IP at once when the claims keep alternating, or when B never announced a
/// takeover and only answered.
pub(super) struct Interleave {
    /// B: the MAC that claimed in between.
    pub with: MacAddr,
    /// Another MAC claimed again after this one's claims shortly before (A, B, A, B): both keep
    /// claiming.
    pub alternating: bool,
    /// B's claims in between were plain replies only: B answered while A held the IP, nothing
    /// was handed over (every failover implementation announces its takeover).
    pub unannounced: bool,
}

impl Interleave {
    /// Whether this interleaving is evidence that both MACs hold the IP.
    pub fn is_concurrent(&self) -> bool {
        self.alternating || self.unannounced
    }
}

/// What a strong claim meant for the IP.
#[derive(Default)]
pub(super) struct ClaimOutcome {
    pub owner_change: Option<OwnerChange>,
    /// The claim completed an A, B, A interleaving.
    pub interleave: Option<Interleave>,
}

#[derive(Default)]
pub(super) struct IpState {
    pub bindings: Bindings,
    pub last_claimant: Option<MacAddr>,
    /// Whether the claims of `last_claimant` since the previous claimant's included an
    /// announcement.
    pub run_announced: bool,
    /// When the owner ([`IpState::owner`]) became the owner.
    pub owner_since: Timestamp,
    /// Made by the first probe, owner change, interleaving or counted request of the IP.
    rare: Option<Box<IpRare>>,
}

/// What only some IPs need, boxed apart so that the many IPs with one MAC and a steady owner
/// stay small.
#[derive(Default)]
pub(super) struct IpRare {
    /// The latest claim that completed an interleaving: who claimed again, and when.
    pub resumed_by: Option<MacAddr>,
    pub resumed_at: Timestamp,
    /// Times of the latest owner changes reported as such, oldest first, at most `flap_count`.
    pub owner_changes: Vec<Timestamp>,
    /// Requests for this IP that timed out in a row since its last claim.
    pub unanswered: UnansweredStreak,
    /// The latest address probe for this IP that raised no conflict, until a claim answers it.
    pub probe: Option<Probe>,
    /// The latest change of owner (for the status API).
    pub last_change: Option<LastOwnerChange>,
    /// How the requests for this IP fared lately (for the status API): only watched IPs count
    /// their requests.
    pub requests: Option<RequestCounts>,
}

/// The latest change of owner of an IP.
#[derive(Clone, Copy, Debug)]
pub(super) struct LastOwnerChange {
    pub at: Timestamp,
    pub old: MacAddr,
    pub new: MacAddr,
    pub gap: Option<Duration>,
    /// Reported as `owner_change` (not a move within an open multi-responder incident).
    pub reported: bool,
}

/// Requests for one IP the engine waited on, in two consecutive windows of fixed length: the
/// current one (from `start`) and the one before it. O(1), no history.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct RequestCounts {
    /// Start of the current window; `None` before the first request.
    start: Option<Timestamp>,
    current: RequestTally,
    previous: RequestTally,
    /// The latest request.
    pub last_request: Option<Timestamp>,
}

/// Requests seen, answered and unanswered in one window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct RequestTally {
    pub seen: u32,
    pub answered: u32,
    pub unanswered: u32,
}

impl RequestTally {
    fn add(self, other: RequestTally) -> RequestTally {
        RequestTally {
            seen: self.seen.saturating_add(other.seen),
            answered: self.answered.saturating_add(other.answered),
            unanswered: self.unanswered.saturating_add(other.unanswered),
        }
    }
}

impl RequestCounts {
    /// The window's tally at `ts`, the windows moved on as far as `ts` needs.
    fn at(&mut self, ts: Timestamp, window: Duration) -> &mut RequestTally {
        match self.start {
            Some(start) if ts.saturating_since(start) < window => {}
            Some(start) if ts.saturating_since(start) < 2 * window => {
                self.previous = self.current;
                self.current = RequestTally::default();
                self.start = Some(start.saturating_add(window));
            }
            _ => {
                self.previous = RequestTally::default();
                self.current = RequestTally::default();
                self.start = Some(ts);
            }
        }
        &mut self.current
    }

    /// `count` requests, the latest sent at `ts`.
    pub fn seen(&mut self, ts: Timestamp, count: u64, window: Duration) {
        let tally = self.at(ts, window);
        tally.seen = tally.seen.saturating_add(count.min(u64::from(u32::MAX)) as u32);
        self.last_request = Some(self.last_request.map_or(ts, |t| t.max(ts)));
    }

    /// `count` requests answered (or, `answered` false, timed out) at `ts`.
    pub fn judged(&mut self, ts: Timestamp, count: u64, answered: bool, window: Duration) {
        let tally = self.at(ts, window);
        let count = count.min(u64::from(u32::MAX)) as u32;
        if answered {
            tally.answered = tally.answered.saturating_add(count);
        } else {
            tally.unanswered = tally.unanswered.saturating_add(count);
        }
    }

    /// What the windows still cover at `now`: since when, and the tally.
    pub fn read(&self, now: Timestamp, window: Duration) -> Option<(Timestamp, RequestTally)> {
        let start = self.start?;
        let age = now.saturating_since(start);
        if age >= 2 * window {
            None
        } else if age >= window || self.previous == RequestTally::default() {
            // The previous window is over, or had nothing.
            Some((start, self.current))
        } else {
            let since = Timestamp::from_nanos(
                start.as_nanos().saturating_sub(window.as_nanos().min(u128::from(u64::MAX)) as u64),
            );
            Some((since, self.previous.add(self.current)))
        }
    }
}

/// An address probe (an RFC 5227 ARP probe, a duplicate address detection NS): who wants the IP,
/// and since when.
#[derive(Clone, Copy, Debug)]
pub(super) struct Probe {
    pub mac: MacAddr,
    pub at: Timestamp,
}

/// Timed-out requests for one IP that count towards `unanswered`: the retransmissions of one
/// requester. A requester that got no answer asks again within seconds; requests from different
/// hosts, or from one host minutes apart, are each the first of their kind, because an observer
/// that is not on a mirror port (a capture taken on a host) sees other hosts' broadcast requests
/// but not the unicast replies they got.
#[derive(Default)]
pub(super) struct UnansweredStreak {
    pub requester: Option<Requester>,
    pub count: u64,
    /// Deadline of the latest timed-out request of the streak.
    pub last: Timestamp,
}

impl UnansweredStreak {
    /// Adds `count` timed-out requests of `requester`, the first sent at `first` and timed out
    /// at `deadline`. They continue the streak when the same requester asked again within
    /// `window` of its previous timeout; otherwise they start a new one. Returns the length.
    pub fn extend(
        &mut self,
        requester: Requester,
        count: u64,
        first: Timestamp,
        deadline: Timestamp,
        window: Duration,
    ) -> u64 {
        let continues = self.requester == Some(requester)
            && self.count > 0
            && first.saturating_since(self.last) <= window;
        if !continues {
            self.requester = Some(requester);
            self.count = 0;
        }
        self.count += count;
        self.last = deadline;
        self.count
    }

    pub fn reset(&mut self) {
        self.requester = None;
        self.count = 0;
    }
}

impl IpState {
    /// The boxed part, made on first use.
    pub fn rare_mut(&mut self) -> &mut IpRare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// The boxed part, if it was made.
    pub fn rare_if_any(&mut self) -> Option<&mut IpRare> {
        self.rare.as_deref_mut()
    }

    /// The request counters, made at the first request counted.
    pub fn requests_mut(&mut self) -> &mut RequestCounts {
        self.rare_mut().requests.get_or_insert_with(RequestCounts::default)
    }

    pub fn requests(&self) -> Option<&RequestCounts> {
        self.rare.as_ref().and_then(|rare| rare.requests.as_ref())
    }

    pub fn last_change(&self) -> Option<&LastOwnerChange> {
        self.rare.as_ref().and_then(|rare| rare.last_change.as_ref())
    }

    pub fn last_change_mut(&mut self) -> Option<&mut LastOwnerChange> {
        self.rare.as_mut().and_then(|rare| rare.last_change.as_mut())
    }

    /// The latest clean address probe, if any.
    pub fn probe(&self) -> Option<Probe> {
        self.rare.as_ref().and_then(|rare| rare.probe)
    }

    /// Takes out the latest clean address probe, if any.
    pub fn take_probe(&mut self) -> Option<Probe> {
        self.rare.as_mut().and_then(|rare| rare.probe.take())
    }
}

impl IpState {
    /// The MAC whose claim the network follows: the last claimant, except that a later reply to a
    /// request already answered by another MAC does not replace the first (Linux ignores it for
    /// `locktime`, 1 s, and so do most stacks).
    pub fn owner(&self) -> Option<MacAddr> {
        self.owner_binding().map(|(_, b)| b.mac)
    }

    /// The owner's binding, and its index in [`IpState::bindings`].
    pub fn owner_binding(&self) -> Option<(usize, &Binding)> {
        self.bindings.iter().enumerate().find(|(_, b)| b.is_owner)
    }

    /// The binding of `mac`, if this IP has one.
    pub fn binding(&self, mac: MacAddr) -> Option<&Binding> {
        self.bindings.iter().find(|b| b.mac == mac)
    }

    /// When `mac` last claimed this IP (a reply or an announcement), if it did.
    pub fn last_claim_of(&self, mac: MacAddr) -> Option<Timestamp> {
        self.binding(mac).and_then(|b| b.last_claim())
    }

    /// Finds or adds the binding of `mac`; returns its index, whether it is new, and whether an
    /// older binding had to be forgotten to make room.
    pub fn touch(&mut self, mac: MacAddr, ts: Timestamp, max_macs: usize) -> (usize, bool, bool) {
        // One pass finds the binding or, for a new MAC, the stalest one other than the owner's
        // (the first of the stalest), which a full IP forgets to make room.
        let mut stalest: Option<(usize, Timestamp)> = None;
        for (i, b) in self.bindings.iter_mut().enumerate() {
            if b.mac == mac {
                b.last_seen = ts;
                return (i, false, false);
            }
            if !b.is_owner && stalest.is_none_or(|(_, seen)| b.last_seen < seen) {
                stalest = Some((i, b.last_seen));
            }
        }
        let mut evicted = false;
        if self.bindings.len() >= max_macs {
            if let Some((i, _)) = stalest {
                // Not `swap_remove`: the order of the bindings is the order they were first
                // seen in, which `macs` lists follow.
                self.bindings.remove(i);
                evicted = true;
            }
        }
        self.bindings.push(Binding::new(mac, ts));
        (self.bindings.len() - 1, true, evicted)
    }

    /// Puts `macs` in the order they were first seen as senders of the IP (for a claimant: its
    /// first claim); MACs no longer remembered go last.
    pub fn order_by_first_seen(&self, macs: &mut [MacAddr]) {
        macs.sort_by_key(|m| self.bindings.iter().position(|b| b.mac == *m).unwrap_or(usize::MAX));
    }

    /// MACs whose latest claim of the IP is at most `window` old at `now`.
    pub fn claimants(&self, now: Timestamp, window: Duration) -> usize {
        let recent = |t: Timestamp| now.saturating_since(t) <= window;
        self.bindings.iter().filter(|b| b.last_claim().is_some_and(recent)).count()
    }

    /// Other MACs that replied to `requester` within `window` before `ts`.
    pub fn co_responders(
        &self,
        mac: MacAddr,
        requester: Requester,
        ts: Timestamp,
        window: Duration,
        into: &mut Vec<MacAddr>,
    ) {
        let replied_to = fingerprint(&requester);
        for b in self.bindings.iter() {
            if b.mac == mac || b.replied_to != replied_to {
                continue;
            }
            if let Some((r, t)) = b.last_reply() {
                if r == requester && ts.saturating_since(t) <= window {
                    into.push(b.mac);
                }
            }
        }
    }

    /// Applies a strong claim: the claimant's binding remembers it, and it may make or change
    /// the owner and complete an interleaving.
    pub fn claim(&mut self, claim: StrongClaim, t: &Thresholds) -> ClaimOutcome {
        let StrongClaim { binding: idx, ts, reply_to, follower, announced } = claim;
        let mac = self.bindings[idx].mac;
        let mut outcome = ClaimOutcome::default();
        let window = t.concurrency_window;

        if let (Some(previous), Some(own_last)) =
            (self.last_claimant, self.bindings[idx].last_claim())
        {
            if previous != mac && ts.saturating_since(own_last) <= window {
                let unannounced = !self.run_announced;
                let rare = self.rare_mut();
                let alternating = rare.resumed_by.is_some_and(|other| {
                    other != mac && ts.saturating_since(rare.resumed_at) <= window
                });
                outcome.interleave = Some(Interleave { with: previous, alternating, unannounced });
                rare.resumed_by = Some(mac);
                rare.resumed_at = ts;
            }
        }
        if self.last_claimant == Some(mac) {
            self.run_announced |= announced;
        } else {
            self.run_announced = announced;
        }

        match self.bindings.iter().position(|b| b.is_owner) {
            None => {
                self.bindings[idx].is_owner = true;
                self.owner_since = ts;
            }
            Some(old_idx) if old_idx != idx && !follower => {
                let old_binding = &mut self.bindings[old_idx];
                old_binding.is_owner = false;
                let old = old_binding.mac;
                let gap = old_binding.last_claim().map(|last| ts.saturating_since(last));
                outcome.owner_change = Some(OwnerChange { old, gap });
                self.bindings[idx].is_owner = true;
                self.owner_since = ts;
                self.rare_mut().last_change =
                    Some(LastOwnerChange { at: ts, old, new: mac, gap, reported: false });
            }
            Some(_) => {}
        }

        let binding = &mut self.bindings[idx];
        match binding.last_claim() {
            Some(last) if ts.saturating_since(last) <= window => {
                binding.claims = binding.claims.saturating_add(1);
            }
            _ => {
                binding.claims = 1;
                binding.claims_since = ts;
            }
        }
        binding.last_claim_at = ts;
        if let Some(r) = reply_to {
            binding.set_last_reply(r, ts);
        }
        self.last_claimant = Some(mac);
        outcome
    }

    /// Counts an owner change at `ts` towards `flapping` (a change that belongs to an open
    /// multi-responder incident is not counted).
    pub fn count_owner_change(&mut self, ts: Timestamp, t: &Thresholds) -> FlapCount {
        let flap_count = t.flap_count as usize;
        let owner_changes = &mut self.rare_mut().owner_changes;
        if owner_changes.len() >= flap_count {
            owner_changes.remove(0);
        }
        owner_changes.push(ts);
        let flapping = owner_changes.len() >= flap_count
            && ts.saturating_since(owner_changes[0]) <= t.flap_window;
        FlapCount { flapping, recent_changes: owner_changes.len() as u64 }
    }

    /// The MAC other than `mac` that this IP is bound to: its owner, else the sender seen last.
    pub fn holder_other_than(&self, mac: MacAddr) -> Option<&Binding> {
        if let Some(owner) = self.bindings.iter().find(|b| b.is_owner) {
            return (owner.mac != mac).then_some(owner);
        }
        self.bindings.iter().filter(|b| b.mac != mac).max_by_key(|b| b.last_seen)
    }
}

/// Repeat suppression for alarms that are not lasting conditions (unknown_responder,
/// unexpected_interface, sender_mismatch): the first occurrence is reported, then at most one
/// report per report interval carrying how many occurrences it stands for.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Throttle {
    last_report: Option<Timestamp>,
    suppressed: u64,
}

impl Throttle {
    /// `Some(occurrences since the last report)` when this occurrence should be reported.
    pub fn admit(&mut self, ts: Timestamp, interval: Duration) -> Option<u64> {
        match self.last_report {
            Some(last) if ts.saturating_since(last) < interval => {
                self.suppressed += 1;
                None
            }
            _ => {
                let count = self.suppressed + 1;
                self.last_report = Some(ts);
                self.suppressed = 0;
                Some(count)
            }
        }
    }
}

/// Frames per second over a sliding second, estimated from two one-second buckets (the
/// previous bucket weighted by how much of it the sliding second still covers). O(1), no history.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct RateMeter {
    bucket_start: Timestamp,
    /// Frames in the current and the previous bucket; 32 bits hold any rate a link can carry.
    current: u32,
    previous: u32,
}

const SECOND_NS: u64 = 1_000_000_000;

impl RateMeter {
    /// Counts `frames` at `ts` (an observation can stand for repeats the kernel folded into it).
    pub fn record(&mut self, ts: Timestamp, frames: u64) -> u64 {
        let elapsed = ts.as_nanos().saturating_sub(self.bucket_start.as_nanos());
        if self.current == 0 && self.previous == 0 || elapsed >= 2 * SECOND_NS {
            self.bucket_start = ts;
            self.previous = 0;
            self.current = 0;
        } else if elapsed >= SECOND_NS {
            self.bucket_start = Timestamp::from_nanos(self.bucket_start.as_nanos() + SECOND_NS);
            self.previous = self.current;
            self.current = 0;
        }
        self.current = self.current.saturating_add(u32::try_from(frames).unwrap_or(u32::MAX));
        let into = ts.as_nanos().saturating_sub(self.bucket_start.as_nanos()).min(SECOND_NS);
        u64::from(self.current) + u64::from(self.previous) * (SECOND_NS - into) / SECOND_NS
    }
}

/// The IPs one MAC answered for (plain replies), as far as telling a proxy-ARP router (one MAC
/// answering for many IPs) from a host goes: the first few distinct ones, then only "many".
#[derive(Clone, Copy, Debug)]
pub(super) struct AnsweredIps {
    /// Distinct IPs answered for; unused slots are 0.0.0.0, which no claim has.
    ips: [IpAddr; PROXY_IPS - 1],
    many: bool,
}

/// A MAC seen answering for this many IPs is taken for a proxy-ARP router.
pub(super) const PROXY_IPS: usize = 4;

impl Default for AnsweredIps {
    fn default() -> Self {
        AnsweredIps { ips: [IpAddr::V4(Ipv4Addr::UNSPECIFIED); PROXY_IPS - 1], many: false }
    }
}

impl AnsweredIps {
    pub fn note(&mut self, ip: IpAddr) {
        if self.many || self.ips.contains(&ip) {
            return;
        }
        match self.ips.iter_mut().find(|slot| slot.is_unspecified()) {
            Some(slot) => *slot = ip,
            None => self.many = true,
        }
    }

    /// At least [`PROXY_IPS`] different IPs.
    pub fn many(&self) -> bool {
        self.many
    }
}

/// Per MAC, as Ethernet source or as ARP sender: its rate inline, the rest boxed.
#[derive(Default)]
pub(super) struct SenderState {
    pub rate: RateMeter,
    /// Made by the first plain reply or sender mismatch of the MAC.
    rare: Option<Box<SenderRare>>,
}

/// What only the MACs that answer requests or send as another Ethernet source need.
#[derive(Default)]
pub(super) struct SenderRare {
    /// The IPs it answered for, as the ARP sender of plain replies.
    pub answered: AnsweredIps,
    /// The Ethernet source last reported as differing from this MAC as ARP sender.
    pub mismatch_eth_src: Option<MacAddr>,
    pub mismatch: Throttle,
}

impl SenderState {
    /// The boxed part, made on first use.
    pub fn rare_mut(&mut self) -> &mut SenderRare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// Whether the MAC answered for [`PROXY_IPS`] or more IPs.
    pub fn answered_many(&self) -> bool {
        self.rare.as_ref().is_some_and(|rare| rare.answered.many())
    }
}

/// Per interface.
pub(super) struct IfaceState {
    /// A small number naming the interface in per-binding throttles.
    pub id: u32,
    pub rate: RateMeter,
}

/// This host's own claims (egress) of one IP, per interface, for "answering one IP on two or
/// more interfaces".
#[derive(Default)]
pub(super) struct EgressClaims {
    /// Each interface this host answered on, with the MAC it answered with and when.
    pub ifaces: Vec<EgressClaim>,
    pub throttle: Throttle,
    /// How many interfaces the last report named; more is news.
    pub reported: usize,
}

pub(super) struct EgressClaim {
    pub iface: Arc<str>,
    pub mac: MacAddr,
    pub last: Timestamp,
}

/// How many interfaces one IP's egress claims are remembered on.
pub(super) const MAX_EGRESS_IFACES: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_meter_estimates_a_sliding_second() {
        let mut meter = RateMeter::default();
        let mut last = 0;
        for i in 0..100u64 {
            last = meter.record(Timestamp::from_nanos(10 * SECOND_NS + i * 10_000_000), 1);
        }
        assert_eq!(last, 100);
        // Half a second into the next bucket, half of the previous second still counts.
        assert_eq!(meter.record(Timestamp::from_nanos(11 * SECOND_NS + SECOND_NS / 2), 1), 51);
        // After two idle seconds the history is gone.
        assert_eq!(meter.record(Timestamp::from_nanos(14 * SECOND_NS), 1), 1);
    }

    #[test]
    fn rate_meter_counts_the_repeats_the_kernel_folded_into_an_observation() {
        let mut meter = RateMeter::default();
        // One record standing for 600 frames is a storm's worth, not one frame.
        assert_eq!(meter.record(Timestamp::from_secs(10), 600), 600);
        assert_eq!(meter.record(Timestamp::from_nanos(10 * SECOND_NS + 1), 1), 601);
    }

    #[test]
    fn pending_table_gives_deadlines_in_order_whatever_the_insertion_order_and_forgets_the_oldest()
    {
        let at = |s: u64| Timestamp::from_secs(s);
        let ip = |n: u8| IpAddr::from([192, 0, 2, n]);
        let pending = |deadline: u64| PendingRequests {
            first: at(deadline - 1),
            deadline: at(deadline),
            count: 1,
            requester: Requester { mac: MacAddr([2, 0, 0, 0, 0, 1]), ip: ip(99) },
            from_requester: 1,
            iface: "eth0".into(),
            vlan: VlanTags::NONE,
            direction: Direction::Egress,
        };
        let mut table = PendingTable::new(3);
        // A folded retransmission is learned of after a later request: inserted out of order.
        assert!(!table.insert(ip(1), pending(12)));
        assert!(!table.insert(ip(2), pending(11)));
        assert!(!table.insert(ip(3), pending(13)));
        assert_eq!(table.next_deadline(), Some(at(11)));
        // Full: the IP inserted first is forgotten, deadline and all.
        assert!(table.insert(ip(4), pending(14)));
        assert_eq!(table.len(), 3);
        assert_eq!(table.pop_due(at(10)).map(|(ip, _)| ip), None);
        assert_eq!(table.pop_due(at(20)).map(|(ip, _)| ip), Some(ip(2)));
        assert!(table.remove(&ip(3)).is_some(), "answered");
        assert_eq!(table.next_deadline(), Some(at(14)));
        assert_eq!(table.pop_due(at(20)).map(|(ip, _)| ip), Some(ip(4)));
        assert_eq!((table.pop_due(at(20)).map(|(ip, _)| ip), table.next_deadline()), (None, None));
    }

    #[test]
    fn bindings_keep_the_order_first_seen_from_one_inline_to_many_and_back() {
        let mac = |n: u8| MacAddr([2, 0, 0, 0, 0, n]);
        let at = Timestamp::from_secs;
        let mut st = IpState::default();
        assert_eq!(st.touch(mac(1), at(1), 3), (0, true, false));
        assert!(matches!(st.bindings, Bindings::One(_)));
        assert_eq!(st.touch(mac(2), at(2), 3), (1, true, false));
        assert_eq!(st.touch(mac(3), at(3), 3), (2, true, false));
        assert_eq!(st.touch(mac(1), at(4), 3), (0, false, false));
        // Full: the stalest binding (mac 2) goes, the others keep their order.
        assert_eq!(st.touch(mac(4), at(5), 3), (2, true, true));
        let macs: Vec<MacAddr> = st.bindings.iter().map(|b| b.mac).collect();
        assert_eq!(macs, [mac(1), mac(3), mac(4)]);
        // A lone binding that has to go leaves room for the next inline.
        let mut one = Bindings::default();
        one.push(Binding::new(mac(1), at(1)));
        one.remove(0);
        assert!(one.is_empty());
        one.push(Binding::new(mac(2), at(2)));
        assert!(matches!(one, Bindings::One(ref b) if b.mac == mac(2)));
    }

    #[test]
    fn a_binding_has_a_last_claim_from_its_first_claim_on() {
        let t = Thresholds::default();
        let mut st = IpState::default();
        let (index, _, _) = st.touch(MacAddr([2, 0, 0, 0, 0, 1]), Timestamp::from_secs(0), 2);
        assert_eq!(st.bindings[index].last_claim(), None);
        let claim = |ts| StrongClaim {
            binding: index,
            ts,
            reply_to: None,
            follower: false,
            announced: true,
        };
        st.claim(claim(Timestamp::from_secs(0)), &t);
        assert_eq!(st.bindings[index].last_claim(), Some(Timestamp::from_secs(0)));
        st.claim(claim(Timestamp::from_secs(1)), &t);
        assert_eq!(st.bindings[index].last_claim(), Some(Timestamp::from_secs(1)));
    }

    #[test]
    fn throttle_reports_first_then_once_per_interval_with_the_count() {
        let mut t = Throttle::default();
        let s = Duration::from_secs(60);
        assert_eq!(t.admit(Timestamp::from_secs(0), s), Some(1));
        assert_eq!(t.admit(Timestamp::from_secs(10), s), None);
        assert_eq!(t.admit(Timestamp::from_secs(59), s), None);
        assert_eq!(t.admit(Timestamp::from_secs(60), s), Some(3));
    }
}
