//! Cluster context: what the Kubernetes API says about the MACs and the IPs the engine sees,
//! as plain data. The shell watches the API (Nodes, LoadBalancer Services, the arpwatch Leases,
//! MetalLB's `IPAddressPool`, `L2Advertisement` and `ServiceL2Status`, kube-vip's `vipHost`
//! annotation), copies what matters into [`ClusterInputs`] and builds a [`ClusterSnapshot`]
//! from it; the annotator ([`crate::enrich::Annotator`]) and the engine read the snapshot, never
//! the API. Nothing here does I/O or knows a Kubernetes type.
//!
//! **Which node a MAC belongs to** is merged from three sources, the first that knows it wins:
//! 1. this host's own interfaces (`local`, [`MacSource::Local`]);
//! 2. a *fresh* arpwatch Lease ([`MacSource::Lease`]): the inventory another node's arpwatch
//!    publishes, renewed within its `leaseDurationSeconds`; two fresh Leases naming one MAC are
//!    settled by the later renewal;
//! 3. passive learning ([`MacSource::Learned`]): a Node's InternalIP/ExternalIP seen on the
//!    wire with this MAC. It lives in the annotator (it changes with every frame, the snapshot
//!    does not), which asks the snapshot first;
//! 4. a *stale* Lease (not renewed in time: that node's arpwatch is gone, its NICs most likely
//!    are not), flagged `stale`.
//!
//! A host's own links are facts; a fresh Lease is another arpwatch's report of its own links,
//! with interface names; learning knows only the node, from one frame, and a Node's address can
//! be answered by a proxy or an impostor, so it yields to a Lease, but it is current evidence
//! and beats a Lease nobody renews any more.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Subnets, Ipv6Subnets};

use crate::config::Pool;
use crate::observation::{MacAddr, Timestamp};

/// A Node: its name, labels and `status.addresses` (InternalIP and ExternalIP).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: Arc<str>,
    pub labels: BTreeMap<String, String>,
    pub addresses: Vec<IpAddr>,
}

/// One arpwatch Lease: the interfaces (name, MAC) a node's arpwatch published, and when it
/// last renewed the Lease for how long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inventory {
    pub node: Arc<str>,
    pub interfaces: Vec<(Arc<str>, MacAddr)>,
    pub renewed: Timestamp,
    pub duration: Duration,
}

/// A LoadBalancer Service: its ingress IPs and kube-vip's `kube-vip.io/vipHost` annotation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceInfo {
    pub namespace: String,
    pub name: String,
    pub ingress_ips: Vec<IpAddr>,
    pub vip_host: Option<Arc<str>>,
}

/// A Kubernetes label selector (`matchLabels` and `matchExpressions`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
    pub match_expressions: Vec<LabelRequirement>,
}

/// One `matchExpressions` entry: `operator` is `In`, `NotIn`, `Exists` or `DoesNotExist`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelRequirement {
    pub key: String,
    pub operator: String,
    pub values: Vec<String>,
}

/// A MetalLB `IPAddressPool`: `addresses` as its `spec.addresses` writes them, CIDRs or `A-B`
/// ranges, IPv4 and IPv6.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressPool {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub addresses: Vec<String>,
}

/// A MetalLB `L2Advertisement`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct L2Advertisement {
    pub name: String,
    pub pools: Vec<String>,
    pub pool_selectors: Vec<LabelSelector>,
    pub node_selectors: Vec<LabelSelector>,
    pub interfaces: Vec<String>,
}

/// The `.status` of a MetalLB `ServiceL2Status`: the node announcing a Service, on which
/// interfaces (empty: any).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct L2Status {
    pub node: Arc<str>,
    pub service_namespace: String,
    pub service_name: String,
    pub interfaces: Vec<Arc<str>>,
}

/// Everything the snapshot is built from, copied out of the API objects by the shell.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterInputs {
    pub nodes: Vec<NodeInfo>,
    pub inventories: Vec<Inventory>,
    pub services: Vec<ServiceInfo>,
    pub pools: Vec<AddressPool>,
    pub l2_advertisements: Vec<L2Advertisement>,
    pub l2_statuses: Vec<L2Status>,
    /// Which sources the API had (MetalLB CRDs may be absent): for the log line and metrics.
    pub metallb: bool,
}

/// Where the name of a MAC's node comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MacSource {
    /// This host's own interfaces.
    Local,
    /// An arpwatch Lease.
    Lease,
    /// A Node's address seen on the wire with this MAC.
    Learned,
}

impl MacSource {
    pub fn as_str(self) -> &'static str {
        match self {
            MacSource::Local => "local",
            MacSource::Lease => "lease",
            MacSource::Learned => "learned",
        }
    }
}

/// The node a MAC belongs to, and on which of its interfaces when that was published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MacOwner {
    pub node: Arc<str>,
    pub iface: Option<Arc<str>>,
    pub source: MacSource,
    /// From a Lease that is no longer renewed.
    pub stale: bool,
}

/// Who declares an announcer for a VIP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AnnouncerSource {
    /// A MetalLB `ServiceL2Status`.
    MetalLb,
    /// kube-vip's `kube-vip.io/vipHost` annotation.
    KubeVip,
}

impl AnnouncerSource {
    /// The name on the wire: `metallb` or `kube-vip`.
    pub fn as_str(self) -> &'static str {
        match self {
            AnnouncerSource::MetalLb => "metallb",
            AnnouncerSource::KubeVip => "kube-vip",
        }
    }
}

/// The node declared to announce a VIP, on which interfaces (empty: any).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announcer {
    pub node: Arc<str>,
    pub interfaces: Vec<Arc<str>>,
    pub source: AnnouncerSource,
}

/// What a declared announcer allows on the wire: the announcer node's MACs on the declared
/// interfaces (all its MACs if none are declared).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Declaration {
    pub announcer: Announcer,
    pub macs: Vec<MacAddr>,
}

