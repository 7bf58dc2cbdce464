//! The watched resources and the snapshot built from them. Each resource is followed by a
//! kube-runtime watcher (list, then watch from its resourceVersion with bookmarks; a 410 Gone
//! re-lists; errors back off exponentially up to 30 s) whose objects are converted at once to
//! the core's inputs and kept in a [`Store`]; the builder turns the stores into a
//! [`ClusterSnapshot`] at most every [`DEBOUNCE`] (and every [`REBUILD_EVERY`], so Leases age
//! into staleness) and publishes it.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arpwatch_core::cluster::{ClusterInputs, ClusterSnapshot, Inventory};
use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use kube::Resource;
use serde::de::DeserializeOwned;
use tokio::sync::{watch, Notify};

use super::convert::{self, Problem};
use super::lease::LEASE_DURATION;
use super::{Contact, Interfaces, KubeMetrics, LEASES, NAME_LABEL};
use crate::metrics::wall_clock_now;

pub const NODES: &str = "nodes";
pub const SERVICES: &str = "services";
pub const IP_ADDRESS_POOLS: &str = "ipaddresspools";
pub const L2_ADVERTISEMENTS: &str = "l2advertisements";
pub const SERVICE_L2_STATUSES: &str = "servicel2statuses";

/// The snapshot is rebuilt at most this often while objects change.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// And at least this often, so Leases that stop being renewed are seen stale.
const REBUILD_EVERY: Duration = Duration::from_secs(30);
/// Without an answer from the API server for this long, the snapshot is marked stale and events
/// go out without cluster context. Lease renewals (every 20 s) answer even in a quiet cluster.
pub const STALE_AFTER: Duration = Duration::from_secs(90);

/// MetalLB's kinds, at the version that has them all (discovery's preferred `metallb.io`
/// version does not).
fn metallb(kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: "metallb.io".into(),
        version: "v1beta1".into(),
        api_version: "metallb.io/v1beta1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// Where a resource's watch is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncState {
    /// Not listed yet.
    Waiting,
    /// Listed, and followed.
    Synced,
    /// The API server has no such resource (404: MetalLB's CRDs not installed) or refuses it to
    /// us (403); retried with the watcher's backoff.
    Unavailable,
}

/// The converted objects of one resource, by namespace/name.
pub struct Store<T> {
    resource: &'static str,
    objects: BTreeMap<String, T>,
    /// A re-list in progress: replaces `objects` when complete.
    relist: Option<BTreeMap<String, T>>,
    state: SyncState,
    /// Whether the first sync was logged.
    announced: bool,
}

impl<T: Clone> Store<T> {
    fn new(resource: &'static str) -> Self {
        Store {
            resource,
            objects: BTreeMap::new(),
            relist: None,
            state: SyncState::Waiting,
            announced: false,
        }
    }

    fn values(&self) -> impl Iterator<Item = T> + '_ {
        self.objects.values().cloned()
    }

    /// Applies one watcher event, converting its object; returns a conversion problem.
    fn apply<K: Resource>(
        &mut self,
        event: watcher::Event<K>,
        convert: fn(&K) -> Result<Option<T>, Problem>,
    ) -> Option<Problem> {
        let mut problem = None;
        let mut converted = |obj: &K| match convert(obj) {
            Ok(value) => value,
            Err(err) => {
                problem = Some(err);
                None
            }
        };
        match event {
            watcher::Event::Init => self.relist = Some(BTreeMap::new()),
            watcher::Event::InitApply(obj) => {
                if let Some(value) = converted(&obj) {
                    self.relist.get_or_insert_with(BTreeMap::new).insert(key(&obj), value);
                }
            }
            watcher::Event::InitDone => {
                self.objects = self.relist.take().unwrap_or_default();
                self.state = SyncState::Synced;
            }
            watcher::Event::Apply(obj) => match converted(&obj) {
                Some(value) => {
                    self.objects.insert(key(&obj), value);
                }
                // No longer of interest (a Service that stopped being a LoadBalancer).
                None => {
                    self.objects.remove(&key(&obj));
                }
            },
            watcher::Event::Delete(obj) => {
                self.objects.remove(&key(&obj));
            }
        }
        problem
    }
}

