//! Per-IP series, only for IPs inside configured pools: claimants now, owner changes, the current
//! owner (an info series naming its MAC and node), this node's own replies per interface, and the
//! lasting conditions; and per pool, the failover gaps (a histogram of the `gap_ms` of its
//! `owner_change` events) and its owner changes. Nothing here decides anything: the claimants are
//! the engine's (`Engine::claimants`, read after each claim and on each tick), owner changes and
//! conditions are its events, the owner is the new owner of its latest `owner_change` (before the
//! first, the MAC of the IP's first claim, which the engine makes the owner), the node names are
//! the annotator's (the event's cluster context), the claim is the core's definition
//! (`Observation::claim`) and the pool is the engine's own lookup (`Engine::pools`).
//!
//! A pool gets series for at most `max_ips` distinct IPs, kept for the life of the process (a
//! counter that vanished and came back would look like a reset to Prometheus) unless a reloaded
//! configuration takes the IP out of the pool or the pool away; every update
//! refused by that cap is counted in `arpwatch_pool_ip_series_dropped_total`. A series is made on
//! the first claim of the IP or the first event about it, never for a request alone, so a scan of
//! a large pool does not use the cap up. The per-pool series are made for every configured pool
//! at once (at zero) and removed with the pool.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use arpwatch_core::config::EngineConfig;
use arpwatch_core::engine::Engine;
use arpwatch_core::event::{ConditionState, Detail, Event, EventKind};
use arpwatch_core::observation::{ArpOp, ClaimKind, Direction, MacAddr, Observation};
use arpwatch_core::pools::Pools;
use arpwatch_core::wire::Record;

/// The lasting conditions exported per pool IP, in the order of [`IpSeries::conditions`].
const CONDITIONS: [EventKind; 3] =
    [EventKind::MultiResponder, EventKind::Flapping, EventKind::Unanswered];

