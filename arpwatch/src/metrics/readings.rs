//! Totals that are counted elsewhere (the kernel's per-CPU counters, the engine's statistics) and
//! exported as the latest reading at each scrape. Their owners keep cumulative totals, so
//! re-counting them here as increments would only add a place for the two to disagree.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arpwatch_common::{direction, Counter};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use crate::kernel::CounterTotals;
use crate::stdout::OutputStats;
use arpwatch_core::engine::{EngineStats, Evictions};
use arpwatch_core::event::{EventKind, Severity};

/// Name (without `_total`) and help of the metric exporting one kernel counter. The match is
/// exhaustive on purpose: a counter added to the kernel (e.g. suppressed duplicates) does not
/// compile until it has its line here.
fn kernel_metric(counter: Counter) -> (&'static str, &'static str) {
    match counter {
        Counter::Arp => (
            "arpwatch_kernel_arp_frames",
            "Valid ARP frames the kernel programs recorded or lost to a full ring, per direction.",
        ),
        Counter::Malformed => (
            "arpwatch_kernel_malformed_frames",
            "Frames with the ARP ethertype, and ICMPv6 Neighbor Solicitations and Advertisements, that failed validation (never emitted), per direction.",
        ),
        Counter::RingFull => (
            "arpwatch_ring_full_drops",
            "Valid ARP frames and ND messages lost because the ring buffer was full, per direction.",
        ),
        Counter::Suppressed => (
            "arpwatch_suppressed_duplicates",
            "Valid ARP frames and ND messages the kernel did not emit because the same frame was emitted just before, per direction.",
        ),
        Counter::Ndp => (
            "arpwatch_kernel_ndp_frames",
            "Valid IPv6 Neighbor Solicitations and Advertisements the kernel programs recorded or lost to a full ring, per direction.",
        ),
    }
}

const DIRECTIONS: [(&str, u8); 2] =
    [("ingress", direction::INGRESS), ("egress", direction::EGRESS)];

/// The latest readings; a metric family stays absent until its source has been read once (no
/// kernel in a replay, no engine with `--raw`).
#[derive(Debug, Default)]
pub(super) struct Readings {
    kernel: Mutex<Option<CounterTotals>>,
    engine: Mutex<Option<EngineStats>>,
    /// The output queue's own totals, read live at each scrape.
    output: Mutex<Option<Arc<OutputStats>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A reading is replaced whole, so a panic elsewhere cannot leave it half written.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Readings {
    pub(super) fn set_kernel(&self, totals: CounterTotals) {
        *lock(&self.kernel) = Some(totals);
    }

    pub(super) fn set_output(&self, stats: Arc<OutputStats>) {
        *lock(&self.output) = Some(stats);
    }

    pub(super) fn set_engine(&self, stats: EngineStats) {
        *lock(&self.engine) = Some(stats);
    }
}

impl Collector for Readings {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        if let Some(totals) = *lock(&self.kernel) {
            let mut metric = encoder.encode_descriptor(
                "arpwatch_kernel_frames",
                "Frames the kernel programs ran on (ARP or not), per direction: the watched interfaces' own packet counters since arpwatch attached.",
                None,
                MetricType::Counter,
            )?;
            for (label, dir) in DIRECTIONS {
                let labels = [("direction", label)];
                ConstCounter::new(totals.frames(dir)).encode(metric.encode_family(&labels)?)?;
            }
            for counter in Counter::ALL {
                let (name, help) = kernel_metric(counter);
                let mut metric =
                    encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
                for (label, dir) in DIRECTIONS {
                    let labels = [("direction", label)];
                    ConstCounter::new(totals.get(counter, dir))
                        .encode(metric.encode_family(&labels)?)?;
                }
            }
        }

        let output = lock(&self.output).clone();
        if let Some(output) = output {
            for (name, help, value) in [
                (
                    "arpwatch_output_lines",
                    "Lines (events or raw observations) written to stdout.",
                    output.written_lines(),
                ),
                (
                    "arpwatch_output_dropped_lines",
                    "Lines not written because stdout did not keep up: the output queue was full, or still held them when the process stopped.",
                    output.dropped_lines(),
                ),
            ] {
                let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
                ConstCounter::new(value).encode(metric)?;
            }
            let metric = encoder.encode_descriptor(
                "arpwatch_output_queued_bytes",
                "Bytes of lines waiting in the output queue for stdout.",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(i64::try_from(output.queued_bytes()).unwrap_or(i64::MAX))
                .encode(metric)?;
        }

        let engine = lock(&self.engine).clone();
        if let Some(engine) = engine {
            // Every kind is exported from the first reading on, so `increase()` sees the first
            // event of each.
            let mut metric = encoder.encode_descriptor(
                "arpwatch_events",
                "Events reported, per event kind and severity (every start, ongoing and end line counts)",
                None,
                MetricType::Counter,
            )?;
            for kind in EventKind::ALL {
                let labels = [("event", kind.as_str()), ("severity", kind.severity().as_str())];
                ConstCounter::new(engine.events[kind.index()])
                    .encode(metric.encode_family(&labels)?)?;
            }
            let mut metric = encoder.encode_descriptor(
                "arpwatch_events_summarised",
                "Informational events not printed because their interface was over its budget, summarised in its storm instead, per event kind",
                None,
                MetricType::Counter,
            )?;
            for kind in EventKind::ALL.into_iter().filter(|k| k.severity() == Severity::Info) {
                ConstCounter::new(engine.summarised_of(kind))
                    .encode(metric.encode_family(&[("event", kind.as_str())])?)?;
            }

            for (name, help, value) in [
                (
                    "arpwatch_tracked_ips",
                    "IPs the engine keeps state for (bounded by caps.max_tracked_ips).",
                    engine.tracked_ips,
                ),
                (
                    "arpwatch_tracked_macs",
                    "(IP, MAC) bindings the engine keeps over all tracked IPs.",
                    engine.tracked_macs,
                ),
            ] {
                let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(metric)?;
            }

            // Destructured so that a new kind of eviction cannot be left out.
            let Evictions { ips, macs, senders, interfaces, pending_requests, conditions } =
                engine.evictions;
            let mut metric = encoder.encode_descriptor(
                "arpwatch_evictions",
                "Engine state dropped because a cap was reached, per kind of state.",
                None,
                MetricType::Counter,
            )?;
            for (kind, value) in [
                ("ips", ips),
                ("macs", macs),
                ("senders", senders),
                ("interfaces", interfaces),
                ("pending_requests", pending_requests),
                ("conditions", conditions),
            ] {
                let labels = [("kind", kind)];
                ConstCounter::new(value).encode(metric.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
