//! Prometheus metrics: what flows through the pipeline (frames), what the engine decided (its
//! events, claimants and sizes, read from it, never re-derived), the kernel's counters, and
//! readiness. Every metric and label is documented in `docs/metrics.md`.
//!
//! Three handles share one registry of prometheus-client metrics, which are atomics, so a scrape
//! never stops the pipeline: [`Metrics`], owned by the pipeline, which feeds it observations, the
//! engine's events and the engine itself to read; [`Health`], the watch loop's (attached
//! programs, ring drains, kernel counters); [`Exporter`], the read side (encoding, readiness)
//! that [`MetricsServer`] serves over HTTP. None of them reads a clock.
//!
//! Label cardinality is bounded by configuration: interfaces, directions, ops, event kinds and
//! eviction kinds are fixed or host-given sets, and per-IP series exist only for IPs of configured
//! pools, at most [`MetricsOptions::max_ips_per_pool`] per pool. One series holds a MAC in a
//! label: `arpwatch_pool_ip_owner`, the current owner of a pool IP, one series per pool IP at most
//! (the old owner's goes when the owner changes), under the same cap.

mod http;
mod kubernetes;
mod pools;
mod readings;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

use crate::kernel::CounterTotals;
use crate::stdout::OutputStats;
use arpwatch_core::config::Config;
use arpwatch_core::engine::Engine;
use arpwatch_core::event::Event;
use arpwatch_core::observation::{ArpOp, Direction, Observation, Proto, Timestamp};

pub(crate) use http::wall_clock_now;
pub use http::MetricsServer;
pub use kubernetes::KubeMetrics;

use pools::PoolSeries;
use readings::Readings;

/// The `Content-Type` of [`Exporter::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Settings of the exporter itself (the detection settings come from the configuration file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsOptions {
    /// Per-IP series (`arpwatch_pool_ip_*`, the owner's included) are kept for at most this many
    /// distinct IPs of each pool; later IPs are counted in
    /// `arpwatch_pool_ip_series_dropped_total` instead.
    pub max_ips_per_pool: usize,
    /// `/readyz` fails when the ring buffer was last drained longer ago than this.
    pub ready_staleness: Duration,
}

