//! `arpwatch replay`: the capture files named on the command line, opened and read one after the
//! other by the core's [`CaptureReader`] as one stream of observations.

use std::fs::File;
use std::path::{Path, PathBuf};

use arpwatch_core::capture_file::{CaptureReader, ReplayCounters, ReplayError};
use arpwatch_core::observation::Observation;

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

/// Several capture files replayed one after the other, in the order given, as one stream of
/// observations. Iteration ends after the last file or after the first error.
pub struct Replay {
    pending: std::vec::IntoIter<PathBuf>,
    current: Option<CaptureReader<File>>,
    summaries: Vec<FileSummary>,
    failed: bool,
}

impl Replay {
    /// Checks that every file opens and starts like a capture of a supported link type, so that a
    /// typo in the last name fails before anything is reported, then reads them lazily.
    pub fn open(paths: impl IntoIterator<Item = impl Into<PathBuf>>) -> Result<Self, ReplayError> {
        let paths: Vec<PathBuf> = paths.into_iter().map(Into::into).collect();
        for path in &paths {
            open_capture(path)?;
        }
        Ok(Replay {
            pending: paths.into_iter(),
            current: None,
            summaries: Vec::new(),
            failed: false,
        })
    }

    /// The files read to their end so far, with what each held.
    pub fn summaries(&self) -> &[FileSummary] {
        &self.summaries
    }
}

impl Iterator for Replay {
    type Item = Result<Observation, ReplayError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.failed {
            let reader = match &mut self.current {
                Some(reader) => reader,
                None => {
                    let path = self.pending.next()?;
                    match open_capture(&path) {
                        Ok(reader) => self.current.insert(reader),
                        Err(e) => {
                            self.failed = true;
                            return Some(Err(e));
                        }
                    }
                }
            };
            match reader.next() {
                Some(Ok(observation)) => return Some(Ok(observation)),
                Some(Err(e)) => {
                    self.failed = true;
                    return Some(Err(e));
                }
                None => {
                    let path = reader.path().to_owned();
                    self.summaries.push(FileSummary { path, counters: reader.counters() });
                    self.current = None;
                }
            }
        }
        None
    }
}