/// The buckets of `arpwatch_failover_gap_seconds`, in seconds: from a sub-second handover
/// (keepalived, a gratuitous ARP right after the old owner's last claim) through leader-election
/// times (MetalLB's memberlist, kube-vip's lease: seconds to tens of seconds) to a VIP that was
/// down for minutes.
const FAILOVER_GAP_BUCKETS: [f64; 10] = [0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    pool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IpLabels {
    pool: String,
    ip: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplyLabels {
    pool: String,
    ip: String,
    iface: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConditionLabels {
    pool: String,
    ip: String,
    condition: &'static str,
}

/// The current owner of a pool IP. `owner_node` is the node owning the MAC, empty when unknown;
/// it is not `node`, which the PodMonitor (`deploy/kubernetes/podmonitor.yaml`) sets to the
/// scraped node on every series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OwnerLabels {
    pool: String,
    ip: String,
    mac: String,
    owner_node: String,
}

type GapFamily = Family<PoolLabels, Histogram, fn() -> Histogram>;

struct Families {
    claimants: Family<IpLabels, Gauge>,
    owner_changes: Family<IpLabels, Counter>,
    owners: Family<OwnerLabels, Gauge>,
    local_replies: Family<ReplyLabels, Counter>,
    conditions: Family<ConditionLabels, Gauge>,
    pool_owner_changes: Family<PoolLabels, Counter>,
    failover_gap: GapFamily,
    dropped: Counter,
}

/// The series of one pool IP.
struct IpSeries {
    labels: IpLabels,
    claimants: Gauge,
    owner_changes: Counter,
    conditions: [Gauge; CONDITIONS.len()],
    /// This node's replies per interface; a host has few interfaces, so a list is enough.
    local_replies: Vec<(Arc<str>, Counter)>,
    /// The owner, as its series of `arpwatch_pool_ip_owner` is labelled; `None` before the IP's
    /// first claim.
    owner: Option<(MacAddr, OwnerLabels)>,
}

struct PoolIps {
    name: String,
    ips: HashMap<IpAddr, IpSeries>,
    /// Owner changes of every IP of the pool, and their gaps: not bounded by the IP cap.
    owner_changes: Counter,
    failover_gap: Histogram,
}

impl PoolIps {
    fn new(name: &str, ips: HashMap<IpAddr, IpSeries>, families: &Families) -> Self {
        let labels = PoolLabels { pool: name.to_owned() };
        PoolIps {
            name: name.to_owned(),
            ips,
            owner_changes: families.pool_owner_changes.get_or_create_owned(&labels),
            failover_gap: families.failover_gap.get_or_create_owned(&labels),
        }
    }

    /// Takes the per-pool series out of the exposition (the pool is gone).
    fn remove(&self, families: &Families) {
        let labels = PoolLabels { pool: self.name.clone() };
        families.pool_owner_changes.remove(&labels);
        families.failover_gap.remove(&labels);
        for series in self.ips.values() {
            series.remove(families);
        }
    }

    /// The series of `ip`, made on first use while the pool is under its cap of `max_ips`.
    fn series(&mut self, families: &Families, max_ips: usize, ip: IpAddr) -> Option<&mut IpSeries> {
        let under_cap = self.ips.len() < max_ips;
        match self.ips.entry(ip) {
            Entry::Occupied(e) => Some(e.into_mut()),
            Entry::Vacant(e) if under_cap => {
                Some(e.insert(IpSeries::new(&self.name, ip, families)))
            }
            Entry::Vacant(_) => {
                families.dropped.inc();
                None
            }
        }
    }
}

pub(super) struct PoolSeries {
    /// Which pool an IP is in, as the engine decides it.
    /// By the pool's index in the configuration.
    pools: Vec<PoolIps>,
    families: Families,
    max_ips: usize,
}

impl PoolSeries {
    pub(super) fn new(config: &EngineConfig, max_ips: usize, registry: &mut Registry) -> Self {
        let families = Families {
            claimants: Family::default(),
            owner_changes: Family::default(),
            owners: Family::default(),
            local_replies: Family::default(),
            conditions: Family::default(),
            pool_owner_changes: Family::default(),
            failover_gap: Family::new_with_constructor(|| {
                Histogram::new(FAILOVER_GAP_BUCKETS.iter().copied())
            }),
            dropped: Counter::default(),
        };
        registry.register(
            "arpwatch_pool_ip_claimants",
            "Distinct MACs that claimed the pool IP within the concurrency window",
            families.claimants.clone(),
        );
        registry.register(
            "arpwatch_pool_ip_owner_changes",
            "Owner changes of the pool IP (owner_change events)",
            families.owner_changes.clone(),
        );
        registry.register(
            "arpwatch_pool_ip_owner",
            "1 for the current owner of the pool IP: its MAC and the node owning it (empty when unknown)",
            families.owners.clone(),
        );
        registry.register(
            "arpwatch_pool_owner_changes",
            "Owner changes (owner_change events) of the IPs of the pool",
            families.pool_owner_changes.clone(),
        );
        registry.register(
            "arpwatch_failover_gap_seconds",
            "Time from the old owner's last claim to the new owner's first, per owner_change event of an IP of the pool",
            families.failover_gap.clone(),
        );
        registry.register(
            "arpwatch_pool_ip_local_replies",
            "ARP replies for the pool IP sent by this node, per interface",
            families.local_replies.clone(),
        );
        registry.register(
            "arpwatch_pool_ip_condition",
            "1 while the lasting condition is active for the pool IP (start to end), else 0",
            families.conditions.clone(),
        );
        registry.register(
            "arpwatch_pool_ip_series_dropped",
            "Updates of pool-IP series refused because the pool had reached its cap of IPs",
            families.dropped.clone(),
        );
        PoolSeries {
            pools: config
                .pools
                .iter()
                .map(|p| PoolIps::new(&p.name, HashMap::new(), &families))
                .collect(),
            families,
            max_ips,
        }
    }

    /// A claim of a pool IP (a reply or an announcement) that `engine` has just been given:
    /// its claimants as the engine counts them now; this node's replies on egress.
    pub(super) fn observe(&mut self, obs: &Observation, engine: &Engine) {
        if self.pools.is_empty() || !obs.claim().is_some_and(ClaimKind::is_strong) {
            return;
        }
        let Some(series) =
            series(engine.pools(), &mut self.pools, &self.families, self.max_ips, obs.spa)
        else {
            return;
        };
        series.set_claimants(engine.claimants(obs.spa));
        // The engine's owner, also when it moved between two MACs of an open multi-responder,
        // which is no `owner_change`; the node of a new owner's MAC is named by the events about
        // it (`new_binding`, `owner_change`, the incident's `mac_nodes`), which follow.
        if let Some(owner) = engine.owner(obs.spa) {
            if series.owner.as_ref().is_none_or(|(mac, _)| *mac != owner) {
                series.set_owner(owner, None, &self.families.owners);
            }
        }
        if obs.direction == Direction::Egress && obs.op == ArpOp::Reply {
            series.local_reply(&obs.iface, &self.families.local_replies);
        }
    }

    /// Owner changes (per IP and per pool, with their gaps), the owner and the node of its MAC,
    /// and the lifecycle of lasting conditions of pool IPs. `event` has been annotated: its
    /// context names the nodes of its MACs when the cluster context knows them.
    pub(super) fn event(&mut self, event: &Event, engine: &Engine) {
        let kind = event.kind();
        let condition = CONDITIONS.iter().position(|k| *k == kind);
        let Some(pool) =
            engine.pools().find(event.ip).and_then(|rule| self.pools.get_mut(rule.index))
        else {
            return;
        };
        let families = &self.families;
        if let Detail::OwnerChange { new_mac, gap_ms, .. } = &event.detail {
            pool.owner_changes.inc();
            if let Some(ms) = gap_ms {
                pool.failover_gap.observe(*ms as f64 / 1000.0);
            }
            if let Some(series) = pool.series(families, self.max_ips, event.ip) {
                series.owner_changes.inc();
                series.set_owner(*new_mac, event.context.new_node.as_deref(), &families.owners);
            }
        }
        if let (Some(i), Some(state)) = (condition, event.state()) {
            if let Some(series) = pool.series(families, self.max_ips, event.ip) {
                series.conditions[i].set(i64::from(state != ConditionState::End));
            }
        }
        // Any event about an IP with series may name the node of its owner's MAC (the first
        // owner's `new_binding`; a cluster context that arrived since).
        if let Some(series) = pool.ips.get_mut(&event.ip) {
            series.name_owner_node(event, &families.owners);
        }
    }

    /// A reloaded configuration. A pool that keeps its name keeps the series of its IPs that
    /// are still in it (by `lookup`, the reconfigured engine's); the series of every other IP,
    /// and of pools that are gone, are removed from the families, so the exposition shows only
    /// configured pools.
    pub(super) fn reconfigure(&mut self, config: &EngineConfig, lookup: &Pools) {
        let mut old: HashMap<String, PoolIps> =
            self.pools.drain(..).map(|pool| (pool.name.clone(), pool)).collect();
        let families = &self.families;
        self.pools = config
            .pools
            .iter()
            .enumerate()
            .map(|(index, pool)| {
                let Some(mut kept) = old.remove(&pool.name) else {
                    return PoolIps::new(&pool.name, HashMap::new(), families);
                };
                kept.ips.retain(|ip, series| {
                    let stays = lookup.find(*ip).is_some_and(|rule| rule.index == index);
                    if !stays {
                        series.remove(families);
                    }
                    stays
                });
                kept
            })
            .collect();
        for pool in old.values() {
            pool.remove(families);
        }
    }

    /// Time passed for `engine`: claims that left its concurrency window stop counting.
    pub(super) fn refresh(&mut self, engine: &Engine) {
        for pool in &mut self.pools {
            for (ip, series) in &mut pool.ips {
                if series.claimants.get() > 0 {
                    series.set_claimants(engine.claimants(*ip));
                }
            }
        }
    }
}

/// The series of `ip` if it is in a pool, made on first use while the pool is under its cap of
/// `max_ips`. The first pool containing the IP owns it, as in the engine.
fn series<'a>(
    lookup: &Pools,
    pools: &'a mut [PoolIps],
    families: &Families,
    max_ips: usize,
    ip: IpAddr,
) -> Option<&'a mut IpSeries> {
    pools.get_mut(lookup.find(ip)?.index)?.series(families, max_ips, ip)
}

