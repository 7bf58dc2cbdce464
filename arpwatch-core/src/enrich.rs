//! Enrichment: what the pipeline adds to the engine's events before they are written out. The
//! engine knows only what it observed; the observer's name and the host's own interfaces come
//! from outside, through an [`Annotator`].

use std::sync::Arc;

use crate::cluster::ClusterSnapshot;
use crate::event::Event;
use crate::observation::{MacAddr, Observation};

/// Which of this host's interfaces owns a MAC. The live pipeline answers it from the host's
/// links; a replay has none.
pub trait LocalMacs {
    /// The interface of this host that carries `mac`, if `mac` is one of this host's own.
    fn owner(&self, mac: MacAddr) -> Option<&str>;
}

/// Sets the [`Context`](crate::event::Context) of events: the node that observed them, and for
/// an event whose MAC is this host's own, the interface that owns it.
pub struct Annotator {
    node: Arc<str>,
    local_macs: Option<Arc<dyn LocalMacs + Send + Sync>>,
    cluster: Option<Arc<ClusterSnapshot>>,
}

impl Annotator {
    /// Events will name `node` as their observer.
    pub fn new(node: &str) -> Self {
        Annotator { node: node.into(), local_macs: None, cluster: None }
    }

    /// This host's MACs from now on (the live pipeline replaces them when links change).
    pub fn set_local_macs(&mut self, local_macs: Arc<dyn LocalMacs + Send + Sync>) {
        self.local_macs = Some(local_macs);
    }

    /// The cluster snapshot from now on; `None` (no cluster, or not synced yet) or a stale
    /// snapshot leaves the cluster fields of events absent.
    pub fn set_cluster(&mut self, cluster: Option<Arc<ClusterSnapshot>>) {
        self.cluster = cluster;
    }

    /// Passive learning: call it for every observation.
    pub fn observe(&mut self, obs: &Observation) {
        let _ = obs;
    }

    pub fn annotate(&self, event: &mut Event) {
        event.context.node = Some(self.node.clone());
        event.context.local_iface = match (&self.local_macs, event.subject_mac()) {
            (Some(local), Some(mac)) => local.owner(mac).map(Arc::from),
            _ => None,
        };
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
