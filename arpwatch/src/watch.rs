//! `arpwatch watch`: attach to the selected interfaces and keep following them (interfaces that
//! appear, vanish or are renamed), drain the ring buffer into the pipeline until a signal or the
//! duration ends the run, then report the kernel counters and detach. SIGHUP or a change of the
//! configuration file reloads the configuration (`reload`). Between drains it answers the status
//! API's queries (`api`) from the pipeline.

use anyhow::{Context, Result};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::Instant;

use arpwatch_core::cluster::ClusterSnapshot;
use arpwatch_core::engine::EngineStats;

use crate::api::{self, Queries};
use crate::capture::{RecordDecoder, RingReader};
use crate::cluster::{self, Cluster};
use crate::kernel::{AttachOptions, CounterTotals, KernelProbe};
use crate::links::{IfaceSelector, LinkChange, LinkInfo, LinkWatcher};
use crate::metrics::Health;
use crate::output::Pipeline;
use crate::plan::WatchPlan;
use crate::reload::Reloader;
use crate::UsageError;

/// How often the wall-clock offset is re-measured, readiness and the kernel counters are
/// reported and the engine is given the time (besides its own deadlines).
const TICK: Duration = Duration::from_secs(1);
/// How many changes the debug line of an applied cluster snapshot names at most.
const CHANGES_LOGGED: usize = 10;
/// How late past its deadline a timer's event may be printed, so that many deadlines close
/// together (a scan's requests) cost one wake-up, not one each.
const TIMER_SLACK: Duration = Duration::from_millis(10);

/// Why a watch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Duration,
    Interrupt,
    Terminate,
}

pub struct WatchSummary {
    pub counters: CounterTotals,
    /// Ring items that were not whole records (never expected; reported if it happens).
    pub short_records: usize,
    /// The engine's statistics at the end, when the pipeline detects.
    pub engine: Option<EngineStats>,
}

