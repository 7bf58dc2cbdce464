//! What the built binary says when its output or its command line is wrong: one sentence on
//! stderr that names what is wrong (stdout, the flag), and the exit status of SPEC §4. Pure: no
//! privilege, nothing attached (`replay` and usage errors only).

use std::path::PathBuf;
use std::process::{Command, Stdio};

fn arpwatch() -> Command {
    Command::new(env!("CARGO_BIN_EXE_arpwatch"))
}

fn capture(name: &str) -> PathBuf {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/pcaps")).join(name);
    assert!(path.is_file(), "capture {} is missing", path.display());
    path
}

/// The lines of stderr that are arpwatch's own sentences (not logs).
fn sentences(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| l.starts_with("arpwatch: "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_full_stdout_is_named() {
    let dev_full = std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
    let out = arpwatch()
        .arg("replay")
        .arg(capture("arpspoof_gateway_oneway.pcap"))
        .stdout(dev_full)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        sentences(&out.stderr),
        ["arpwatch: cannot write to stdout: No space left on device"]
    );
}

#[test]
fn a_reader_that_goes_away_is_a_clean_end() {
    let mut child = arpwatch()
        .args(["replay", "--raw"])
        .arg(capture("sgr_hs-arpScan.pcap"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `arpwatch replay ... | head -0`: the reader closes before reading anything.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("cannot write"), "{stderr}");
}

#[test]
fn a_negative_duration_names_the_flag() {
    for value in ["-1", "0"] {
        let out = arpwatch().args(["watch", "--all", "--duration", value]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        let first = stderr.lines().next().unwrap_or_default();
        assert_eq!(
            first,
            format!(
                "error: invalid value '{value}' for '--duration <SECONDS>': '{value}' must be a \
                 positive number of seconds"
            )
        );
    }
}
