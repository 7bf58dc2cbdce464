//! Support for the privileged tests: namespace labs and arpwatch processes. Frames and
//! observations come from `arpwatch_core::testkit`. Each test binary uses only part of it.
#![allow(dead_code)]

pub mod apiserver;
pub mod kernel;
pub mod lab;
