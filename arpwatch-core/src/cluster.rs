//! Cluster context: what the Kubernetes API says about the MACs and the IPs the engine sees,
//! as plain data. The shell watches the API (Nodes, LoadBalancer Services, the arpwatch Leases,
//! MetalLB's `IPAddressPool`, `L2Advertisement` and `ServiceL2Status`, kube-vip's `vipHost`
//! annotation), copies what matters into [`ClusterInputs`] and builds a [`ClusterSnapshot`]
//! from it; the annotator ([`crate::enrich::Annotator`]) and the engine read the snapshot, never
//! the API. Nothing here does I/O or knows a Kubernetes type.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

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

/// What the annotator and the engine read: built from [`ClusterInputs`], never from the API
/// directly.
#[derive(Clone, Debug, Default)]
pub struct ClusterSnapshot {
    built: Timestamp,
    stale: bool,
}

impl ClusterSnapshot {
    /// The snapshot of `inputs` at `now`; `local` is this host's own inventory.
    pub fn build(inputs: &ClusterInputs, local: Option<&Inventory>, now: Timestamp) -> Self {
        let _ = (inputs, local);
        ClusterSnapshot { built: now, stale: false }
    }

    /// The node owning `mac`, merged from this host's interfaces and the Leases.
    pub fn mac_owner(&self, mac: MacAddr) -> Option<&MacOwner> {
        let _ = mac;
        None
    }

    /// The Node whose InternalIP or ExternalIP `ip` is.
    pub fn node_of_address(&self, ip: IpAddr) -> Option<&Arc<str>> {
        let _ = ip;
        None
    }

    /// The LoadBalancer Services with `ip` as an ingress IP, as "namespace/name", sorted.
    pub fn services(&self, ip: IpAddr) -> &[Arc<str>] {
        let _ = ip;
        &[]
    }

    /// The declared announcer of `ip`.
    pub fn announcer(&self, ip: IpAddr) -> Option<&Announcer> {
        let _ = ip;
        None
    }

    /// Pools the engine should watch from the cluster.
    pub fn pools(&self) -> Vec<Pool> {
        Vec::new()
    }

    /// For `announcer_mismatch`: per VIP with a declared announcer, what the declaration allows.
    pub fn declarations(&self) -> Vec<(IpAddr, Declaration)> {
        Vec::new()
    }

    /// When it was built.
    pub fn built(&self) -> Timestamp {
        self.built
    }

    /// Whether the shell marked it stale (the API unreachable past its freshness limit).
    pub fn is_stale(&self) -> bool {
        self.stale
    }

    /// Marks it stale (or fresh again).
    pub fn set_stale(&mut self, stale: bool) {
        self.stale = stale;
    }
}
