//! The capture reader (pcap and pcapng) on arbitrary files: it may refuse them, but must neither
//! panic nor loop.
#![no_main]

use arpwatch_core::capture_file::CaptureReader;
use libfuzzer_sys::fuzz_target;
use std::io::Cursor;

fuzz_target!(|data: &[u8]| {
    let Ok(reader) = CaptureReader::new(Cursor::new(data), "fuzz.pcap") else {
        return;
    };
    // Every observation consumes at least one byte of the file: more items than bytes would mean
    // the reader is going round in circles.
    let items = reader.take(data.len() + 2).count();
    assert!(items <= data.len() + 1, "{items} items from {} bytes", data.len());
});
