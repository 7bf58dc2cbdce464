//! Reloading the configuration while watching, and the signals that are not a stop.
//!
//! SIGHUP, or a change of the `--config` file's contents (read every [`POLL`]: this follows the
//! symlink swaps of a Kubernetes ConfigMap mounted as a volume, and editors that replace the
//! file), loads the file again and applies the same flags (`--pool`, `--full-view`) to it. A
//! configuration that passes validation goes to the pipeline, whose engine keeps its state
//! (`Engine::reconfigure`); one that does not is logged in one sentence and the previous one
//! stays. Either way `arpwatch_config_last_reload_successful` says how the last attempt went.
//!
//! SIGUSR1 and SIGUSR2 are logged and otherwise ignored, so that a stray signal never ends the
//! watch.

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::time::{Interval, MissedTickBehavior};

use arpwatch_core::config::Config;

use crate::metrics::{wall_clock_now, Health};
use crate::output::Pipeline;
use crate::plan::{parse_config, read_config, ConfigError, ConfigSource};

/// How often the configuration file is read to see whether it changed.
pub const POLL: Duration = Duration::from_secs(2);

/// What asked for a reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Hangup,
    FileChanged,
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Trigger::Hangup => "SIGHUP",
            Trigger::FileChanged => "the file changed",
        })
    }
}

/// The file as last read: its text, or why it could not be read.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Bytes(Vec<u8>),
    Unreadable(std::io::ErrorKind),
}

/// Watches for reload requests and carries them out.
pub struct Reloader {
    source: ConfigSource,
    /// The configuration in force.
    current: Config,
    seen: Option<Seen>,
    poll: Interval,
    hangup: Signal,
    user1: Signal,
    user2: Signal,
    health: Option<Health>,
}

impl Reloader {
    /// Handles SIGHUP, SIGUSR1 and SIGUSR2 from now on; `current` is the configuration the
    /// watch started with, built from `source`.
    pub fn new(source: ConfigSource, current: Config, health: Option<Health>) -> Result<Reloader> {
        let seen = source.path.as_ref().map(|path| read(path));
        let mut poll = tokio::time::interval_at(tokio::time::Instant::now() + POLL, POLL);
        poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Ok(Reloader {
            source,
            current,
            seen,
            poll,
            hangup: signal(SignalKind::hangup()).context("could not handle SIGHUP")?,
            user1: signal(SignalKind::user_defined1()).context("could not handle SIGUSR1")?,
            user2: signal(SignalKind::user_defined2()).context("could not handle SIGUSR2")?,
            health,
        })
    }

    /// Waits for SIGHUP or a change of the file. Cancel-safe: every await is on a signal or the
    /// interval, which lose nothing when dropped.
    pub async fn requested(&mut self) -> Trigger {
        loop {
            tokio::select! {
                _ = self.hangup.recv() => return Trigger::Hangup,
                _ = self.user1.recv() => ignored("SIGUSR1"),
                _ = self.user2.recv() => ignored("SIGUSR2"),
                _ = self.poll.tick(), if self.source.path.is_some() => {
                    if self.file_changed() {
                        return Trigger::FileChanged;
                    }
                }
            }
        }
    }

    /// Whether the file's contents (or its readability) changed since it was last read.
    fn file_changed(&self) -> bool {
        match (&self.source.path, &self.seen) {
            (Some(path), seen) => seen.as_ref() != Some(&read(path)),
            (None, _) => false,
        }
    }

    /// Loads the configuration again and, when it is valid, gives it to `pipeline`.
    pub fn reload<W: Write>(&mut self, trigger: Trigger, pipeline: &mut Pipeline<W>) {
        let Some(path) = self.source.path.clone() else {
            log::info!("{trigger}: nothing to reload without --config");
            return;
        };
        match self.load(&path) {
            Ok(config) => {
                if config.engine.caps != self.current.engine.caps {
                    log::warn!(
                        "config {}: caps changed; the engine keeps the caps it started with until \
                         the next start",
                        path.display()
                    );
                }
                pipeline.reconfigure(&config);
                self.current = config;
                self.report(true);
                log::info!("reloaded the configuration from {} ({trigger})", path.display());
            }
            Err(err) => {
                self.report(false);
                log::error!("{err}; keeping the previous configuration ({trigger})");
            }
        }
    }

    fn load(&mut self, path: &Path) -> Result<Config, String> {
        let bytes = read_config(path);
        self.seen = Some(match &bytes {
            Ok(bytes) => Seen::Bytes(bytes.clone()),
            Err(err) => Seen::Unreadable(err.kind()),
        });
        let bytes = bytes
            .map_err(|source| ConfigError::Read { path: path.to_owned(), source }.to_string())?;
        let config = parse_config(path, &bytes).map_err(|err| err.to_string())?;
        self.source.apply_flags(Some(config)).map_err(|err| err.to_string())
    }

    fn report(&self, ok: bool) {
        if let Some(health) = &self.health {
            health.config_loaded(ok, wall_clock_now());
        }
    }
}

fn read(path: &Path) -> Seen {
    match read_config(path) {
        Ok(bytes) => Seen::Bytes(bytes),
        Err(err) => Seen::Unreadable(err.kind()),
    }
}

fn ignored(signal: &str) {
    log::info!("{signal} ignored: SIGHUP reloads the configuration, SIGTERM or SIGINT stops");
}

#[cfg(test)]
mod tests;
