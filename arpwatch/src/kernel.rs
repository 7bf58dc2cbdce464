//! The kernel side as user space sees it: the embedded eBPF object, loading it, attaching the XDP
//! program to interfaces, and reading the per-CPU counters. Dropping a [`KernelProbe`] detaches
//! everything it attached (the links are bpf_links owned by this process, so the kernel also
//! detaches them if the process is killed).

use anyhow::{anyhow, Context, Result};
use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::programs::tc::SchedClassifierLinkId;
use aya::programs::tc::{self, NlOptions, TcAttachOptions};
use aya::programs::xdp::XdpLinkId;
use aya::programs::{LinkOrder, ProgramError, SchedClassifier, TcAttachType, Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};
use std::collections::HashMap;
use std::fmt;

use arpwatch_common::{
    direction, globals, maps, programs, Counter, COUNTER_SLOTS, DEFAULT_DEDUP_INTERVAL_NS,
};
use arpwatch_core::ifname;
use std::time::Duration;

use crate::privileges;

/// The kernel object, built by `cargo xtask build-ebpf` and embedded at compile time.
pub static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/arpwatch-ebpf.o"));

/// Default size of the ring buffer between the programs and user space.
pub const DEFAULT_RING_BYTES: u32 = 2 << 20;

/// Default in-kernel de-duplication interval: an identical frame is emitted at most once per
/// interval, its repeats counted and carried by the next record.
pub const DEFAULT_DEDUP_INTERVAL: Duration = Duration::from_nanos(DEFAULT_DEDUP_INTERVAL_NS);

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

/// How to attach the programs to an interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttachOptions {
    pub xdp: XdpModeChoice,
    pub tc: TcModeChoice,
}

/// The programs attached to one interface.
#[derive(Debug)]
pub struct Attachment {
    pub name: String,
    pub xdp_mode: AttachedMode,
    /// `None` when the egress program could not be attached because the interface's name is not
    /// UTF-8: aya attaches TC programs only by name (XDP goes by ifindex).
    pub tc_mode: Option<TcMode>,
    xdp_link: XdpLinkId,
    tc_link: Option<SchedClassifierLinkId>,
}

/// The loaded kernel programs, their maps, and where they are attached.
pub struct KernelProbe {
    ebpf: Ebpf,
    attached: HashMap<u32, Attachment>,
}

impl KernelProbe {
    /// Checks privileges and kernel support, then loads and verifies the programs. `ring_bytes`
    /// must be a power-of-two multiple of the page size.
    pub fn load(ring_bytes: u32) -> Result<Self> {
        Self::load_with_dedup(ring_bytes, DEFAULT_DEDUP_INTERVAL)
    }

    /// Like [`KernelProbe::load`], with the in-kernel de-duplication interval; zero turns
    /// de-duplication off (every valid ARP frame becomes a record).
    pub fn load_with_dedup(ring_bytes: u32, dedup_interval: Duration) -> Result<Self> {
        privileges::check_kernel_has_ring_buffers()?;
        privileges::check_capabilities()?;
        let interval_ns = u64::try_from(dedup_interval.as_nanos()).unwrap_or(u64::MAX);
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(maps::EVENTS, ring_bytes)
            .override_global(globals::DEDUP_INTERVAL_NS, &interval_ns, true)
            .load(EBPF_OBJECT)
            .map_err(|err| anyhow!(err))
            .context("could not load the arpwatch kernel object")?;
        let xdp: &mut Xdp = ebpf
            .program_mut(programs::XDP)
            .with_context(|| format!("the kernel object has no program {}", programs::XDP))?
            .try_into()?;
        xdp.load().map_err(explain_load_error).context("the kernel refused the XDP program")?;
        let classifier: &mut SchedClassifier = ebpf
            .program_mut(programs::TC_EGRESS)
            .with_context(|| format!("the kernel object has no program {}", programs::TC_EGRESS))?
            .try_into()?;
        classifier
            .load()
            .map_err(explain_load_error)
            .context("the kernel refused the TC egress program")?;
        Ok(KernelProbe { ebpf, attached: HashMap::new() })
    }

