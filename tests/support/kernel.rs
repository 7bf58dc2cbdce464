//! Running the real kernel programs on crafted frames with BPF_PROG_TEST_RUN, and reading what
//! they wrote to the ring: shared by the kernel tests.

use arpwatch::{drain_ring, KernelProbe};
use arpwatch_common::{direction, NeighRecord};
use aya::maps::{MapData, RingBuf};
use aya::programs::{ProgramError, TestRun, TestRunOptions, TestRunResult};

pub const XDP_PASS: u32 = 2;
/// TC_ACT_UNSPEC (-1) as the test run reports it.
pub const TC_ACT_UNSPEC: u32 = u32::MAX;

/// Which program a frame is run through.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Hook {
    XdpIngress,
    TcEgress,
    /// The classifier that watches ingress where another program holds the XDP slot.
    TcIngress,
}

impl Hook {
    pub const ALL: [Hook; 3] = [Hook::XdpIngress, Hook::TcEgress, Hook::TcIngress];

    /// The direction its records and counters carry.
    pub fn direction(self) -> u8 {
        match self {
            Hook::XdpIngress | Hook::TcIngress => direction::INGRESS,
            Hook::TcEgress => direction::EGRESS,
        }
    }

    /// The verdict that lets every frame go on: arpwatch never drops one.
    pub fn pass_verdict(self) -> u32 {
        match self {
            Hook::XdpIngress => XDP_PASS,
            Hook::TcEgress | Hook::TcIngress => TC_ACT_UNSPEC,
        }
    }

    /// Runs this hook's program of `probe` once with `opts`.
    pub fn test_run(
        self,
        probe: &KernelProbe,
        opts: TestRunOptions<'_>,
    ) -> Result<TestRunResult, ProgramError> {
        match self {
            Hook::XdpIngress => probe.xdp().test_run(opts),
            Hook::TcEgress => probe.tc_egress().test_run(opts),
            Hook::TcIngress => probe.tc_ingress().test_run(opts),
        }
    }
}

/// Every record now in the ring; an item that is not a whole record fails the test.
pub fn drain_records(ring: &mut RingBuf<MapData>) -> Vec<NeighRecord> {
    let mut records = Vec::new();
    let drained = drain_ring(ring, |r| {
        records.push(*r);
        Ok::<_, ()>(())
    })
    .unwrap();
    assert_eq!(drained.short, 0, "the ring held an item that is not a whole record");
    records
}

/// `CLOCK_BOOTTIME` now, in nanoseconds: the clock the programs stamp records with.
pub fn boot_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The CPUs this thread may run on.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed `cpu_set_t` is an empty set; the call fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out-pointer of the size given.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    assert_eq!(rc, 0, "sched_getaffinity: {}", std::io::Error::last_os_error());
    // SAFETY: `set` is initialised.
    (0..libc::CPU_SETSIZE as usize).filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) }).collect()
}

/// Pins the calling thread to `cpu`: test runs then use that CPU's per-CPU state (the table of
/// recent tuples, the time of its last wake-up of the reader).
pub fn pin_to(cpu: usize) {
    // SAFETY: as in `allowed_cpus`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE (it came from `allowed_cpus`).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: a valid set of the size given.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    assert_eq!(rc, 0, "sched_setaffinity({cpu}): {}", std::io::Error::last_os_error());
}
