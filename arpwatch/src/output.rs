//! Where observations go: printed raw (`--raw`) or fed to the detection engine, whose events are
//! printed. Live capture and replay both drive this one pipeline.

use std::io::{self, Write};

use crate::cli::Format;
use crate::observation::{ArpOp, Observation, Timestamp};

/// What to do with observations.
pub enum Mode {
    /// Print every observation.
    Raw,
}

pub struct Pipeline<W: Write> {
    mode: Mode,
    format: Format,
    out: W,
}

impl<W: Write> Pipeline<W> {
    pub fn new(mode: Mode, format: Format, out: W) -> Self {
        Pipeline { mode, format, out }
    }

    pub fn observe(&mut self, obs: &Observation) -> io::Result<()> {
        match &mut self.mode {
            Mode::Raw => match self.format {
                Format::Json => {
                    serde_json::to_writer(&mut self.out, obs)?;
                    self.out.write_all(b"\n")
                }
                Format::Text => writeln!(self.out, "{}", observation_text(obs)),
            },
        }
    }

    /// Lets time pass for the engine when no frame arrives (live capture ticks once a second).
    pub fn tick(&mut self, _now: Timestamp) -> io::Result<()> {
        match &mut self.mode {
            Mode::Raw => Ok(()),
        }
    }

    /// The end of the input: closes what is still open, then flushes.
    pub fn finish(&mut self, now: Timestamp) -> io::Result<()> {
        self.tick(now)?;
        self.flush()
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// One readable line for a person at a terminal.
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

/// JSON when stdout is not a terminal, text when a person is watching.
pub fn default_format(requested: Option<Format>) -> Format {
    use std::io::IsTerminal;
    requested.unwrap_or(if io::stdout().is_terminal() { Format::Text } else { Format::Json })
}