impl IpSeries {
    fn new(pool: &str, ip: IpAddr, families: &Families) -> Self {
        let labels = IpLabels { pool: pool.to_owned(), ip: ip.to_string() };
        let conditions = CONDITIONS.map(|kind| {
            families.conditions.get_or_create_owned(&ConditionLabels {
                pool: labels.pool.clone(),
                ip: labels.ip.clone(),
                condition: kind.as_str(),
            })
        });
        IpSeries {
            claimants: families.claimants.get_or_create_owned(&labels),
            owner_changes: families.owner_changes.get_or_create_owned(&labels),
            conditions,
            local_replies: Vec::new(),
            owner: None,
            labels,
        }
    }

    /// Takes every series of this IP out of the exposition.
    fn remove(&self, families: &Families) {
        families.claimants.remove(&self.labels);
        families.owner_changes.remove(&self.labels);
        for kind in CONDITIONS {
            families.conditions.remove(&ConditionLabels {
                pool: self.labels.pool.clone(),
                ip: self.labels.ip.clone(),
                condition: kind.as_str(),
            });
        }
        for (iface, _) in &self.local_replies {
            families.local_replies.remove(&ReplyLabels {
                pool: self.labels.pool.clone(),
                ip: self.labels.ip.clone(),
                iface: iface.to_string(),
            });
        }
        if let Some((_, labels)) = &self.owner {
            families.owners.remove(labels);
        }
    }