    /// Attaches XDP (ingress) and the TC classifier (egress) to interface `iface`, `ifindex`,
    /// `iface` being the name as arpwatch writes it ([`ifname`]). Either both are attached or
    /// neither is, except for a name that is not UTF-8, which gets XDP only (see
    /// `Attachment::tc_mode`).
    pub fn attach(
        &mut self,
        ifindex: u32,
        iface: &str,
        options: AttachOptions,
    ) -> Result<&Attachment> {
        if self.attached.contains_key(&ifindex) {
            self.detach(ifindex);
        }
        let (xdp_link, xdp_mode) = self.attach_xdp(ifindex, iface, options.xdp)?;
        // TC goes by name: the kernel's, never the written form, which could be another's name.
        let tc = ifname::kernel_name(iface)
            .map(|kernel_name| self.attach_tc_egress(iface, &kernel_name, options.tc));
        let (tc_link, tc_mode) = match tc.transpose() {
            Ok(attached) => attached.unzip(),
            Err(err) => {
                let _ = self.xdp_mut().detach(xdp_link);
                return Err(err);
            }
        };
        let attachment =
            Attachment { name: iface.to_owned(), xdp_mode, tc_mode, xdp_link, tc_link };
        Ok(self.attached.entry(ifindex).insert_entry(attachment).into_mut())
    }

    /// Detaches both programs from `ifindex`. Works for an interface that is already gone too:
    /// the kernel has then detached the links itself, and this closes their descriptors.
    /// Returns the name the interface had.
    pub fn detach(&mut self, ifindex: u32) -> Option<String> {
        let Attachment { name, xdp_link, tc_link, .. } = self.attached.remove(&ifindex)?;
        if let Err(err) = self.xdp_mut().detach(xdp_link) {
            log::debug!("{name}: XDP detach: {err}");
        }
        if let Some(Err(err)) = tc_link.map(|link| self.classifier_mut().detach(link)) {
            log::debug!("{name}: TC detach: {err}");
        }
        Some(name)
    }

    /// Interfaces with programs attached, by ifindex.
    pub fn attachments(&self) -> &HashMap<u32, Attachment> {
        &self.attached
    }

    /// Follows a rename: the links stay, only the name changes.
    pub fn rename(&mut self, ifindex: u32, name: &str) {
        if let Some(attachment) = self.attached.get_mut(&ifindex) {
            attachment.name = name.to_owned();
        }
    }

    fn attach_xdp(
        &mut self,
        ifindex: u32,
        iface: &str,
        choice: XdpModeChoice,
    ) -> Result<(XdpLinkId, AttachedMode)> {
        let xdp = self.xdp_mut();
        let attach = |xdp: &mut Xdp, mode| xdp.attach_to_if_index(ifindex, mode);
        match choice {
            XdpModeChoice::Native => {
                attach(xdp, XdpMode::Driver).map(|id| (id, AttachedMode::Native))
            }
            XdpModeChoice::Skb => attach(xdp, XdpMode::Skb).map(|id| (id, AttachedMode::Skb)),
            XdpModeChoice::Auto => match attach(xdp, XdpMode::Driver) {
                Ok(id) => Ok((id, AttachedMode::Native)),
                Err(native_err) => {
                    log::debug!("{iface}: native XDP refused ({native_err}), trying skb mode");
                    attach(xdp, XdpMode::Skb).map(|id| (id, AttachedMode::Skb))
                }
            },
        }
        .map_err(explain_attach_error)
        .with_context(|| format!("could not attach XDP to interface {iface} ({choice:?} mode)"))
    }

