//! Lines to stdout without ever making the watch loop wait for the reader of stdout.
//!
//! The pipeline prints into a [`Lines`] (a `Write`): the bytes of whole lines are split off a
//! reused `BytesMut` as [`Bytes`] (no copy) and pushed, in order, into a queue bounded in bytes.
//! A thread of its own ([`spawn`]) drains the queue with blocking writes to the sink (stdout).
//! When the queue is full, what does not fit is decided by [`WhenFull`]:
//!
//! - [`WhenFull::Drop`] (`watch`): the lines that do not fit are dropped and counted, never
//!   waited for, so a stalled stdout (a pipe nobody reads, a frozen log collector) never stops
//!   the ring reader, the metrics server or signal handling. A warning says when dropping
//!   starts and when stdout caught up again.
//! - [`WhenFull::Wait`] (`replay`): the producer waits for room. A replay has no ring to
//!   protect, and its output must stay complete and byte-identical.
//!
//! Memory is bounded by the queue's capacity plus one chunk being filled. At the end,
//! [`Drain::finish`] lets the writer empty the queue within a bounded time (or without bound,
//! for a replay); lines still queued when that time is up are counted as dropped.
//!
//! A write that fails stops the writer; the error comes back, naming stdout, from the next push
//! or flush and from [`Drain::finish`]. A reader that went away (`arpwatch ... | head`) is a
//! `BrokenPipe` error, which `main` takes for a normal end.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

/// The queue's default capacity: about 25 000 event lines.
pub const DEFAULT_CAPACITY: usize = 8 << 20;

/// The smallest capacity `--output-buffer` accepts.
pub const MIN_CAPACITY: usize = 4096;

/// Lines are pushed in chunks of about this size (and at every flush): each push may wake the
/// writer thread, so a replay's output is handed over a few thousand times a second at most.
const CHUNK: usize = 256 << 10;

/// What a push does when the queue has no room for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenFull {
    /// Keep the lines that fit, drop and count the rest.
    Drop,
    /// Wait until the writer made room.
    Wait,
}

/// Totals, readable at any time (the metrics read them at each scrape).
#[derive(Debug, Default)]
pub struct OutputStats {
    written_lines: AtomicU64,
    dropped_lines: AtomicU64,
    queued_bytes: AtomicU64,
}

impl OutputStats {
    /// Lines written to the sink.
    pub fn written_lines(&self) -> u64 {
        self.written_lines.load(Ordering::Relaxed)
    }

    /// Lines dropped because the queue was full, or still queued when the run ended.
    pub fn dropped_lines(&self) -> u64 {
        self.dropped_lines.load(Ordering::Relaxed)
    }

    /// Bytes waiting for the writer.
    pub fn queued_bytes(&self) -> u64 {
        self.queued_bytes.load(Ordering::Relaxed)
    }
}

/// The counts at the end of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Totals {
    pub written_lines: u64,
    pub dropped_lines: u64,
}

impl fmt::Display for Totals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "written_lines={} dropped_lines={}", self.written_lines, self.dropped_lines)
    }
}

/// A write to stdout that failed, in one sentence naming stdout.
#[derive(Clone, Debug)]
struct Failure {
    kind: io::ErrorKind,
    /// The system's words, without the "(os error N)" suffix.
    reason: String,
}

impl Failure {
    fn new(err: &io::Error) -> Failure {
        let mut reason = err.to_string();
        if let Some(code) = err.raw_os_error() {
            let suffix = format!(" (os error {code})");
            if let Some(stripped) = reason.strip_suffix(&suffix) {
                reason = stripped.to_owned();
            }
        }
        Failure { kind: err.kind(), reason }
    }

    fn error(&self) -> io::Error {
        io::Error::new(self.kind, format!("cannot write to stdout: {}", self.reason))
    }
}

struct Chunk {
    bytes: Bytes,
    lines: u64,
}

