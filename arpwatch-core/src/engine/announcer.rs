//! `announcer_mismatch`: the wire against the load balancer's word. Per VIP with a declared
//! announcer ([`Declaration`], from MetalLB's ServiceL2Status or kube-vip's `vipHost`), a
//! mismatch is a claim of the VIP by a MAC the declaration does not allow (another node's, no
//! node's, or the announcer's on an undeclared interface: the declaration's MACs are only those
//! on its interfaces), or requests for it going unanswered. A mismatch is *pending* until it has
//! lasted the grace period (a normal failover: the wire moves first, the status follows within a
//! second or two), then it is a lasting condition like the others, ended early when a declared
//! MAC owns the VIP again with no undeclared one within the concurrency window, or when the
//! declaration changes to match the wire.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use crate::cluster::Declaration;
use crate::event::Seen;
use crate::observation::{MacAddr, Timestamp};

/// The most undeclared MACs a pending mismatch remembers (a condition keeps
/// `caps.max_macs_per_ip` of them, at most 256).
pub(super) const MAX_PENDING_MACS: usize = 256;

/// A mismatch not yet older than the grace period.
pub(super) struct Pending {
    pub since: Timestamp,
    pub deadline: Timestamp,
    /// Claims by undeclared MACs and unanswered requests since `since`.
    pub count: u64,
    /// The undeclared MACs that claimed, in order.
    pub macs: Vec<MacAddr>,
    pub seen: Seen,
}

/// One declared VIP.
pub(super) struct Watch {
    pub declaration: Declaration,
    pub pending: Option<Pending>,
    /// The latest claim by an undeclared MAC under this declaration.
    pub last_wrong: Option<Timestamp>,
    /// The MAC of the latest evidence: the undeclared MAC that claimed, `None` for silence.
    pub mac: Option<MacAddr>,
}

impl Watch {
    fn new(declaration: Declaration) -> Self {
        Watch { declaration, pending: None, last_wrong: None, mac: None }
    }

    /// Whether `mac` may answer: one of the declared MACs, or any MAC when the announcer's MACs
    /// are not known (then only silence can be judged).
    pub fn allows(&self, mac: MacAddr) -> bool {
        self.declaration.macs.is_empty() || self.declaration.macs.contains(&mac)
    }
}

/// A VIP whose declaration was withdrawn, or changed to allow its current owner `owner`: its
/// condition, if any, ends at the engine's next step, naming `owner`.
pub(super) struct Resolved {
    pub ip: IpAddr,
    pub owner: Option<MacAddr>,
}

#[derive(Default)]
pub(super) struct Announcers {
    pub watches: HashMap<IpAddr, Watch>,
    /// Grace deadlines of the pending mismatches, earliest first.
    deadlines: BTreeSet<(Timestamp, IpAddr)>,
    /// From `replace`, not yet acted on.
    pub resolved: Vec<Resolved>,
}

impl Announcers {
    pub fn is_empty(&self) -> bool {
        self.watches.is_empty()
    }

    pub fn get_mut(&mut self, ip: &IpAddr) -> Option<&mut Watch> {
        self.watches.get_mut(ip)
    }

    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.deadlines.first().map(|(t, _)| *t)
    }

    /// Takes the earliest pending mismatch due by `now`.
    pub fn pop_due(&mut self, now: Timestamp) -> Option<(IpAddr, Pending)> {
        let (deadline, ip) = *self.deadlines.first().filter(|(t, _)| *t <= now)?;
        self.deadlines.remove(&(deadline, ip));
        let pending = self.watches.get_mut(&ip)?.pending.take()?;
        Some((ip, pending))
    }

    /// Starts a pending mismatch of `ip` (which must be watched and have none).
    pub fn start_pending(&mut self, ip: IpAddr, pending: Pending) {
        if let Some(watch) = self.watches.get_mut(&ip) {
            self.deadlines.insert((pending.deadline, ip));
            watch.pending = Some(pending);
        }
    }

    /// Forgets the pending mismatch of `ip`, if any.
    pub fn clear_pending(&mut self, ip: IpAddr) {
        if let Some(p) = self.watches.get_mut(&ip).and_then(|w| w.pending.take()) {
            self.deadlines.remove(&(p.deadline, ip));
        }
    }

    /// Takes a new set of declarations; `owner` gives a VIP's current owner. A VIP whose
    /// declaration is unchanged keeps its state. One whose declaration changed starts afresh
    /// (a pending mismatch is forgotten: the next undeclared claim starts another), and its
    /// condition ends if the new declaration allows the current owner; one whose declaration
    /// went away ends its condition.
    pub fn replace(
        &mut self,
        declarations: Vec<(IpAddr, Declaration)>,
        owner: impl Fn(IpAddr) -> Option<MacAddr>,
    ) {
        let mut old = std::mem::take(&mut self.watches);
        self.deadlines.clear();
        for (ip, mut declaration) in declarations {
            declaration.macs.sort_unstable();
            declaration.macs.dedup();
            match old.remove(&ip) {
                Some(watch) if watch.declaration == declaration => {
                    if let Some(p) = &watch.pending {
                        self.deadlines.insert((p.deadline, ip));
                    }
                    self.watches.insert(ip, watch);
                }
                _ => {
                    let watch = Watch::new(declaration);
                    let owner = owner(ip);
                    if owner.is_none_or(|mac| watch.allows(mac)) {
                        self.resolved.push(Resolved { ip, owner });
                    }
                    self.watches.insert(ip, watch);
                }
            }
        }
        for ip in old.into_keys() {
            self.resolved.push(Resolved { ip, owner: owner(ip) });
        }
    }
}
