//! The kernel side as user space sees it: the embedded eBPF object, loading it, attaching the XDP
//! program to interfaces, and reading the per-CPU counters. Dropping a [`KernelProbe`] detaches
//! everything it attached (the links are bpf_links owned by this process, so the kernel also
//! detaches them if the process is killed).

use anyhow::{anyhow, Context, Result};
use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::programs::{ProgramError, Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};
use std::ffi::CString;
use std::fmt;

use arpwatch_common::{direction, maps, programs, Counter, COUNTER_SLOTS};

use crate::privileges;

/// The kernel object, built by `cargo xtask build-ebpf` and embedded at compile time.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/arpwatch-ebpf.o"));

/// Default size of the ring buffer between the programs and user space.
pub const DEFAULT_RING_BYTES: u32 = 2 << 20;

/// How to attach XDP. `Auto` tries the driver and falls back to generic (skb) mode, which every
/// interface supports (a veth with a 9000-byte MTU refuses driver mode, for one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XdpModeChoice {
    #[default]
    Auto,
    Native,
    Skb,
}

/// The mode an interface was attached in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachedMode {
    Native,
    Skb,
}

impl fmt::Display for AttachedMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttachedMode::Native => "native",
            AttachedMode::Skb => "skb",
        })
    }
}

/// The loaded kernel programs and their maps.
pub struct KernelProbe {
    ebpf: Ebpf,
}

impl KernelProbe {
    /// Checks privileges and kernel support, then loads and verifies the programs. `ring_bytes`
    /// must be a power-of-two multiple of the page size.
    pub fn load(ring_bytes: u32) -> Result<Self> {
        privileges::check_kernel_has_ring_buffers()?;
        privileges::check_capabilities()?;
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(maps::EVENTS, ring_bytes)
            .load(EBPF_OBJECT)
            .map_err(|err| anyhow!(err))
            .context("could not load the arpwatch kernel object")?;
        let xdp: &mut Xdp = ebpf
            .program_mut(programs::XDP)
            .with_context(|| format!("the kernel object has no program {}", programs::XDP))?
            .try_into()?;
        xdp.load().map_err(explain_load_error).context("the kernel refused the XDP program")?;
        Ok(KernelProbe { ebpf })
    }

    /// Attaches the XDP program to ingress of `iface`; returns its ifindex and the mode used.
    pub fn attach_xdp(&mut self, iface: &str, choice: XdpModeChoice) -> Result<(u32, AttachedMode)> {
        let ifindex = interface_index(iface)?;
        let xdp = self.xdp_mut();
        let attach = |xdp: &mut Xdp, mode| xdp.attach_to_if_index(ifindex, mode);
        let mode = match choice {
            XdpModeChoice::Native => attach(xdp, XdpMode::Driver).map(|_| AttachedMode::Native),
            XdpModeChoice::Skb => attach(xdp, XdpMode::Skb).map(|_| AttachedMode::Skb),
            XdpModeChoice::Auto => match attach(xdp, XdpMode::Driver) {
                Ok(_) => Ok(AttachedMode::Native),
                Err(native_err) => {
                    log::debug!("{iface}: native XDP refused ({native_err}), trying skb mode");
                    attach(xdp, XdpMode::Skb).map(|_| AttachedMode::Skb)
                }
            },
        }
        .map_err(explain_attach_error)
        .with_context(|| format!("could not attach XDP to interface {iface} ({choice:?} mode)"))?;
        Ok((ifindex, mode))
    }

    /// The XDP program, for BPF_PROG_TEST_RUN in tests and benchmarks.
    pub fn xdp(&self) -> &Xdp {
        self.ebpf
            .program(programs::XDP)
            .and_then(|p| <&Xdp>::try_from(p).ok())
            .expect("checked at load")
    }

    fn xdp_mut(&mut self) -> &mut Xdp {
        self.ebpf
            .program_mut(programs::XDP)
            .and_then(|p| <&mut Xdp>::try_from(p).ok())
            .expect("checked at load")
    }

    /// Takes the ring buffer out of the probe; only one reader may own it.
    pub fn take_ring(&mut self) -> Result<RingBuf<MapData>> {
        let map = self
            .ebpf
            .take_map(maps::EVENTS)
            .with_context(|| format!("the ring buffer {} was already taken", maps::EVENTS))?;
        Ok(RingBuf::try_from(map)?)
    }

    /// Sums the per-CPU counters.
    pub fn counters(&self) -> Result<CounterTotals> {
        let map = self.ebpf.map(maps::COUNTERS).context("the kernel object has no counters map")?;
        let array = PerCpuArray::<_, u64>::try_from(map)?;
        let mut totals = CounterTotals::default();
        for slot in 0..COUNTER_SLOTS {
            let per_cpu = array.get(&slot, 0).context("could not read the kernel counters")?;
            totals.slots[slot as usize] = per_cpu.iter().sum();
        }
        Ok(totals)
    }
}

/// Counter totals over all CPUs, per direction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CounterTotals {
    slots: [u64; COUNTER_SLOTS as usize],
}

impl CounterTotals {
    pub fn get(&self, counter: Counter, dir: u8) -> u64 {
        self.slots[counter.index(dir) as usize]
    }
}

impl fmt::Display for CounterTotals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, dir) in [("ingress", direction::INGRESS), ("egress", direction::EGRESS)] {
            write!(f, "{name}:")?;
            for counter in Counter::ALL {
                write!(f, " {}={}", counter.name(), self.get(counter, dir))?;
            }
            if dir == direction::INGRESS {
                f.write_str("; ")?;
            }
        }
        Ok(())
    }
}

/// The index of a network interface, or an error naming it.
pub fn interface_index(iface: &str) -> Result<u32> {
    let name = CString::new(iface).map_err(|_| anyhow!("interface name {iface:?} contains a NUL byte"))?;
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(crate::UsageError(format!("--iface {iface}: no such network interface")).into());
    }
    Ok(index)
}

fn explain_load_error(err: ProgramError) -> anyhow::Error {
    if let ProgramError::LoadError { io_error, .. } = &err {
        if io_error.raw_os_error() == Some(libc::EPERM) || io_error.raw_os_error() == Some(libc::EACCES) {
            return anyhow!(
                "permission denied loading the program: arpwatch needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON"
            );
        }
    }
    anyhow!(err)
}

fn explain_attach_error(err: ProgramError) -> anyhow::Error {
    let message = err.to_string();
    let busy = std::error::Error::source(&err)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .and_then(std::io::Error::raw_os_error)
        .is_some_and(|code| code == libc::EBUSY || code == libc::EEXIST);
    if busy {
        return anyhow!("another XDP program is already attached ({message})");
    }
    anyhow!(err)
}