/// The name of the pool of the LoadBalancer VIPs that no MetalLB pool announced by an
/// L2Advertisement covers (kube-vip, Cilium, MetalLB pools without L2Advertisement, ...).
pub const SERVICES_POOL: &str = "kubernetes-services";

/// The prefix of the pools made from MetalLB's `IPAddressPool`s: `metallb/<name>`.
pub const METALLB_POOL_PREFIX: &str = "metallb/";

/// A MetalLB pool as announced by its L2Advertisements: its CIDRs, and per advertisement the
/// nodes it may be announced from and on which interfaces.
#[derive(Clone, Debug)]
struct AnnouncedPool {
    name: String,
    cidrs: Vec<IpNet>,
    /// (nodes allowed, interfaces allowed; empty: any), one per L2Advertisement selecting it.
    grants: Vec<(Vec<Arc<str>>, Vec<String>)>,
}

/// What the annotator and the engine read: built from [`ClusterInputs`], never from the API
/// directly. Immutable once built (but for [`set_stale`](Self::set_stale)); the shell builds a
/// new one when the inputs change and hands it over as an `Arc`.
#[derive(Clone, Debug, Default)]
pub struct ClusterSnapshot {
    built: Timestamp,
    stale: bool,
    metallb: bool,
    /// How many Nodes the inputs had (for [`summary`](Self::summary)).
    nodes: usize,
    /// Local and Lease sources, merged by the precedence of the module doc.
    macs: HashMap<MacAddr, MacOwner>,
    /// Per node, its MACs with their interface names, from `local` and the Leases (stale ones
    /// included): what pools and declarations allow.
    node_macs: BTreeMap<Arc<str>, Vec<(Arc<str>, MacAddr)>>,
    addresses: HashMap<IpAddr, Arc<str>>,
    services: HashMap<IpAddr, Vec<Arc<str>>>,
    announcers: BTreeMap<IpAddr, Announcer>,
    announced_pools: Vec<AnnouncedPool>,
    /// LoadBalancer VIPs outside every announced MetalLB pool.
    other_vips: BTreeSet<IpAddr>,
    warnings: Vec<String>,
}

impl ClusterSnapshot {
    /// The snapshot of `inputs` at `now`; `local` is this host's own inventory (this node's
    /// interfaces), which takes precedence over every Lease.
    pub fn build(inputs: &ClusterInputs, local: Option<&Inventory>, now: Timestamp) -> Self {
        let mut snap =
            ClusterSnapshot { built: now, metallb: inputs.metallb, ..Default::default() };
        snap.nodes = inputs.nodes.len();
        snap.merge_macs(inputs, local, now);
        for node in &inputs.nodes {
            for ip in &node.addresses {
                snap.addresses.entry(*ip).or_insert_with(|| node.name.clone());
            }
        }
        for svc in &inputs.services {
            let name: Arc<str> = format!("{}/{}", svc.namespace, svc.name).into();
            for ip in &svc.ingress_ips {
                snap.services.entry(*ip).or_default().push(name.clone());
            }
        }
        for names in snap.services.values_mut() {
            names.sort();
            names.dedup();
        }
        snap.find_announcers(inputs);
        snap.announce_pools(inputs);
        snap
    }

    fn merge_macs(&mut self, inputs: &ClusterInputs, local: Option<&Inventory>, now: Timestamp) {
        // Rank: lower wins. Local 0, fresh Lease 1, stale Lease 2; then the later renewal.
        let mut ranked: HashMap<MacAddr, ((u8, std::cmp::Reverse<Timestamp>), MacOwner)> =
            HashMap::new();
        let sources = local
            .map(|inv| (inv, MacSource::Local))
            .into_iter()
            .chain(inputs.inventories.iter().map(|inv| (inv, MacSource::Lease)));
        for (inv, source) in sources {
            let stale =
                source == MacSource::Lease && inv.renewed.saturating_add(inv.duration) < now;
            let rank = match (source, stale) {
                (MacSource::Local, _) => 0,
                (_, false) => 1,
                (_, true) => 2,
            };
            let mine = self.node_macs.entry(inv.node.clone()).or_default();
            for (iface, mac) in &inv.interfaces {
                if mac.is_zero() || mac.is_multicast() {
                    continue;
                }
                if !mine.contains(&(iface.clone(), *mac)) {
                    mine.push((iface.clone(), *mac));
                }
                let key = (rank, std::cmp::Reverse(inv.renewed));
                let owner =
                    MacOwner { node: inv.node.clone(), iface: Some(iface.clone()), source, stale };
                match ranked.get(mac) {
                    Some((best, _)) if *best <= key => {}
                    _ => {
                        ranked.insert(*mac, (key, owner));
                    }
                }
            }
        }
        self.macs = ranked.into_iter().map(|(mac, (_, owner))| (mac, owner)).collect();
    }

    /// MetalLB's ServiceL2Status first; kube-vip's `vipHost` for the VIPs MetalLB says nothing
    /// about. Several statuses for one VIP (a VIP shared by Services): the first node by name.
    fn find_announcers(&mut self, inputs: &ClusterInputs) {
        let mut by_service: HashMap<(&str, &str), Vec<&IpAddr>> = HashMap::new();
        for svc in &inputs.services {
            by_service
                .entry((svc.namespace.as_str(), svc.name.as_str()))
                .or_default()
                .extend(&svc.ingress_ips);
        }
        let mut statuses: Vec<&L2Status> = inputs.l2_statuses.iter().collect();
        statuses.sort_by(|a, b| a.node.cmp(&b.node));
        for status in statuses {
            let key = (status.service_namespace.as_str(), status.service_name.as_str());
            for ip in by_service.get(&key).into_iter().flatten() {
                self.announcers.entry(**ip).or_insert_with(|| Announcer {
                    node: status.node.clone(),
                    interfaces: status.interfaces.clone(),
                    source: AnnouncerSource::MetalLb,
                });
            }
        }
        let mut kube_vip: Vec<&ServiceInfo> =
            inputs.services.iter().filter(|s| s.vip_host.is_some()).collect();
        kube_vip.sort_by(|a, b| a.vip_host.cmp(&b.vip_host));
        for svc in kube_vip {
            let Some(host) = &svc.vip_host else { continue };
            for ip in &svc.ingress_ips {
                self.announcers.entry(*ip).or_insert_with(|| Announcer {
                    node: host.clone(),
                    interfaces: Vec::new(),
                    source: AnnouncerSource::KubeVip,
                });
            }
        }
    }

