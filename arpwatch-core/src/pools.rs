//! The configured pools compiled for lookup: which pool, if any, an IP belongs to. Built once from
//! [`EngineConfig::pools`](crate::config::EngineConfig::pools); the engine and the per-pool
//! metrics both ask it.
//!
//! The CIDRs of all pools are flattened into sorted, disjoint address ranges (one table for IPv4,
//! one for IPv6), each naming the pool that owns it, so a lookup is one binary search however many
//! pools and CIDRs there are. Where
//! CIDRs overlap, the pool listed first owns the overlap, as in the file's order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use crate::config::Pool;
use crate::observation::MacAddr;

/// A pool in the form the hot path wants: shared names, and who may claim its IPs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolRule {
    /// Its position in the configuration (`pools[index]`).
    pub index: usize,
    pub name: Arc<str>,
    /// Interfaces on which claims are expected; empty means any.
    pub interfaces: Vec<Arc<str>>,
    /// MACs allowed to claim, sorted (a pool may list thousands); empty means any.
    pub macs: Vec<MacAddr>,
    /// The announcing nodes' interfaces a cluster pool may be announced from (see
    /// [`Pool::node_interfaces`]).
    pub node_interfaces: Vec<Arc<str>>,
    /// MACs of the pool's nodes on other interfaces, sorted (see [`Pool::misplaced_macs`]).
    pub misplaced_macs: Vec<MacAddr>,
}

fn sorted(macs: &[MacAddr]) -> Vec<MacAddr> {
    let mut macs = macs.to_vec();
    macs.sort_unstable();
    macs.dedup();
    macs
}

fn names(list: &[String]) -> Vec<Arc<str>> {
    list.iter().map(|s| Arc::from(s.as_str())).collect()
}

impl PoolRule {
    fn new(index: usize, pool: &Pool) -> Self {
        PoolRule {
            index,
            name: pool.name.as_str().into(),
            interfaces: names(&pool.interfaces),
            macs: sorted(&pool.macs),
            node_interfaces: names(&pool.node_interfaces),
            misplaced_macs: sorted(&pool.misplaced_macs),
        }
    }

    /// Whether `mac` belongs to one of the pool's nodes on an interface the pool is not
    /// announced from.
    pub fn misplaces(&self, mac: MacAddr) -> bool {
        self.misplaced_macs.binary_search(&mac).is_ok()
    }

    pub fn allows_iface(&self, iface: &str) -> bool {
        self.interfaces.is_empty() || self.interfaces.iter().any(|i| &**i == iface)
    }

    pub fn allows_mac(&self, mac: MacAddr) -> bool {
        self.macs.is_empty() || self.macs.binary_search(&mac).is_ok()
    }
}

/// Addresses `start..=end` belong to `rules[rule]`. IPv4 addresses are stored as `u128` too, in a
/// table of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Range {
    start: u128,
    end: u128,
    rule: u32,
}

/// The pools, compiled. Lookups are O(log n) in the number of CIDRs.
#[derive(Clone, Debug, Default)]
pub struct Pools {
    rules: Vec<PoolRule>,
    /// Sorted by `start`, disjoint; adjacent ranges of one pool are merged. One table per address
    /// family, so that an IPv6 pool never contains an IPv4 address, whatever its prefix.
    v4: Vec<Range>,
    v6: Vec<Range>,
}

/// An address as the range tables key it.
fn key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(ip) => u128::from(u32::from(ip)),
        IpAddr::V6(ip) => u128::from(ip),
    }
}

