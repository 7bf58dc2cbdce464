//! This node's inventory, published for the other nodes: the Lease `arpwatch-<node>` in the lease
//! namespace, holder the node, renewed every [`RENEW_EVERY`], its annotation
//! [`INTERFACES_ANNOTATION`] the node's interfaces and their MACs (every interface but loopback,
//! watched or not). The Lease is replaced with the resourceVersion of our last write; when that
//! fails (someone else wrote it, or it was deleted) it is read again, or created.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arpwatch_core::observation::{MacAddr, Timestamp};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use tokio::sync::watch;

use super::convert::{micro_time, INTERFACES_ANNOTATION};
use super::sources::Shared;
use super::{status_is, Contact, Interfaces, KubeMetrics, LEASES, NAME_LABEL};
use crate::metrics::wall_clock_now;

/// A node's Lease is `arpwatch-<node>`.
pub const LEASE_PREFIX: &str = "arpwatch-";
pub const RENEW_EVERY: Duration = Duration::from_secs(20);
/// How often the first renewal looks again whether the Nodes are listed.
const NODES_LISTED_POLL: Duration = Duration::from_millis(250);
/// Three renewals may fail before the other nodes see the Lease expire.
pub const LEASE_DURATION: Duration = Duration::from_secs(60);
/// Interfaces that change are published at most this often.
const CHANGE_DEBOUNCE: Duration = Duration::from_secs(1);

