//! Test support shared by the unit and integration tests, the benches, the storm generator of
//! `cargo xtask bench` and the fuzz seeds, so each thing is built one way:
//!
//! - [`frames`]: Ethernet/ARP frames as bytes ([`frames::ArpFrame`], every field bendable, tags,
//!   padding, truncation, Linux cooked and LLC/SNAP framings) and the common non-ARP frame.
//! - [`observations`]: [`Observation`](crate::observation::Observation)s built fluently,
//!   `frame(secs).reply(A, VIP).to(CLIENT, CLIENT_IP)`.
//! - [`catalogue`]: one table of crafted frames with the outcome both parsers must give each.
//! - [`schema`]: a structural check of JSON output against the project's JSON Schemas.
//! - `netns` (with the feature only): a network namespace guard for the labs and the storm
//!   benchmark (root; the one part that does I/O).
//!
//! Compiled for this crate's own tests and behind the `testkit` feature, never into the binary.

pub mod catalogue;
pub mod frames;
#[cfg(feature = "testkit")]
pub mod netns;
pub mod observations;
pub mod schema;
