//! arpwatch's pure core. Observations come in with their timestamps, events go out; nothing here
//! reads a clock, touches the network, the kernel or an async runtime, so live capture, capture
//! replay, tests and fuzzers drive the same code. `docs/architecture.md` is the map.

pub mod capture_file;
pub mod cluster;
pub mod config;
pub mod decode;
pub mod engine;
pub mod enrich;
pub mod event;
pub mod ifname;
pub mod observation;
pub mod pools;
pub mod status;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod wire;
