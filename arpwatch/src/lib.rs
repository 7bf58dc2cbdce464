//! arpwatch's shell: the kernel programs' loader, the ring-buffer reader, rtnetlink links, the
//! watch loop, metrics and HTTP, output sinks, the command line and the plan made of it, around
//! the pure `arpwatch-core`. The binary (`main.rs`) is a thin shell over these modules.

pub mod capture;
pub mod cli;
pub mod kernel;
pub mod links;
pub mod metrics;
pub mod node;
pub mod output;
pub mod plan;
pub mod privileges;
pub mod replay;
pub mod watch;

/// An error caused by how arpwatch was invoked or configured (exit status 2), as opposed to a
/// failure at run time (exit status 1). Its message is one sentence naming the offending field.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);