#[derive(Default)]
struct State {
    chunks: VecDeque<Chunk>,
    /// Bytes and lines pushed and not written yet (queued or being written).
    bytes: usize,
    lines: u64,
    /// No more pushes: the writer ends once the queue is empty.
    closed: bool,
    /// The writer's first error; it writes nothing after it.
    failed: Option<Failure>,
    /// The writer thread returned.
    done: bool,
    /// [`Drain::finish`] stopped waiting: the writer must not count anything any more.
    abandoned: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when anything in `state` changes.
    changed: Condvar,
    capacity: usize,
    stats: Arc<OutputStats>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent at every unlock, so a panic elsewhere cannot corrupt it.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.changed.wait(state).unwrap_or_else(PoisonError::into_inner)
    }

    fn enqueue(&self, state: &mut State, bytes: Bytes, lines: u64) {
        state.bytes += bytes.len();
        state.lines += lines;
        self.stats.queued_bytes.store(state.bytes as u64, Ordering::Relaxed);
        state.chunks.push_back(Chunk { bytes, lines });
        self.changed.notify_all();
    }

    fn drop_lines(&self, lines: u64) {
        self.stats.dropped_lines.fetch_add(lines, Ordering::Relaxed);
    }
}

/// Starts the writer thread over `sink`; returns what the pipeline prints into and the handle
/// that ends the writer.
pub fn spawn(
    sink: impl Write + Send + 'static,
    capacity: usize,
    when_full: WhenFull,
) -> io::Result<(Lines, Drain)> {
    let capacity = capacity.max(1);
    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        changed: Condvar::new(),
        capacity,
        stats: Arc::new(OutputStats::default()),
    });
    let writer = shared.clone();
    std::thread::Builder::new()
        .name("arpwatch-stdout".to_owned())
        .spawn(move || write_out(&writer, sink))?;
    let lines = Lines {
        pending: BytesMut::with_capacity(CHUNK.min(capacity)),
        chunk: CHUNK.min(capacity / 4).max(1),
        when_full,
        dropping: 0,
        shared: shared.clone(),
    };
    Ok((lines, Drain { shared }))
}

/// The writer thread: writes the chunks in order until the queue is closed and empty, or a write
/// fails.
fn write_out(shared: &Shared, mut sink: impl Write) {
    loop {
        let mut state = shared.lock();
        while state.chunks.is_empty() && !state.closed {
            state = shared.wait(state);
        }
        let Some(chunk) = state.chunks.pop_front() else {
            state.done = true;
            shared.changed.notify_all();
            return;
        };
        drop(state);
        let written = sink.write_all(&chunk.bytes).and_then(|()| sink.flush());
        let mut state = shared.lock();
        if state.abandoned {
            return;
        }
        state.bytes -= chunk.bytes.len();
        state.lines -= chunk.lines;
        shared.stats.queued_bytes.store(state.bytes as u64, Ordering::Relaxed);
        match written {
            Ok(()) => {
                shared.stats.written_lines.fetch_add(chunk.lines, Ordering::Relaxed);
                shared.changed.notify_all();
            }
            Err(err) => {
                // Nothing more can be written: what was queued is lost.
                let lost = chunk.lines + state.lines;
                shared.drop_lines(lost);
                state.chunks.clear();
                state.bytes = 0;
                state.lines = 0;
                shared.stats.queued_bytes.store(0, Ordering::Relaxed);
                state.failed = Some(Failure::new(&err));
                state.done = true;
                shared.changed.notify_all();
                return;
            }
        }
    }
}

/// What the pipeline prints into: whole lines go to the queue at each flush and whenever a
/// chunk's worth is pending. `write` never fails; a failure of the writer is returned by the
/// next push.
pub struct Lines {
    pending: BytesMut,
    chunk: usize,
    when_full: WhenFull,
    /// Lines dropped since dropping last started (0: not dropping).
    dropping: u64,
    shared: Arc<Shared>,
}

