//! Enrichment: what the pipeline adds to the engine's events before they are written out. The
//! engine knows only what it observed; the observer's name, the host's own interfaces and the
//! cluster context (see [`crate::cluster`]) come from outside, through an [`Annotator`].

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;

use lru::LruCache;

use crate::cluster::{ClusterSnapshot, Declaration, MacOwner, MacSource};
use crate::config::Pool;
use crate::event::{Context, Event};
use crate::observation::{MacAddr, Observation};
use crate::wire::Record;

/// Which of this host's interfaces owns a MAC. The live pipeline answers it from the host's
/// links; a replay has none.
pub trait LocalMacs {
    /// The interface of this host that carries `mac`, if `mac` is one of this host's own.
    fn owner(&self, mac: MacAddr) -> Option<&str>;
}

/// The most MACs passive learning remembers (least recently seen forgotten first): a cluster
/// has a few MACs per node, so this is thousands of nodes.
pub const MAX_LEARNED_MACS: usize = 16_384;

/// Sets the [`Context`] of events: the node that observed them, for an
/// event whose MAC is this host's own the interface that owns it, and the cluster context (the
/// nodes and interfaces of its MACs, the Services and the declared announcer of its IP) from
/// the [`ClusterSnapshot`] it was given and what it learned passively
/// ([`observe`](Self::observe)).
pub struct Annotator {
    node: Arc<str>,
    local_macs: Option<Arc<dyn LocalMacs + Send + Sync>>,
    cluster: Option<Arc<ClusterSnapshot>>,
    /// MAC -> node, from a Node's address seen on the wire with that MAC.
    learned: LruCache<MacAddr, Arc<str>>,
}

impl Annotator {
    /// Events will name `node` as their observer.
    pub fn new(node: &str) -> Self {
        Annotator {
            node: node.into(),
            local_macs: None,
            cluster: None,
            learned: LruCache::new(
                NonZeroUsize::new(MAX_LEARNED_MACS).unwrap_or(NonZeroUsize::MIN),
            ),
        }
    }

    /// This host's MACs from now on (the live pipeline replaces them when links change).
    pub fn set_local_macs(&mut self, local_macs: Arc<dyn LocalMacs + Send + Sync>) {
        self.local_macs = Some(local_macs);
    }

    /// The cluster snapshot from now on. `None` (no cluster, or not synced yet) leaves the
    /// cluster fields of events absent; a snapshot marked stale
    /// ([`ClusterSnapshot::set_stale`]) leaves them absent too and sets `context: "stale"`.
    /// What was learned passively is kept across snapshots.
    pub fn set_cluster(&mut self, cluster: Option<Arc<ClusterSnapshot>>) {
        self.cluster = cluster;
    }

    /// The current snapshot.
    pub fn cluster(&self) -> Option<&Arc<ClusterSnapshot>> {
        self.cluster.as_ref()
    }

    /// Passive learning; call it for every observation. A frame whose sender claims a Node's
    /// InternalIP or ExternalIP (a reply, an announcement or the sender of a request) binds its
    /// sender MAC to that node. Returns true when that binding is new: the pools and
    /// declarations ([`cluster_pools`](Self::cluster_pools),
    /// [`declarations`](Self::declarations)) may have changed.
    pub fn observe(&mut self, obs: &Observation) -> bool {
        let Some(cluster) = &self.cluster else {
            return false;
        };
        if obs.claim().is_none() || obs.sha.is_multicast() {
            return false;
        }
        let Some(node) = cluster.node_of_address(obs.spa) else {
            return false;
        };
        match self.learned.get(&obs.sha) {
            Some(known) if known == node => false,
            _ => {
                self.learned.put(obs.sha, node.clone());
                true
            }
        }
    }

    /// The MACs learned passively, (MAC, node).
    pub fn learned(&self) -> Vec<(MacAddr, Arc<str>)> {
        let mut out: Vec<_> = self.learned.iter().map(|(m, n)| (*m, n.clone())).collect();
        out.sort();
        out
    }

