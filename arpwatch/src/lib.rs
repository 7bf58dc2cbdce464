//! arpwatch: a passive ARP observer. The binary (`main.rs`) is a thin shell over these modules.

pub mod observation;
