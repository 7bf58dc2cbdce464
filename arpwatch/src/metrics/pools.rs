//! Per-IP series, only for IPs inside configured pools: claimants now, owner changes, this node's
//! own replies per interface, and the lasting conditions. Nothing here decides anything: the
//! claimants are the engine's (`Engine::claimants`, read after each claim and on each tick), owner
//! changes and conditions are its events, the claim is the core's definition
//! (`Observation::claim`) and the pool is the engine's own lookup (`Engine::pools`).
//!
//! A pool gets series for at most `max_ips` distinct IPs, kept for the life of the process (a
//! counter that vanished and came back would look like a reset to Prometheus) unless a reloaded
//! configuration takes the IP out of the pool or the pool away; every update
//! refused by that cap is counted in `arpwatch_pool_ip_series_dropped_total`. A series is made on
//! the first claim of the IP or the first event about it, never for a request alone, so a scan of
//! a large pool does not use the cap up.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use arpwatch_core::config::EngineConfig;
use arpwatch_core::engine::Engine;
use arpwatch_core::event::{ConditionState, Event, EventKind};
use arpwatch_core::observation::{ArpOp, ClaimKind, Direction, Observation};
use arpwatch_core::pools::Pools;

/// The lasting conditions exported per pool IP, in the order of [`IpSeries::conditions`].
const CONDITIONS: [EventKind; 3] =
    [EventKind::MultiResponder, EventKind::Flapping, EventKind::Unanswered];

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

struct Families {
    claimants: Family<IpLabels, Gauge>,
    owner_changes: Family<IpLabels, Counter>,
    local_replies: Family<ReplyLabels, Counter>,
    conditions: Family<ConditionLabels, Gauge>,
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
}

struct PoolIps {
    name: String,
    ips: HashMap<IpAddr, IpSeries>,
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
            local_replies: Family::default(),
            conditions: Family::default(),
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
                .map(|p| PoolIps { name: p.name.clone(), ips: HashMap::new() })
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
        if obs.direction == Direction::Egress && obs.op == ArpOp::Reply {
            series.local_reply(&obs.iface, &self.families.local_replies);
        }
    }

    /// Owner changes and the lifecycle of lasting conditions of pool IPs.
    pub(super) fn event(&mut self, event: &Event, engine: &Engine) {
        let kind = event.kind();
        let condition = CONDITIONS.iter().position(|k| *k == kind);
        let owner_change = kind == EventKind::OwnerChange;
        if condition.is_none() && !owner_change {
            return;
        }
        let Some(series) =
            series(engine.pools(), &mut self.pools, &self.families, self.max_ips, event.ip)
        else {
            return;
        };
        if owner_change {
            series.owner_changes.inc();
        }
        if let (Some(i), Some(state)) = (condition, event.state()) {
            series.conditions[i].set(i64::from(state != ConditionState::End));
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
                let mut ips = old.remove(&pool.name).map(|p| p.ips).unwrap_or_default();
                ips.retain(|ip, series| {
                    let stays = lookup.find(*ip).is_some_and(|rule| rule.index == index);
                    if !stays {
                        series.remove(families);
                    }
                    stays
                });
                PoolIps { name: pool.name.clone(), ips }
            })
            .collect();
        for series in old.values().flat_map(|pool| pool.ips.values()) {
            series.remove(families);
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
    let pool = pools.get_mut(lookup.find(ip)?.index)?;
    let under_cap = pool.ips.len() < max_ips;
    match pool.ips.entry(ip) {
        Entry::Occupied(e) => Some(e.into_mut()),
        Entry::Vacant(e) if under_cap => Some(e.insert(IpSeries::new(&pool.name, ip, families))),
        Entry::Vacant(_) => {
            families.dropped.inc();
            None
        }
    }
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
