//! Where observations go: printed raw (`--raw`) or fed to the detection engine, whose events are
//! annotated and printed. Live capture and replay both drive this one pipeline; the formats are
//! the core's `wire` module.

use std::io::{self, Write};

use crate::links::LocalMacs;
use crate::metrics::Metrics;
use arpwatch_core::engine::Engine;
use arpwatch_core::enrich::Annotator;
use arpwatch_core::event::Event;
use arpwatch_core::observation::{Observation, Timestamp};
use arpwatch_core::wire;
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
    /// Feed the detection engine, annotate its events and print them.
    Detect { engine: Box<Engine>, annotator: Annotator },
}

pub struct Pipeline<W: Write> {
    mode: Mode,
    format: Format,
    out: W,
    /// Reused for every call into the engine, so the hot path does not allocate.
    events: Vec<Event>,
    /// Counts observations and events for Prometheus, when metrics are served.
    metrics: Option<Metrics>,
}

impl<W: Write> Pipeline<W> {
    pub fn new(mode: Mode, format: Format, out: W) -> Self {
        Pipeline { mode, format, out, events: Vec::new(), metrics: None }
    }

    pub fn observe(&mut self, obs: &Observation) -> io::Result<()> {
        if let Some(metrics) = &mut self.metrics {
            metrics.observe(obs);
        }
        match &mut self.mode {
            Mode::Raw => match self.format {
                Format::Json => wire::write_observation_json_line(&mut self.out, obs),
                Format::Text => wire::write_observation_text_line(&mut self.out, obs),
            },
            Mode::Detect { engine, .. } => {
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
            Mode::Detect { engine, .. } => {
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
            Mode::Detect { engine, .. } => Some(engine),
        }
    }

    /// Lets events say when their MAC is this host's own, and on which interface.
    pub fn set_local_macs(&mut self, local_macs: Arc<LocalMacs>) {
        if let Mode::Detect { annotator, .. } = &mut self.mode {
            annotator.set_local_macs(local_macs);
        }
    }

    fn write_events(&mut self) -> io::Result<()> {
        let Mode::Detect { annotator, .. } = &self.mode else {
            return Ok(());
        };
        for mut event in self.events.drain(..) {
            annotator.annotate(&mut event);
            if let Some(metrics) = &mut self.metrics {
                metrics.event(&event);
            }
            match self.format {
                Format::Json => wire::write_json_line(&mut self.out, &event)?,
                Format::Text => wire::write_text_line(&mut self.out, &event)?,
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

/// JSON when stdout is not a terminal, text when a person is watching.
pub fn default_format(requested: Option<Format>) -> Format {
    use std::io::IsTerminal;
    requested.unwrap_or(if io::stdout().is_terminal() { Format::Text } else { Format::Json })
}