fn key<K: Resource>(obj: &K) -> String {
    let meta = obj.meta();
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

pub struct Stores {
    pub nodes: Store<arpwatch_core::cluster::NodeInfo>,
    pub services: Store<arpwatch_core::cluster::ServiceInfo>,
    pub leases: Store<Inventory>,
    pub pools: Store<arpwatch_core::cluster::AddressPool>,
    pub advertisements: Store<arpwatch_core::cluster::L2Advertisement>,
    pub statuses: Store<arpwatch_core::cluster::L2Status>,
}

impl Stores {
    fn new() -> Stores {
        Stores {
            nodes: Store::new(NODES),
            services: Store::new(SERVICES),
            leases: Store::new(LEASES),
            pools: Store::new(IP_ADDRESS_POOLS),
            advertisements: Store::new(L2_ADVERTISEMENTS),
            statuses: Store::new(SERVICE_L2_STATUSES),
        }
    }

    fn states(&self) -> [(&'static str, SyncState); 6] {
        [
            (NODES, self.nodes.state),
            (SERVICES, self.services.state),
            (LEASES, self.leases.state),
            (IP_ADDRESS_POOLS, self.pools.state),
            (L2_ADVERTISEMENTS, self.advertisements.state),
            (SERVICE_L2_STATUSES, self.statuses.state),
        ]
    }

    /// Every resource listed, or known to be unavailable.
    fn settled(&self) -> bool {
        self.states().iter().all(|(_, state)| *state != SyncState::Waiting)
    }

    pub fn inputs(&self) -> ClusterInputs {
        ClusterInputs {
            nodes: self.nodes.values().collect(),
            inventories: self.leases.values().collect(),
            services: self.services.values().collect(),
            pools: self.pools.values().collect(),
            l2_advertisements: self.advertisements.values().collect(),
            l2_statuses: self.statuses.values().collect(),
            metallb: self.pools.state == SyncState::Synced,
        }
    }
}

/// What the watchers and the builder share (one thread: the lock is never contended).
pub struct Shared {
    stores: Mutex<Stores>,
    changed: Notify,
    contact: Arc<Contact>,
    metrics: KubeMetrics,
}

impl Shared {
    pub fn new(contact: Arc<Contact>, metrics: KubeMetrics) -> Arc<Shared> {
        Arc::new(Shared {
            stores: Mutex::new(Stores::new()),
            changed: Notify::new(),
            contact,
            metrics,
        })
    }

    fn stores(&self) -> std::sync::MutexGuard<'_, Stores> {
        self.stores.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `name` is a Node of the cluster; `None` until the Nodes are listed. A host agent
    /// reading the cluster through a kubeconfig (a gateway, a firewall) is none: it publishes no
    /// inventory and its MACs name no node, so that it never becomes an allowed claimant of the
    /// cluster's VIPs.
    pub fn is_node(&self, name: &str) -> Option<bool> {
        let stores = self.stores();
        (stores.nodes.state == SyncState::Synced)
            .then(|| stores.nodes.values().any(|n| &*n.name == name))
    }
}

/// Starts a watcher task for every resource.
pub fn spawn_watchers(client: &kube::Client, lease_namespace: &str, shared: &Arc<Shared>) {
    let all = watcher::Config::default();
    spawn(Api::all(client.clone()), all.clone(), convert::node, |s| &mut s.nodes, shared);
    spawn(Api::all(client.clone()), all.clone(), convert::service, |s| &mut s.services, shared);
    let arpwatch = all.clone().labels(&format!("{}={}", NAME_LABEL.0, NAME_LABEL.1));
    spawn(
        Api::namespaced(client.clone(), lease_namespace),
        arpwatch,
        convert::lease,
        |s| &mut s.leases,
        shared,
    );
    for (resource, kind) in [
        (IP_ADDRESS_POOLS, "IPAddressPool"),
        (L2_ADVERTISEMENTS, "L2Advertisement"),
        (SERVICE_L2_STATUSES, "ServiceL2Status"),
    ] {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &metallb(kind, resource));
        match resource {
            IP_ADDRESS_POOLS => {
                spawn(api, all.clone(), convert::address_pool, |s| &mut s.pools, shared)
            }
            L2_ADVERTISEMENTS => spawn(
                api,
                all.clone(),
                convert::l2_advertisement,
                |s| &mut s.advertisements,
                shared,
            ),
            _ => spawn(api, all.clone(), convert::l2_status, |s| &mut s.statuses, shared),
        }
    }
}

fn spawn<K, T>(
    api: Api<K>,
    config: watcher::Config,
    convert: fn(&K) -> Result<Option<T>, Problem>,
    store: fn(&mut Stores) -> &mut Store<T>,
    shared: &Arc<Shared>,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    T: Clone + Send + 'static,
{
    let shared = shared.clone();
    tokio::spawn(async move {
        let mut events = std::pin::pin!(watcher(api, config).default_backoff());
        // Whether the last item was an error: only the first of a run is logged.
        let mut failing = false;
        while let Some(item) = events.next().await {
            let mut stores = shared.stores();
            let store = store(&mut stores);
            let resource = store.resource;
            match item {
                Ok(event) => {
                    shared.contact.touch();
                    if std::mem::take(&mut failing) {
                        log::info!("kubernetes: {resource}: watching again");
                    }
                    if let Some(problem) = store.apply(event, convert) {
                        shared.metrics.error(resource);
                        log::warn!("kubernetes: {problem}; the object is left out");
                    }
                    if store.state == SyncState::Synced && !store.announced {
                        store.announced = true;
                        log::info!(
                            "kubernetes: {resource} synced ({} objects)",
                            store.objects.len()
                        );
                    }
                }
                Err(err) => {
                    let status = watcher_status(&err);
                    if status.is_some() {
                        shared.contact.touch();
                    }
                    if matches!(status, Some(404 | 403)) && store.state != SyncState::Synced {
                        if store.state == SyncState::Waiting {
                            let why = if status == Some(404) {
                                "the API server does not serve it"
                            } else {
                                "access is refused"
                            };
                            log::info!("kubernetes: {resource}: not available ({why}); going on without it");
                        }
                        store.state = SyncState::Unavailable;
                    } else {
                        shared.metrics.error(resource);
                        if !std::mem::replace(&mut failing, true) {
                            log::warn!("kubernetes: {resource}: {err}; retrying");
                        }
                    }
                }
            }
            shared.metrics.synced(resource, store.state == SyncState::Synced);
            shared.metrics.objects(resource, store.objects.len());
            drop(stores);
            shared.changed.notify_one();
        }
    });
}

/// The HTTP status of a failed list or watch, when the API server answered.
fn watcher_status(err: &watcher::Error) -> Option<u16> {
    match err {
        watcher::Error::InitialListFailed(err)
        | watcher::Error::WatchStartFailed(err)
        | watcher::Error::WatchFailed(err) => match err {
            kube::Error::Api(status) => Some(status.code),
            _ => None,
        },
        watcher::Error::WatchError(status) => Some(status.code),
        watcher::Error::NoResourceVersion => None,
    }
}

/// Builds and publishes the snapshot: first once every resource is listed (or known
/// unavailable), then after changes, debounced; marks it stale while the API server is silent.
pub async fn build(
    shared: Arc<Shared>,
    node: Arc<str>,
    mut interfaces: watch::Receiver<Interfaces>,
    snapshots: watch::Sender<Option<Arc<ClusterSnapshot>>>,
) {
    let mut reported = false;
    let mut stale = false;
    // The snapshot's warnings now standing, each logged once.
    let mut warned: Vec<String> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let mut last_build = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = shared.changed.notified() => {}
            changed = interfaces.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = tick.tick() => {
                let silent = shared.contact.silent_for() > STALE_AFTER;
                // Nothing to do unless staleness changes, or it is time for a rebuild.
                if silent == stale && last_build.elapsed() < REBUILD_EVERY {
                    continue;
                }
                if silent != stale {
                    stale = silent;
                    if stale {
                        log::warn!(
                            "kubernetes: no answer from the API server for {} s: events go out \
                             without cluster context (context: stale) until it answers",
                            STALE_AFTER.as_secs()
                        );
                    } else {
                        log::info!("kubernetes: the API server answers again: cluster context is back");
                    }
                }
            }
        }
        // At most one build per DEBOUNCE: changes that arrive meanwhile are in the next.
        tokio::time::sleep_until(last_build + DEBOUNCE).await;
        let snapshot = {
            let stores = shared.stores();
            if !stores.settled() {
                continue;
            }
            if !reported {
                reported = true;
                log_sources(&stores);
            }
            let now = wall_clock_now();
            let inputs = stores.inputs();
            let local = inputs.nodes.iter().any(|n| n.name == node).then(|| Inventory {
                node: node.clone(),
                interfaces: interfaces.borrow_and_update().to_vec(),
                renewed: now,
                duration: LEASE_DURATION,
            });
            let mut snapshot = ClusterSnapshot::build(&inputs, local.as_ref(), now);
            snapshot.set_stale(stale || shared.contact.silent_for() > STALE_AFTER);
            snapshot
        };
        last_build = tokio::time::Instant::now();
        stale = snapshot.is_stale();
        for warning in snapshot.warnings().iter().filter(|w| !warned.contains(w)) {
            log::warn!("kubernetes: {warning}");
        }
        warned = snapshot.warnings().to_vec();
        snapshots.send_replace(Some(Arc::new(snapshot)));
    }
}

/// The one line saying which sources this cluster has.
fn log_sources(stores: &Stores) {
    let (found, missing): (Vec<_>, Vec<_>) =
        stores.states().into_iter().partition(|(_, state)| *state == SyncState::Synced);
    let names =
        |list: Vec<(&str, SyncState)>| list.iter().map(|(r, _)| *r).collect::<Vec<_>>().join(", ");
    if missing.is_empty() {
        log::info!("kubernetes: cluster context from {}", names(found));
    } else {
        log::info!(
            "kubernetes: cluster context from {}; not available: {}",
            names(found),
            names(missing)
        );
    }
}
