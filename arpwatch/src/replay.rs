//! `arpwatch replay`: the capture files named on the command line, read one after the other by
//! the core's [`CaptureReader`] as one stream of observations.
//!
//! - `-` is standard input, so a capture can come from a pipe (`tcpdump -U -w - | arpwatch replay
//!   -`); `/dev/stdin` works too. A capture is read as it arrives, never whole into memory; it is
//!   named `stdin` (in errors, summaries and, for a pcap file, as the interface).
//! - Names are checked before anything is read: a name that does not exist, or is a directory, is
//!   an error at once (a typo in the last name must not cost a long replay of the others).
//!   Nothing is opened or read ahead, so a pipe or FIFO is read only once, in its turn.
//! - A file that cannot be read to its end (it cannot be opened, is not a capture, is truncated or
//!   damaged) is one error in the stream, naming it and what is wrong; the observations before
//!   the damage have been given, and the replay goes on with the next file.
//! - The captures are read and decoded on a thread of their own ([`Replay::read_ahead`]), a
//!   batch of observations ahead of the pipeline, so reading and detection share the work of two
//!   cores; a capture arriving through a pipe is passed on one observation at a time.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;

use arpwatch_core::capture_file::{CaptureReader, ReplayCounters, ReplayError};
use arpwatch_core::observation::Observation;

/// The name that means standard input.
pub const STDIN_ARG: &str = "-";
/// What standard input is called in errors, summaries and interface names.
const STDIN_NAME: &str = "stdin";
/// Observations per batch handed from the reading thread to the pipeline: large enough that
/// the hand-over (a wake-up of the other thread at worst) costs nothing per frame; a batch is
/// under a MiB.
const BATCH: usize = 4096;
/// Batches read ahead of the pipeline at most.
const BATCHES_AHEAD: usize = 2;

/// A capture file that was read to its end, and what it held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSummary {
    pub path: PathBuf,
    pub counters: ReplayCounters,
}

/// Opens a capture file and reads its header.
pub fn open_capture(path: impl AsRef<Path>) -> Result<CaptureReader<File>, ReplayError> {
    let path = path.as_ref();
    let file =
        File::open(path).map_err(|source| ReplayError::Open { path: path.into(), source })?;
    CaptureReader::new(file, path)
}

/// Where one capture comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Source {
    Stdin,
    File(PathBuf),
}

impl Source {
    fn of(arg: PathBuf) -> Source {
        if arg.as_os_str() == STDIN_ARG {
            Source::Stdin
        } else {
            Source::File(arg)
        }
    }

    fn open(&self) -> Result<CaptureReader<Box<dyn Read + Send>>, ReplayError> {
        match self {
            // The reader reads in large blocks, so locking standard input per read costs nothing.
            Source::Stdin => CaptureReader::new(Box::new(io::stdin()), STDIN_NAME),
            Source::File(path) => {
                let file = File::open(path)
                    .map_err(|source| ReplayError::Open { path: path.clone(), source })?;
                CaptureReader::new(Box::new(file), path)
            }
        }
    }

    /// Data that arrives over time (a pipe, a FIFO, a terminal) rather than a file on disk.
    fn is_stream(&self) -> bool {
        let path = match self {
            Source::Stdin => Path::new("/dev/stdin"),
            Source::File(path) => path,
        };
        std::fs::metadata(path).is_ok_and(|m| !m.is_file())
    }
}

/// Several captures replayed one after the other, in the order given, as one stream of
/// observations. An `Err` item is a capture that could not be read to its end; iteration goes on
/// with the next one and ends after the last.
pub struct Replay {
    pending: std::vec::IntoIter<Source>,
    current: Option<CaptureReader<Box<dyn Read + Send>>>,
    summaries: Vec<FileSummary>,
    failed: Vec<PathBuf>,
    streams: bool,
}

impl Replay {
    /// Checks that every name exists and is not a directory, then reads them lazily. `-` is
    /// standard input (see the module documentation).
    pub fn open(paths: impl IntoIterator<Item = impl Into<PathBuf>>) -> Result<Self, ReplayError> {
        let sources: Vec<Source> = paths.into_iter().map(|p| Source::of(p.into())).collect();
        for source in &sources {
            if let Source::File(path) = source {
                let metadata = std::fs::metadata(path)
                    .map_err(|source| ReplayError::Open { path: path.clone(), source })?;
                if metadata.is_dir() {
                    let source = io::Error::new(io::ErrorKind::IsADirectory, "it is a directory");
                    return Err(ReplayError::Open { path: path.clone(), source });
                }
            }
        }
        let streams = sources.iter().any(Source::is_stream);
        Ok(Replay {
            pending: sources.into_iter(),
            current: None,
            summaries: Vec::new(),
            failed: Vec::new(),
            streams,
        })
    }

    /// The captures read to their end so far, with what each held.
    pub fn summaries(&self) -> &[FileSummary] {
        &self.summaries
    }

    /// The captures that could not be read to their end so far.
    pub fn failed(&self) -> &[PathBuf] {
        &self.failed
    }

    /// Some capture arrives over time (standard input, a pipe): what it yields should be passed
    /// on at once rather than when an output buffer fills.
    pub fn streams(&self) -> bool {
        self.streams
    }

    /// The same stream of observations, read on a thread of its own ahead of the caller; when
    /// it has ended, `ReadAhead::finish` gives this `Replay` back with its summaries.
    pub fn read_ahead(self) -> io::Result<ReadAhead> {
        let batch = if self.streams { 1 } else { BATCH };
        let (sender, batches) = mpsc::sync_channel(BATCHES_AHEAD);
        let mut replay = self;
        let reader =
            std::thread::Builder::new().name("arpwatch-replay".to_owned()).spawn(move || {
                loop {
                    let items: Vec<Item> = replay.by_ref().take(batch).collect();
                    // An empty batch is the end; a send fails when the caller stopped early.
                    if items.is_empty() || sender.send(items).is_err() {
                        return replay;
                    }
                }
            })?;
        Ok(ReadAhead { batches, current: Vec::new().into_iter(), reader })
    }
}

type Item = Result<Observation, ReplayError>;

/// A [`Replay`] read on a thread of its own ([`Replay::read_ahead`]).
pub struct ReadAhead {
    batches: Receiver<Vec<Item>>,
    current: std::vec::IntoIter<Item>,
    reader: JoinHandle<Replay>,
}

impl ReadAhead {
    /// Waits for the reading thread to end (at once when the stream has ended) and gives the
    /// `Replay` back, with what it read.
    pub fn finish(self) -> Replay {
        drop(self.batches);
        self.reader.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

impl Iterator for ReadAhead {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.current.next() {
                return Some(item);
            }
            // The reading thread ended (its sender dropped) after the last batch.
            self.current = self.batches.recv().ok()?.into_iter();
        }
    }
}

impl Iterator for Replay {
    type Item = Item;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let reader = match &mut self.current {
                Some(reader) => reader,
                None => {
                    let source = self.pending.next()?;
                    match source.open() {
                        Ok(reader) => self.current.insert(reader),
                        Err(e) => {
                            self.failed.push(e.path().to_owned());
                            return Some(Err(e));
                        }
                    }
                }
            };
            match reader.next() {
                Some(Ok(observation)) => return Some(Ok(observation)),
                Some(Err(e)) => {
                    self.failed.push(reader.path().to_owned());
                    self.current = None;
                    return Some(Err(e));
                }
                None => {
                    let path = reader.path().to_owned();
                    self.summaries.push(FileSummary { path, counters: reader.counters() });
                    self.current = None;
                }
            }
        }
    }
}