    fn announce_pools(&mut self, inputs: &ClusterInputs) {
        let all_nodes: Vec<Arc<str>> = inputs.nodes.iter().map(|n| n.name.clone()).collect();
        let mut pools: Vec<AnnouncedPool> = Vec::new();
        for pool in &inputs.pools {
            let mut cidrs = Vec::new();
            for text in &pool.addresses {
                match parse_addresses(text) {
                    Some(nets) => cidrs.extend(nets),
                    None => self.warnings.push(format!(
                        "IPAddressPool {}: {text:?} is neither a CIDR nor a range A-B",
                        pool.name
                    )),
                }
            }
            let mut grants = Vec::new();
            for adv in &inputs.l2_advertisements {
                let selected = (adv.pools.is_empty() && adv.pool_selectors.is_empty())
                    || adv.pools.contains(&pool.name)
                    || adv.pool_selectors.iter().any(|sel| sel.matches(&pool.labels));
                if !selected {
                    continue;
                }
                let nodes = if adv.node_selectors.is_empty() {
                    all_nodes.clone()
                } else {
                    inputs
                        .nodes
                        .iter()
                        .filter(|n| adv.node_selectors.iter().any(|sel| sel.matches(&n.labels)))
                        .map(|n| n.name.clone())
                        .collect()
                };
                grants.push((nodes, adv.interfaces.clone()));
            }
            if grants.is_empty() || cidrs.is_empty() {
                continue;
            }
            pools.push(AnnouncedPool {
                name: format!("{METALLB_POOL_PREFIX}{}", pool.name),
                cidrs,
                grants,
            });
        }
        pools.sort_by(|a, b| a.name.cmp(&b.name));
        self.other_vips = self
            .services
            .keys()
            .filter(|ip| !pools.iter().any(|p| p.cidrs.iter().any(|net| net.contains(*ip))))
            .copied()
            .collect();
        self.announced_pools = pools;
    }

    /// The node owning `mac`, merged from this host's interfaces and the Leases (a stale Lease
    /// flagged). Passive learning is the annotator's ([`crate::enrich::Annotator::mac_owner`]).
    pub fn mac_owner(&self, mac: MacAddr) -> Option<&MacOwner> {
        self.macs.get(&mac)
    }

    /// The Node whose InternalIP or ExternalIP `ip` is.
    pub fn node_of_address(&self, ip: IpAddr) -> Option<&Arc<str>> {
        self.addresses.get(&ip)
    }

    /// The LoadBalancer Services with `ip` as an ingress IP, as "namespace/name", sorted.
    pub fn services(&self, ip: IpAddr) -> &[Arc<str>] {
        self.services.get(&ip).map_or(&[], Vec::as_slice)
    }

    /// The declared announcer of `ip`: MetalLB's ServiceL2Status, else kube-vip's `vipHost`.
    pub fn announcer(&self, ip: IpAddr) -> Option<&Announcer> {
        self.announcers.get(&ip)
    }

    /// Pools the engine should watch from the cluster: one per MetalLB IPAddressPool that an
    /// L2Advertisement announces, named `metallb/<pool>` (interfaces from the advertisements'
    /// `interfaces`, allowed MACs = MACs of the nodes their node selectors allow, on those
    /// interfaces when the node's inventory names them), plus [`SERVICES_POOL`] with the
    /// LoadBalancer VIPs in none of those (allowed MACs: every known node MAC). A pool with no
    /// node MAC known allows any MAC. Same as [`pools_with`](Self::pools_with) with nothing
    /// learned.
    pub fn pools(&self) -> Vec<Pool> {
        self.pools_with(&[])
    }

    /// [`pools`](Self::pools), counting MACs passively learned (MAC, node) as the annotator has
    /// them ([`crate::enrich::Annotator::learned`]): those of a node without inventory are
    /// allowed wherever the node is.
    pub fn pools_with(&self, learned: &[(MacAddr, Arc<str>)]) -> Vec<Pool> {
        let mut out = Vec::new();
        for pool in &self.announced_pools {
            // Every MAC of an announcing node may answer; one on an interface no advertisement
            // names is that node answering where it should not, which the engine reports as
            // `unexpected_interface` (judged by the node's interface, not the observer's).
            let mut macs = Vec::new();
            let mut placed = Vec::new();
            let mut node_interfaces: Vec<String> = Vec::new();
            let mut any_iface = false;
            for (nodes, ifaces) in &pool.grants {
                any_iface |= ifaces.is_empty();
                for iface in ifaces {
                    if !node_interfaces.contains(iface) {
                        node_interfaces.push(iface.clone());
                    }
                }
                for node in nodes {
                    let allowed: Vec<&str> = ifaces.iter().map(String::as_str).collect();
                    macs.extend(self.macs_of(node, &[], learned));
                    placed.extend(self.macs_of(node, &allowed, learned));
                }
            }
            if any_iface {
                node_interfaces.clear();
                placed.clone_from(&macs);
            }
            macs.sort_unstable();
            macs.dedup();
            let misplaced_macs: Vec<MacAddr> =
                macs.iter().copied().filter(|m| !placed.contains(m)).collect();
            out.push(Pool {
                name: pool.name.clone(),
                cidrs: pool.cidrs.clone(),
                interfaces: Vec::new(),
                macs,
                node_interfaces,
                misplaced_macs,
            });
        }
        if !self.other_vips.is_empty() {
            let mut macs: Vec<MacAddr> = self
                .node_macs
                .values()
                .flatten()
                .map(|(_, mac)| *mac)
                .chain(learned.iter().map(|(mac, _)| *mac))
                .collect();
            macs.sort_unstable();
            macs.dedup();
            out.push(Pool {
                name: SERVICES_POOL.to_owned(),
                cidrs: self.other_vips.iter().map(|ip| IpNet::from(*ip)).collect(),
                macs,
                ..Pool::default()
            });
        }
        out
    }