impl Default for MetricsOptions {
    fn default() -> Self {
        MetricsOptions {
            // A MetalLB or kube-vip pool is rarely larger than a /24.
            max_ips_per_pool: 256,
            // The watch loop drains at least once per one-second tick.
            ready_staleness: Duration::from_secs(10),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FrameLabels {
    iface: String,
    direction: &'static str,
    op: &'static str,
}

/// One attached interface and what watches its ingress (`xdp` or `tc`, and the mode).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IngressHookLabels {
    iface: String,
    hook: &'static str,
    mode: &'static str,
}

/// The frame counters of one interface, indexed by [`frame_slot`].
type IfaceFrames = [Counter; 8];

const SLOTS: [(Proto, Direction, ArpOp); 8] = {
    use ArpOp::*;
    use Direction::*;
    use Proto::*;
    [
        (Arp, Ingress, Request),
        (Arp, Ingress, Reply),
        (Arp, Egress, Request),
        (Arp, Egress, Reply),
        (Ndp, Ingress, Request),
        (Ndp, Ingress, Reply),
        (Ndp, Egress, Request),
        (Ndp, Egress, Reply),
    ]
};

/// The index of `(proto, direction, op)` in [`SLOTS`].
fn frame_slot(proto: Proto, direction: Direction, op: ArpOp) -> usize {
    let p = match proto {
        Proto::Arp => 0,
        Proto::Ndp => 1,
    };
    let d = match direction {
        Direction::Ingress => 0,
        Direction::Egress => 1,
    };
    let o = match op {
        ArpOp::Request => 0,
        ArpOp::Reply => 1,
    };
    p * 4 + d * 2 + o
}

/// The pipeline's side: counts frames and reads the engine.
pub struct Metrics {
    shared: Arc<Shared>,
    frames: Family<FrameLabels, Counter>,
    nd_messages: Family<FrameLabels, Counter>,
    /// Frame counters per interface name, so the hot path formats no label and takes no lock.
    frames_by_iface: HashMap<Arc<str>, IfaceFrames>,
    /// The interface of the previous observation: storms come from one interface at a time.
    last_iface: Option<(Arc<str>, IfaceFrames)>,
    pools: PoolSeries,
}

/// What the HTTP side reads; cheap to clone.
#[derive(Clone)]
pub struct Exporter {
    shared: Arc<Shared>,
}

/// What the watch loop reports about the agent itself; cheap to clone.
#[derive(Clone)]
pub struct Health {
    shared: Arc<Shared>,
}

struct Shared {
    registry: Registry,
    readings: Arc<Readings>,
    reload_successful: Gauge,
    reload_success_seconds: Gauge<f64, AtomicU64>,
    attached: Gauge,
    ingress_hooks: Family<IngressHookLabels, Gauge>,
    /// The series of `ingress_hooks` now exported, so a detached interface's goes.
    ingress_hook_series: Mutex<Vec<IngressHookLabels>>,
    last_drain_seconds: Gauge<f64, AtomicU64>,
    /// The same instant as `last_drain_seconds` in nanoseconds, 0 before the first drain.
    last_drain_ns: AtomicU64,
    ready_staleness: Duration,
    kubernetes: KubeMetrics,
}

impl Metrics {
    /// Metrics for the pools and thresholds of `config`.
    pub fn new(config: &Config, options: &MetricsOptions) -> Metrics {
        let mut registry = Registry::default();

        let build = Info::new([("version", env!("CARGO_PKG_VERSION"))]);
        registry.register(
            "arpwatch_build",
            "Always 1; the label carries the arpwatch version",
            build,
        );

        let frames = Family::<FrameLabels, Counter>::default();
        registry.register(
            "arpwatch_arp_frames",
            "Valid ARP frames observed by user space, per interface, direction and op",
            frames.clone(),
        );
        let nd_messages = Family::<FrameLabels, Counter>::default();
        registry.register(
            "arpwatch_ndp_messages",
            "Valid IPv6 Neighbor Solicitations and Advertisements observed by user space, per interface, direction and op",
            nd_messages.clone(),
        );

        let readings = Arc::new(Readings::default());
        registry.register_collector(Box::new(readings.clone()));

        let pools = PoolSeries::new(&config.engine, options.max_ips_per_pool, &mut registry);

        let attached = Gauge::default();
        registry.register(
            "arpwatch_attached_interfaces",
            "Interfaces with the arpwatch programs attached (ingress by XDP or TC, egress by TC)",
            attached.clone(),
        );
        let ingress_hooks = Family::<IngressHookLabels, Gauge>::default();
        registry.register(
            "arpwatch_ingress_hook",
            "1 for each watched interface, labelled with what observes its ingress: hook xdp (mode native or skb) or tc (mode tcx or netlink)",
            ingress_hooks.clone(),
        );
        let last_drain_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "arpwatch_last_ring_drain_timestamp_seconds",
            "Unix time at which user space last emptied the kernel ring buffer (0: never)",
            last_drain_seconds.clone(),
        );

        let reload_successful = Gauge::default();
        registry.register(
            "arpwatch_config_last_reload_successful",
            "1 when the last load of the configuration file (at start, on SIGHUP or when it changed) succeeded, 0 when it was rejected and the previous configuration kept",
            reload_successful.clone(),
        );
        let reload_success_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "arpwatch_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful load of the configuration (0: not yet told)",
            reload_success_seconds.clone(),
        );

        let kubernetes = KubeMetrics::register(&mut registry);

        Metrics {
            shared: Arc::new(Shared {
                registry,
                readings,
                reload_successful,
                reload_success_seconds,
                attached,
                ingress_hooks,
                ingress_hook_series: Mutex::new(Vec::new()),
                last_drain_seconds,
                last_drain_ns: AtomicU64::new(0),
                ready_staleness: options.ready_staleness,
                kubernetes,
            }),
            frames,
            nd_messages,
            frames_by_iface: HashMap::new(),
            last_iface: None,
            pools,
        }
    }

    /// The read side, for [`MetricsServer::run`].
    pub fn exporter(&self) -> Exporter {
        Exporter { shared: self.shared.clone() }
    }

    /// The watch loop's handle.
    pub fn health(&self) -> Health {
        Health { shared: self.shared.clone() }
    }

    /// Counts one observation (every observation the pipeline sees, raw mode included) and, when
    /// the pipeline detects, reads what `engine`, which has just been given it, made of it.
    pub fn observe(&mut self, obs: &Observation, engine: Option<&Engine>) {
        let slot = frame_slot(obs.proto(), obs.direction, obs.op);
        match &self.last_iface {
            Some((name, counters)) if Arc::ptr_eq(name, &obs.iface) => {
                counters[slot].inc_by(obs.frames());
            }
            _ => {
                let counters = self.iface_frames(&obs.iface);
                counters[slot].inc_by(obs.frames());
                self.last_iface = Some((obs.iface.clone(), counters));
            }
        }
        if let Some(engine) = engine {
            self.pools.observe(obs, engine);
        }
    }

    fn iface_frames(&mut self, iface: &Arc<str>) -> IfaceFrames {
        if let Some(counters) = self.frames_by_iface.get(&**iface) {
            return counters.clone();
        }
        let counters = SLOTS.map(|(proto, direction, op)| {
            let (family, op) = match (proto, op) {
                (Proto::Arp, ArpOp::Request) => (&self.frames, "request"),
                (Proto::Arp, ArpOp::Reply) => (&self.frames, "reply"),
                (Proto::Ndp, ArpOp::Request) => (&self.nd_messages, "solicitation"),
                (Proto::Ndp, ArpOp::Reply) => (&self.nd_messages, "advertisement"),
            };
            family.get_or_create_owned(&FrameLabels {
                iface: iface.to_string(),
                direction: direction.as_str(),
                op,
            })
        });
        self.frames_by_iface.insert(iface.clone(), counters.clone());
        counters
    }