/// Flattens CIDRs, each an inclusive range with its pool, into sorted disjoint ranges where the
/// lowest pool index owns an overlap.
fn compile(mut nets: Vec<(u128, u128, u32)>) -> Vec<Range> {
    nets.sort_unstable();
    // The elementary intervals start at every CIDR's start and one past every CIDR's end (none
    // past the family's last address).
    let mut bounds: Vec<u128> = nets
        .iter()
        .flat_map(|&(start, end, _)| [Some(start), end.checked_add(1)])
        .flatten()
        .collect();
    bounds.sort_unstable();
    bounds.dedup();
    // Sweep: the CIDRs covering the current interval, lowest pool first; a CIDR that ended is
    // dropped once it reaches the top.
    let mut covering: BinaryHeap<Reverse<(u32, u128)>> = BinaryHeap::new();
    let mut next = 0;
    let mut ranges: Vec<Range> = Vec::new();
    for (i, &lo) in bounds.iter().enumerate() {
        let end = bounds.get(i + 1).map_or(u128::MAX, |hi| hi - 1);
        while let Some(&(_, end, rule)) = nets.get(next).filter(|n| n.0 == lo) {
            covering.push(Reverse((rule, end)));
            next += 1;
        }
        while covering.peek().is_some_and(|Reverse((_, end))| *end < lo) {
            covering.pop();
        }
        let Some(&Reverse((rule, _))) = covering.peek() else {
            continue;
        };
        match ranges.last_mut() {
            Some(last) if last.rule == rule && last.end.checked_add(1) == Some(lo) => {
                last.end = end
            }
            _ => ranges.push(Range { start: lo, end, rule }),
        }
    }
    ranges
}

impl Pools {
    /// Compiles `pools` (in the configuration's order: the first pool containing an IP owns it).
    /// O(n log n) in the number of CIDRs.
    pub fn new(pools: &[Pool]) -> Pools {
        let rules: Vec<PoolRule> =
            pools.iter().enumerate().map(|(i, p)| PoolRule::new(i, p)).collect();
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for (i, pool) in pools.iter().enumerate() {
            for net in &pool.cidrs {
                let range = (key(net.network()), key(net.broadcast()), i as u32);
                match net {
                    IpNet::V4(_) => v4.push(range),
                    IpNet::V6(_) => v6.push(range),
                }
            }
        }
        Pools { rules, v4: compile(v4), v6: compile(v6) }
    }

    /// The pool `ip` belongs to: the first in the configuration that contains it.
    pub fn find(&self, ip: IpAddr) -> Option<&PoolRule> {
        let ranges = if ip.is_ipv4() { &self.v4 } else { &self.v6 };
        let ip = key(ip);
        let after = ranges.partition_point(|r| r.start <= ip);
        let range = ranges[..after].last().filter(|r| ip <= r.end)?;
        self.rules.get(range.rule as usize)
    }