    /// The node of `mac`, by precedence: this host, a fresh Lease, passive learning, a stale
    /// Lease (see [`crate::cluster`]). `None` without a snapshot.
    pub fn mac_owner(&self, mac: MacAddr) -> Option<MacOwner> {
        let cluster = self.cluster.as_ref()?;
        let published = cluster.mac_owner(mac);
        if let Some(owner) = published.filter(|o| !o.stale) {
            return Some(owner.clone());
        }
        if let Some(node) = self.learned.peek(&mac) {
            return Some(MacOwner {
                node: node.clone(),
                iface: None,
                source: MacSource::Learned,
                stale: false,
            });
        }
        published.cloned()
    }

    /// The snapshot's pools ([`ClusterSnapshot::pools_with`]) with what was learned; empty
    /// without a snapshot. The engine takes them with the file's (`Engine::reconfigure`).
    pub fn cluster_pools(&self) -> Vec<Pool> {
        self.cluster.as_ref().map_or_else(Vec::new, |c| c.pools_with(&self.learned()))
    }

    /// The snapshot's declarations ([`ClusterSnapshot::declarations_with`]) with what was
    /// learned, for `Engine::set_declarations`; empty without a snapshot.
    pub fn declarations(&self) -> Vec<(IpAddr, Declaration)> {
        self.cluster.as_ref().map_or_else(Vec::new, |c| c.declarations_with(&self.learned()))
    }

    pub fn annotate(&self, event: &mut Event) {
        let local_iface = match (&self.local_macs, event.subject_mac()) {
            (Some(local), Some(mac)) => local.owner(mac).map(Arc::from),
            _ => None,
        };
        event.context =
            Context { node: Some(self.node.clone()), local_iface, ..Context::default() };
        let Some(cluster) = &self.cluster else {
            return;
        };
        if cluster.is_stale() {
            event.context.stale = true;
            return;
        }
        let (mac, macs, old_mac, new_mac) = {
            let r = Record::of(event);
            (r.mac, r.macs.to_vec(), r.old_mac, r.new_mac)
        };
        let node_of = |m: Option<MacAddr>| m.and_then(|m| self.mac_owner(m)).map(|o| o.node);
        let services = cluster.services(event.ip).to_vec();
        let announcer = cluster.announcer(event.ip).cloned();
        // "Foreign" means something only for a cluster address, and once some node MAC is known.
        let cluster_address = event.pool.is_some()
            || !services.is_empty()
            || announcer.is_some()
            || cluster.node_of_address(event.ip).is_some();
        let knows_macs = cluster.knows_macs() || !self.learned.is_empty();
        let ctx = &mut event.context;
        ctx.mac_node = node_of(mac);
        ctx.old_node = node_of(old_mac);
        ctx.new_node = node_of(new_mac);
        let listed: &[MacAddr] = if macs.is_empty() { mac.as_slice() } else { &macs };
        for m in listed {
            match self.mac_owner(*m) {
                Some(owner) if !macs.is_empty() => ctx.mac_nodes.push((*m, owner.node)),
                Some(_) => {}
                None if cluster_address && knows_macs => ctx.foreign_macs.push(*m),
                None => {}
            }
        }
        for m in mac.iter().chain(&macs).chain(&old_mac).chain(&new_mac) {
            if ctx.mac_ifaces.iter().any(|(seen, _)| seen == m) {
                continue;
            }
            if let Some(iface) = self.mac_owner(*m).and_then(|o| o.iface) {
                ctx.mac_ifaces.push((*m, iface));
            }
        }
        ctx.services = services;
        ctx.announcer = announcer;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Detail, Seen};
    use crate::observation::{Direction, Timestamp, VlanTags};
    use std::net::IpAddr;

    struct OneNic(MacAddr);

    impl LocalMacs for OneNic {
        fn owner(&self, mac: MacAddr) -> Option<&str> {
            (mac == self.0).then_some("eth1")
        }
    }

    fn owner_change(new_mac: MacAddr) -> Event {
        let seen =
            Seen { iface: "eth0".into(), vlan: VlanTags::NONE, direction: Some(Direction::Egress) };
        let detail = Detail::OwnerChange {
            old_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            new_mac,
            announced: crate::event::Announced::Gratuitous,
            gap_ms: None,
            override_: None,
        };
        Event::new(Timestamp::from_secs(1), IpAddr::from([192, 0, 2, 1]), seen, None, detail)
    }

