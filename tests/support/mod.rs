//! Shared test support: crafted frames and namespace labs. Each test binary uses only part of it.
#![allow(dead_code)]

pub mod frames;
pub mod lab;