    /// Whether `ip` is in any pool.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.find(ip).is_some()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The pools in the configuration's order.
    pub fn rules(&self) -> &[PoolRule] {
        &self.rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_cidr;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn pool(name: &str, cidrs: &[&str]) -> Pool {
        Pool {
            name: name.into(),
            cidrs: cidrs.iter().map(|c| parse_cidr(c).unwrap()).collect(),
            ..Pool::default()
        }
    }

    fn owner<'a>(pools: &'a Pools, ip: &str) -> Option<&'a str> {
        pools.find(ip.parse().unwrap()).map(|p| &*p.name)
    }

    /// The rule of the configuration: the first pool with a CIDR containing the IP.
    fn first_containing(pools: &[Pool], ip: IpAddr) -> Option<&str> {
        pools.iter().find(|p| p.contains(ip)).map(|p| p.name.as_str())
    }

    #[test]
    fn the_first_pool_listed_owns_an_overlap() {
        let pools = Pools::new(&[
            pool("small", &["192.0.2.16/28"]),
            pool("big", &["192.0.2.0/24", "198.51.100.7"]),
            pool("all", &["0.0.0.0/0"]),
            pool("shadowed", &["192.0.2.20/30"]),
        ]);
        assert_eq!(owner(&pools, "192.0.2.15"), Some("big"));
        assert_eq!(owner(&pools, "192.0.2.16"), Some("small"));
        assert_eq!(owner(&pools, "192.0.2.21"), Some("small"));
        assert_eq!(owner(&pools, "192.0.2.31"), Some("small"));
        assert_eq!(owner(&pools, "192.0.2.32"), Some("big"));
        assert_eq!(owner(&pools, "198.51.100.7"), Some("big"));
        assert_eq!(owner(&pools, "198.51.100.8"), Some("all"));
        assert_eq!(owner(&pools, "0.0.0.0"), Some("all"));
        assert_eq!(owner(&pools, "255.255.255.255"), Some("all"));
        assert_eq!(pools.find("192.0.2.16".parse().unwrap()).unwrap().index, 0);
    }

    #[test]
    fn no_pools_contain_nothing() {
        let pools = Pools::new(&[]);
        assert!(pools.is_empty());
        assert!(!pools.contains(Ipv4Addr::new(192, 0, 2, 1).into()));
        let pools = Pools::new(&[pool("top", &["255.255.255.255"])]);
        assert!(pools.contains(Ipv4Addr::BROADCAST.into()));
        assert!(!pools.contains(Ipv4Addr::new(255, 255, 255, 254).into()));
        let pools = Pools::new(&[pool("top6", &["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"])]);
        assert!(pools.contains(Ipv6Addr::from(u128::MAX).into()));
        assert!(!pools.contains(Ipv6Addr::from(u128::MAX - 1).into()));
    }

    #[test]
    fn lookups_agree_with_a_scan_of_the_pools_in_order() {
        // Nested, overlapping, adjacent and repeated CIDRs over a small address space.
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..200 {
            let config: Vec<Pool> = (0..1 + next() % 6)
                .map(|i| {
                    let cidrs: Vec<String> = (0..1 + next() % 3)
                        .map(|_| {
                            let len = 24 + next() % 9;
                            format!("10.0.0.{}/{len}", next() % 256)
                        })
                        .collect();
                    let cidrs: Vec<&str> = cidrs.iter().map(String::as_str).collect();
                    pool(&format!("p{i}"), &cidrs)
                })
                .collect();
            let pools = Pools::new(&config);
            for host in 0..=256u32 {
                let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)) + host);
                let found = pools.find(ip.into()).map(|p| &*p.name);
                assert_eq!(found, first_containing(&config, ip.into()), "{ip} in {config:?}");
            }
        }
    }

    #[test]
    fn ipv4_and_ipv6_pools_never_contain_the_other_family() {
        let pools = Pools::new(&[
            pool("every-v6", &["::/0"]),
            pool("vips6", &["2001:db8::100/120"]),
            pool("every-v4", &["0.0.0.0/0"]),
        ]);
        assert_eq!(owner(&pools, "2001:db8::1ff"), Some("every-v6"));
        assert_eq!(owner(&pools, "::ffff:192.0.2.1"), Some("every-v6"));
        assert_eq!(owner(&pools, "192.0.2.1"), Some("every-v4"));
        let pools = Pools::new(&[pool("vips6", &["2001:db8::100/120", "2001:db8:1::7"])]);
        assert_eq!(owner(&pools, "2001:db8::100"), Some("vips6"));
        assert_eq!(owner(&pools, "2001:db8::1ff"), Some("vips6"));
        assert_eq!(owner(&pools, "2001:db8::200"), None);
        assert_eq!(owner(&pools, "2001:db8:1::7"), Some("vips6"));
        assert_eq!(owner(&pools, "0.0.1.0"), None);
    }

    #[test]
    fn allowed_macs_are_found_in_any_order_they_were_listed() {
        let mut vips = pool("vips", &["192.0.2.0/28"]);
        vips.macs = ["02:00:00:00:00:09", "02:00:00:00:00:01", "02:00:00:00:00:05"]
            .iter()
            .map(|m| m.parse().unwrap())
            .collect();
        let pools = Pools::new(&[vips]);
        let rule = pools.find(Ipv4Addr::new(192, 0, 2, 1).into()).unwrap();
        for (mac, allowed) in [
            ("02:00:00:00:00:01", true),
            ("02:00:00:00:00:05", true),
            ("02:00:00:00:00:09", true),
            ("02:00:00:00:00:02", false),
        ] {
            assert_eq!(rule.allows_mac(mac.parse().unwrap()), allowed, "{mac}");
        }
    }

    #[test]
    fn ten_thousand_pools_compile_and_find() {
        let config: Vec<Pool> = (0..10_000u32)
            .map(|i| {
                let net = format!("{}/30", Ipv4Addr::from(0x0a00_0000 + i * 4));
                pool(&format!("p{i}"), &[&net])
            })
            .collect();
        let pools = Pools::new(&config);
        assert_eq!(pools.rules().len(), 10_000);
        assert_eq!(owner(&pools, "10.0.0.5"), Some("p1"));
        assert_eq!(owner(&pools, "10.0.156.63"), Some("p9999"));
        assert_eq!(owner(&pools, "10.0.156.64"), None);
    }
}
