//! `arpwatch watch`: attach to interfaces, drain the ring buffer into the pipeline until a signal
//! or the duration ends the run, then report the kernel counters and detach.

use anyhow::{Context, Result};
use std::io::Write;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

use crate::capture::{RecordDecoder, RingReader};
use crate::cli::WatchArgs;
use crate::kernel::{interface_index, CounterTotals, KernelProbe};
use crate::output::Pipeline;

/// How often the wall-clock offset is re-measured and the engine is given the time.
const TICK: Duration = Duration::from_secs(1);

/// Why a watch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Duration,
    Interrupt,
    Terminate,
}

pub struct WatchSummary {
    pub stop: StopReason,
    pub counters: CounterTotals,
    /// Ring items that were not whole records (never expected; reported if it happens).
    pub short_records: usize,
}

pub async fn run<W: Write>(args: &WatchArgs, pipeline: &mut Pipeline<W>) -> Result<WatchSummary> {
    let mut probe = KernelProbe::load(args.ring_bytes)?;
    let mut decoder = RecordDecoder::default();
    for iface in &args.ifaces {
        let ifindex = interface_index(iface)?;
        let attached = probe.attach(ifindex, iface, args.attach_options())?;
        log::info!(
            "watching {iface} (ifindex {ifindex}): XDP ingress in {} mode, TC egress by {}",
            attached.xdp_mode,
            attached.tc_mode
        );
        decoder.names.insert(ifindex, iface);
    }
    let mut reader = RingReader::new(probe.take_ring()?)?;
    let mut sigterm = signal(SignalKind::terminate()).context("could not handle SIGTERM")?;
    let mut sigint = signal(SignalKind::interrupt()).context("could not handle SIGINT")?;
    let deadline = tokio::time::sleep(args.duration.unwrap_or(Duration::MAX));
    tokio::pin!(deadline);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut short_records = 0;

    let stop = loop {
        tokio::select! {
            drained = reader.drain(|record| pipeline.observe(&decoder.observation(record))) => {
                short_records += drained?.short;
                pipeline.flush()?;
            }
            _ = tick.tick() => {
                decoder.clock.refresh();
                pipeline.tick(decoder.clock.now())?;
                pipeline.flush()?;
            }
            _ = &mut deadline, if args.duration.is_some() => break StopReason::Duration,
            _ = sigint.recv() => break StopReason::Interrupt,
            _ = sigterm.recv() => break StopReason::Terminate,
        }
    };
    log::info!("stopping ({stop:?})");
    // Records the kernel submitted before the stop still belong to this run.
    short_records += reader.drain_now(|record| pipeline.observe(&decoder.observation(record)))?.short;
    pipeline.finish(decoder.clock.now())?;
    let counters = probe.counters()?;
    // Dropping the probe closes the bpf_link fds, which detaches every program.
    drop(reader);
    drop(probe);
    Ok(WatchSummary { stop, counters, short_records })
}
