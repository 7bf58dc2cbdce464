//! Turning kernel records into observations: draining the ring buffer, converting boot-time
//! stamps to wall-clock time, and naming interfaces.

use anyhow::Result;
use aya::maps::{MapData, RingBuf};
use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::time::Sleep;

use arpwatch_common::{NeighRecord, NEIGH_RECORD_SIZE, WAKEUP_GAP_NS};

use crate::links::{LinkChange, LinkInfo};
use arpwatch_core::observation::{Observation, Timestamp};

/// Reads one record out of a ring-buffer item; `None` if the item is not a whole record (which the
/// kernel program never submits).
pub fn record_from_bytes(bytes: &[u8]) -> Option<NeighRecord> {
    if bytes.len() < NEIGH_RECORD_SIZE {
        return None;
    }
    // SAFETY: the length was checked, `NeighRecord` is plain old data, and the read is unaligned.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<NeighRecord>()) })
}

/// What one drain of the ring took out of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    pub records: usize,
    /// Items that were not whole records (the kernel program never submits one).
    pub short: usize,
}

/// Calls `f` on every record now in the ring, without waiting, until the ring is empty or `f`
/// fails (its error is returned; the records after it stay in the ring).
pub fn drain_ring<E>(
    ring: &mut RingBuf<MapData>,
    mut f: impl FnMut(&NeighRecord) -> Result<(), E>,
) -> Result<Drained, E> {
    let mut drained = Drained::default();
    // Each item is released back to the kernel as soon as it is dropped, at the end of the body.
    while let Some(item) = ring.next() {
        match record_from_bytes(&item) {
            Some(record) => {
                drained.records += 1;
                f(&record)?;
            }
            None => drained.short += 1,
        }
    }
    Ok(drained)
}

/// How long after a drain that found records (or followed a wake-up) the reader drains again by
/// itself. The programs wake it at most once per [`WAKEUP_GAP_NS`] per CPU (more often only
/// after a burst): a record submitted without a wake-up waits at most about this plus the gap.
/// A quiet reader sleeps until a wake-up: nothing runs while the network is quiet.
pub const RING_FOLLOW_UP: Duration = Duration::from_millis(2);

const _: () = assert!(RING_FOLLOW_UP.as_nanos() >= WAKEUP_GAP_NS as u128);

/// The ring buffer registered with tokio, drained when the kernel wakes the reader and, while
/// records keep coming, every [`RING_FOLLOW_UP`].
pub struct RingReader {
    ring: AsyncFd<RingBuf<MapData>>,
    follow_up: Pin<Box<Sleep>>,
    /// Whether `follow_up` is due: records came, or a wake-up, at the last drain.
    following: bool,
}

impl RingReader {
    pub fn new(ring: RingBuf<MapData>) -> Result<Self> {
        // SAFETY: the ring owns its map fd, which stays open and unchanged until the ring, and so
        // this `AsyncFd`, is dropped.
        let ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(|err| anyhow::anyhow!("could not watch the ring buffer: {err}"))?;
        let follow_up = Box::pin(tokio::time::sleep(RING_FOLLOW_UP));
        Ok(RingReader { ring, follow_up, following: false })
    }

    /// Waits until the kernel wakes the reader, or a follow-up drain finds records, then drains
    /// them all. The guard is released before the caller awaits again, so no ring item is ever
    /// held across an `.await`. Cancel-safe: nothing is read before it returns.
    pub async fn drain(
        &mut self,
        mut f: impl FnMut(&NeighRecord) -> io::Result<()>,
    ) -> io::Result<Drained> {
        let RingReader { ring, follow_up, following } = self;
        loop {
            let drained = tokio::select! {
                guard = ring.readable_mut() => {
                    let mut guard = guard?;
                    let drained = drain_ring(guard.get_inner_mut(), &mut f)?;
                    guard.clear_ready();
                    // Woken: records submitted just after the wake-up came without one.
                    *following = true;
                    drained
                }
                _ = follow_up.as_mut(), if *following => {
                    let drained = drain_ring(ring.get_mut(), &mut f)?;
                    *following = drained != Drained::default();
                    drained
                }
            };
            if *following {
                follow_up.as_mut().reset(tokio::time::Instant::now() + RING_FOLLOW_UP);
            }
            if drained != Drained::default() {
                return Ok(drained);
            }
        }
    }