    /// Attaches the classifier to egress of `iface`, so arpwatch sees what this host sends. TCX
    /// links (Linux 6.6+) are owned by this process and vanish with it, even on SIGKILL. Older
    /// kernels get a netlink filter on a clsact qdisc, which outlives a killed process: a filter of
    /// ours left behind that way is removed first.
    fn attach_tc_egress(
        &mut self,
        iface: &str,
        kernel_name: &str,
        choice: TcModeChoice,
    ) -> Result<(SchedClassifierLinkId, TcMode)> {
        let mode = match choice {
            TcModeChoice::Auto if privileges::kernel_at_least(6, 6) => TcMode::Tcx,
            TcModeChoice::Auto | TcModeChoice::Netlink => TcMode::Netlink,
            TcModeChoice::Tcx => TcMode::Tcx,
        };
        let options = match mode {
            TcMode::Tcx => TcAttachOptions::TcxOrder(LinkOrder::default()),
            TcMode::Netlink => {
                remove_stale_netlink_filters(kernel_name)?;
                if let Err(err) = tc::qdisc_add_clsact(kernel_name) {
                    // EEXIST: the interface already has a clsact qdisc, which is what we need.
                    if !is_errno(&err, libc::EEXIST) {
                        return Err(anyhow!(err))
                            .with_context(|| format!("could not add a clsact qdisc to {iface}"));
                    }
                }
                TcAttachOptions::Netlink(NlOptions::default())
            }
        };
        let link = self
            .classifier_mut()
            .attach_with_options(kernel_name, TcAttachType::Egress, options)
            .map_err(|err| anyhow!(err))
            .with_context(|| {
                format!("could not attach the TC egress program to {iface} ({mode} mode)")
            })?;
        Ok((link, mode))
    }

    fn classifier_mut(&mut self) -> &mut SchedClassifier {
        self.ebpf
            .program_mut(programs::TC_EGRESS)
            .and_then(|p| <&mut SchedClassifier>::try_from(p).ok())
            .expect("checked at load")
    }

    /// The TC egress program, for BPF_PROG_TEST_RUN in tests.
    pub fn tc_egress(&self) -> &SchedClassifier {
        self.ebpf
            .program(programs::TC_EGRESS)
            .and_then(|p| <&SchedClassifier>::try_from(p).ok())
            .expect("checked at load")
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

/// How to attach the egress classifier.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TcModeChoice {
    /// TCX where the kernel has it (6.6+), netlink otherwise.
    #[default]
    Auto,
    Tcx,
    Netlink,
}

/// How the egress classifier was attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcMode {
    Tcx,
    Netlink,
}

impl fmt::Display for TcMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TcMode::Tcx => "tcx",
            TcMode::Netlink => "netlink",
        })
    }
}

/// Removes egress filters named after our classifier from `iface`: only a killed arpwatch on the
/// netlink path leaves them behind.
pub fn remove_stale_netlink_filters(iface: &str) -> Result<bool> {
    match tc::qdisc_detach_program(iface, TcAttachType::Egress, programs::TC_EGRESS) {
        Ok(()) => {
            log::warn!("{iface}: removed an egress filter left behind by an earlier arpwatch");
            Ok(true)
        }
        // Nothing of ours there: aya says NotFound; a missing clsact qdisc may give ENOENT.
        Err(tc::TcError::IoError(err)) if err.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(err) if is_errno(&err, libc::ENOENT) => Ok(false),
        Err(err) => Err(anyhow!(err))
            .with_context(|| format!("could not look for stale filters on {iface}")),
    }
}

fn io_errors<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a std::io::Error> {
    std::iter::successors(Some(err), |e| e.source())
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
}

fn is_errno(err: &(dyn std::error::Error + 'static), errno: i32) -> bool {
    io_errors(err).any(|e| e.raw_os_error() == Some(errno))
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

fn explain_load_error(err: ProgramError) -> anyhow::Error {
    if let ProgramError::LoadError { io_error, .. } = &err {
        if io_error.raw_os_error() == Some(libc::EPERM)
            || io_error.raw_os_error() == Some(libc::EACCES)
        {
            return anyhow!(
                "permission denied loading the program: arpwatch needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON"
            );
        }
    }
    anyhow!(err)
}

fn explain_attach_error(err: ProgramError) -> anyhow::Error {
    if is_errno(&err, libc::EBUSY) || is_errno(&err, libc::EEXIST) {
        return anyhow!("another XDP program is already attached ({err})");
    }
    anyhow!(err)
}