    /// `mac` owns the IP now, on `node` if known: its series replaces the previous owner's, so
    /// the IP has one series of `arpwatch_pool_ip_owner` at most.
    fn set_owner(&mut self, mac: MacAddr, node: Option<&str>, owners: &Family<OwnerLabels, Gauge>) {
        let labels = OwnerLabels {
            pool: self.labels.pool.clone(),
            ip: self.labels.ip.clone(),
            mac: mac.to_string(),
            owner_node: node.unwrap_or_default().to_owned(),
        };
        if let Some((_, old)) = &self.owner {
            if *old == labels {
                return;
            }
            owners.remove(old);
        }
        owners.get_or_create(&labels).set(1);
        self.owner = Some((mac, labels));
    }

    /// Names the node of the owner's MAC when `event`'s context names one (never un-names it:
    /// an event without cluster context says nothing about the node).
    fn name_owner_node(&mut self, event: &Event, owners: &Family<OwnerLabels, Gauge>) {
        let Some((owner, labels)) = &self.owner else {
            return;
        };
        let owner = *owner;
        let r = Record::of(event);
        let node = [(r.mac, r.mac_node), (r.new_mac, r.new_node), (r.old_mac, r.old_node)]
            .into_iter()
            .find_map(|(mac, node)| node.filter(|_| mac == Some(owner)))
            .or_else(|| r.mac_nodes.iter().find(|(mac, _)| *mac == owner).map(|(_, n)| &**n));
        if let Some(node) = node.filter(|node| *node != labels.owner_node) {
            self.set_owner(owner, Some(node), owners);
        }
    }

    fn set_claimants(&self, claimants: usize) {
        self.claimants.set(i64::try_from(claimants).unwrap_or(i64::MAX));
    }

    fn local_reply(&mut self, iface: &Arc<str>, family: &Family<ReplyLabels, Counter>) {
        if let Some((_, counter)) = self.local_replies.iter().find(|(name, _)| name == iface) {
            counter.inc();
            return;
        }
        let counter = family.get_or_create_owned(&ReplyLabels {
            pool: self.labels.pool.clone(),
            ip: self.labels.ip.clone(),
            iface: iface.to_string(),
        });
        counter.inc();
        self.local_replies.push((iface.clone(), counter));
    }
}