    /// Drains what is in the ring now, without waiting (the last drain at the end of a run).
    pub fn drain_now(
        &mut self,
        f: impl FnMut(&NeighRecord) -> io::Result<()>,
    ) -> io::Result<Drained> {
        drain_ring(self.ring.get_mut(), f)
    }
}

/// Converts `bpf_ktime_get_boot_ns` stamps (CLOCK_BOOTTIME) to wall-clock time. The offset is
/// re-measured on [`BootClock::refresh`] so an NTP step of the real-time clock is followed.
#[derive(Clone, Copy, Debug)]
pub struct BootClock {
    /// REALTIME minus BOOTTIME, in nanoseconds.
    offset_ns: i128,
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid out-pointer; both clocks exist on every kernel arpwatch runs on.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

impl BootClock {
    pub fn new() -> Self {
        let mut clock = BootClock { offset_ns: 0 };
        clock.refresh();
        clock
    }

    pub fn refresh(&mut self) {
        // Bracket the boot-time read with two real-time reads and take their midpoint, so the
        // offset's error is at most half the bracket.
        let before = clock_ns(libc::CLOCK_REALTIME);
        let boot = clock_ns(libc::CLOCK_BOOTTIME);
        let after = clock_ns(libc::CLOCK_REALTIME);
        self.offset_ns = (before + after) / 2 - boot;
    }

    pub fn wall(&self, boot_ns: u64) -> Timestamp {
        Timestamp::from_nanos((boot_ns as i128 + self.offset_ns).max(0) as u64)
    }

    /// The current wall-clock time on the same scale as converted stamps.
    pub fn now(&self) -> Timestamp {
        self.wall(clock_ns(libc::CLOCK_BOOTTIME) as u64)
    }
}

/// Interface names by ifindex as they were when the records now in the ring were made: they
/// follow the link changes the watch loop hands on after draining the ring, so they lag the
/// kernel's table on purpose. An ifindex never announced is looked up on first sight.
#[derive(Debug, Default)]
struct InterfaceNames {
    by_index: HashMap<u32, Arc<str>>,
    /// The name last looked up: records come in runs from one interface (a storm, one link), so
    /// most frames skip hashing their ifindex. Forgotten at every change of `by_index`.
    last: Option<(u32, Arc<str>)>,
}

impl InterfaceNames {
    fn insert(&mut self, ifindex: u32, name: &str) {
        self.last = None;
        self.by_index.insert(ifindex, Arc::from(name));
    }

    fn remove(&mut self, ifindex: u32) {
        self.last = None;
        self.by_index.remove(&ifindex);
    }

