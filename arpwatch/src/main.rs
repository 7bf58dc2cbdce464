//! The arpwatch binary: parse the command line once, run the command, and turn the outcome into an
//! exit status (0 success, 2 bad usage or configuration, 1 a failure at run time) with one clear
//! sentence on stderr.

use anyhow::Result;
use clap::Parser;
use std::io::{self, BufWriter};
use std::process::ExitCode;

use arpwatch::cli::{Cli, Command, OutputArgs};
use arpwatch::metrics::{Metrics, MetricsOptions, MetricsServer};
use arpwatch::output::{default_format, Mode, Pipeline};
use arpwatch::replay::Replay;
use arpwatch::{node, watch, UsageError};
use arpwatch_core::config::{Config, Pool};
use arpwatch_core::engine::Engine;
use arpwatch_core::enrich::Annotator;

fn main() -> ExitCode {
    // clap prints its own message and exits with status 2 on a usage error, 0 for --help.
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .target(env_logger::Target::Stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("arpwatch: could not start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
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

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Watch(args) => {
            let config = load_config(&args.output, false)?;
            // Bind before anything is attached: a bad or busy address is a usage error at once.
            let server = args
                .metrics_addr
                .map(|addr| {
                    MetricsServer::bind(addr).map_err(|err| {
                        UsageError(format!("--metrics-addr {addr}: cannot listen: {err}"))
                    })
                })
                .transpose()?;
            let mut pipeline = pipeline(&args.output, &config)?;
            if let Some(server) = server {
                let metrics = Metrics::new(&config, &MetricsOptions::default());
                log::info!("serving metrics on http://{}/metrics", server.local_addr());
                let exporter = metrics.exporter();
                tokio::spawn(async move {
                    if let Err(err) = server.run(exporter).await {
                        log::error!("the metrics server stopped: {err}");
                    }
                });
                pipeline.set_metrics(metrics);
            }
            let summary = watch::run(&args, &mut pipeline).await?;
            eprintln!("arpwatch: kernel counters: {}", summary.counters);
            if summary.short_records > 0 {
                eprintln!("arpwatch: {} ring items were not whole records", summary.short_records);
            }
            report_engine(&pipeline);
            Ok(())
        }
        Command::Replay(args) => {
            // A capture shows every reply on the segment, so unanswered requests can be judged.
            let config = load_config(&args.output, true)?;
            let mut pipeline = pipeline(&args.output, &config)?;
            let mut replay = Replay::open(&args.files)?;
            let mut last_ts = None;
            for observation in &mut replay {
                let observation = observation?;
                last_ts = Some(observation.ts);
                pipeline.observe(&observation)?;
            }
            if let Some(ts) = last_ts {
                pipeline.finish(ts)?;
            }
            for summary in replay.summaries() {
                let c = summary.counters;
                eprintln!(
                    "arpwatch: {}: frames={} arp={} non_arp={} malformed={} unsupported_link_type={}",
                    summary.path.display(),
                    c.frames,
                    c.arp,
                    c.non_arp,
                    c.malformed,
                    c.unsupported_link_type
                );
            }
            report_engine(&pipeline);
            Ok(())
        }
    }
}

/// The configuration file, if any, with the flags applied.
fn load_config(args: &OutputArgs, full_view: bool) -> Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::load(path).map_err(|err| UsageError(err.to_string()))?,
        None => Config::default(),
    };
    config.engine.full_view |= full_view || args.full_view;
    if !args.pools.is_empty() {
        config.engine.pools.push(Pool {
            name: "cli".to_owned(),
            cidrs: args.pools.clone(),
            interfaces: Vec::new(),
            macs: Vec::new(),
        });
    }
    config.engine.validate().map_err(|err| UsageError(format!("--pool: {err}")))?;
    Ok(config)
}

/// The pipeline both commands share: raw observations, or the engine with the configuration.
fn pipeline(
    args: &OutputArgs,
    config: &Config,
) -> Result<Pipeline<BufWriter<io::StdoutLock<'static>>>> {
    let format = default_format(args.format);
    let out = BufWriter::new(io::stdout().lock());
    if args.raw {
        return Ok(Pipeline::new(Mode::Raw, format, out));
    }
    let engine = Box::new(Engine::new(&config.engine));
    let annotator = Annotator::new(&node::node_name());
    Ok(Pipeline::new(Mode::Detect { engine, annotator }, format, out))
}

fn report_engine<W: io::Write>(pipeline: &Pipeline<W>) {
    if let Some(engine) = pipeline.engine() {
        let s = engine.stats();
        let e = &s.evictions;
        eprintln!(
            "arpwatch: engine: observations={} claims={} tracked_ips={} tracked_macs={} \
             evicted_ips={} evicted_macs={} evicted_senders={}",
            s.observations, s.claims, s.tracked_ips, s.tracked_macs, e.ips, e.macs, e.senders
        );
    }
}
