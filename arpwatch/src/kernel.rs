//! The kernel side as user space sees it: the embedded eBPF object, loading it, attaching the
//! programs to interfaces (XDP, or TC where another program holds the XDP slot, on ingress; TC on
//! egress), reading the per-CPU counters, and forwarding the programs' diagnostics (aya-log) to
//! this process's logger. Dropping a [`KernelProbe`] detaches everything it
//! attached (the links are bpf_links owned by this process, so the kernel also detaches them if
//! the process is killed; netlink filters, before Linux 6.6, are the exception).

mod netlink;

use anyhow::{anyhow, Context, Result};
use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::programs::tc::SchedClassifierLinkId;
use aya::programs::tc::{self, NlOptions, TcAttachOptions};
use aya::programs::xdp::XdpLinkId;
use aya::programs::{LinkOrder, ProgramError, SchedClassifier, TcAttachType, Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};
use aya_log::EbpfLogger;
use std::cell::Cell;
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

/// The share of the ring one CPU may submit after it woke the reader before a record wakes it
/// again even within `arpwatch_common::WAKEUP_GAP_NS` (1/16: 128 KiB, about 1 100 records, of
/// the default ring), or 1/(2 × CPUs) where there are more than 8: all CPUs bursting at once
/// wake the reader before half the ring is full.
pub fn wakeup_bytes(ring_bytes: u32) -> u64 {
    let cpus = aya::util::nr_cpus().map_or(1, |n| n as u64);
    u64::from(ring_bytes) / (2 * cpus).max(16)
}

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

/// Which hook watches what arrives on an interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IngressHookChoice {
    /// XDP where the interface's XDP slot is free; where another program holds it (or XDP is
    /// refused for any other reason), the TC ingress classifier.
    #[default]
    Auto,
    /// XDP only: an interface whose slot is taken cannot be watched.
    Xdp,
    /// The TC ingress classifier only; XDP is never touched.
    Tc,
}

/// The hook that watches what arrives on an interface, and its mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IngressHook {
    Xdp(AttachedMode),
    Tc(TcMode),
}

impl IngressHook {
    /// `xdp` or `tc`: the metric label.
    pub fn hook(self) -> &'static str {
        match self {
            IngressHook::Xdp(_) => "xdp",
            IngressHook::Tc(_) => "tc",
        }
    }

    /// `native`, `skb`, `tcx` or `netlink`: the metric label.
    pub fn mode(self) -> &'static str {
        match self {
            IngressHook::Xdp(AttachedMode::Native) => "native",
            IngressHook::Xdp(AttachedMode::Skb) => "skb",
            IngressHook::Tc(TcMode::Tcx) => "tcx",
            IngressHook::Tc(TcMode::Netlink) => "netlink",
        }
    }
}

impl fmt::Display for IngressHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IngressHook::Xdp(mode) => write!(f, "XDP in {mode} mode"),
            IngressHook::Tc(mode) => write!(f, "TC ({mode})"),
        }
    }
}

/// How to attach the programs to an interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AttachOptions {
    pub ingress: IngressHookChoice,
    pub xdp: XdpModeChoice,
    pub tc: TcModeChoice,
}

/// The program attached to ingress.
#[derive(Debug)]
enum IngressLink {
    Xdp(XdpLinkId),
    Tc(SchedClassifierLinkId),
}

/// The programs attached to one interface.
#[derive(Debug)]
pub struct Attachment {
    pub name: String,
    pub ingress: IngressHook,
    /// Why `auto` watches ingress by TC: what XDP answered.
    pub xdp_refused: Option<String>,
    /// How the egress classifier is attached; `None` when it could not be, because the
    /// interface's name is not UTF-8: aya attaches TC programs only by name (XDP goes by ifindex).
    pub tc_mode: Option<TcMode>,
    ingress_link: IngressLink,
    egress_link: Option<SchedClassifierLinkId>,
    /// arpwatch added the interface's `clsact` qdisc (netlink mode): it goes when arpwatch
    /// detaches, unless someone else's filters use it by then.
    clsact_added: bool,
    packets: PacketCounts,
}

