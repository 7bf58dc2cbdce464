//! The latest events as the agent wrote them, for `/api/v1/events` and the status page: a ring
//! bounded both in events and in bytes, filled by the pipeline where it writes events, read by
//! the watch loop when it answers a query. Single-threaded: no lock.

use std::collections::VecDeque;
use std::sync::Arc;

use arpwatch_core::observation::Timestamp;

/// Events kept at most.
pub const MAX_EVENTS: usize = 1000;
/// Bytes of event lines kept at most (an event line is a few hundred bytes).
pub const MAX_BYTES: usize = 1 << 20;

/// The latest events, oldest first, each with its sequence number (1 for the first event of
/// the run, then one more for each), its time and its JSON line (without the newline).
#[derive(Debug)]
pub struct EventRing {
    events: VecDeque<(u64, Timestamp, Arc<str>)>,
    /// The sequence number of the latest event pushed (0: none yet).
    last_seq: u64,
    bytes: usize,
    max_events: usize,
    max_bytes: usize,
    /// Events pushed out to make room, since the start.
    dropped: u64,
}

impl Default for EventRing {
    fn default() -> Self {
        EventRing::new(MAX_EVENTS, MAX_BYTES)
    }
}

/// Some events of the ring, oldest first.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Slice {
    pub events: Vec<Arc<str>>,
    /// More events matched than were given.
    pub more: bool,
    /// Where the next query should go on from: the sequence number of the last event given,
    /// else (none matched) the latest one the ring has seen.
    pub cursor: u64,
    /// The oldest event the ring still holds.
    pub oldest: Option<Timestamp>,
    /// Events the ring holds, and events it forgot to make room since the start.
    pub held: usize,
    pub forgotten: u64,
}

impl EventRing {
    pub fn new(max_events: usize, max_bytes: usize) -> Self {
        EventRing {
            events: VecDeque::new(),
            last_seq: 0,
            bytes: 0,
            max_events: max_events.max(1),
            max_bytes,
            dropped: 0,
        }
    }

    /// Keeps `line`, the JSON line of an event at `ts`, forgetting the oldest to make room. A
    /// line longer than the whole ring is not kept.
    pub fn push(&mut self, ts: Timestamp, line: &str) {
        self.last_seq += 1;
        if line.len() > self.max_bytes {
            self.dropped += 1;
            return;
        }
        while self.events.len() >= self.max_events || self.bytes + line.len() > self.max_bytes {
            let Some((_, _, old)) = self.events.pop_front() else { break };
            self.bytes -= old.len();
            self.dropped += 1;
        }
        self.bytes += line.len();
        self.events.push_back((self.last_seq, ts, line.into()));
    }

    /// With `since` (a time) or `after` (a sequence number, a previous answer's cursor), the
    /// first `limit` events at or after `since` and after `after`; with neither, the latest
    /// `limit`.
    pub fn slice(&self, since: Option<Timestamp>, after: Option<u64>, limit: usize) -> Slice {
        let oldest = self.events.front().map(|(_, ts, _)| *ts);
        let (held, forgotten) = (self.events.len(), self.dropped);
        let (events, more, last): (Vec<_>, bool, Option<u64>) =
            if since.is_none() && after.is_none() {
                let skip = self.events.len().saturating_sub(limit);
                let events: Vec<_> = self.events.iter().skip(skip).collect();
                (events, skip > 0, self.events.back().map(|(seq, _, _)| *seq))
            } else {
                let mut matching = self.events.iter().filter(|(seq, ts, _)| {
                    since.is_none_or(|since| *ts >= since) && after.is_none_or(|after| *seq > after)
                });
                let events: Vec<_> = matching.by_ref().take(limit).collect();
                let last = events.last().map(|(seq, _, _)| *seq);
                (events, matching.next().is_some(), last)
            };
        let cursor = last.unwrap_or(self.last_seq.max(after.unwrap_or(0)));
        let events = events.into_iter().map(|(_, _, line)| line.clone()).collect();
        Slice { events, more, cursor, oldest, held, forgotten }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> Timestamp {
        Timestamp::from_secs(s)
    }

    #[test]
    fn the_ring_keeps_the_latest_within_its_count_and_its_bytes() {
        let mut ring = EventRing::new(3, 100);
        for i in 0..5 {
            ring.push(at(i), &format!("{{\"n\":{i}}}"));
        }
        assert_eq!(ring.slice(None, None, 10).held, 3);
        assert_eq!(ring.slice(None, None, 10).forgotten, 2);
        let all = ring.slice(None, None, 10);
        assert_eq!(
            all.events.iter().map(|l| &**l).collect::<Vec<_>>(),
            ["{\"n\":2}", "{\"n\":3}", "{\"n\":4}"]
        );
        assert_eq!((all.more, all.oldest), (false, Some(at(2))));
        // Bytes: a 90-byte line pushes out what no longer fits in 100.
        ring.push(at(5), &"x".repeat(90));
        assert_eq!(ring.slice(None, None, 10).held, 2, "7 + 90 <= 100, 7 + 7 + 90 is not");
        ring.push(at(6), &"y".repeat(101));
        assert_eq!(ring.slice(None, None, 10).held, 2, "a line longer than the ring is not kept");
    }

    #[test]
    fn since_pages_forward_and_without_it_the_latest_come() {
        let mut ring = EventRing::default();
        for i in 0..10 {
            ring.push(at(i), &i.to_string());
        }
        let page = ring.slice(Some(at(4)), None, 3);
        assert_eq!(page.events.iter().map(|l| &**l).collect::<Vec<_>>(), ["4", "5", "6"]);
        assert_eq!((page.more, page.cursor), (true, 7));
        let last = ring.slice(Some(at(4)), Some(page.cursor), 3);
        assert_eq!(last.events.iter().map(|l| &**l).collect::<Vec<_>>(), ["7", "8", "9"]);
        assert_eq!((last.more, last.cursor), (false, 10));
        let latest = ring.slice(None, None, 2);
        assert_eq!(latest.events.iter().map(|l| &**l).collect::<Vec<_>>(), ["8", "9"]);
        assert!(latest.more);
        // Nothing new: the cursor stays where the ring is.
        let none = ring.slice(None, Some(10), 5);
        assert_eq!((none.events.len(), none.cursor), (0, 10));
        assert_eq!(ring.slice(Some(at(20)), None, 5).cursor, 10);
    }
}
