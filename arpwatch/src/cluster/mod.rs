//! Cluster context from the Kubernetes API (`--kubernetes`): what is read (Nodes, LoadBalancer
//! Services, the arpwatch Leases, MetalLB's `IPAddressPool`, `L2Advertisement` and
//! `ServiceL2Status`), what is written (this node's Lease, Events on Services) and how the
//! pipeline gets it: a [`ClusterSnapshot`] published on a `tokio::sync::watch` channel, which the
//! watch loop hands to the pipeline when it changes. The API is never on the packet path: the
//! client runs on a thread of its own, with its own runtime, so neither a slow API server nor the
//! decoding of a large list ever delays a frame; events go out without cluster context while no
//! snapshot is there, or while it is stale.

pub mod convert;
mod events;
mod lease;
mod sources;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use arpwatch_core::cluster::ClusterSnapshot;
use arpwatch_core::observation::MacAddr;
use kube::api::Api;
use tokio::sync::watch;

pub use crate::metrics::KubeMetrics;
use crate::plan::{ApiSource, KubernetesPlan};
use crate::UsageError;
#[cfg(test)]
pub use events::channel as event_channel;
pub use events::EventSink;
pub use lease::interfaces;

/// This node's interfaces as (name, MAC), every one but loopback.
pub type Interfaces = Arc<[(Arc<str>, MacAddr)]>;
/// The label of every object arpwatch writes or selects.
pub const NAME_LABEL: (&str, &str) = ("app.kubernetes.io/name", "arpwatch");
/// The `resource` label of the Leases (watched and renewed).
pub const LEASES: &str = "leases";

/// The client's configuration from the plan's source; a configuration that cannot be used is a
/// usage error.
pub async fn client_config(source: &ApiSource) -> Result<kube::Config, UsageError> {
    match source {
        ApiSource::InCluster(config) => Ok((**config).clone()),
        ApiSource::Kubeconfig { origin, config } => {
            let options = kube::config::KubeConfigOptions::default();
            kube::Config::from_custom_kubeconfig((**config).clone(), &options)
                .await
                .map_err(|err| UsageError(format!("kubeconfig {origin}: cannot be used: {err}")))
        }
    }
}

/// The running client, seen from the watch loop.
pub struct Cluster {
    /// The newest snapshot; `None` until every resource is listed.
    pub snapshots: watch::Receiver<Option<Arc<ClusterSnapshot>>>,
    /// Where findings for Kubernetes Events go (`None` with `--kubernetes-events off`).
    pub events: Option<EventSink>,
    interfaces: watch::Sender<Interfaces>,
}

impl Cluster {
    /// Starts the client on its own thread: the watchers, the snapshot builder, the Lease
    /// publisher and the Event reporter. Fails when no client can be made of `config`.
    pub fn start(
        config: kube::Config,
        plan: &KubernetesPlan,
        node: &str,
        interfaces: Interfaces,
        metrics: KubeMetrics,
    ) -> Result<Cluster> {
        let (snapshot_tx, snapshots) = watch::channel(None);
        let (interfaces_tx, interfaces_rx) = watch::channel(interfaces);
        let (sink, findings) = events::channel(&metrics);
        let node: Arc<str> = node.into();
        let lease_namespace = plan.lease_namespace.clone();
        let report_events = plan.events;
        let (started_tx, started) = std::sync::mpsc::sync_channel::<Result<()>>(1);
        std::thread::Builder::new()
            .name("arpwatch-kube".into())
            .spawn(move || {
                let runtime =
                    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                        Ok(runtime) => runtime,
                        Err(err) => {
                            let _ = started_tx.send(Err(anyhow::Error::new(err)
                                .context("could not start the Kubernetes client's runtime")));
                            return;
                        }
                    };
                runtime.block_on(async move {
                    let client = match kube::Client::try_from(config) {
                        Ok(client) => client,
                        Err(err) => {
                            let _ = started_tx.send(Err(anyhow::Error::new(err)
                                .context("could not make a Kubernetes client")));
                            return;
                        }
                    };
                    let _ = started_tx.send(Ok(()));
                    let contact = Arc::new(Contact::new());
                    let shared = sources::Shared::new(contact.clone(), metrics.clone());
                    sources::spawn_watchers(&client, &lease_namespace, &shared);
                    let leases = Api::namespaced(client.clone(), &lease_namespace);
                    let publisher = lease::Publisher::new(
                        leases,
                        &node,
                        shared.clone(),
                        metrics.clone(),
                        contact.clone(),
                    );
                    tokio::spawn(publisher.run(interfaces_rx.clone()));
                    if report_events {
                        let reporter = events::Reporter::new(client, &node, metrics, contact);
                        tokio::spawn(reporter.run(findings));
                    }
                    sources::build(shared, node, interfaces_rx, snapshot_tx).await;
                });
            })
            .context("could not start the Kubernetes client's thread")?;
        started.recv().context("the Kubernetes client's thread ended at once")??;
        Ok(Cluster { snapshots, events: report_events.then_some(sink), interfaces: interfaces_tx })
    }

    /// This node's interfaces changed: the Lease and the snapshot follow.
    pub fn set_interfaces(&self, interfaces: Interfaces) {
        self.interfaces.send_if_modified(|current| {
            let changed = **current != *interfaces;
            if changed {
                *current = interfaces;
            }
            changed
        });
    }
}

/// When the API server last answered (any HTTP answer, an error status included): a quiet cluster
/// sends no watch events, but the Lease renewals get an answer every 20 s.
pub struct Contact {
    start: Instant,
    /// Milliseconds after `start`, plus one (0: never).
    last: AtomicU64,
}

impl Contact {
    fn new() -> Contact {
        Contact { start: Instant::now(), last: AtomicU64::new(0) }
    }

    pub fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms.saturating_add(1), Ordering::Relaxed);
    }

    /// Passes `result` on, noting whether the API server answered.
    pub fn heard<T>(&self, result: Result<T, kube::Error>) -> Result<T, kube::Error> {
        if matches!(result, Ok(_) | Err(kube::Error::Api(_))) {
            self.touch();
        }
        result
    }

    /// How long since the API server last answered (since the start, if never).
    pub fn silent_for(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed).saturating_sub(1));
        self.start.elapsed().saturating_sub(last)
    }
}

/// Whether a request failed with this HTTP status from the API server.
pub fn status_is(err: &kube::Error, code: u16) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == code)
}
