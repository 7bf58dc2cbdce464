//! arpwatch: a passive ARP observer. The binary (`main.rs`) is a thin shell over these modules.

pub mod config;
pub mod decode;
pub mod engine;
pub mod event;
pub mod observation;
pub mod replay;
