//! Read-only queries for the status API: what the engine knows about an IP right now, which IPs
//! it watches, which conditions are open. They change nothing, so asking never changes what the
//! engine reports; each costs at most one pass over the tracked IPs.

use std::collections::BinaryHeap;
use std::net::IpAddr;

use super::lifecycle::ConditionKey;
use super::state::IpState;
use super::{Engine, REQUEST_WINDOW};
use crate::observation::{MacAddr, Proto, Timestamp};
use crate::status::{Claimant, IpStatus, OpenCondition, Owner, OwnerChangeRecord, RequestStats};

/// One page of the watched IPs, in address order (IPv4 before IPv6).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WatchedIps {
    pub ips: Vec<IpAddr>,
    /// More watched IPs follow the last one given.
    pub more: bool,
    /// Watched IPs in all.
    pub total: usize,
}

impl Engine {
    /// The latest time the engine was given (an observation's or a tick's).
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// The MAC the network follows for `ip` now (see `docs/events.md`, "Claims"), if any. Unlike
    /// `owner_change` events, it also follows a move between two MACs of an open multi-responder.
    pub fn owner(&self, ip: IpAddr) -> Option<MacAddr> {
        self.ips.peek(&ip).and_then(|st| st.owner())
    }

    /// Whether `ip` is in a pool or has a declared announcer: watched whether or not it was
    /// ever seen.
    fn is_pool_ip(&self, ip: IpAddr) -> bool {
        self.pools.contains(ip) || self.announcers.watches.contains_key(&ip)
    }

    fn is_watched(&self, ip: IpAddr, st: &IpState) -> bool {
        st.owner().is_some() || self.is_pool_ip(ip)
    }

    /// The watched IPs the engine tracks (the IPs of pools and with a declared announcer that
    /// were seen, and every IP with an owner) after `after`, in address order, at most `limit`.
    /// One pass over the tracked IPs, keeping `limit` of them.
    pub fn watched_ips(&self, after: Option<IpAddr>, limit: usize) -> WatchedIps {
        let mut page = BinaryHeap::with_capacity(limit.min(4096) + 1);
        let (mut total, mut later) = (0, 0);
        for (ip, st) in self.ips.iter() {
            if !self.is_watched(*ip, st) {
                continue;
            }
            total += 1;
            if after.is_some_and(|after| *ip <= after) {
                continue;
            }
            later += 1;
            page.push(*ip);
            if page.len() > limit {
                page.pop();
            }
        }
        let ips = page.into_sorted_vec();
        WatchedIps { more: later > ips.len(), ips, total }
    }

    /// What the engine knows about `ip` now: its owner and since when, the MACs that claimed it
    /// within the concurrency window, its last owner change, its open conditions and its
    /// requests. `None` for an IP it neither tracks nor watches (a pool IP never seen has a
    /// status: nobody owns it). The names of MACs and the Services come from
    /// [`crate::status::annotate`].
    pub fn ip_status(&self, ip: IpAddr) -> Option<IpStatus> {
        let st = self.ips.peek(&ip);
        if st.is_none() && !self.is_pool_ip(ip) {
            return None;
        }
        let now = self.now;
        let window = self.thresholds.concurrency_window;
        let mut status = IpStatus {
            ip,
            proto: Proto::of(ip),
            pool: self.pools.find(ip).map(|p| p.name.clone()),
            services: Vec::new(),
            owner: None,
            claims: Vec::new(),
            last_owner_change: None,
            conditions: self.conditions_on(ip),
            requests: RequestStats::default(),
        };
        if let Some(pending) = self.pending.peek(&ip) {
            status.requests.waiting = pending.count;
        }
        let Some(st) = st else {
            return Some(status);
        };
        status.owner = st.owner().map(|mac| Owner {
            mac,
            since: st.owner_since,
            last_claim: st.last_claim_of(mac),
            node: None,
            iface: None,
        });
        status.claims = st
            .bindings
            .iter()
            .filter_map(|b| {
                let last = b.last_claim().filter(|t| now.saturating_since(*t) <= window)?;
                Some(Claimant {
                    mac: b.mac,
                    count: u64::from(b.claims),
                    since: b.claims_since,
                    last,
                    node: None,
                    iface: None,
                })
            })
            .collect();
        status.last_owner_change = st.last_change().map(|c| OwnerChangeRecord {
            at: c.at,
            old_mac: c.old,
            new_mac: c.new,
            gap_ms: c.gap.map(|g| g.as_millis() as u64),
            reported: c.reported,
            old_node: None,
            new_node: None,
        });
        let requests = &mut status.requests;
        if let Some(counts) = st.requests() {
            if let Some((since, tally)) = counts.read(now, REQUEST_WINDOW) {
                requests.since = Some(since);
                requests.seen = u64::from(tally.seen);
                requests.answered = u64::from(tally.answered);
                requests.unanswered = u64::from(tally.unanswered);
            }
            requests.last_request = counts.last_request;
        }
        requests.last_answer = st.bindings.iter().filter_map(|b| b.last_claim()).max();
        Some(status)
    }

    /// The open lasting conditions about `ip` (multi_responder, flapping, unanswered,
    /// announcer_mismatch; a storm is about an interface or a MAC).
    pub fn conditions_on(&self, ip: IpAddr) -> Vec<OpenCondition> {
        [
            ConditionKey::MultiResponder(ip),
            ConditionKey::Flapping(ip),
            ConditionKey::Unanswered(ip),
            ConditionKey::AnnouncerMismatch(ip),
        ]
        .iter()
        .filter_map(|key| self.conditions.open(key))
        .collect()
    }

    /// At most `limit` open lasting conditions (storms included), the latest evidenced first,
    /// and how many are open in all.
    pub fn open_conditions(&self, limit: usize) -> (Vec<OpenCondition>, usize) {
        (self.conditions.latest_open(limit), self.conditions.len())
    }
}
