//! Where observations go: printed raw (`--raw`) or fed to the detection engine, whose events are
//! printed. Live capture and replay both drive this one pipeline.

use std::io::{self, Write};

use crate::links::LocalMacs;
use crate::metrics::Metrics;
use arpwatch_core::engine::Engine;
use arpwatch_core::event::Event;
use arpwatch_core::observation::{ArpOp, Observation, Timestamp};
use std::sync::Arc;

/// How observations and events are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Json,
    /// One readable line each.
    Text,
}

/// What to do with observations.
pub enum Mode {
    /// Print every observation.
    Raw,
    /// Feed the detection engine and print its events.
    Detect(Box<Engine>),
}

pub struct Pipeline<W: Write> {
    mode: Mode,
    format: Format,
    out: W,
    /// Reused for every call into the engine, so the hot path does not allocate.
    events: Vec<Event>,
    /// This host's MACs, when the pipeline watches live interfaces.
    local_macs: Option<Arc<LocalMacs>>,
    /// Counts observations and events for Prometheus, when metrics are served.
    metrics: Option<Metrics>,
}

impl<W: Write> Pipeline<W> {
    pub fn new(mode: Mode, format: Format, out: W) -> Self {
        Pipeline { mode, format, out, events: Vec::new(), local_macs: None, metrics: None }
    }

    pub fn observe(&mut self, obs: &Observation) -> io::Result<()> {
        if let Some(metrics) = &mut self.metrics {
            metrics.observe(obs);
        }
        match &mut self.mode {
            Mode::Raw => match self.format {
                Format::Json => write_json_line(&mut self.out, obs),
                Format::Text => writeln!(self.out, "{}", observation_text(obs)),
            },
            Mode::Detect(engine) => {
                engine.observe(obs, &mut self.events);
                self.write_events()
            }
        }
    }

    /// Lets time pass for the engine when no frame arrives (live capture ticks once a second), so
    /// timeouts fire and lasting conditions end.
    pub fn tick(&mut self, now: Timestamp) -> io::Result<()> {
        if let Some(metrics) = &mut self.metrics {
            metrics.tick(now);
        }
        match &mut self.mode {
            Mode::Raw => Ok(()),
            Mode::Detect(engine) => {
                engine.tick(now, &mut self.events);
                if let Some(metrics) = &self.metrics {
                    metrics.set_engine(&engine.stats());
                }
                self.write_events()
            }
        }
    }

    pub fn set_metrics(&mut self, metrics: Metrics) {
        self.metrics = Some(metrics);
    }

    pub fn metrics(&self) -> Option<&Metrics> {
        self.metrics.as_ref()
    }

    /// The engine, when the pipeline detects (for its statistics).
    pub fn engine(&self) -> Option<&Engine> {
        match &self.mode {
            Mode::Raw => None,
            Mode::Detect(engine) => Some(engine),
        }
    }

    /// Lets events say when their MAC is this host's own, and on which interface.
    pub fn set_local_macs(&mut self, local_macs: Arc<LocalMacs>) {
        self.local_macs = Some(local_macs);
    }

    fn write_events(&mut self) -> io::Result<()> {
        for mut event in self.events.drain(..) {
            if let (Some(local), Some(mac)) = (&self.local_macs, event.subject_mac()) {
                if let Some(owner) = local.owners(&mac.0).first() {
                    event.local = true;
                    event.local_iface = Some(Arc::from(owner.as_str()));
                }
            }
            if let Some(metrics) = &mut self.metrics {
                metrics.event(&event);
            }
            match self.format {
                Format::Json => write_json_line(&mut self.out, &event)?,
                Format::Text => writeln!(self.out, "{}", event.to_text_line())?,
            }
        }
        Ok(())
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

fn write_json_line(out: &mut impl Write, value: &impl serde::Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")
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