/// An interface's own packet counters (received, sent: indexed by direction) when arpwatch
/// attached and when the probe's counters were last read: the frames the programs ran on there
/// are the difference. The programs do not count every frame themselves: that counter was most
/// of their cost on traffic other than ARP and ND.
#[derive(Debug)]
struct PacketCounts {
    /// The first reading, at attach or, if that one failed, the first that did not (the
    /// counters since boot are not frames arpwatch watched).
    at_attach: Cell<Option<[u64; 2]>>,
    last_read: Cell<Option<[u64; 2]>>,
}

impl PacketCounts {
    fn new(ifindex: u32, iface: &str) -> PacketCounts {
        let now = netlink::link_packets(ifindex)
            .inspect_err(|err| log::debug!("{iface}: could not read the packet counters: {err}"))
            .ok();
        PacketCounts { at_attach: Cell::new(now), last_read: Cell::new(now) }
    }

    /// Reads the interface's counters now (keeping the last reading if the interface is gone)
    /// and returns the packets since attach, per direction.
    fn read(&self, ifindex: u32) -> [u64; 2] {
        if let Ok(now) = netlink::link_packets(ifindex) {
            if self.at_attach.get().is_none() {
                self.at_attach.set(Some(now));
            }
            self.last_read.set(Some(now));
        }
        self.since_attach()
    }

    fn since_attach(&self) -> [u64; 2] {
        match (self.at_attach.get(), self.last_read.get()) {
            (Some(first), Some(last)) => [0, 1].map(|dir| last[dir].saturating_sub(first[dir])),
            _ => [0; 2],
        }
    }
}

/// The loaded kernel programs, their maps, and where they are attached. Dropping it detaches
/// everything (and removes a `clsact` qdisc it added).
pub struct KernelProbe {
    ebpf: Ebpf,
    attached: HashMap<u32, Attachment>,
    /// Forwards the programs' diagnostics (aya-log) to this process's logger; `None` when the
    /// logger wants none of them, and the programs were loaded with their log off.
    kernel_log: Option<EbpfLogger<&'static dyn log::Log>>,
    /// Frames on interfaces no longer attached, per direction, up to their last reading.
    detached_frames: [u64; 2],
}

/// The `log` target of the kernel programs' diagnostics (the kernel crate's module path).
pub const KERNEL_LOG_TARGET: &str = "arpwatch_ebpf";

