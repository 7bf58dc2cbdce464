//! The output queue with sinks that keep up, stall, crawl or fail.

use super::*;
use std::sync::mpsc::{channel, Receiver, Sender};

/// A sink whose lines the test reads back.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A sink that blocks in its first write until the test drops the sender: a pipe nobody reads.
struct Stalled(Receiver<()>);

impl Write for Stalled {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = self.0.recv();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn stalled() -> (Stalled, Sender<()>) {
    let (release, rx) = channel();
    (Stalled(rx), release)
}

/// A sink that takes a millisecond per write.
struct Slow(Shared);

impl Write for Slow {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        std::thread::sleep(Duration::from_millis(1));
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A sink that fails every write with `errno`.
struct Failing(i32);

impl Write for Failing {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::from_raw_os_error(self.0))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Line `i`, 100 bytes with its newline.
fn line(i: usize) -> String {
    format!("{i:099}\n")
}

#[test]
fn lines_arrive_whole_and_in_order() {
    let sink = Shared::default();
    let (mut lines, drain) = spawn(sink.clone(), DEFAULT_CAPACITY, WhenFull::Drop).unwrap();
    let mut expected = String::new();
    for i in 0..5000 {
        // Written in pieces, as serde_json does.
        let l = line(i);
        lines.write_all(&l.as_bytes()[..40]).unwrap();
        lines.write_all(&l.as_bytes()[40..]).unwrap();
        expected.push_str(&l);
        if i % 700 == 0 {
            lines.flush().unwrap();
        }
    }
    lines.flush().unwrap();
    let totals = drain.finish(None).unwrap();
    assert_eq!(totals, Totals { written_lines: 5000, dropped_lines: 0 });
    assert_eq!(String::from_utf8(sink.0.lock().unwrap().clone()).unwrap(), expected);
}

#[test]
fn a_stalled_sink_never_blocks_the_producer_and_every_line_is_counted() {
    let (sink, release) = stalled();
    let (mut lines, drain) = spawn(sink, 4096, WhenFull::Drop).unwrap();
    let stats = drain.stats();
    let started = Instant::now();
    for i in 0..100 {
        lines.write_all(line(i).as_bytes()).unwrap();
    }
    lines.flush().unwrap();
    // Pushed every 1024 bytes (a quarter of the queue): 11 lines a chunk. Three chunks fit, then
    // 7 of the fourth's 11 lines: 40 lines of 100 bytes in 4096 bytes; the other 60 are dropped.
    assert_eq!(stats.dropped_lines(), 60);
    assert_eq!(stats.queued_bytes(), 4000);
    for i in 100..100_000 {
        lines.write_all(line(i).as_bytes()).unwrap();
        if i % 100 == 0 {
            lines.flush().unwrap();
        }
    }
    lines.flush().unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "the producer waited for the sink");
    assert_eq!(stats.dropped_lines(), 100_000 - 40);

    let finishing = Instant::now();
    let totals = drain.finish(Some(Duration::from_millis(200))).unwrap();
    let waited = finishing.elapsed();
    assert!(waited >= Duration::from_millis(200) && waited < Duration::from_secs(2), "{waited:?}");
    // The 40 queued lines never made it out: dropped too, so nothing is lost silently.
    assert_eq!(totals, Totals { written_lines: 0, dropped_lines: 100_000 });
    drop(release);
}

#[test]
fn dropping_stops_once_the_sink_catches_up() {
    let (sink, release) = stalled();
    let (mut lines, drain) = spawn(sink, 4096, WhenFull::Drop).unwrap();
    let stats = drain.stats();
    for i in 0..100 {
        lines.write_all(line(i).as_bytes()).unwrap();
    }
    lines.flush().unwrap();
    assert_eq!(stats.dropped_lines(), 60);
    drop(release);
    let deadline = Instant::now() + Duration::from_secs(10);
    while stats.queued_bytes() > 0 {
        assert!(Instant::now() < deadline, "the writer never caught up");
        std::thread::sleep(Duration::from_millis(1));
    }
    for i in 0..30 {
        lines.write_all(line(i).as_bytes()).unwrap();
    }
    lines.flush().unwrap();
    let totals = drain.finish(None).unwrap();
    assert_eq!(totals, Totals { written_lines: 70, dropped_lines: 60 });
}

#[test]
fn waiting_loses_nothing_with_a_slow_sink() {
    let sink = Shared::default();
    let (mut lines, drain) = spawn(Slow(sink.clone()), 4096, WhenFull::Wait).unwrap();
    let mut expected = String::new();
    for i in 0..2000 {
        let l = line(i);
        lines.write_all(l.as_bytes()).unwrap();
        expected.push_str(&l);
    }
    lines.flush().unwrap();
    let totals = drain.finish(None).unwrap();
    assert_eq!(totals, Totals { written_lines: 2000, dropped_lines: 0 });
    assert_eq!(String::from_utf8(sink.0.lock().unwrap().clone()).unwrap(), expected);
}

#[test]
fn a_failed_write_says_stdout_in_one_sentence_and_keeps_its_kind() {
    let (mut lines, drain) = spawn(Failing(libc::ENOSPC), 4096, WhenFull::Wait).unwrap();
    lines.write_all(line(0).as_bytes()).unwrap();
    lines.flush().unwrap();
    let err = drain.finish(None).unwrap_err();
    assert_eq!(err.to_string(), "cannot write to stdout: No space left on device");
    assert_eq!(err.kind(), io::ErrorKind::StorageFull);
    // The next push reports it too.
    let err = lines.flush().unwrap_err();
    assert_eq!(err.to_string(), "cannot write to stdout: No space left on device");

    let (mut lines, _drain) = spawn(Failing(libc::EPIPE), 4096, WhenFull::Drop).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let err = loop {
        lines.write_all(line(0).as_bytes()).unwrap();
        if let Err(err) = lines.flush() {
            break err;
        }
        assert!(Instant::now() < deadline, "the failure never came back");
        std::thread::sleep(Duration::from_millis(1));
    };
    assert_eq!(err.kind(), io::ErrorKind::BrokenPipe, "a closed reader stays a broken pipe");
}