    /// The MACs of `node` on `ifaces` (empty: all of them). A MAC only learned (interface
    /// unknown) counts when the node published no inventory.
    fn macs_of<'a>(
        &'a self,
        node: &'a Arc<str>,
        ifaces: &'a [&str],
        learned: &'a [(MacAddr, Arc<str>)],
    ) -> impl Iterator<Item = MacAddr> + 'a {
        let published = self.node_macs.get(node);
        let on_iface = published
            .into_iter()
            .flatten()
            .filter(move |(iface, _)| ifaces.is_empty() || ifaces.contains(&&**iface))
            .map(|(_, mac)| *mac);
        let guessed = learned
            .iter()
            .filter(move |(_, n)| published.is_none_or(Vec::is_empty) && n == node)
            .map(|(mac, _)| *mac);
        on_iface.chain(guessed)
    }

    /// For `announcer_mismatch`: per VIP with a declared announcer, what the declaration allows
    /// (the announcer node's MACs on the declared interfaces, all of its MACs if none are
    /// declared; empty when none is known, and then only silence can be judged). Sorted by IP.
    pub fn declarations(&self) -> Vec<(IpAddr, Declaration)> {
        self.declarations_with(&[])
    }

    /// [`declarations`](Self::declarations), counting passively learned MACs as
    /// [`pools_with`](Self::pools_with) does.
    pub fn declarations_with(&self, learned: &[(MacAddr, Arc<str>)]) -> Vec<(IpAddr, Declaration)> {
        self.announcers
            .iter()
            .map(|(ip, announcer)| {
                let ifaces: Vec<&str> = announcer.interfaces.iter().map(|s| &**s).collect();
                let mut macs: Vec<MacAddr> =
                    self.macs_of(&announcer.node, &ifaces, learned).collect();
                macs.sort_unstable();
                macs.dedup();
                (*ip, Declaration { announcer: announcer.clone(), macs })
            })
            .collect()
    }

    /// When it was built.
    pub fn built(&self) -> Timestamp {
        self.built
    }

    /// Whether MetalLB's resources were among the inputs.
    pub fn metallb(&self) -> bool {
        self.metallb
    }

    /// Whether the shell marked it stale (the API unreachable past its freshness limit): the
    /// annotator then writes `context: "stale"` and no cluster field.
    pub fn is_stale(&self) -> bool {
        self.stale
    }

    /// Marks it stale (or fresh again).
    pub fn set_stale(&mut self, stale: bool) {
        self.stale = stale;
    }

    /// What in the inputs could not be used (an address of a pool that is neither a CIDR nor a
    /// range), one sentence each, for the shell to log.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Whether any node MAC is known (from `local` or a Lease).
    pub fn knows_macs(&self) -> bool {
        !self.macs.is_empty()
    }

    /// Every node with a published inventory (local or Lease), with its MACs: for metrics and
    /// logs.
    pub fn inventories(&self) -> impl Iterator<Item = (&Arc<str>, &[(Arc<str>, MacAddr)])> {
        self.node_macs.iter().map(|(node, macs)| (node, macs.as_slice()))
    }

    /// What it holds, counted: for the shell's log.
    pub fn summary(&self) -> SnapshotSummary {
        SnapshotSummary {
            nodes: self.nodes,
            services: self.service_names().len(),
            inventories: self.node_macs.len(),
            pools: self.pool_names().len(),
            declarations: self.announcers.len(),
            stale: self.stale,
        }
    }

    /// What differs from `before` (the snapshot in use until now), one short phrase each, for
    /// the shell's log: Services, inventories and pools that came (`+`) or went (`-`), an
    /// inventory whose interfaces changed or whose Lease went stale or fresh, a VIP's declared
    /// announcer, the node count, the whole snapshot going stale or fresh. Empty when nothing of
    /// that changed (a rebuild for the Leases' renewals).
    pub fn changes_since(&self, before: &ClusterSnapshot) -> Vec<String> {
        let mut out = Vec::new();
        if before.stale != self.stale {
            out.push(if self.stale { "stale" } else { "fresh again" }.to_owned());
        }
        if before.nodes != self.nodes {
            out.push(format!("nodes {} -> {}", before.nodes, self.nodes));
        }
        came_and_went(&mut out, "service", &before.service_names(), &self.service_names());
        let (was, is) = (before.stale_inventories(), self.stale_inventories());
        for (node, macs) in &self.node_macs {
            match before.node_macs.get(node) {
                None => out.push(format!("+inventory {node}")),
                Some(old) if old != macs => out.push(format!("inventory {node} changed")),
                Some(_) => {}
            }
            match (was.contains(&**node), is.contains(&**node)) {
                (false, true) => out.push(format!("inventory {node} stale")),
                (true, false) => out.push(format!("inventory {node} fresh again")),
                _ => {}
            }
        }
        for node in before.node_macs.keys().filter(|n| !self.node_macs.contains_key(*n)) {
            out.push(format!("-inventory {node}"));
        }
        came_and_went(&mut out, "pool", &before.pool_names(), &self.pool_names());
        let ips: BTreeSet<&IpAddr> =
            before.announcers.keys().chain(self.announcers.keys()).collect();
        for ip in ips {
            match (before.announcers.get(ip), self.announcers.get(ip)) {
                (None, Some(now)) => out.push(format!("+announcer {ip}: {now}")),
                (Some(old), None) => out.push(format!("-announcer {ip}: {old}")),
                (Some(old), Some(now)) if old != now => {
                    out.push(format!("announcer {ip}: {old} -> {now}"))
                }
                _ => {}
            }
        }
        out
    }

    /// The Services with an ingress IP, as "namespace/name".
    fn service_names(&self) -> BTreeSet<&str> {
        self.services.values().flatten().map(|name| &**name).collect()
    }

    /// The names of the pools [`pools`](Self::pools) makes.
    fn pool_names(&self) -> BTreeSet<&str> {
        let services = (!self.other_vips.is_empty()).then_some(SERVICES_POOL);
        self.announced_pools.iter().map(|p| p.name.as_str()).chain(services).collect()
    }

    /// The nodes named as the owner of some MAC by a stale Lease only.
    fn stale_inventories(&self) -> BTreeSet<&str> {
        self.macs.values().filter(|owner| owner.stale).map(|owner| &*owner.node).collect()
    }
}

