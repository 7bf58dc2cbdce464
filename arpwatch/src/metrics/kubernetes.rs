//! The Kubernetes client's series: per watched resource, whether it is synced, how many objects
//! arpwatch keeps of it and how many requests failed; and the Events dropped before the reporter.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabels {
    resource: &'static str,
}

/// The cluster thread's handle; cheap to clone. Made without a registry (no `--metrics-addr`),
/// it counts into nothing.
#[derive(Clone, Default)]
pub struct KubeMetrics {
    synced: Family<ResourceLabels, Gauge>,
    objects: Family<ResourceLabels, Gauge>,
    errors: Family<ResourceLabels, Counter>,
    pub events_dropped: Counter,
}

impl KubeMetrics {
    pub(super) fn register(registry: &mut Registry) -> KubeMetrics {
        let metrics = KubeMetrics::default();
        registry.register(
            "arpwatch_kubernetes_synced",
            "1 when the watch of this Kubernetes resource has listed it and follows it, 0 before, or while it cannot be listed (MetalLB's CRDs absent, access refused)",
            metrics.synced.clone(),
        );
        registry.register(
            "arpwatch_kubernetes_objects",
            "Objects of this Kubernetes resource arpwatch keeps (Services: LoadBalancer ones only)",
            metrics.objects.clone(),
        );
        registry.register(
            "arpwatch_kubernetes_errors",
            "Failed requests to the Kubernetes API, per resource (a watch or list, a Lease renewal, an Event write)",
            metrics.errors.clone(),
        );
        registry.register(
            "arpwatch_kubernetes_events_dropped",
            "Kubernetes Events not recorded because the queue to the reporter was full",
            metrics.events_dropped.clone(),
        );
        metrics
    }

    pub fn synced(&self, resource: &'static str, synced: bool) {
        self.synced.get_or_create(&ResourceLabels { resource }).set(i64::from(synced));
    }

    pub fn objects(&self, resource: &'static str, objects: usize) {
        let objects = i64::try_from(objects).unwrap_or(i64::MAX);
        self.objects.get_or_create(&ResourceLabels { resource }).set(objects);
    }

    pub fn error(&self, resource: &'static str) {
        self.errors.get_or_create(&ResourceLabels { resource }).inc();
    }
}
