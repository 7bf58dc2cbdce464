//! arpwatch: a passive ARP observer. The binary (`main.rs`) is a thin shell over these modules.

pub mod capture;
pub mod cli;
pub mod config;
pub mod decode;
pub mod engine;
pub mod event;
pub mod kernel;
pub mod links;
pub mod metrics;
pub mod node;
pub mod observation;
pub mod output;
pub mod privileges;
pub mod replay;
pub mod watch;

/// An error caused by how arpwatch was invoked or configured (exit status 2), as opposed to a
/// failure at run time (exit status 1). Its message is one sentence naming the offending field.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);
