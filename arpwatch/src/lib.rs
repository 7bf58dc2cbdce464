//! arpwatch's shell around the pure `arpwatch-core`: the kernel programs' loader (`kernel`), the
//! ring-buffer reader (`capture`), rtnetlink links (`links`), the watch loop (`watch`), metrics
//! and their HTTP server (`metrics`), the output pipeline (`output`) and its queue to stdout
//! (`stdout`), configuration reloads (`reload`), the command line (`cli`, `plan`) and capture
//! files (`replay`). The binary calls [`main`]; `docs/architecture.md` is the map.

mod api;
mod app;
mod capture;
mod cli;
mod cluster;
mod kernel;
mod links;
mod metrics;
mod node;
mod output;
mod plan;
mod privileges;
mod reload;
mod replay;
mod stdout;
mod watch;

pub use app::main;

/// The command line's clap definition, for generating the man pages and shell completions
/// (`cargo xtask dist-docs`).
pub fn cli_command() -> clap::Command {
    <cli::Cli as clap::CommandFactory>::command()
}

// What the integration tests and the benches drive directly: the kernel programs, the ring, the
// link watcher and the capture files, each through the same code the program runs.
pub use capture::drain_ring;
pub use kernel::{
    wakeup_bytes, CounterTotals, KernelProbe, DEFAULT_DEDUP_INTERVAL, DEFAULT_RING_BYTES,
    EBPF_OBJECT, KERNEL_LOG_TARGET,
};
pub use links::{LinkChange, LinkInfo, LinkWatcher, LocalMacs};
pub use replay::{open_capture, Replay};

/// An error caused by how arpwatch was invoked or configured (exit status 2), as opposed to a
/// failure at run time (exit status 1). Its message is one sentence naming the offending field.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);