/// The most detailed level this process logs for [`KERNEL_LOG_TARGET`], as the kernel programs'
/// `AYA_LOG_LEVEL` (0: none). The programs log at debug level only, on paths no valid frame
/// takes; below debug the verifier removes that code from the loaded programs.
fn kernel_log_level() -> u8 {
    [log::Level::Trace, log::Level::Debug, log::Level::Info, log::Level::Warn, log::Level::Error]
        .into_iter()
        .find(|level| log::log_enabled!(target: KERNEL_LOG_TARGET, *level))
        .map_or(0, |level| level as u8)
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
        // Random per load, so that no sender can craft frames whose tuples collide with another's.
        let seed = std::hash::BuildHasher::hash_one(&std::hash::RandomState::new(), ring_bytes);
        Self::load_seeded(ring_bytes, dedup_interval, seed)
    }

    /// Like [`KernelProbe::load_with_dedup`], with a given seed for the de-duplication hashes
    /// (`arpwatch_common::dedup::Tuple::of`): for tests that build colliding tuples.
    pub fn load_seeded(ring_bytes: u32, dedup_interval: Duration, seed: u64) -> Result<Self> {
        privileges::check_kernel_has_ring_buffers()?;
        privileges::check_capabilities()?;
        let interval_ns = u64::try_from(dedup_interval.as_nanos()).unwrap_or(u64::MAX);
        let log_level = kernel_log_level();
        // SAFETY: sysconf has no preconditions.
        let page = u32::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(maps::EVENTS, ring_bytes)
            // The programs' diagnostics are rate-limited to about one a second: one page holds
            // many, and aya-log's default of 128 KiB would be locked kernel memory for nothing.
            .map_max_entries(maps::AYA_LOGS, page)
            .override_global(globals::DEDUP_INTERVAL_NS, &interval_ns, true)
            .override_global(globals::DEDUP_HASH_SEED, &seed, true)
            .override_global(globals::WAKEUP_BYTES, &wakeup_bytes(ring_bytes), true)
            .override_global(aya_log::LEVEL, &log_level, true)
            .load(EBPF_OBJECT)
            .map_err(|err| anyhow!(err))
            .context("could not load the arpwatch kernel object")?;
        let xdp: &mut Xdp = ebpf
            .program_mut(programs::XDP)
            .with_context(|| format!("the kernel object has no program {}", programs::XDP))?
            .try_into()?;
        xdp.load().map_err(explain_load_error).context("the kernel refused the XDP program")?;
        for name in [programs::TC_EGRESS, programs::TC_INGRESS] {
            let classifier: &mut SchedClassifier = ebpf
                .program_mut(name)
                .with_context(|| format!("the kernel object has no program {name}"))?
                .try_into()?;
            classifier
                .load()
                .map_err(explain_load_error)
                .with_context(|| format!("the kernel refused the TC program {name}"))?;
        }
        // The programs log at debug level only: below it they never say anything.
        let kernel_log = if log_level >= log::Level::Debug as u8 {
            Some(
                EbpfLogger::init(&mut ebpf)
                    .map_err(|err| anyhow!(err))
                    .context("could not read the kernel programs' log")?,
            )
        } else {
            None
        };
        Ok(KernelProbe { ebpf, attached: HashMap::new(), kernel_log, detached_frames: [0; 2] })
    }

    /// Logs what the programs said since the last call (their diagnostics, rate-limited in the
    /// kernel), through this process's logger.
    pub fn flush_log(&mut self) {
        if let Some(logger) = &mut self.kernel_log {
            logger.flush();
        }
    }

    /// Attaches the ingress hook (XDP, or the TC ingress classifier, as `options.ingress` says)
    /// and the TC egress classifier to interface `iface`, `ifindex`, `iface` being the name as
    /// arpwatch writes it ([`ifname`]). Either both are attached or neither is, except for a name
    /// that is not UTF-8, which gets XDP ingress only (see `Attachment::tc_mode`). Another
    /// program's XDP is never replaced.
    pub fn attach(
        &mut self,
        ifindex: u32,
        iface: &str,
        options: AttachOptions,
    ) -> Result<&Attachment> {
        if self.attached.contains_key(&ifindex) {
            self.detach(ifindex);
        }
        // TC goes by name: the kernel's, never the written form, which could be another's name.
        let tc_name = ifname::kernel_name(iface);
        let mut clsact_added = false;
        let ingress =
            self.attach_ingress(ifindex, iface, tc_name.as_deref(), options, &mut clsact_added);
        let (ingress_link, ingress, xdp_refused) = match ingress {
            Ok(attached) => attached,
            Err(err) => {
                self.release(ifindex, iface, None, None, clsact_added);
                return Err(err);
            }
        };
        let egress = tc_name.as_deref().map(|tc_name| {
            self.attach_tc(iface, tc_name, TcAttachType::Egress, options.tc, &mut clsact_added)
        });
        let (egress_link, tc_mode) = match egress.transpose() {
            Ok(attached) => attached.unzip(),
            Err(err) => {
                self.release(ifindex, iface, Some(ingress_link), None, clsact_added);
                return Err(err);
            }
        };
        let attachment = Attachment {
            name: iface.to_owned(),
            ingress,
            xdp_refused,
            tc_mode,
            ingress_link,
            egress_link,
            clsact_added,
            packets: PacketCounts::new(ifindex, iface),
        };
        Ok(self.attached.entry(ifindex).insert_entry(attachment).into_mut())
    }

    /// The ingress hook of [`KernelProbe::attach`], and why XDP was not used when `auto` chose TC.
    /// `tc_name` is the kernel's name for TC, `None` when the name is not UTF-8 and TC cannot be
    /// attached by it.
    fn attach_ingress(
        &mut self,
        ifindex: u32,
        iface: &str,
        tc_name: Option<&str>,
        options: AttachOptions,
        clsact_added: &mut bool,
    ) -> Result<(IngressLink, IngressHook, Option<String>)> {
        let tc = |probe: &mut Self, clsact_added: &mut bool| {
            let tc_name = tc_name.with_context(|| {
                format!("TC ingress cannot be attached to {iface}: TC programs attach by name, and this name is not UTF-8")
            })?;
            probe
                .attach_tc(iface, tc_name, TcAttachType::Ingress, options.tc, clsact_added)
                .map(|(link, mode)| (IngressLink::Tc(link), IngressHook::Tc(mode)))
        };
        let xdp = |probe: &mut Self| {
            probe
                .attach_xdp(ifindex, iface, options.xdp)
                .map(|(link, mode)| (IngressLink::Xdp(link), IngressHook::Xdp(mode)))
        };
        match options.ingress {
            IngressHookChoice::Xdp => xdp(self).map(|(link, hook)| (link, hook, None)),
            IngressHookChoice::Tc => tc(self, clsact_added).map(|(link, hook)| (link, hook, None)),
            IngressHookChoice::Auto => match xdp(self) {
                Ok((link, hook)) => Ok((link, hook, None)),
                Err(xdp_err) => {
                    let refused = match netlink::xdp_program(ifindex) {
                        Ok(Some(id)) => format!("the XDP slot is held by program id {id}"),
                        _ => format!("{xdp_err:#}"),
                    };
                    let (link, hook) = tc(self, clsact_added).with_context(|| {
                        format!("XDP was refused on {iface} ({refused}), and TC ingress too")
                    })?;
                    Ok((link, hook, Some(refused)))
                }
            },
        }
    }

    /// Detaches both programs from `ifindex`. Works for an interface that is already gone too:
    /// the kernel has then detached the links itself, and this closes their descriptors.
    /// Returns the name the interface had.
    pub fn detach(&mut self, ifindex: u32) -> Option<String> {
        let Attachment { name, ingress_link, egress_link, clsact_added, packets, .. } =
            self.attached.remove(&ifindex)?;
        for (total, frames) in self.detached_frames.iter_mut().zip(packets.since_attach()) {
            *total += frames;
        }
        self.release(ifindex, &name, Some(ingress_link), egress_link, clsact_added);
        Some(name)
    }

    /// Detaches what is given, then removes the `clsact` qdisc if arpwatch added it and nobody
    /// else's filters use it.
    fn release(
        &mut self,
        ifindex: u32,
        name: &str,
        ingress: Option<IngressLink>,
        egress: Option<SchedClassifierLinkId>,
        clsact_added: bool,
    ) {
        match ingress {
            Some(IngressLink::Xdp(link)) => {
                if let Err(err) = self.xdp_mut().detach(link) {
                    log::debug!("{name}: XDP detach: {err}");
                }
            }
            Some(IngressLink::Tc(link)) => {
                if let Err(err) = self.classifier_mut(programs::TC_INGRESS).detach(link) {
                    log::debug!("{name}: TC ingress detach: {err}");
                }
            }
            None => {}
        }
        if let Some(link) = egress {
            if let Err(err) = self.classifier_mut(programs::TC_EGRESS).detach(link) {
                log::debug!("{name}: TC egress detach: {err}");
            }
        }
        if clsact_added {
            match netlink::remove_clsact_if_unused(ifindex) {
                Ok(netlink::Clsact::Removed) => {
                    log::debug!("{name}: removed the clsact qdisc arpwatch had added");
                }
                Ok(netlink::Clsact::KeptInUse(filters)) => log::info!(
                    "{name}: kept the clsact qdisc arpwatch had added: {filters} filters of \
                     others use it now"
                ),
                // The interface is gone, and its qdisc with it.
                Err(err) if matches!(err.raw_os_error(), Some(libc::ENODEV | libc::EINVAL)) => {
                    log::debug!("{name}: clsact qdisc: {err}");
                }
                Err(err) => log::warn!(
                    "{name}: could not remove the clsact qdisc arpwatch had added: {err}"
                ),
            }
        }
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
        .map_err(|err| explain_attach_error(err, ifindex))
        .with_context(|| format!("could not attach XDP to interface {iface} ({choice:?} mode)"))
    }

    /// Attaches a classifier to `iface`: the egress one, so arpwatch sees what this host sends,
    /// or the ingress one where XDP is not used. TCX links (Linux 6.6+) are owned by this process
    /// and vanish with it, even on SIGKILL; the ingress one goes first, so that a program which
    /// answers or drops ARP itself cannot hide a request from arpwatch (the egress one goes last
    /// and sees what is really sent). Older kernels get a netlink filter on a clsact qdisc, which
    /// outlives a killed process: a filter of ours left behind that way is removed first, and a
    /// qdisc arpwatch adds is recorded in `clsact_added`, to be removed at detach.
    fn attach_tc(
        &mut self,
        iface: &str,
        tc_name: &str,
        attach_type: TcAttachType,
        choice: TcModeChoice,
        clsact_added: &mut bool,
    ) -> Result<(SchedClassifierLinkId, TcMode)> {
        let (program, direction) = match attach_type {
            TcAttachType::Ingress => (programs::TC_INGRESS, "ingress"),
            _ => (programs::TC_EGRESS, "egress"),
        };
        let mode = match choice {
            TcModeChoice::Auto if privileges::kernel_at_least(6, 6) => TcMode::Tcx,
            TcModeChoice::Auto | TcModeChoice::Netlink => TcMode::Netlink,
            TcModeChoice::Tcx => TcMode::Tcx,
        };
        let options = match mode {
            TcMode::Tcx if attach_type == TcAttachType::Ingress => {
                TcAttachOptions::TcxOrder(LinkOrder::first())
            }
            TcMode::Tcx => TcAttachOptions::TcxOrder(LinkOrder::default()),
            TcMode::Netlink => {
                remove_stale_netlink_filters(tc_name, attach_type, program)?;
                match tc::qdisc_add_clsact(tc_name) {
                    Ok(()) => *clsact_added = true,
                    // EEXIST: the interface already has a clsact qdisc, which is what we need.
                    Err(err) if is_errno(&err, libc::EEXIST) => {}
                    Err(err) => {
                        return Err(anyhow!(err))
                            .with_context(|| format!("could not add a clsact qdisc to {iface}"));
                    }
                }
                // Priority 0: the kernel picks one ahead of the filters it numbered itself.
                TcAttachOptions::Netlink(NlOptions::default())
            }
        };
        let link = self
            .classifier_mut(program)
            .attach_with_options(tc_name, attach_type, options)
            .map_err(|err| anyhow!(err))
            .with_context(|| {
                format!("could not attach the TC {direction} program to {iface} ({mode} mode)")
            })?;
        Ok((link, mode))
    }

    fn classifier_mut(&mut self, name: &str) -> &mut SchedClassifier {
        self.ebpf
            .program_mut(name)
            .and_then(|p| <&mut SchedClassifier>::try_from(p).ok())
            .expect("checked at load")
    }

    fn classifier(&self, name: &str) -> &SchedClassifier {
        self.ebpf
            .program(name)
            .and_then(|p| <&SchedClassifier>::try_from(p).ok())
            .expect("checked at load")
    }

    /// The TC egress program, for BPF_PROG_TEST_RUN in tests.
    pub fn tc_egress(&self) -> &SchedClassifier {
        self.classifier(programs::TC_EGRESS)
    }

    /// The TC ingress program, for BPF_PROG_TEST_RUN in tests.
    pub fn tc_ingress(&self) -> &SchedClassifier {
        self.classifier(programs::TC_INGRESS)
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

    /// Sums the per-CPU counters, and reads the frames of the attached interfaces from their
    /// own packet counters (an interface that vanished counts up to its last reading).
    pub fn counters(&self) -> Result<CounterTotals> {
        let map = self.ebpf.map(maps::COUNTERS).context("the kernel object has no counters map")?;
        let array = PerCpuArray::<_, u64>::try_from(map)?;
        let mut totals = CounterTotals { frames: self.detached_frames, ..Default::default() };
        for slot in 0..COUNTER_SLOTS {
            let per_cpu = array.get(&slot, 0).context("could not read the kernel counters")?;
            totals.slots[slot as usize] = per_cpu.iter().sum();
        }
        for (ifindex, attachment) in &self.attached {
            for (total, frames) in totals.frames.iter_mut().zip(attachment.packets.read(*ifindex)) {
                *total += frames;
            }
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

impl Drop for KernelProbe {
    fn drop(&mut self) {
        let attached: Vec<u32> = self.attached.keys().copied().collect();
        for ifindex in attached {
            self.detach(ifindex);
        }
    }
}

/// Removes filters named `program` (one of our classifiers) from `attach_type` of `iface`: only a
/// killed arpwatch on the netlink path leaves them behind.
fn remove_stale_netlink_filters(
    iface: &str,
    attach_type: TcAttachType,
    program: &str,
) -> Result<bool> {
    match tc::qdisc_detach_program(iface, attach_type, program) {
        Ok(()) => {
            let direction =
                if attach_type == TcAttachType::Ingress { "an ingress" } else { "an egress" };
            log::warn!("{iface}: removed {direction} filter left behind by an earlier arpwatch");
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

/// Counter totals over all CPUs, per direction, and the frames the watched interfaces counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CounterTotals {
    slots: [u64; COUNTER_SLOTS as usize],
    /// Indexed by direction.
    frames: [u64; 2],
}

impl CounterTotals {
    pub fn get(&self, counter: Counter, dir: u8) -> u64 {
        self.slots[counter.index(dir) as usize]
    }

    /// Frames the programs ran on in direction `dir`: what the watched interfaces received
    /// (ingress) or sent (egress) while attached, by their own packet counters.
    pub fn frames(&self, dir: u8) -> u64 {
        self.frames[usize::from(dir)]
    }
}

impl fmt::Display for CounterTotals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, dir) in [("ingress", direction::INGRESS), ("egress", direction::EGRESS)] {
            write!(f, "{name}: frames={}", self.frames(dir))?;
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
    if let ProgramError::LoadError { io_error, verifier_log } = &err {
        let verifier_log = verifier_log.to_string();
        log::debug!("the verifier's log:\n{verifier_log}");
        // The verifier refuses a program with EACCES and says why in its log; missing
        // capabilities give EPERM (or EACCES without a log).
        if io_error.raw_os_error() == Some(libc::EACCES) && !verifier_log.trim().is_empty() {
            return anyhow!(
                "the verifier rejected the program (RUST_LOG=arpwatch::kernel=debug prints its log)"
            );
        }
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

/// An XDP attach error in words; when the slot is taken, with the other program's id, which
/// `bpftool prog show id N` names.
fn explain_attach_error(err: ProgramError, ifindex: u32) -> anyhow::Error {
    if is_errno(&err, libc::EBUSY) || is_errno(&err, libc::EEXIST) {
        let holder = match netlink::xdp_program(ifindex) {
            Ok(Some(id)) => format!("program id {id}"),
            _ => "another program".to_owned(),
        };
        return anyhow!(
            "the XDP slot is held by {holder}, which arpwatch never replaces; --ingress-hook \
             auto or tc watches ingress with TC instead ({err})"
        );
    }
    anyhow!(err)
}