/// Watches until the plan's duration or a signal ends the run. `health`, when metrics are
/// served, is told what is attached, when the ring was drained and the kernel's counters;
/// `queries`, with the status API, are answered between drains.
pub async fn run<W: Write>(
    plan: &WatchPlan,
    pipeline: &mut Pipeline<W>,
    health: Option<&Health>,
    mut queries: Option<Queries>,
) -> Result<WatchSummary> {
    // First, so that a SIGHUP while attaching does not end the process.
    let mut reloader =
        Reloader::new(plan.pipeline.source.clone(), plan.pipeline.config.clone(), health.cloned())?;
    let selector = &plan.interfaces;
    let mut links = LinkWatcher::start().await?;
    if let Some(missing) =
        selector.exact_names().find(|name| !links.links().any(|l| l.name == *name))
    {
        return Err(UsageError(format!("--iface {missing}: no such network interface")).into());
    }
    let mut probe = KernelProbe::load_with_dedup(plan.ring_bytes, plan.dedup_interval)?;
    let mut decoder = RecordDecoder::new(links.links());
    let options = plan.attach;
    let selected: Vec<LinkInfo> = links.links().filter(|l| selector.selects(l)).cloned().collect();
    for link in &selected {
        attach(&mut probe, link, options)?;
    }
    if selected.is_empty() {
        log::warn!("no interface matches the selection yet; waiting for one to appear");
    }
    pipeline.set_local_macs(links.local_macs());
    let mut cluster = match &plan.kubernetes {
        Some(kubernetes) => {
            let config = cluster::client_config(&kubernetes.source).await?;
            let metrics = health.map(Health::kubernetes).unwrap_or_default();
            let interfaces = cluster::interfaces(links.links());
            let node = crate::node::node_name();
            let started = Cluster::start(config, kubernetes, &node, interfaces, metrics)?;
            log::info!(
                "kubernetes: reading the cluster context as node {node}; leases in namespace {}",
                kubernetes.lease_namespace
            );
            pipeline.follow_cluster(plan.pipeline.config.clone(), started.events.clone());
            Some(started)
        }
        None => None,
    };
    report_attached(health, &probe);
    let mut reader = RingReader::new(probe.take_ring()?)?;
    let mut sigterm = signal(SignalKind::terminate()).context("could not handle SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("could not handle SIGINT")?;
    let deadline = tokio::time::sleep(plan.duration.unwrap_or(Duration::MAX));
    tokio::pin!(deadline);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut short_records = 0;
    // The cluster snapshot the pipeline uses, for the log's account of what changed.
    let mut applied: Option<Arc<ClusterSnapshot>> = None;
    // The kernel's counters as last read (each tick), for the status API.
    let mut kernel = None;

    let stop = loop {
        // The engine's next timer (an unanswered request, a condition going quiet), on tokio's
        // clock: woken then, its event is reported at its `ts`, not at the next tick.
        let timer = pipeline.next_deadline();
        // At most one such wake-up per TIMER_SLACK: a scan makes one deadline per requested IP,
        // and an event is dated at its deadline however late it is printed.
        let wake =
            timer.map(|at| Instant::now() + at.saturating_since(decoder.now()).max(TIMER_SLACK));
        tokio::select! {
            drained = reader.drain(|record| pipeline.observe(&decoder.observation(record))) => {
                short_records += drained?.short;
                if let Some(health) = health {
                    health.drained(decoder.now());
                }
                pipeline.flush()?;
            }
            change = links.next_change() => {
                let change = change?;
                // Records already in the ring were made under the interfaces as they were: name
                // them before an ifindex is renamed, forgotten or reused.
                short_records += drain_pending(&mut reader, pipeline, &mut decoder)?;
                decoder.follow(&change);
                follow(&mut probe, selector, options, change);
                pipeline.set_local_macs(links.local_macs());
                if let Some(cluster) = &cluster {
                    cluster.set_interfaces(cluster::interfaces(links.links()));
                }
                report_attached(health, &probe);
                pipeline.flush()?;
            }
            _ = tick.tick() => {
                probe.flush_log();
                decoder.refresh_clock();
                // A quiet network still counts as drained: readiness means the reader is alive.
                short_records += drain_pending(&mut reader, pipeline, &mut decoder)?;
                let now = decoder.now();
                if health.is_some() || queries.is_some() {
                    kernel = Some(probe.counters()?);
                }
                if let Some((health, totals)) = health.zip(kernel.as_ref()) {
                    health.drained(now);
                    health.set_kernel(totals);
                }
                pipeline.tick(now)?;
                pipeline.flush()?;
            }
            trigger = reloader.requested() => reloader.reload(trigger, pipeline),
            request = api::next_query(&mut queries) => pipeline.answer(request, kernel.as_ref()),
            changed = snapshot_changed(&mut cluster) => {
                if changed.is_err() {
                    // Never expected: the client's thread runs as long as the process.
                    log::warn!("kubernetes: the client stopped; events go out without cluster context");
                    cluster = None;
                }
                let snapshot = cluster.as_mut().and_then(|c| c.snapshots.borrow_and_update().clone());
                pipeline.set_cluster(snapshot.clone());
                if let Some(snapshot) = snapshot {
                    log_applied(applied.as_deref(), &snapshot);
                    applied = Some(snapshot);
                }
            }
            _ = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {
                // Frames already in the ring come before the timer's event.
                short_records += drain_pending(&mut reader, pipeline, &mut decoder)?;
                // The two clocks differ by rounding: never tick short of the deadline that woke us.
                pipeline.tick(decoder.now().max(timer.unwrap_or_default()))?;
                pipeline.flush()?;
            }
            _ = &mut deadline, if plan.duration.is_some() => break StopReason::Duration,
            _ = sigint.recv() => break StopReason::Interrupt,
            _ = sigterm.recv() => break StopReason::Terminate,
        }
    };
    log::info!("stopping ({stop:?})");
    // Records the kernel submitted before the stop still belong to this run.
    short_records += drain_pending(&mut reader, pipeline, &mut decoder)?;
    let engine = pipeline.finish(Some(decoder.now()))?;
    probe.flush_log();
    let counters = probe.counters()?;
    // Dropping the probe closes the bpf_link fds, which detaches every program.
    drop(reader);
    drop(probe);
    Ok(WatchSummary { counters, short_records, engine })
}

/// Resolves when the cluster publishes a new snapshot; never without a cluster.
async fn snapshot_changed(
    cluster: &mut Option<Cluster>,
) -> Result<(), tokio::sync::watch::error::RecvError> {
    match cluster {
        Some(cluster) => cluster.snapshots.changed().await,
        None => std::future::pending().await,
    }
}

/// Says which cluster snapshot the pipeline now judges and names by: the first at info, each
/// later one at debug (`RUST_LOG=info,arpwatch::watch=debug`), with what changed since the one
/// before.
fn log_applied(before: Option<&ClusterSnapshot>, now: &ClusterSnapshot) {
    let Some(before) = before else {
        log::info!("kubernetes: cluster context in use: {}", now.summary());
        return;
    };
    if !log::log_enabled!(log::Level::Debug) {
        return;
    }
    let changes = now.changes_since(before);
    let mut named = changes.iter().take(CHANGES_LOGGED).cloned().collect::<Vec<_>>().join(", ");
    if changes.len() > CHANGES_LOGGED {
        named.push_str(&format!(" and {} more", changes.len() - CHANGES_LOGGED));
    }
    let changed = if changes.is_empty() { String::new() } else { format!("; changed: {named}") };
    log::debug!("kubernetes: cluster context applied: {}{changed}", now.summary());
}

/// Delivers the records already in the ring, without waiting; returns how many ring items were
/// not whole records.
fn drain_pending<W: Write>(
    reader: &mut RingReader,
    pipeline: &mut Pipeline<W>,
    decoder: &mut RecordDecoder,
) -> std::io::Result<usize> {
    Ok(reader.drain_now(|record| pipeline.observe(&decoder.observation(record)))?.short)
}

fn attach(probe: &mut KernelProbe, link: &LinkInfo, options: AttachOptions) -> Result<()> {
    let attached = probe.attach(link.ifindex, &link.name, options)?;
    if let Some(refused) = &attached.xdp_refused {
        log::info!("{}: {refused}; its ingress is watched by TC instead", link.name);
    }
    let (name, ifindex, ingress) = (&link.name, link.ifindex, attached.ingress);
    match attached.tc_mode {
        Some(tc_mode) => {
            log::info!("watching {name} (ifindex {ifindex}): ingress by {ingress}, egress by TC ({tc_mode})")
        }
        None => log::warn!(
            "watching {name} (ifindex {ifindex}): ingress by {ingress}, egress not watched: TC \
             programs attach by name, and this name is not UTF-8"
        ),
    }
    Ok(())
}

/// Tells the metrics which interfaces are attached, and by which ingress hook.
fn report_attached(health: Option<&Health>, probe: &KernelProbe) {
    if let Some(health) = health {
        let attached = probe.attachments().values();
        health.set_attached(attached.len());
        health.set_ingress_hooks(
            attached.map(|a| (a.name.as_str(), a.ingress.hook(), a.ingress.mode())),
        );
    }
}

/// Applies one interface change to the attachments. Failures are logged, not fatal: a link can
/// vanish between its announcement and the attach, and one bad interface must not stop the watch
/// of the others.
fn follow(
    probe: &mut KernelProbe,
    selector: &IfaceSelector,
    options: AttachOptions,
    change: LinkChange,
) {
    let attach_or_warn = |probe: &mut KernelProbe, link: &LinkInfo| {
        if let Err(err) = attach(probe, link, options) {
            log::warn!("{}: {err:#}", link.name);
        }
    };
    match change {
        LinkChange::Added(link) => {
            if selector.selects(&link) {
                attach_or_warn(probe, &link);
            }
        }
        LinkChange::Renamed { ifindex, old, new } => {
            let attached = probe.attachments().contains_key(&ifindex);
            match (attached, selector.selects(&new)) {
                (true, true) => {
                    probe.rename(ifindex, &new.name);
                    log::info!("{old} (ifindex {ifindex}) is now {}", new.name);
                }
                (true, false) => {
                    probe.detach(ifindex);
                    log::info!(
                        "stopped watching {old} (ifindex {ifindex}): renamed to {}, which is not \
                         selected",
                        new.name
                    );
                }
                (false, true) => attach_or_warn(probe, &new),
                (false, false) => {}
            }
        }
        LinkChange::Removed { ifindex, name } => {
            if probe.detach(ifindex).is_some() {
                log::info!("forgot {name} (ifindex {ifindex}): the interface was removed");
            }
        }
    }
}