/// The phrases `+<what> <name>` for the names in `now` only, `-<what> <name>` for those in
/// `before` only.
fn came_and_went(out: &mut Vec<String>, what: &str, before: &BTreeSet<&str>, now: &BTreeSet<&str>) {
    out.extend(now.difference(before).map(|name| format!("+{what} {name}")));
    out.extend(before.difference(now).map(|name| format!("-{what} {name}")));
}

/// A [`ClusterSnapshot`] counted ([`ClusterSnapshot::summary`]): the Nodes, the Services with
/// an ingress IP, the inventories (this host's and the Leases'), the pools the engine is given
/// and the VIPs with a declared announcer. Displayed as `3 nodes, 2 services, 3 inventories,
/// 1 pools, 1 declarations` (`, stale` when it is).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotSummary {
    pub nodes: usize,
    pub services: usize,
    pub inventories: usize,
    pub pools: usize,
    pub declarations: usize,
    pub stale: bool,
}

impl fmt::Display for SnapshotSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let SnapshotSummary { nodes, services, inventories, pools, declarations, stale } = self;
        write!(
            f,
            "{nodes} nodes, {services} services, {inventories} inventories, {pools} pools, \
             {declarations} declarations"
        )?;
        if *stale {
            f.write_str(", stale")?;
        }
        Ok(())
    }
}

/// `node-a on eth0 (metallb)`; `node-a (kube-vip)` when any interface may announce.
impl fmt::Display for Announcer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.node)?;
        if !self.interfaces.is_empty() {
            let names: Vec<&str> = self.interfaces.iter().map(|i| &**i).collect();
            write!(f, " on {}", names.join(","))?;
        }
        write!(f, " ({})", self.source.as_str())
    }
}

/// One entry of an IPAddressPool's `addresses`: a CIDR (host bits cleared, as MetalLB takes
/// them), a range `A-B` of one family (as the fewest CIDRs covering it), or a single address.
pub fn parse_addresses(text: &str) -> Option<Vec<IpNet>> {
    let text = text.trim();
    if let Some((a, b)) = text.split_once('-') {
        let (a, b) = (IpAddr::from_str(a.trim()).ok()?, IpAddr::from_str(b.trim()).ok()?);
        return match (a, b) {
            (IpAddr::V4(a), IpAddr::V4(b)) if a <= b => {
                Some(Ipv4Subnets::new(a, b, 0).map(IpNet::V4).collect())
            }
            (IpAddr::V6(a), IpAddr::V6(b)) if a <= b => {
                Some(Ipv6Subnets::new(a, b, 0).map(IpNet::V6).collect())
            }
            _ => None,
        };
    }
    if let Ok(net) = IpNet::from_str(text) {
        return Some(vec![net.trunc()]);
    }
    IpAddr::from_str(text).ok().map(|ip| vec![IpNet::from(ip)])
}

impl LabelSelector {
    /// Whether `labels` satisfy the selector, as Kubernetes defines it: every `matchLabels` pair
    /// and every requirement (ANDed); an empty selector matches everything. An operator
    /// Kubernetes does not know matches nothing.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|req| req.matches(labels))
    }
}

impl LabelRequirement {
    /// `In`: the label is set to one of `values`; `NotIn`: it is not set, or not to one of them;
    /// `Exists`; `DoesNotExist`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator.as_str() {
            "In" => value.is_some_and(|v| self.values.contains(v)),
            "NotIn" => value.is_none_or(|v| !self.values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(last: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, last])
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn node(name: &str, addr: &str, pairs: &[(&str, &str)]) -> NodeInfo {
        NodeInfo { name: name.into(), labels: labels(pairs), addresses: vec![ip(addr)] }
    }

    fn inventory(node: &str, ifaces: &[(&str, u8)], renewed: u64) -> Inventory {
        Inventory {
            node: node.into(),
            interfaces: ifaces.iter().map(|(i, m)| (Arc::from(*i), mac(*m))).collect(),
            renewed: Timestamp::from_secs(renewed),
            duration: Duration::from_secs(60),
        }
    }

    fn service(ns: &str, name: &str, ips: &[&str]) -> ServiceInfo {
        ServiceInfo {
            namespace: ns.into(),
            name: name.into(),
            ingress_ips: ips.iter().map(|s| ip(s)).collect(),
            vip_host: None,
        }
    }

    const NOW: Timestamp = Timestamp::from_secs(1_000);

