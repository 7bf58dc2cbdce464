//! The command line as clap parses it: flags and their values, checked one by one. Nothing below
//! `main` sees these types: [`crate::plan`] turns them, once, into the plans the commands run.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

use crate::kernel::{
    IngressHookChoice, TcModeChoice, XdpModeChoice, DEFAULT_DEDUP_INTERVAL, DEFAULT_RING_BYTES,
};
use crate::output::Format;
use crate::stdout;

#[derive(Debug, Parser)]
#[command(
    name = "arpwatch",
    version,
    about = "Passive ARP and IPv6 Neighbor Discovery observer: finds IPs answered by several MACs, \
             owner changes, flapping, foreign and missing responders. It never sends a packet."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Watch live ARP and Neighbor Discovery traffic on network interfaces (needs CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON).
    Watch(WatchArgs),
    /// Run the same detection engine over pcap or pcapng capture files.
    Replay(ReplayArgs),
    /// Ask a running agent what it knows about watched IPs: owner, claims, last owner change,
    /// open conditions, requests. Reads the agent's status API; sends nothing on the network
    /// segment.
    Status(StatusArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// One JSON object per line (the default when stdout is not a terminal).
    Json,
    /// One readable line per event (the default on a terminal).
    Text,
}

impl From<FormatArg> for Format {
    fn from(arg: FormatArg) -> Self {
        match arg {
            FormatArg::Json => Format::Json,
            FormatArg::Text => Format::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KubernetesArg {
    /// On when running in a pod (a service-account token and KUBERNETES_SERVICE_HOST) or when
    /// --kubeconfig is given, off otherwise.
    Auto,
    /// Always: --kubeconfig, else KUBECONFIG, else the pod's service account, else
    /// ~/.kube/config; none of them usable is an error.
    On,
    /// Never talk to the Kubernetes API.
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOffArg {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum XdpModeArg {
    /// Driver (native) mode, falling back to generic (skb) mode where the driver refuses.
    Auto,
    /// Driver mode only.
    Native,
    /// Generic (skb) mode only.
    Skb,
}

impl From<XdpModeArg> for XdpModeChoice {
    fn from(arg: XdpModeArg) -> Self {
        match arg {
            XdpModeArg::Auto => XdpModeChoice::Auto,
            XdpModeArg::Native => XdpModeChoice::Native,
            XdpModeArg::Skb => XdpModeChoice::Skb,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IngressHookArg {
    /// XDP where the interface's XDP slot is free, the TC ingress classifier where another
    /// program holds it.
    Auto,
    /// XDP only (an interface whose XDP slot is taken cannot be watched).
    Xdp,
    /// The TC ingress classifier only (XDP is never touched).
    Tc,
}

impl From<IngressHookArg> for IngressHookChoice {
    fn from(arg: IngressHookArg) -> Self {
        match arg {
            IngressHookArg::Auto => IngressHookChoice::Auto,
            IngressHookArg::Xdp => IngressHookChoice::Xdp,
            IngressHookArg::Tc => IngressHookChoice::Tc,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TcModeArg {
    /// TCX links on Linux 6.6 and later (they die with the process), netlink filters before.
    Auto,
    /// TCX links only.
    Tcx,
    /// A netlink filter on a clsact qdisc (for kernels before 6.6).
    Netlink,
}

impl From<TcModeArg> for TcModeChoice {
    fn from(arg: TcModeArg) -> Self {
        match arg {
            TcModeArg::Auto => TcModeChoice::Auto,
            TcModeArg::Tcx => TcModeChoice::Tcx,
            TcModeArg::Netlink => TcModeChoice::Netlink,
        }
    }
}

/// Options both commands share: the detection configuration and the output.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Detection configuration (TOML): pools, thresholds, exemptions, caps.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output format; defaults to json when stdout is not a terminal, text otherwise.
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Print every observation (ARP frame or Neighbor Discovery message) instead of events.
    #[arg(long)]
    pub raw: bool,
    /// Add these floating IPs (a CIDR or a single IP, repeatable) as a pool named "cli", with no
    /// interface or MAC restriction: they are watched for `unanswered` and get per-pool metrics.
    #[arg(long = "pool", value_name = "CIDR", value_parser = parse_cidr)]
    pub pools: Vec<ipnet::IpNet>,
    /// The observer sees the whole segment (a SPAN or mirror port): requests nobody answers are
    /// reported (`full_view = true` in the file). Replay always assumes it.
    #[arg(long)]
    pub full_view: bool,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Interface to watch: a name or a glob such as 'eth*' (repeat for several). Interfaces that
    /// match and appear later are attached too.
    #[arg(long = "iface", value_name = "NAME|GLOB", required_unless_present = "all")]
    pub ifaces: Vec<String>,
    /// Watch every interface except loopback (with --iface: the union).
    #[arg(long)]
    pub all: bool,
    /// Leave out interfaces matching this glob, e.g. 'veth*' (repeat for several; wins over --iface).
    #[arg(long = "exclude", value_name = "GLOB")]
    pub excludes: Vec<String>,
    #[command(flatten)]
    pub common: CommonArgs,
    /// Stop by itself after this many seconds (fractions allowed).
    // A negative value reaches the parser, which names the flag, instead of looking like a flag.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds, allow_negative_numbers = true)]
    pub duration: Option<Duration>,
    /// What watches ingress: XDP, or the TC classifier (never replacing another XDP program).
    #[arg(long, value_enum, default_value = "auto")]
    pub ingress_hook: IngressHookArg,
    /// How to attach XDP.
    #[arg(long, value_enum, default_value = "auto")]
    pub xdp_mode: XdpModeArg,
    /// Serve Prometheus metrics, /healthz and /readyz on this address (e.g. 0.0.0.0:9851).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Serve the read-only status API (/api/v1/...) and the status page (/) on the metrics
    /// address too.
    #[arg(long, value_enum, value_name = "on|off", default_value = "on")]
    pub api: OnOffArg,
    /// How to attach the TC programs (egress, and ingress where TC watches it).
    #[arg(long, value_enum, default_value = "auto")]
    pub tc_mode: TcModeArg,
    /// Identical frames (same sender, target, op, interface, direction) within this many
    /// milliseconds, beyond the first two, are folded in the kernel into the next observation,
    /// which counts them; 0 sends every frame up. A new MAC, gratuitous ARP, unsolicited NAs and
    /// probes (ARP and DAD) are never folded.
    #[arg(long, value_name = "MS", default_value_t = DEFAULT_DEDUP_INTERVAL.as_millis() as u64)]
    pub dedup_interval: u64,
    /// Size of the kernel-to-user ring buffer in bytes (a power of two, at least one page).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_RING_BYTES, value_parser = parse_ring_bytes)]
    pub ring_bytes: u32,
    /// Lines waiting for stdout are held in a queue of at most this many bytes; when stdout does
    /// not keep up, the lines that do not fit are dropped and counted, so the watch never waits
    /// for the reader of stdout.
    #[arg(long, value_name = "BYTES", default_value_t = stdout::DEFAULT_CAPACITY, value_parser = parse_output_buffer)]
    pub output_buffer: usize,
    /// Cluster context from the Kubernetes API: nodes, LoadBalancer Services, MetalLB's pools and
    /// announcers, other nodes' interfaces (published in Leases). Never delays an event.
    #[arg(long, value_enum, default_value = "auto")]
    pub kubernetes: KubernetesArg,
    /// The kubeconfig to reach the API with (a host agent outside the cluster); turns
    /// --kubernetes auto on.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Record a Kubernetes Event on the Service when a condition about one of its VIPs starts
    /// (default: on when the Kubernetes API is used).
    #[arg(long, value_enum, value_name = "on|off")]
    pub kubernetes_events: Option<OnOffArg>,
    /// The namespace of the Leases in which each node publishes its interfaces (default: the
    /// pod's own namespace, else arpwatch).
    #[arg(long, value_name = "NS")]
    pub lease_namespace: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Capture files (pcap or pcapng), replayed in the order given; - reads one from standard
    /// input (e.g. from tcpdump -U -w -).
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// IPs or CIDRs to show (e.g. 192.0.2.10, 198.51.100.0/24, 2001:db8::/64); all watched IPs
    /// without any.
    #[arg(value_name = "IP|CIDR", value_parser = parse_target)]
    pub targets: Vec<ipnet::IpNet>,
    /// The agent's metrics address (--metrics-addr of `arpwatch watch`).
    #[arg(long, value_name = "ADDR:PORT", default_value = DEFAULT_STATUS_SERVER)]
    pub server: String,
    /// Output format; defaults to json when stdout is not a terminal, a table otherwise.
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
}

/// Where `arpwatch status` asks by default: the metrics address the deployment uses.
pub const DEFAULT_STATUS_SERVER: &str = "127.0.0.1:9851";

/// An IP (a /32 or /128) or a CIDR, host bits kept off.
fn parse_target(s: &str) -> Result<ipnet::IpNet, String> {
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok(ipnet::IpNet::from(ip));
    }
    s.parse::<ipnet::IpNet>().map(|net| net.trunc()).map_err(|_| {
        format!("'{s}' is not an IPv4 or IPv6 address or CIDR (e.g. 192.0.2.10, 198.51.100.0/24)")
    })
}

/// `--pool`: the configuration's parser (a bare address is a /32, host bits are cleared), in
/// clap's wording.
fn parse_cidr(s: &str) -> Result<ipnet::IpNet, String> {
    arpwatch_core::config::parse_cidr(s).map_err(|_| {
        format!(
            "'{s}' is not an IPv4 or IPv6 CIDR or address (e.g. 192.0.2.240/28, 2001:db8::/120)"
        )
    })
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.parse().map_err(|_| format!("'{s}' is not a number of seconds"))?;
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!("'{s}' must be a positive number of seconds"));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("'{s}' is too long"))
}

fn parse_output_buffer(s: &str) -> Result<usize, String> {
    let bytes: usize = s.parse().map_err(|_| format!("'{s}' is not a number of bytes"))?;
    if bytes < stdout::MIN_CAPACITY {
        return Err(format!("'{s}' must be at least {}", stdout::MIN_CAPACITY));
    }
    Ok(bytes)
}

fn parse_ring_bytes(s: &str) -> Result<u32, String> {
    let bytes: u32 = s.parse().map_err(|_| format!("'{s}' is not a number of bytes"))?;
    if !bytes.is_power_of_two() || bytes < 4096 {
        return Err(format!("'{s}' must be a power of two of at least 4096"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_parses_the_contract_flags() {
        let cli = Cli::try_parse_from([
            "arpwatch",
            "watch",
            "--iface",
            "eth0",
            "--iface",
            "eth1",
            "--raw",
            "--duration",
            "1.5",
            "--xdp-mode",
            "skb",
            "--format",
            "text",
        ])
        .unwrap();
        let Command::Watch(w) = cli.command else { panic!("not watch") };
        assert_eq!(w.ingress_hook, IngressHookArg::Auto, "auto by default");
        assert_eq!(w.ifaces, ["eth0", "eth1"]);
        assert!(w.common.raw);
        assert_eq!(w.duration, Some(Duration::from_millis(1500)));
        assert_eq!(w.xdp_mode, XdpModeArg::Skb);
        assert_eq!(w.common.format, Some(FormatArg::Text));

        let cli = Cli::try_parse_from([
            "arpwatch",
            "watch",
            "--all",
            "--exclude",
            "veth*",
            "--exclude",
            "cali*",
        ])
        .unwrap();
        let Command::Watch(w) = cli.command else { panic!("not watch") };
        assert!(w.all && w.ifaces.is_empty());
        assert_eq!(w.excludes, ["veth*", "cali*"]);

        let cli = Cli::try_parse_from([
            "arpwatch",
            "replay",
            "a.pcap",
            "--pool",
            "192.0.2.10",
            "--pool",
            "198.51.100.0/28",
        ])
        .unwrap();
        let Command::Replay(r) = cli.command else { panic!("not replay") };
        let pools: Vec<String> = r.common.pools.iter().map(ToString::to_string).collect();
        assert_eq!(pools, ["192.0.2.10/32", "198.51.100.0/28"]);
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for args in [
            &["arpwatch", "watch", "--duration", "1"][..], // neither --iface nor --all
            &["arpwatch", "watch", "--iface", "eth0", "--duration", "-1"],
            &["arpwatch", "watch", "--iface", "eth0", "--xdp-mode", "hw"],
            &["arpwatch", "watch", "--iface", "eth0", "--ingress-hook", "skb"],
            &["arpwatch", "watch", "--iface", "eth0", "--ring-bytes", "5000"],
            &["arpwatch", "watch", "--iface", "eth0", "--output-buffer", "100"],
            &["arpwatch", "replay"],
            &["arpwatch", "replay", "x.pcap", "--pool", "192.0.2.0/33"],
        ] {
            let err = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn a_bad_duration_names_the_flag() {
        for value in ["-1", "0", "-0.5", "soon"] {
            let err = Cli::try_parse_from(["arpwatch", "watch", "--all", "--duration", value])
                .unwrap_err();
            assert_eq!(err.exit_code(), 2, "{value}");
            let message = err.to_string();
            let first = message.lines().next().unwrap();
            assert!(
                first.contains(&format!("invalid value '{value}' for '--duration <SECONDS>'")),
                "{first}"
            );
        }
        let err = Cli::try_parse_from(["arpwatch", "watch", "--all", "--duration", "-1"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("'-1' must be a positive number of seconds"), "{err}");
    }

    #[test]
    fn the_output_buffer_has_a_documented_default_and_a_floor() {
        let cli = Cli::try_parse_from(["arpwatch", "watch", "--all"]).unwrap();
        let Command::Watch(w) = cli.command else { panic!("not watch") };
        assert_eq!(w.output_buffer, 8 << 20);
        let cli = Cli::try_parse_from(["arpwatch", "watch", "--all", "--output-buffer", "65536"])
            .unwrap();
        let Command::Watch(w) = cli.command else { panic!("not watch") };
        assert_eq!(w.output_buffer, 65536);
    }
}