impl Lines {
    /// Pushes the whole lines pending.
    fn push(&mut self) -> io::Result<()> {
        let Some(end) = memchr::memrchr(b'\n', &self.pending) else {
            return self.check();
        };
        let bytes = self.pending.split_to(end + 1).freeze();
        let lines = count_lines(&bytes);
        let shared = &*self.shared;
        let mut state = shared.lock();
        if let Some(failure) = &state.failed {
            return Err(failure.error());
        }
        let room = shared.capacity.saturating_sub(state.bytes);
        if bytes.len() <= room {
            shared.enqueue(&mut state, bytes, lines);
            drop(state);
            self.caught_up();
            return Ok(());
        }
        match self.when_full {
            WhenFull::Wait => {
                // A chunk larger than the whole queue goes in alone.
                while state.bytes > 0 && state.bytes + bytes.len() > shared.capacity && !state.done
                {
                    state = shared.wait(state);
                }
                if let Some(failure) = &state.failed {
                    return Err(failure.error());
                }
                shared.enqueue(&mut state, bytes, lines);
            }
            WhenFull::Drop => {
                // The whole lines that fit go in; the rest is dropped and counted.
                let mut bytes = bytes;
                let fits = memchr::memrchr(b'\n', &bytes[..room]).map_or(0, |i| i + 1);
                let kept = bytes.split_to(fits);
                let kept_lines = count_lines(&kept);
                if !kept.is_empty() {
                    shared.enqueue(&mut state, kept, kept_lines);
                }
                drop(state);
                let dropped = lines - kept_lines;
                shared.drop_lines(dropped);
                if self.dropping == 0 {
                    log::warn!(
                        "stdout is not keeping up: lines that do not fit in the {} KiB output \
                         queue are dropped and counted (arpwatch_output_dropped_lines_total)",
                        shared.capacity >> 10
                    );
                }
                self.dropping += dropped;
            }
        }
        Ok(())
    }

    fn caught_up(&mut self) {
        if self.dropping > 0 {
            log::warn!("stdout caught up again; {} lines were dropped meanwhile", self.dropping);
            self.dropping = 0;
        }
    }

    /// The writer's error, if it failed.
    fn check(&self) -> io::Result<()> {
        match &self.shared.lock().failed {
            Some(failure) => Err(failure.error()),
            None => Ok(()),
        }
    }
}

fn count_lines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

impl Write for Lines {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    /// The encoders write a line in many small pieces: this is their hot path.
    #[inline]
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        // The whole lines go before the buffer would have to grow, which would copy them all.
        if buf.len() > self.pending.capacity() - self.pending.len() {
            self.push()?;
        }
        self.pending.extend_from_slice(buf);
        if self.pending.len() >= self.chunk {
            self.push()?;
        }
        Ok(())
    }

    /// Pushes the whole lines written so far; never waits for the sink (except with
    /// [`WhenFull::Wait`] when the queue is full).
    fn flush(&mut self) -> io::Result<()> {
        self.push()
    }
}

/// Ends the writer thread.
pub struct Drain {
    shared: Arc<Shared>,
}

impl Drain {
    pub fn stats(&self) -> Arc<OutputStats> {
        self.shared.stats.clone()
    }

    /// No more lines: waits until the writer has written everything queued, or at most `grace`
    /// when given; lines still queued after it are counted as dropped (the writer is left
    /// blocked in its write, and the process ends without it). Returns the totals, or the
    /// writer's error.
    pub fn finish(self, grace: Option<Duration>) -> io::Result<Totals> {
        let shared = &*self.shared;
        let deadline = grace.map(|grace| Instant::now() + grace);
        let mut state = shared.lock();
        state.closed = true;
        shared.changed.notify_all();
        while !state.done {
            match deadline {
                None => state = shared.wait(state),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    state = shared
                        .changed
                        .wait_timeout(state, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
        if !state.done {
            // Given up: nothing queued will be written (what is being written may be, partly).
            shared.drop_lines(state.lines);
            state.abandoned = true;
            state.chunks.clear();
        }
        if let Some(failure) = &state.failed {
            return Err(failure.error());
        }
        Ok(Totals {
            written_lines: shared.stats.written_lines(),
            dropped_lines: shared.stats.dropped_lines(),
        })
    }
}

#[cfg(test)]
mod tests;
