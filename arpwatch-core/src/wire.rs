//! The output formats. For now the raw observation line (`--raw`): JSON, the observation's own
//! serialisation, and a text line for a person at a terminal.

use std::io::{self, Write};

use crate::observation::{ArpOp, Observation};

/// Writes a raw observation as one JSON line.
pub fn write_observation_json_line(out: &mut impl Write, obs: &Observation) -> io::Result<()> {
    serde_json::to_writer(&mut *out, obs)?;
    out.write_all(b"\n")
}

/// Writes a raw observation as one text line.
pub fn write_observation_text_line(out: &mut impl Write, obs: &Observation) -> io::Result<()> {
    writeln!(out, "{}", observation_text(obs))
}

/// One readable line for a person at a terminal, e.g.
/// `2026-11-21T10:00:00Z eth0 ingress 192.0.2.240 is-at 02:00:00:00:0a:01 to 192.0.2.99 (02:00:00:00:00:99) [eth 02:00:00:00:0a:01 > 02:00:00:00:00:99]`.
pub fn observation_text(obs: &Observation) -> String {
    let what = match obs.op {
        ArpOp::Request if obs.is_probe() => format!("probe who-has {} from {}", obs.tpa, obs.sha),
        ArpOp::Request => format!("who-has {} tell {} ({})", obs.tpa, obs.spa, obs.sha),
        ArpOp::Reply => format!("{} is-at {} to {} ({})", obs.spa, obs.sha, obs.tpa, obs.tha),
    };
    let gratuitous = if obs.is_gratuitous() { " gratuitous" } else { "" };
    let vlan = match obs.vlan.as_slice() {
        [] => String::new(),
        ids => format!(" vlan={ids:?}"),
    };
    format!(
        "{} {} {}{vlan} {what}{gratuitous} [eth {} > {}]",
        obs.ts.to_rfc3339(),
        obs.iface,
        obs.direction.as_str(),
        obs.eth_src,
        obs.eth_dst
    )
}
