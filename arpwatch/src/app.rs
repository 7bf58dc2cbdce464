//! The program: parse the command line once into a plan, run the command, and turn the outcome
//! into an exit status (0 success, 2 bad usage or configuration, 1 a failure at run time) with
//! one clear sentence on stderr.

use anyhow::{Context, Result};
use clap::Parser;
use std::io;
use std::process::ExitCode;
use std::time::Duration;

use crate::cli::Cli;
use crate::metrics::{wall_clock_now, Metrics, MetricsOptions, MetricsServer};
use crate::output::{Mode, Pipeline};
use crate::plan::{PipelinePlan, Plan, Processing};
use crate::replay::Replay;
use crate::stdout::{self, Lines, WhenFull};
use crate::{node, watch, UsageError};
use arpwatch_core::engine::{Engine, EngineStats};
use arpwatch_core::enrich::Annotator;

/// How long the lines still queued at the end of a watch may take to reach stdout. With the
/// rest of the stop (a last drain, detaching) a stop stays well within two seconds, whatever
/// stdout does.
const EXIT_FLUSH: Duration = Duration::from_secs(1);

/// Runs arpwatch with the process's arguments.
pub fn main() -> ExitCode {
    // clap prints its own message and exits with status 2 on a usage error, 0 for --help.
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .target(env_logger::Target::Stderr)
        .init();
    // Everything the flags and the configuration file say, checked before anything runs.
    let plan = match Plan::from_cli(cli) {
        Ok(Plan::Status(plan)) => return crate::api::client::main(&plan),
        Ok(plan) => plan,
        Err(err) => {
            eprintln!("arpwatch: {err}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("arpwatch: could not start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(plan)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("arpwatch: {}", one_sentence(&err));
            if err.chain().any(|e| e.is::<UsageError>()) {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// The error and its causes joined by ": ", leaving out a cause whose text the message already
/// carries (many error types quote their source in their own message).
fn one_sentence(err: &anyhow::Error) -> String {
    let mut sentence = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if sentence.contains(&text) {
            continue;
        }
        if !sentence.is_empty() {
            sentence.push_str(": ");
        }
        sentence.push_str(&text);
    }
    sentence
}

/// A reader that closed our stdout (`arpwatch ... | head`) is not an error.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<io::Error>())
        .any(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

async fn run(plan: Plan) -> Result<()> {
    match plan {
        Plan::Watch(plan) => {
            // Bind before anything is attached: a bad or busy address is a usage error at once.
            let server = plan
                .metrics_addr
                .map(|addr| {
                    MetricsServer::bind(addr).map_err(|err| {
                        UsageError(format!("--metrics-addr {addr}: cannot listen: {err}"))
                    })
                })
                .transpose()?;
            // The status API's queries go to the watch loop, which answers them.
            let (api, queries) = match (&server, plan.api) {
                (Some(_), true) => {
                    let (api, queries) = crate::api::channel(&node::node_name());
                    (Some(api), Some(queries))
                }
                _ => (None, None),
            };
            let metrics = server.map(|server| {
                let metrics = Metrics::new(&plan.pipeline.config, &MetricsOptions::default());
                metrics.health().config_loaded(true, wall_clock_now());
                log::info!("serving metrics on http://{}/metrics", server.local_addr());
                if api.is_some() {
                    log::info!(
                        "serving the status API on http://{0}/api/v1/ips and its page on http://{0}/",
                        server.local_addr()
                    );
                }
                let exporter = metrics.exporter();
                tokio::spawn(async move {
                    if let Err(err) = server.run(exporter, api).await {
                        log::error!("the metrics server stopped: {err}");
                    }
                });
                metrics
            });
            let health = metrics.as_ref().map(Metrics::health);
            // Never wait for stdout: lines that do not fit are dropped and counted.
            let (out, drain) = stdout::spawn(io::stdout(), plan.output_buffer, WhenFull::Drop)
                .context("could not start the stdout writer")?;
            if let Some(health) = &health {
                health.watch_output(drain.stats());
            }
            let mut pipeline = pipeline(&plan.pipeline, metrics, out);
            if queries.is_some() {
                pipeline.keep_recent_events();
            }
            let watched = watch::run(&plan, &mut pipeline, health.as_ref(), queries).await;
            // Whatever ended the watch, the queued lines get a bounded time to reach stdout.
            let output = drain.finish(Some(EXIT_FLUSH));
            let summary = watched?;
            let output = output?;
            eprintln!("arpwatch: kernel counters: {}", summary.counters);
            if summary.short_records > 0 {
                eprintln!("arpwatch: {} ring items were not whole records", summary.short_records);
            }
            report_engine(summary.engine);
            eprintln!("arpwatch: output: {output}");
            Ok(())
        }
        Plan::Replay(plan) => {
            // A replay has no ring to protect: it waits for stdout and loses nothing.
            let (out, drain) =
                stdout::spawn(io::stdout(), stdout::DEFAULT_CAPACITY, WhenFull::Wait)
                    .context("could not start the stdout writer")?;
            let mut pipeline = pipeline(&plan.pipeline, None, out);
            let replay = Replay::open(&plan.files)?;
            let mut last_ts = None;
            // What arrives through a pipe is passed on as it comes.
            let streams = replay.streams();
            let mut observations =
                replay.read_ahead().context("could not start the capture reader")?;
            // A damaged capture is named and skipped; the others are still replayed.
            for item in &mut observations {
                match item {
                    Ok(observation) => {
                        last_ts = Some(observation.ts);
                        pipeline.observe(&observation)?;
                        if streams {
                            pipeline.flush()?;
                        }
                    }
                    Err(err) => eprintln!("arpwatch: {err}"),
                }
            }
            let replay = observations.finish();
            let engine = pipeline.finish(last_ts)?;
            // Every line is out before the summaries, which follow them on a shared terminal.
            drain.finish(None)?;
            for summary in replay.summaries() {
                let c = summary.counters;
                eprintln!(
                    "arpwatch: {}: frames={} arp={} ndp={} other={} malformed={} \
                     unsupported_link_type={}",
                    summary.path.display(),
                    c.frames,
                    c.arp,
                    c.ndp,
                    c.other,
                    c.malformed,
                    c.unsupported_link_type
                );
            }
            report_engine(engine);
            match replay.failed().len() {
                0 => Ok(()),
                failed => Err(anyhow::anyhow!(
                    "{failed} of {} captures could not be read to their end (named above)",
                    plan.files.len()
                )),
            }
        }
        Plan::Status(_) => unreachable!("`arpwatch status` runs without the runtime"),
    }
}

/// The pipeline both commands share: raw observations, or the engine with the configuration.
fn pipeline(plan: &PipelinePlan, metrics: Option<Metrics>, out: Lines) -> Pipeline<Lines> {
    let mode = match plan.processing {
        Processing::Raw => Mode::Raw,
        Processing::Detect => Mode::Detect {
            engine: Box::new(Engine::new(&plan.config.engine)),
            annotator: Annotator::new(&node::node_name()),
        },
    };
    Pipeline::new(mode, plan.format, out, metrics)
}

fn report_engine(stats: Option<EngineStats>) {
    if let Some(s) = stats {
        let e = &s.evictions;
        eprintln!(
            "arpwatch: engine: observations={} claims={} tracked_ips={} tracked_macs={} \
             evicted_ips={} evicted_macs={} evicted_senders={} summarised_events={}",
            s.observations,
            s.claims,
            s.tracked_ips,
            s.tracked_macs,
            e.ips,
            e.macs,
            e.senders,
            s.summarised.iter().sum::<u64>()
        );
    }
}