    /// An event the engine reported, for the per-IP series of pool IPs.
    pub fn event(&mut self, event: &Event, engine: &Engine) {
        self.pools.event(event, engine);
    }

    /// Reads the engine's totals: events per kind, sizes, evictions. The pipeline calls it after
    /// each batch of observations.
    pub fn read_engine(&self, engine: &Engine) {
        self.shared.readings.set_engine(engine.stats());
    }

    /// Time passed for `engine`: reads the claimants of the pool IPs anew, since claims age out
    /// of its concurrency window without a frame.
    pub fn refresh_claimants(&mut self, engine: &Engine) {
        self.pools.refresh(engine);
    }

    /// A reloaded configuration: the per-IP series follow its pools. Series of a pool that
    /// keeps its name stay (with their counts) for its IPs that are still in it; the others are
    /// removed from the exposition.
    pub fn reconfigure(&mut self, config: &Config, engine: &Engine) {
        self.pools.reconfigure(&config.engine, engine.pools());
    }
}

impl Health {
    /// The Kubernetes client's series.
    pub fn kubernetes(&self) -> KubeMetrics {
        self.shared.kubernetes.clone()
    }

    /// The latest totals of the kernel's per-CPU counters.
    pub fn set_kernel(&self, totals: &CounterTotals) {
        self.shared.readings.set_kernel(*totals);
    }

    /// How many interfaces are watched right now (ingress by XDP or TC, egress by TC).
    pub fn set_attached(&self, interfaces: usize) {
        self.shared.attached.set(i64::try_from(interfaces).unwrap_or(i64::MAX));
    }

    /// The configuration file was loaded (`ok`) or rejected at `now` (wall-clock time).
    pub fn config_loaded(&self, ok: bool, now: Timestamp) {
        self.shared.reload_successful.set(i64::from(ok));
        if ok {
            self.shared.reload_success_seconds.set(now.as_nanos() as f64 / 1e9);
        }
    }

    /// The output queue's totals, exported from now on.
    pub fn watch_output(&self, stats: Arc<OutputStats>) {
        self.shared.readings.set_output(stats);
    }

    /// What watches the ingress of each attached interface, as (interface, hook, mode): the
    /// series of the interfaces given are set to 1, those of interfaces no longer given go.
    pub fn set_ingress_hooks<'a>(
        &self,
        attached: impl IntoIterator<Item = (&'a str, &'static str, &'static str)>,
    ) {
        let now: Vec<IngressHookLabels> = attached
            .into_iter()
            .map(|(iface, hook, mode)| IngressHookLabels { iface: iface.to_owned(), hook, mode })
            .collect();
        let mut exported =
            self.shared.ingress_hook_series.lock().unwrap_or_else(PoisonError::into_inner);
        for gone in exported.iter().filter(|labels| !now.contains(labels)) {
            self.shared.ingress_hooks.remove(gone);
        }
        for labels in &now {
            self.shared.ingress_hooks.get_or_create(labels).set(1);
        }
        *exported = now;
    }

    /// User space emptied the ring buffer at `now` (wall-clock time).
    pub fn drained(&self, now: Timestamp) {
        let ns = now.as_nanos().max(1);
        self.shared.last_drain_ns.store(ns, Ordering::Relaxed);
        self.shared.last_drain_seconds.set(ns as f64 / 1e9);
    }
}

impl Exporter {
    /// Every metric in the OpenMetrics text format ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        self.shared.encode()
    }

    /// `Ok` when at least one program is attached and the ring buffer was drained within the
    /// staleness limit at wall-clock time `now`; otherwise one line saying why not.
    pub fn readiness(&self, now: Timestamp) -> Result<(), String> {
        self.shared.readiness(now)
    }
}

impl Shared {
    fn encode(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail, and every metric encodes without error.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    fn readiness(&self, now: Timestamp) -> Result<(), String> {
        if self.attached.get() <= 0 {
            return Err("no arpwatch program is attached to any interface".to_owned());
        }
        let last = self.last_drain_ns.load(Ordering::Relaxed);
        if last == 0 {
            return Err("the ring buffer has not been drained yet".to_owned());
        }
        let age = now.saturating_since(Timestamp::from_nanos(last));
        if age > self.ready_staleness {
            let mut reason = String::new();
            let _ = write!(
                reason,
                "the ring buffer was last drained {:.1} s ago (limit {:.1} s)",
                age.as_secs_f64(),
                self.ready_staleness.as_secs_f64()
            );
            return Err(reason);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
