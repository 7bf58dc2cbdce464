//! arpwatch: a passive ARP observer. The binary (`main.rs`) is a thin shell over these modules.

pub mod decode;
pub mod observation;
pub mod replay;