/// The Lease of `node` as this node writes it.
pub fn desired(node: &str, interfaces: &Interfaces, now: Timestamp) -> Lease {
    let names: BTreeMap<&str, String> =
        interfaces.iter().map(|(name, mac)| (&**name, mac.to_string())).collect();
    Lease {
        metadata: ObjectMeta {
            name: Some(lease_name(node)),
            labels: Some(BTreeMap::from([(NAME_LABEL.0.to_owned(), NAME_LABEL.1.to_owned())])),
            annotations: Some(BTreeMap::from([(
                INTERFACES_ANNOTATION.to_owned(),
                // A map of strings always serializes.
                serde_json::to_string(&names).unwrap_or_default(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(node.to_owned()),
            lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
            acquire_time: Some(micro_time(now)),
            renew_time: Some(micro_time(now)),
            ..LeaseSpec::default()
        }),
    }
}

pub fn lease_name(node: &str) -> String {
    format!("{LEASE_PREFIX}{}", node.to_ascii_lowercase())
}

/// This host's interfaces (name, MAC), every one but loopback.
pub fn interfaces<'a>(links: impl Iterator<Item = &'a crate::links::LinkInfo>) -> Interfaces {
    links
        .filter(|link| !link.loopback)
        .filter_map(|link| Some((Arc::from(link.name.as_str()), MacAddr(link.mac?))))
        .filter(|(_, mac)| !mac.is_zero())
        .collect::<Vec<_>>()
        .into()
}

pub struct Publisher {
    api: Api<Lease>,
    node: String,
    /// Tells whether this host is a Node: only a Node publishes.
    shared: Arc<Shared>,
    name: String,
    /// Of our last successful write.
    resource_version: Option<String>,
    /// When the Lease was first acquired (kept across renewals).
    acquired: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime>,
    metrics: KubeMetrics,
    contact: Arc<Contact>,
}

impl Publisher {
    pub fn new(
        api: Api<Lease>,
        node: &str,
        shared: Arc<Shared>,
        metrics: KubeMetrics,
        contact: Arc<Contact>,
    ) -> Self {
        Publisher {
            api,
            node: node.to_owned(),
            shared,
            name: lease_name(node),
            resource_version: None,
            acquired: None,
            metrics,
            contact,
        }
    }

    /// Renews every [`RENEW_EVERY`], and soon after the interfaces change.
    pub async fn run(mut self, mut links: watch::Receiver<Interfaces>) {
        let mut failing = false;
        let mut said_not_a_node = false;
        loop {
            let interfaces = links.borrow_and_update().clone();
            let renewed = match self.shared.is_node(&self.node) {
                // The Nodes are not listed yet.
                None => {
                    tokio::time::sleep(NODES_LISTED_POLL).await;
                    continue;
                }
                Some(false) => {
                    if !std::mem::replace(&mut said_not_a_node, true) {
                        log::info!(
                            "kubernetes: {} is not a Node of the cluster: reading the cluster \
                             without publishing a lease",
                            self.node
                        );
                    }
                    Ok(())
                }
                Some(true) => self.renew(&interfaces).await,
            };
            match renewed {
                Ok(()) => {
                    if std::mem::take(&mut failing) {
                        log::info!("kubernetes: lease {} renewed again", self.name);
                    }
                }
                Err(err) => {
                    self.metrics.error(LEASES);
                    if !std::mem::replace(&mut failing, true) {
                        log::warn!(
                            "kubernetes: could not renew lease {}: {err} (retrying every {} s)",
                            self.name,
                            RENEW_EVERY.as_secs()
                        );
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(RENEW_EVERY) => {}
                changed = links.changed() => {
                    if changed.is_err() {
                        // The watch ended.
                        return;
                    }
                    tokio::time::sleep(CHANGE_DEBOUNCE).await;
                }
            }
        }
    }

    async fn renew(&mut self, interfaces: &Interfaces) -> Result<(), kube::Error> {
        let mut lease = desired(&self.node, interfaces, wall_clock_now());
        if let Some(spec) = &mut lease.spec {
            spec.acquire_time = self.acquired.clone().or(spec.acquire_time.take());
        }
        if let Some(version) = self.resource_version.take() {
            lease.metadata.resource_version = Some(version);
            match self
                .contact
                .heard(self.api.replace(&self.name, &PostParams::default(), &lease).await)
            {
                Ok(written) => return self.written(written),
                // Replaced by someone else, or deleted: read it again.
                Err(err) if status_is(&err, 409) || status_is(&err, 404) => {}
                Err(err) => return Err(err),
            }
        }
        let written = match self.contact.heard(self.api.get_opt(&self.name).await)? {
            Some(existing) => {
                lease.metadata.resource_version = existing.metadata.resource_version;
                if self.acquired.is_none() {
                    if let Some(acquired) = existing.spec.and_then(|s| s.acquire_time) {
                        if let Some(spec) = &mut lease.spec {
                            spec.acquire_time = Some(acquired);
                        }
                    }
                }
                self.api.replace(&self.name, &PostParams::default(), &lease).await
            }
            None => {
                lease.metadata.resource_version = None;
                self.api.create(&PostParams::default(), &lease).await
            }
        };
        let written = self.contact.heard(written)?;
        self.written(written)
    }

    fn written(&mut self, lease: Lease) -> Result<(), kube::Error> {
        self.resource_version = lease.metadata.resource_version;
        self.acquired = lease.spec.and_then(|s| s.acquire_time);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::convert;

    #[test]
    fn the_published_lease_reads_back_as_the_same_inventory() {
        let interfaces: Interfaces = vec![
            (Arc::from("eth1"), MacAddr([2, 0, 0, 0, 0xb, 2])),
            (Arc::from("eth0"), MacAddr([2, 0, 0, 0, 0xb, 1])),
        ]
        .into();
        let now = Timestamp::from_secs(1_790_000_000);
        let lease = desired("Node-B", &interfaces, now);
        assert_eq!(lease.metadata.name.as_deref(), Some("arpwatch-node-b"));
        let json = serde_json::to_value(&lease).unwrap();
        assert_eq!(json["metadata"]["labels"]["app.kubernetes.io/name"], "arpwatch");
        assert_eq!(
            json["metadata"]["annotations"]["arpwatch.io/interfaces"],
            r#"{"eth0":"02:00:00:00:0b:01","eth1":"02:00:00:00:0b:02"}"#
        );
        assert_eq!(json["spec"]["holderIdentity"], "Node-B");
        assert_eq!(json["spec"]["leaseDurationSeconds"], 60);
        assert_eq!(json["spec"]["renewTime"], "2026-09-21T14:13:20.000000Z");

        let inventory = convert::lease(&lease).unwrap().unwrap();
        assert_eq!(&*inventory.node, "Node-B");
        assert_eq!(inventory.renewed, now);
        assert_eq!(inventory.duration, LEASE_DURATION);
        let mut sorted = interfaces.to_vec();
        sorted.sort();
        assert_eq!(inventory.interfaces, sorted);
    }
}