    use crate::cluster::{ClusterInputs, Inventory, L2Status, NodeInfo, ServiceInfo};
    use crate::event::{Condition, ConditionState, Lifecycle, ResponderForm};
    use crate::testkit::observations::frame;
    use std::time::Duration;

    fn mac(last: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, last])
    }

    /// Nodes a (192.0.2.1, Lease fresh: eth0 0xa0, eth1 0xa1), b (192.0.2.2, Lease stale: eth0
    /// 0xb0), c (192.0.2.3, no Lease); a VIP 192.0.2.240 shared by web/x and web/y, announced by
    /// a on eth0.
    fn cluster() -> ClusterSnapshot {
        let node = |name: &str, ip: [u8; 4]| NodeInfo {
            name: name.into(),
            addresses: vec![IpAddr::from(ip)],
            ..Default::default()
        };
        let lease = |name: &str, ifaces: Vec<(&str, u8)>, renewed| Inventory {
            node: name.into(),
            interfaces: ifaces.into_iter().map(|(i, m)| (Arc::from(i), mac(m))).collect(),
            renewed: Timestamp::from_secs(renewed),
            duration: Duration::from_secs(60),
        };
        let svc = |name: &str| ServiceInfo {
            namespace: "web".into(),
            name: name.into(),
            ingress_ips: vec![IpAddr::from([192, 0, 2, 240])],
            vip_host: None,
        };
        let inputs = ClusterInputs {
            nodes: vec![
                node("a", [192, 0, 2, 1]),
                node("b", [192, 0, 2, 2]),
                node("c", [192, 0, 2, 3]),
            ],
            inventories: vec![
                lease("a", vec![("eth0", 0xa0), ("eth1", 0xa1)], 1_000),
                lease("b", vec![("eth0", 0xb0)], 100),
            ],
            services: vec![svc("y"), svc("x")],
            l2_statuses: vec![L2Status {
                node: "a".into(),
                service_namespace: "web".into(),
                service_name: "x".into(),
                interfaces: vec!["eth0".into()],
            }],
            metallb: true,
            ..Default::default()
        };
        ClusterSnapshot::build(&inputs, None, Timestamp::from_secs(1_010))
    }

    fn multi(macs: Vec<MacAddr>) -> Event {
        let at = Timestamp::from_secs(1_010);
        let seen = Seen {
            iface: "eth0".into(),
            vlan: VlanTags::NONE,
            direction: Some(Direction::Ingress),
        };
        let detail = Detail::Lasting {
            lifecycle: Lifecycle {
                state: ConditionState::Start,
                count: 2,
                first_seen: at,
                last_seen: at,
                macs,
                summarised: None,
            },
            condition: Condition::MultiResponder {
                form: ResponderForm::Sustained,
                requester: None,
                sender: None,
            },
        };
        Event::new(at, IpAddr::from([192, 0, 2, 240]), seen, None, detail)
    }

    #[test]
    fn names_the_nodes_interfaces_services_and_announcer_of_an_event() {
        let mut annotator = Annotator::new("node-a");
        annotator.set_cluster(Some(Arc::new(cluster())));
        // c runs no arpwatch: its MAC is learned from its address on the wire.
        let learned = frame(0.0).reply("02:00:00:00:00:c0", "192.0.2.3").build();
        assert!(annotator.observe(&learned));
        assert!(!annotator.observe(&learned), "known already");
        let not_a_node = frame(0.0).reply("02:00:00:00:00:c1", "192.0.2.99").build();
        assert!(!annotator.observe(&not_a_node));

        let mut e = multi(vec![mac(0xa1), mac(0xb0), mac(0xc0), mac(0xee)]);
        annotator.annotate(&mut e);
        let c = &e.context;
        let nodes: Vec<(MacAddr, &str)> = c.mac_nodes.iter().map(|(m, n)| (*m, &**n)).collect();
        assert_eq!(nodes, [(mac(0xa1), "a"), (mac(0xb0), "b"), (mac(0xc0), "c")]);
        assert_eq!(c.foreign_macs, [mac(0xee)]);
        let ifaces: Vec<(MacAddr, &str)> = c.mac_ifaces.iter().map(|(m, n)| (*m, &**n)).collect();
        assert_eq!(ifaces, [(mac(0xa1), "eth1"), (mac(0xb0), "eth0")]);
        let services: Vec<&str> = c.services.iter().map(|s| &**s).collect();
        assert_eq!(services, ["web/x", "web/y"]);
        let announcer = c.announcer.as_ref().unwrap();
        assert_eq!((&*announcer.node, announcer.interfaces.len()), ("a", 1));
        assert!(!c.stale && c.mac_node.is_none());

        let json = serde_json::to_value(crate::wire::Record::of(&e)).unwrap();
        assert_eq!(json["mac_nodes"]["02:00:00:00:00:a1"], "a");
        assert_eq!(
            json["announcer"],
            serde_json::json!({"node": "a", "interfaces": ["eth0"], "source": "metallb"})
        );
    }

    #[test]
    fn learning_beats_a_stale_lease_but_not_a_fresh_one() {
        let mut annotator = Annotator::new("node-a");
        annotator.set_cluster(Some(Arc::new(cluster())));
        assert_eq!(annotator.mac_owner(mac(0xb0)).unwrap().source, MacSource::Lease);
        // b's stale MAC seen answering for a's address, a's fresh MAC for b's.
        annotator.observe(&frame(0.0).reply("02:00:00:00:00:b0", "192.0.2.1").build());
        annotator.observe(&frame(0.0).reply("02:00:00:00:00:a0", "192.0.2.2").build());
        let b0 = annotator.mac_owner(mac(0xb0)).unwrap();
        assert_eq!((&*b0.node, b0.source), ("a", MacSource::Learned));
        let a0 = annotator.mac_owner(mac(0xa0)).unwrap();
        assert_eq!((&*a0.node, a0.source), ("a", MacSource::Lease));
        // Learned MACs reach the declarations: a has an inventory, so only its eth0 MAC counts.
        assert_eq!(annotator.declarations()[0].1.macs, [mac(0xa0)]);
    }

    #[test]
    fn no_snapshot_no_fields_and_a_stale_one_says_so() {
        let mut annotator = Annotator::new("node-a");
        let mut e = owner_change(mac(0xa0));
        annotator.annotate(&mut e);
        assert_eq!(e.context, Context { node: Some("node-a".into()), ..Context::default() });

        annotator.set_cluster(Some(Arc::new(cluster())));
        annotator.annotate(&mut e);
        assert_eq!(e.context.new_node.as_deref(), Some("a"));
        assert_eq!(e.context.mac_ifaces, [(mac(0xa0), Arc::from("eth0"))]);

        let mut stale = cluster();
        stale.set_stale(true);
        annotator.set_cluster(Some(Arc::new(stale)));
        annotator.annotate(&mut e);
        let expected = Context { node: Some("node-a".into()), stale: true, ..Context::default() };
        assert_eq!(e.context, expected);
        assert!(crate::wire::text_line(&e).ends_with("node=node-a context=stale"));
    }

    #[test]
    fn sets_the_node_and_the_local_interface_of_the_subject_mac() {
        let own = MacAddr([2, 0, 0, 0, 0, 2]);
        let mut annotator = Annotator::new("node-a");
        let mut event = owner_change(own);
        annotator.annotate(&mut event);
        assert_eq!(event.context.node.as_deref(), Some("node-a"));
        assert_eq!(event.context.local_iface, None, "no local MACs known yet");

        annotator.set_local_macs(Arc::new(OneNic(own)));
        annotator.annotate(&mut event);
        assert_eq!(event.context.local_iface.as_deref(), Some("eth1"));
        let mut foreign = owner_change(MacAddr([2, 0, 0, 0, 0, 3]));
        annotator.annotate(&mut foreign);
        assert_eq!(foreign.context.local_iface, None);
    }
}