    fn name(&mut self, ifindex: u32) -> Arc<str> {
        if let Some((last, name)) = &self.last {
            if *last == ifindex {
                return name.clone();
            }
        }
        let name = self
            .by_index
            .entry(ifindex)
            .or_insert_with(|| {
                Arc::from(index_to_name(ifindex).unwrap_or_else(|| format!("if{ifindex}")))
            })
            .clone();
        self.last = Some((ifindex, name.clone()));
        name
    }
}

fn index_to_name(ifindex: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has room for IF_NAMESIZE bytes as the call requires.
    let ptr = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if ptr.is_null() {
        return None;
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    Some(unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned())
}

/// Turns records into observations: the clock and the interface names they need, in one place.
#[derive(Debug)]
pub struct RecordDecoder {
    clock: BootClock,
    names: InterfaceNames,
}

impl RecordDecoder {
    /// A decoder that knows the names of `links`.
    pub fn new<'a>(links: impl Iterator<Item = &'a LinkInfo>) -> Self {
        let mut names = InterfaceNames::default();
        for link in links {
            names.insert(link.ifindex, &link.name);
        }
        RecordDecoder { clock: BootClock::new(), names }
    }

    pub fn observation(&mut self, record: &NeighRecord) -> Observation {
        let iface = self.names.name(record.ifindex);
        let mut obs = Observation::from_record(record, self.clock.wall(record.ts_boot_ns), iface);
        // The kernel writes 0 when the record carries no repeat.
        if record.last_suppressed_ns != 0 {
            obs.last_repeat = Some(self.clock.wall(record.last_suppressed_ns));
        }
        obs
    }

    /// Follows a link change; call it once the records made before it have been decoded.
    pub fn follow(&mut self, change: &LinkChange) {
        match change {
            LinkChange::Added(link) | LinkChange::Renamed { new: link, .. } => {
                self.names.insert(link.ifindex, &link.name);
            }
            // A later link reusing the ifindex is announced as added, or looked up anew.
            LinkChange::Removed { ifindex, .. } => {
                self.names.remove(*ifindex);
            }
        }
    }

    /// Re-measures the wall-clock offset (an NTP step of the real-time clock is followed).
    pub fn refresh_clock(&mut self) {
        self.clock.refresh();
    }

    /// The current wall-clock time on the scale of the observations' timestamps.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_items_are_not_records() {
        assert!(record_from_bytes(&[0u8; NEIGH_RECORD_SIZE - 1]).is_none());
        let mut bytes = [0u8; NEIGH_RECORD_SIZE];
        bytes[std::mem::offset_of!(NeighRecord, ifindex)] = 7; // little-endian
        assert_eq!(record_from_bytes(&bytes).unwrap().ifindex, 7);
    }

    #[test]
    fn boot_stamps_map_to_now() {
        let clock = BootClock::new();
        let boot_now = clock_ns(libc::CLOCK_BOOTTIME) as u64;
        let wall_now = clock_ns(libc::CLOCK_REALTIME) as u64;
        let converted = clock.wall(boot_now).as_nanos();
        assert!(converted.abs_diff(wall_now) < 50_000_000, "{converted} vs {wall_now}");
    }

    #[test]
    fn a_folded_repeat_keeps_its_own_time_on_the_same_scale_as_the_record() {
        let mut decoder = RecordDecoder::new(std::iter::empty());
        let record = NeighRecord {
            ts_boot_ns: 5_000_000_000,
            ifindex: 1,
            suppressed: 2,
            last_suppressed_ns: 4_600_000_000,
            ..Default::default()
        };
        let obs = decoder.observation(&record);
        assert_eq!(obs.repeats, 2);
        let last = obs.last_repeat.expect("the time of the latest repeat");
        assert_eq!(obs.ts.as_nanos() - last.as_nanos(), 400_000_000, "0.4 s before the record");

        let alone =
            decoder.observation(&NeighRecord { suppressed: 0, last_suppressed_ns: 0, ..record });
        assert_eq!(alone.last_repeat, None, "a record that carries no repeat has no repeat time");
    }

    #[test]
    fn a_changed_interface_is_named_anew() {
        let mut names = InterfaceNames::default();
        names.insert(7, "eth0");
        assert_eq!(&*names.name(7), "eth0");
        names.insert(7, "uplink");
        assert_eq!(&*names.name(7), "uplink", "renamed after it was last looked up");
        names.remove(7);
        names.insert(8, "eth1");
        assert_eq!(&*names.name(8), "eth1");
        assert_eq!(&*names.name(7), "if7", "removed: looked up anew (no such ifindex here)");
    }

    #[test]
    fn loopback_is_named() {
        let mut names = InterfaceNames::default();
        assert_eq!(&*names.name(1), "lo");
        assert_eq!(&*names.name(u32::MAX), format!("if{}", u32::MAX));
    }
}
