//! The arpwatch binary: parse the command line once, run the command, and turn the outcome into an
//! exit status (0 success, 2 bad usage or configuration, 1 a failure at run time) with one clear
//! sentence on stderr.

use anyhow::Result;
use clap::Parser;
use std::io::{self, BufWriter};
use std::process::ExitCode;

use arpwatch::cli::{Cli, Command};
use arpwatch::output::{default_format, Mode, Pipeline};
use arpwatch::{watch, UsageError};

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
            eprintln!("arpwatch: {err:#}");
            if err.chain().any(|e| e.is::<UsageError>()) {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
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
            let format = default_format(args.output.format);
            let mut pipeline = Pipeline::new(Mode::Raw, format, BufWriter::new(io::stdout().lock()));
            let summary = watch::run(&args, &mut pipeline).await?;
            eprintln!("arpwatch: kernel counters: {}", summary.counters);
            if summary.short_records > 0 {
                eprintln!("arpwatch: {} ring items were not whole records", summary.short_records);
            }
            Ok(())
        }
        Command::Replay(_args) => anyhow::bail!("replay is not wired yet"),
    }
}