    /// Three nodes a, b, c; a is this host, b publishes a fresh Lease, c a stale one.
    fn three_nodes() -> ClusterInputs {
        ClusterInputs {
            nodes: vec![
                node("a", "192.0.2.1", &[("zone", "x")]),
                node("b", "192.0.2.2", &[("zone", "y")]),
                node("c", "2001:db8::3", &[("zone", "y"), ("edge", "")]),
            ],
            inventories: vec![
                inventory("a", &[("eth0", 0xa0)], 990),
                inventory("b", &[("eth0", 0xb0), ("eth1", 0xb1)], 990),
                inventory("c", &[("eth0", 0xc0)], 900),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn local_beats_leases_and_a_stale_lease_is_kept_but_flagged() {
        let mut inputs = three_nodes();
        // b's Lease also claims a's MAC (a cloned VM, say) and c's stale one b's MAC.
        inputs.inventories[1].interfaces.push(("eth9".into(), mac(0xa0)));
        inputs.inventories[2].interfaces.push(("eth9".into(), mac(0xb1)));
        let local = inventory("a", &[("eth0", 0xa0), ("eth1", 0xa1)], 0);
        let snap = ClusterSnapshot::build(&inputs, Some(&local), NOW);

        let a = snap.mac_owner(mac(0xa0)).unwrap();
        assert_eq!((&*a.node, a.iface.as_deref(), a.source), ("a", Some("eth0"), MacSource::Local));
        // Only this host knows its second NIC, from its own links.
        assert_eq!(snap.mac_owner(mac(0xa1)).unwrap().source, MacSource::Local);
        let b1 = snap.mac_owner(mac(0xb1)).unwrap();
        assert_eq!((&*b1.node, b1.iface.as_deref(), b1.stale), ("b", Some("eth1"), false));
        let c = snap.mac_owner(mac(0xc0)).unwrap();
        assert_eq!((&*c.node, c.source, c.stale), ("c", MacSource::Lease, true));
        assert_eq!(snap.mac_owner(mac(0xee)), None);
    }

    #[test]
    fn two_fresh_leases_for_one_mac_the_later_renewal_wins() {
        let mut inputs = three_nodes();
        inputs.inventories.push(inventory("d", &[("eth0", 0xb0)], 995));
        let snap = ClusterSnapshot::build(&inputs, None, NOW);
        assert_eq!(&*snap.mac_owner(mac(0xb0)).unwrap().node, "d");
        // Without a local inventory, a's own Lease names its MAC.
        assert_eq!(snap.mac_owner(mac(0xa0)).unwrap().source, MacSource::Lease);
    }

    #[test]
    fn node_addresses_and_shared_vips() {
        let mut inputs = three_nodes();
        inputs.services = vec![
            service("web", "b", &["192.0.2.240"]),
            service("web", "a", &["192.0.2.240", "2001:db8::240"]),
            service("db", "z", &["192.0.2.241"]),
        ];
        let snap = ClusterSnapshot::build(&inputs, None, NOW);
        assert_eq!(snap.node_of_address(ip("192.0.2.2")).map(|n| &**n), Some("b"));
        assert_eq!(snap.node_of_address(ip("2001:db8::3")).map(|n| &**n), Some("c"));
        assert_eq!(snap.node_of_address(ip("192.0.2.240")), None);
        let names = |ip_: &str| snap.services(ip(ip_)).iter().map(|s| s.to_string()).collect();
        let shared: Vec<String> = names("192.0.2.240");
        assert_eq!(shared, ["web/a", "web/b"]);
        assert_eq!(names("2001:db8::240"), ["web/a"]);
        assert!(snap.services(ip("192.0.2.9")).is_empty());
    }

    #[test]
    fn metallb_status_beats_kube_vip_and_declares_the_macs_on_its_interfaces() {
        let mut inputs = three_nodes();
        let mut kv = service("web", "kv", &["192.0.2.240", "192.0.2.250"]);
        kv.vip_host = Some("c".into());
        inputs.services = vec![kv, service("web", "m", &["192.0.2.240"])];
        inputs.l2_statuses = vec![L2Status {
            node: "b".into(),
            service_namespace: "web".into(),
            service_name: "m".into(),
            interfaces: vec!["eth1".into()],
        }];
        let snap = ClusterSnapshot::build(&inputs, None, NOW);
        let m = snap.announcer(ip("192.0.2.240")).unwrap();
        assert_eq!((&*m.node, m.source.as_str()), ("b", "metallb"));
        let k = snap.announcer(ip("192.0.2.250")).unwrap();
        assert_eq!((&*k.node, k.source, k.interfaces.len()), ("c", AnnouncerSource::KubeVip, 0));

        let decl = snap.declarations();
        assert_eq!(decl.len(), 2);
        assert_eq!(decl[0].0, ip("192.0.2.240"));
        assert_eq!(decl[0].1.macs, [mac(0xb1)], "b's MAC on eth1 only");
        assert_eq!(decl[1].1.macs, [mac(0xc0)], "kube-vip names no interface: all of c's");
    }

    #[test]
    fn the_summary_counts_what_the_snapshot_holds_and_says_stale() {
        let mut inputs = three_nodes();
        inputs.services = vec![
            service("web", "a", &["192.0.2.240"]),
            service("web", "b", &["192.0.2.240"]),
            service("web", "pending", &[]),
        ];
        inputs.l2_statuses = vec![l2_status("b", "web", "a", &[])];
        let mut snap = ClusterSnapshot::build(&inputs, None, NOW);
        let summary = snap.summary();
        assert_eq!(
            summary,
            SnapshotSummary {
                nodes: 3,
                services: 2,
                inventories: 3,
                pools: 1,
                declarations: 1,
                stale: false
            }
        );
        assert_eq!(
            summary.to_string(),
            "3 nodes, 2 services, 3 inventories, 1 pools, 1 declarations"
        );
        snap.set_stale(true);
        assert!(snap.summary().to_string().ends_with(" 1 declarations, stale"));
        assert_eq!(ClusterSnapshot::default().summary(), SnapshotSummary::default());
    }

    #[test]
    fn the_changes_since_the_last_snapshot_name_what_came_went_and_moved() {
        let mut inputs = three_nodes();
        inputs.services = vec![service("web", "a", &["192.0.2.240"])];
        inputs.l2_statuses = vec![l2_status("a", "web", "a", &["eth0"])];
        let before = ClusterSnapshot::build(&inputs, None, NOW);
        assert!(before.changes_since(&before).is_empty(), "nothing changed");
        // A rebuild for a Lease renewal (b renews; still fresh) names nothing.
        inputs.inventories[1].renewed = Timestamp::from_secs(995);
        assert!(ClusterSnapshot::build(&inputs, None, NOW).changes_since(&before).is_empty());

        // The VIP fails over to b; Service web/b comes, web/a goes; b's Lease gains a NIC, c's
        // Lease is renewed (fresh again), a fourth node joins with its Lease.
        inputs.services = vec![service("web", "b", &["192.0.2.240"])];
        inputs.l2_statuses = vec![l2_status("b", "web", "b", &[])];
        inputs.inventories[1].interfaces.push(("eth2".into(), mac(0xb2)));
        inputs.inventories[2].renewed = Timestamp::from_secs(995);
        inputs.nodes.push(node("d", "192.0.2.4", &[]));
        inputs.inventories.push(inventory("d", &[("eth0", 0xd0)], 995));
        let mut after = ClusterSnapshot::build(&inputs, None, NOW);
        assert_eq!(
            after.changes_since(&before),
            [
                "nodes 3 -> 4",
                "+service web/b",
                "-service web/a",
                "inventory b changed",
                "inventory c fresh again",
                "+inventory d",
                "announcer 192.0.2.240: a on eth0 (metallb) -> b (metallb)",
            ]
        );
        after.set_stale(true);
        assert_eq!(after.changes_since(&after.clone()), Vec::<String>::new());
        let fresh = ClusterSnapshot::build(&inputs, None, NOW);
        assert_eq!(after.changes_since(&fresh)[0], "stale");
        assert_eq!(fresh.changes_since(&after)[0], "fresh again");

        // Everything gone: what went is named, with the pool and the declaration.
        let empty = ClusterSnapshot::build(&ClusterInputs::default(), None, NOW);
        let gone = empty.changes_since(&fresh);
        assert!(gone.contains(&"-inventory d".to_owned()), "{gone:?}");
        assert!(gone.contains(&format!("-pool {SERVICES_POOL}")), "{gone:?}");
        assert!(gone.contains(&"-announcer 192.0.2.240: b (metallb)".to_owned()), "{gone:?}");
        assert!(fresh
            .changes_since(&empty)
            .contains(&"+announcer 192.0.2.240: b (metallb)".to_owned()));
    }

    fn l2_status(node: &str, ns: &str, svc: &str, interfaces: &[&str]) -> L2Status {
        L2Status {
            node: node.into(),
            service_namespace: ns.into(),
            service_name: svc.into(),
            interfaces: interfaces.iter().map(|i| Arc::from(*i)).collect(),
        }
    }

    #[test]
    fn a_declared_node_without_inventory_is_judged_by_what_was_learned() {
        let mut inputs = three_nodes();
        let mut kv = service("web", "kv", &["192.0.2.250"]);
        kv.vip_host = Some("e".into());
        inputs.services = vec![kv];
        let snap = ClusterSnapshot::build(&inputs, None, NOW);
        assert!(snap.declarations()[0].1.macs.is_empty());
        let learned = [(mac(0xe0), Arc::from("e")), (mac(0xb0), Arc::from("b"))];
        assert_eq!(snap.declarations_with(&learned)[0].1.macs, [mac(0xe0)]);
    }

    #[test]
    fn label_selectors_as_kubernetes_defines_them() {
        let l = labels(&[("zone", "y"), ("edge", "")]);
        let req = |key: &str, op: &str, values: &[&str]| LabelRequirement {
            key: key.into(),
            operator: op.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        };
        let sel = |ml: &[(&str, &str)], me: Vec<LabelRequirement>| LabelSelector {
            match_labels: labels(ml),
            match_expressions: me,
        };
        assert!(sel(&[], vec![]).matches(&l), "empty matches everything");
        assert!(sel(&[("zone", "y")], vec![]).matches(&l));
        assert!(!sel(&[("zone", "y"), ("rack", "1")], vec![]).matches(&l));
        assert!(sel(&[], vec![req("zone", "In", &["x", "y"])]).matches(&l));
        assert!(!sel(&[], vec![req("rack", "In", &["1"])]).matches(&l));
        assert!(sel(&[], vec![req("rack", "NotIn", &["1"])]).matches(&l), "absent is not in");
        assert!(!sel(&[], vec![req("zone", "NotIn", &["y"])]).matches(&l));
        assert!(sel(&[], vec![req("edge", "Exists", &[])]).matches(&l));
        assert!(sel(&[], vec![req("rack", "DoesNotExist", &[])]).matches(&l));
        assert!(!sel(&[], vec![req("edge", "DoesNotExist", &[])]).matches(&l));
        assert!(!sel(&[], vec![req("zone", "Gt", &["1"])]).matches(&l), "unknown operator");
        assert!(!sel(&[("zone", "y")], vec![req("edge", "DoesNotExist", &[])]).matches(&l));
    }

    #[test]
    fn addresses_are_cidrs_or_ranges_of_either_family() {
        let nets = |s: &str| {
            parse_addresses(s).map(|v| v.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        };
        assert_eq!(nets("192.0.2.0/24").unwrap(), ["192.0.2.0/24"]);
        assert_eq!(nets("192.0.2.7/24").unwrap(), ["192.0.2.0/24"], "host bits cleared");
        assert_eq!(
            nets("192.0.2.240-192.0.2.250").unwrap(),
            ["192.0.2.240/29", "192.0.2.248/31", "192.0.2.250/32"]
        );
        assert_eq!(nets(" 192.0.2.1 - 192.0.2.1 ").unwrap(), ["192.0.2.1/32"]);
        assert_eq!(nets("2001:db8::/64").unwrap(), ["2001:db8::/64"]);
        assert_eq!(nets("2001:db8::10-2001:db8::13").unwrap(), ["2001:db8::10/126"]);
        assert_eq!(nets("192.0.2.9").unwrap(), ["192.0.2.9/32"]);
        assert_eq!(nets("192.0.2.9-2001:db8::1"), None, "mixed families");
        assert_eq!(nets("192.0.2.9-192.0.2.1"), None, "backwards");
        assert_eq!(nets("pool"), None);
    }

    fn metallb(inputs: &mut ClusterInputs) {
        inputs.metallb = true;
        inputs.pools = vec![
            AddressPool {
                name: "front".into(),
                labels: labels(&[("tier", "front")]),
                addresses: vec!["192.0.2.240/29".into(), "2001:db8::240-2001:db8::247".into()],
            },
            AddressPool {
                name: "back".into(),
                labels: labels(&[("tier", "back")]),
                addresses: vec!["198.51.100.0/28".into(), "nonsense".into()],
            },
            AddressPool {
                name: "unannounced".into(),
                labels: BTreeMap::new(),
                addresses: vec!["203.0.113.0/28".into()],
            },
        ];
        let tier_back =
            LabelSelector { match_labels: labels(&[("tier", "back")]), match_expressions: vec![] };
        let zone_y =
            LabelSelector { match_labels: labels(&[("zone", "y")]), match_expressions: vec![] };
        inputs.l2_advertisements = vec![
            // front: every node, on eth0 only.
            L2Advertisement {
                name: "front".into(),
                pools: vec!["front".into()],
                interfaces: vec!["eth0".into()],
                ..Default::default()
            },
            // back (by its labels): the nodes of zone y, any interface.
            L2Advertisement {
                name: "back".into(),
                pool_selectors: vec![tier_back],
                node_selectors: vec![zone_y],
                ..Default::default()
            },
        ];
        inputs.services = vec![
            service("web", "front", &["192.0.2.241"]),
            service("web", "other", &["203.0.113.5", "2001:db8::999"]),
        ];
    }

    #[test]
    fn metallb_pools_allow_the_selected_nodes_macs_and_know_their_other_interfaces() {
        let mut inputs = three_nodes();
        metallb(&mut inputs);
        let snap = ClusterSnapshot::build(&inputs, None, NOW);
        assert_eq!(snap.warnings().len(), 1, "{:?}", snap.warnings());
        let pools = snap.pools();
        let names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["metallb/back", "metallb/front", SERVICES_POOL]);

        let back = &pools[0];
        assert_eq!(back.cidrs, ["198.51.100.0/28".parse::<IpNet>().unwrap()]);
        assert!(back.interfaces.is_empty());
        assert_eq!(back.macs, [mac(0xb0), mac(0xb1), mac(0xc0)], "zone y: b and c (stale)");

        let front = &pools[1];
        assert_eq!(front.cidrs.len(), 2);
        assert!(front.contains(ip("2001:db8::247")) && !front.contains(ip("2001:db8::248")));
        // Judged by the nodes' interfaces, not the observer's: every node MAC may answer, the
        // one on an interface the advertisement does not name is misplaced.
        assert!(front.interfaces.is_empty());
        assert_eq!(front.node_interfaces, ["eth0"]);
        assert_eq!(front.macs, [mac(0xa0), mac(0xb0), mac(0xb1), mac(0xc0)]);
        assert_eq!(front.misplaced_macs, [mac(0xb1)], "b's second NIC");
        assert!(back.node_interfaces.is_empty() && back.misplaced_macs.is_empty(), "any interface");

        let rest = &pools[2];
        let vips: Vec<String> = rest.cidrs.iter().map(|n| n.to_string()).collect();
        assert_eq!(vips, ["203.0.113.5/32", "2001:db8::999/128"]);
        assert_eq!(rest.macs, [mac(0xa0), mac(0xb0), mac(0xb1), mac(0xc0)]);
        assert!(rest.interfaces.is_empty());
    }

    #[test]
    fn an_advertisement_without_pools_or_selectors_announces_every_pool() {
        let mut inputs = three_nodes();
        metallb(&mut inputs);
        inputs.l2_advertisements =
            vec![L2Advertisement { name: "all".into(), ..Default::default() }];
        let snap = ClusterSnapshot::build(&inputs, None, NOW);
        let names: Vec<String> = snap.pools().into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["metallb/back", "metallb/front", "metallb/unannounced", SERVICES_POOL]);
        // 2001:db8::999 is in no pool.
        assert_eq!(snap.pools()[3].cidrs.len(), 1);
    }

    #[test]
    fn a_pool_with_no_node_mac_known_allows_any_mac() {
        let mut inputs = three_nodes();
        metallb(&mut inputs);
        inputs.inventories.clear();
        let snap = ClusterSnapshot::build(&inputs, None, NOW);
        assert!(snap.pools().iter().all(|p| p.macs.is_empty()));
        // Learned MACs of nodes without inventory count.
        let learned = [(mac(0xb7), Arc::from("b"))];
        let pools = snap.pools_with(&learned);
        assert_eq!(pools[0].macs, [mac(0xb7)]);
        assert_eq!(pools[1].macs, [mac(0xb7)]);
        // Pools the engine can load as they are.
        let config = crate::config::EngineConfig { pools, ..Default::default() };
        config.validate().unwrap();
    }

    #[test]
    fn no_metallb_and_no_services_no_pools() {
        let snap = ClusterSnapshot::build(&three_nodes(), None, NOW);
        assert!(snap.pools().is_empty() && snap.declarations().is_empty());
        assert!(!snap.metallb() && !snap.is_stale());
    }
}
