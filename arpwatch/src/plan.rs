//! The command line turned, once, into what a command runs on: the configuration file read and
//! the flags applied to it and validated, the output format resolved, the interface selection
//! compiled, the kernel options in their own types. `main` builds a [`Plan`] from clap's
//! [`Cli`] and hands the commands plain structs; every problem found here is a
//! usage problem (exit status 2), named in one sentence.

use std::ffi::OsString;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use arpwatch_core::config::{Config, InvalidKey, Pool, MAX_FILE_BYTES};
use kube::config::Kubeconfig;

use crate::cli::{
    Cli, Command, CommonArgs, KubernetesArg, OnOffArg, ReplayArgs, StatusArgs, WatchArgs,
};
use crate::kernel::AttachOptions;
use crate::links::IfaceSelector;
use crate::output::{default_format, Format};
use crate::UsageError;

/// What to run.
#[derive(Debug)]
pub enum Plan {
    Watch(WatchPlan),
    Replay(ReplayPlan),
    Status(StatusPlan),
}

/// `arpwatch status`.
#[derive(Debug)]
pub struct StatusPlan {
    /// IPs (as /32, /128) and CIDRs to show; every watched IP when empty.
    pub targets: Vec<ipnet::IpNet>,
    /// The agent's address, `host:port`.
    pub server: String,
    pub format: Format,
}

/// What both commands do with observations.
#[derive(Debug)]
pub struct PipelinePlan {
    /// The file, if any, with `--pool` and `--full-view` applied, validated.
    pub config: Config,
    /// Where `config` came from, to build it again the same way on a reload.
    pub source: ConfigSource,
    pub format: Format,
    pub processing: Processing,
}

/// Observations printed as they are, or judged by the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Processing {
    /// Print every observation (`--raw`).
    Raw,
    /// Feed the detection engine and print its events.
    Detect,
}

/// `arpwatch watch`.
#[derive(Debug)]
pub struct WatchPlan {
    pub pipeline: PipelinePlan,
    /// `--iface`, `--exclude`, `--all`.
    pub interfaces: IfaceSelector,
    pub attach: AttachOptions,
    /// Size of the kernel-to-user ring buffer (a power of two of at least a page).
    pub ring_bytes: u32,
    /// In-kernel de-duplication interval; zero sends every frame up.
    pub dedup_interval: Duration,
    /// Stop by itself after this long.
    pub duration: Option<Duration>,
    /// Where to serve metrics.
    pub metrics_addr: Option<SocketAddr>,
    /// Serve the status API and page on the metrics address (`--api`).
    pub api: bool,
    /// Bytes of lines that may wait for stdout (`--output-buffer`).
    pub output_buffer: usize,
    /// The Kubernetes API, when `--kubernetes` resolved to on.
    pub kubernetes: Option<KubernetesPlan>,
}

/// How the cluster context is read and what is written back.
#[derive(Debug)]
pub struct KubernetesPlan {
    pub source: ApiSource,
    /// Record Kubernetes Events on Services (`--kubernetes-events`).
    pub events: bool,
    /// Where the nodes' Leases are (`--lease-namespace`).
    pub lease_namespace: String,
}

/// Where the client's configuration comes from.
#[derive(Debug)]
pub enum ApiSource {
    /// A kubeconfig, read from `origin` (a file, or the files KUBECONFIG lists).
    Kubeconfig { origin: String, config: Box<Kubeconfig> },
    /// The pod's service account.
    InCluster(Box<kube::Config>),
}

/// What the choice of a Kubernetes configuration depends on outside the command line.
#[derive(Debug, Default)]
pub struct KubeEnvironment {
    /// `KUBECONFIG`, when set and not empty.
    pub kubeconfig: Option<OsString>,
    /// A service-account token is mounted and KUBERNETES_SERVICE_HOST is set.
    pub in_pod: bool,
    /// `~/.kube/config`, when it exists.
    pub home_config: Option<PathBuf>,
    /// The pod's namespace (the service account's namespace file).
    pub pod_namespace: Option<String>,
}

const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The lease namespace outside a pod, without `--lease-namespace`.
const DEFAULT_LEASE_NAMESPACE: &str = "arpwatch";

impl KubeEnvironment {
    pub fn current() -> KubeEnvironment {
        let sa = Path::new(SERVICE_ACCOUNT_DIR);
        let home = std::env::var_os("HOME").map(|home| Path::new(&home).join(".kube/config"));
        KubeEnvironment {
            kubeconfig: std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()),
            in_pod: sa.join("token").is_file()
                && std::env::var_os("KUBERNETES_SERVICE_HOST").is_some_and(|h| !h.is_empty()),
            home_config: home.filter(|path| path.is_file()),
            pod_namespace: std::fs::read_to_string(sa.join("namespace"))
                .ok()
                .map(|ns| ns.trim().to_owned())
                .filter(|ns| !ns.is_empty()),
        }
    }
}

impl KubernetesPlan {
    /// `--kubernetes`, `--kubeconfig`, `--kubernetes-events` and `--lease-namespace` checked
    /// against each other and `env`; `None` when the API is not used.
    fn new(args: &WatchArgs, env: &KubeEnvironment) -> Result<Option<KubernetesPlan>, UsageError> {
        let explicit_events = args.kubernetes_events == Some(OnOffArg::On);
        let source = match args.kubernetes {
            KubernetesArg::Off => {
                if args.kubeconfig.is_some() {
                    return Err(UsageError("--kubeconfig has no use with --kubernetes off".into()));
                }
                if explicit_events {
                    return Err(UsageError(
                        "--kubernetes-events on needs the Kubernetes API, which --kubernetes off \
                         turns off"
                            .into(),
                    ));
                }
                None
            }
            KubernetesArg::On if args.common.raw => {
                return Err(UsageError(
                    "--kubernetes on has no use with --raw, which prints observations without \
                     cluster context"
                        .into(),
                ));
            }
            // Raw observations carry no context.
            KubernetesArg::Auto if args.common.raw => None,
            KubernetesArg::Auto => match &args.kubeconfig {
                Some(path) => Some(read_kubeconfig_file(path)?),
                None if env.in_pod => Some(in_cluster()?),
                None => None,
            },
            KubernetesArg::On => Some(match (&args.kubeconfig, &env.kubeconfig) {
                (Some(path), _) => read_kubeconfig_file(path)?,
                (None, Some(paths)) => read_kubeconfig_env(paths)?,
                (None, None) if env.in_pod => in_cluster()?,
                (None, None) => match &env.home_config {
                    Some(path) => read_kubeconfig_file(path)?,
                    None => {
                        return Err(UsageError(
                            "--kubernetes on: no Kubernetes API configuration was found (give \
                             --kubeconfig, set KUBECONFIG or run in a pod with a service account)"
                                .into(),
                        ))
                    }
                },
            }),
        };
        let Some(source) = source else {
            return Ok(None);
        };
        let lease_namespace = match &args.lease_namespace {
            Some(ns) => {
                if !is_dns_label(ns) {
                    return Err(UsageError(format!(
                        "--lease-namespace {ns:?}: not a namespace name (lowercase letters, \
                         digits and '-', at most 63, starting and ending with a letter or digit)"
                    )));
                }
                ns.clone()
            }
            None => env.pod_namespace.clone().unwrap_or_else(|| DEFAULT_LEASE_NAMESPACE.into()),
        };
        Ok(Some(KubernetesPlan {
            source,
            events: args.kubernetes_events != Some(OnOffArg::Off),
            lease_namespace,
        }))
    }
}

/// The files `KUBECONFIG` lists, merged as kubectl merges them (the first to set a value wins).
fn read_kubeconfig_env(paths: &OsString) -> Result<ApiSource, UsageError> {
    let config = std::env::split_paths(paths)
        .filter(|path| !path.as_os_str().is_empty())
        .try_fold(Kubeconfig::default(), |merged, path| {
            Kubeconfig::read_from(&path).and_then(|next| merged.merge(next))
        })
        .map_err(|err| UsageError(format!("KUBECONFIG: cannot be used: {err}")))?;
    Ok(ApiSource::Kubeconfig { origin: "KUBECONFIG".into(), config: Box::new(config) })
}

fn read_kubeconfig_file(path: &Path) -> Result<ApiSource, UsageError> {
    let config = Kubeconfig::read_from(path).map_err(|err| {
        UsageError(format!("--kubeconfig {}: cannot be used: {err}", path.display()))
    })?;
    Ok(ApiSource::Kubeconfig { origin: path.display().to_string(), config: Box::new(config) })
}

fn in_cluster() -> Result<ApiSource, UsageError> {
    let config = kube::Config::incluster().map_err(|err| {
        UsageError(format!("--kubernetes: the pod's service account cannot be used: {err}"))
    })?;
    Ok(ApiSource::InCluster(Box::new(config)))
}

/// A Kubernetes namespace name (an RFC 1123 label).
fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

/// `arpwatch replay`.
#[derive(Debug)]
pub struct ReplayPlan {
    pub pipeline: PipelinePlan,
    /// Capture files, in the order given; `-` is standard input.
    pub files: Vec<PathBuf>,
}

impl Plan {
    /// Reads the configuration file and checks every flag against the others and the file.
    pub fn from_cli(cli: Cli) -> Result<Plan, UsageError> {
        Ok(match cli.command {
            Command::Watch(args) => Plan::Watch(WatchPlan::new(args, &KubeEnvironment::current())?),
            Command::Replay(args) => Plan::Replay(ReplayPlan::new(args)?),
            Command::Status(args) => Plan::Status(StatusPlan::new(args)?),
        })
    }
}

impl WatchPlan {
    fn new(args: WatchArgs, env: &KubeEnvironment) -> Result<WatchPlan, UsageError> {
        let pipeline = PipelinePlan::new(&args.common, false)?;
        let kubernetes = KubernetesPlan::new(&args, env)?;
        Ok(WatchPlan {
            pipeline,
            interfaces: IfaceSelector::new(&args.ifaces, &args.excludes, args.all)?,
            attach: AttachOptions {
                ingress: args.ingress_hook.into(),
                xdp: args.xdp_mode.into(),
                tc: args.tc_mode.into(),
            },
            ring_bytes: args.ring_bytes,
            dedup_interval: Duration::from_millis(args.dedup_interval),
            duration: args.duration,
            metrics_addr: args.metrics_addr,
            api: args.api == OnOffArg::On,
            output_buffer: args.output_buffer,
            kubernetes,
        })
    }
}

impl StatusPlan {
    fn new(args: StatusArgs) -> Result<StatusPlan, UsageError> {
        let port = args.server.rsplit_once(':').map(|(host, port)| (host, port.parse::<u16>()));
        if !matches!(port, Some((host, Ok(port))) if !host.is_empty() && port != 0) {
            return Err(UsageError(format!(
                "--server {}: give the agent's metrics address as ADDR:PORT (e.g. 127.0.0.1:9851)",
                args.server
            )));
        }
        Ok(StatusPlan {
            targets: args.targets,
            server: args.server,
            format: default_format(args.format.map(Format::from)),
        })
    }
}

impl ReplayPlan {
    fn new(args: ReplayArgs) -> Result<ReplayPlan, UsageError> {
        // A capture shows every reply on the segment, so unanswered requests can be judged.
        let pipeline = PipelinePlan::new(&args.common, true)?;
        if args.files.iter().filter(|f| f.as_os_str() == crate::replay::STDIN_ARG).count() > 1 {
            return Err(UsageError("replay can read standard input (-) only once".into()));
        }
        Ok(ReplayPlan { pipeline, files: args.files })
    }
}

impl PipelinePlan {
    fn new(args: &CommonArgs, full_view: bool) -> Result<PipelinePlan, UsageError> {
        let source = ConfigSource {
            path: args.config.clone(),
            pools: args.pools.clone(),
            full_view: full_view || args.full_view,
        };
        let file = match &source.path {
            Some(path) => Some(load_config(path).map_err(|err| UsageError(err.to_string()))?),
            None => None,
        };
        Ok(PipelinePlan {
            config: source.apply_flags(file)?,
            source,
            format: default_format(args.format.map(Format::from)),
            processing: if args.raw { Processing::Raw } else { Processing::Detect },
        })
    }
}

/// The configuration's origin: the file (`--config`) and the flags that add to it (`--pool`,
/// `--full-view`), kept so that a reload builds the configuration again the same way.
#[derive(Clone, Debug)]
pub struct ConfigSource {
    pub path: Option<PathBuf>,
    pools: Vec<ipnet::IpNet>,
    full_view: bool,
}

impl ConfigSource {
    /// The file's configuration (the defaults without a file) with the flags applied, validated.
    pub fn apply_flags(&self, file: Option<Config>) -> Result<Config, UsageError> {
        let mut config = file.unwrap_or_default();
        config.engine.full_view |= self.full_view;
        if !self.pools.is_empty() {
            config.engine.pools.push(Pool {
                name: "cli".to_owned(),
                cidrs: self.pools.clone(),
                ..Pool::default()
            });
        }
        config.engine.validate().map_err(|err| UsageError(format!("--pool: {err}")))?;
        Ok(config)
    }
}

/// A configuration file that cannot be used. Display is one sentence naming the file, the key
/// and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {}: cannot read the file: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config {}: {problem}", path.display())]
    Invalid { path: PathBuf, problem: InvalidKey },
}

/// Reads and validates a configuration file. Reads no more than a configuration may be, so a
/// huge file (or `/dev/zero`) is refused without being read whole.
pub fn load_config(path: &Path) -> Result<Config, ConfigError> {
    let bytes =
        read_config(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    parse_config(path, &bytes)
}

/// The bytes of the configuration file, at most one more than a configuration may be.
pub fn read_config(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(MAX_FILE_BYTES as u64 + 1).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Parses and validates the bytes of the configuration file at `path`.
pub fn parse_config(path: &Path, bytes: &[u8]) -> Result<Config, ConfigError> {
    Config::from_file_bytes(bytes)
        .map_err(|problem| ConfigError::Invalid { path: path.to_owned(), problem })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn plan(args: &[&str]) -> Result<Plan, String> {
        let cli =
            Cli::try_parse_from(["arpwatch"].iter().chain(args)).map_err(|e| e.to_string())?;
        Plan::from_cli(cli).map_err(|e| e.to_string())
    }

    fn replay(args: &[&str]) -> ReplayPlan {
        match plan(args).unwrap() {
            Plan::Replay(p) => p,
            _ => panic!("not replay"),
        }
    }

    fn watch(args: &[&str]) -> WatchPlan {
        match plan(args).unwrap() {
            Plan::Watch(p) => p,
            _ => panic!("not watch"),
        }
    }

    /// A file of its own under the system's temporary directory, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let dir = std::env::temp_dir()
                .join(format!("arpwatch-plan-test-{tag}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn file(&self, name: &str, text: &str) -> PathBuf {
            let path = self.0.join(name);
            std::fs::write(&path, text).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn replay_judges_the_whole_segment_and_pools_from_flags_are_networks() {
        let p = replay(&[
            "replay",
            "a.pcap",
            "b.pcap",
            "--pool",
            "192.0.2.10",
            "--pool",
            "198.51.100.77/28",
            "--format",
            "text",
            "--raw",
        ]);
        assert_eq!(p.files, [PathBuf::from("a.pcap"), PathBuf::from("b.pcap")]);
        let engine = &p.pipeline.config.engine;
        assert!(engine.full_view);
        assert_eq!(engine.pools.len(), 1);
        assert_eq!(engine.pools[0].name, "cli");
        let cidrs: Vec<String> = engine.pools[0].cidrs.iter().map(ToString::to_string).collect();
        assert_eq!(cidrs, ["192.0.2.10/32", "198.51.100.64/28"]);
        assert_eq!(p.pipeline.format, Format::Text);
        assert_eq!(p.pipeline.processing, Processing::Raw);
    }

    #[test]
    fn watch_flags_become_plain_values() {
        let p = watch(&[
            "watch",
            "--iface",
            "eth*",
            "--exclude",
            "eth9",
            "--dedup-interval",
            "250",
            "--ingress-hook",
            "tc",
            "--xdp-mode",
            "skb",
            "--tc-mode",
            "netlink",
            "--duration",
            "0.5",
            "--format",
            "json",
            "--metrics-addr",
            "127.0.0.1:9851",
        ]);
        assert!(!p.pipeline.config.engine.full_view, "a node sees only its own replies");
        assert_eq!(p.pipeline.config, Config::default());
        assert_eq!(p.pipeline.format, Format::Json);
        assert_eq!(p.pipeline.processing, Processing::Detect);
        assert_eq!(p.dedup_interval, Duration::from_millis(250));
        assert_eq!(p.duration, Some(Duration::from_millis(500)));
        assert_eq!(p.ring_bytes, crate::kernel::DEFAULT_RING_BYTES);
        assert_eq!(
            p.attach,
            AttachOptions {
                ingress: crate::kernel::IngressHookChoice::Tc,
                xdp: crate::kernel::XdpModeChoice::Skb,
                tc: crate::kernel::TcModeChoice::Netlink
            }
        );
        assert_eq!(p.metrics_addr, Some("127.0.0.1:9851".parse().unwrap()));
        assert_eq!(p.interfaces.exact_names().count(), 0, "eth* is a glob");
        assert!(watch(&["watch", "--all", "--full-view"]).pipeline.config.engine.full_view);
    }

    #[test]
    fn bad_interface_values_are_usage_errors() {
        assert_eq!(
            plan(&["watch", "--iface", ""]).unwrap_err(),
            "--iface needs an interface name or glob, not an empty value"
        );
        assert!(plan(&["watch", "--all", "--exclude", "[eth"])
            .unwrap_err()
            .starts_with("--exclude"));
    }

    #[test]
    fn the_file_comes_first_and_flags_add_to_it() {
        let dir = TempDir::new("add");
        let path = dir.file("a.toml", "[[pools]]\nname = \"vips\"\ncidrs = [\"192.0.2.0/28\"]\n");
        let path = path.to_str().unwrap();
        let p = watch(&["watch", "--all", "--config", path, "--pool", "198.51.100.1"]);
        let names: Vec<&str> =
            p.pipeline.config.engine.pools.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["vips", "cli"]);

        let path = dir.file("cli.toml", "[[pools]]\nname = \"cli\"\ncidrs = [\"192.0.2.0/28\"]\n");
        let path = path.to_str().unwrap();
        assert_eq!(
            plan(&["replay", "x.pcap", "--config", path, "--pool", "198.51.100.1"]).unwrap_err(),
            "--pool: pools[1].name: \"cli\" is already the name of pools[0]"
        );
    }

    #[test]
    fn load_errors_name_the_file_in_one_sentence() {
        let dir = TempDir::new("load");
        let path =
            dir.file("arpwatch.toml", "[[pools]]\nname = \"a\"\ncidrs = [\"198.51.100.0/33\"]\n");
        let msg = load_config(&path).unwrap_err().to_string();
        assert_eq!(
            msg,
            format!(
                "config {}: pools[0].cidrs[0]: \"198.51.100.0/33\" is not an IPv4 or IPv6 CIDR (write e.g. 192.0.2.240/28 or 2001:db8::/120)",
                path.display()
            )
        );
        let missing = dir.0.join("missing.toml");
        let msg = load_config(&missing).unwrap_err().to_string();
        assert!(
            msg.starts_with(&format!("config {}: cannot read the file: ", missing.display())),
            "{msg}"
        );
        let msg = plan(&["replay", "x.pcap", "--config", missing.to_str().unwrap()]).unwrap_err();
        assert!(msg.starts_with(&format!("config {}: cannot read the file: ", missing.display())));
    }

    #[test]
    fn a_file_too_large_or_not_text_is_refused_naming_the_file() {
        let dir = TempDir::new("size");
        // Valid TOML, but more than a configuration may be: refused, and not read whole.
        let comment = format!("# {}\n", "x".repeat(1000));
        let huge = dir.file("huge.toml", &comment.repeat(3 * 1024));
        assert_eq!(
            load_config(&huge).unwrap_err().to_string(),
            format!(
                "config {}: file: larger than 1 MiB, the most a configuration may be",
                huge.display()
            )
        );
        let latin1 = dir.0.join("latin1.toml");
        std::fs::write(&latin1, b"[[pools]]\nname = \"caf\xe9\"\ncidrs = [\"192.0.2.1\"]\n")
            .unwrap();
        assert_eq!(
            load_config(&latin1).unwrap_err().to_string(),
            format!(
                "config {}: line 2: byte 0xe9 at column 12 is not UTF-8 text (a configuration is UTF-8)",
                latin1.display()
            )
        );
    }

    /// A kubeconfig as a test writes one for its own API server: plain HTTP, no user.
    const KUBECONFIG: &str = "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n    server: http://127.0.0.1:6443\ncontexts:\n- name: lab\n  context:\n    cluster: lab\n    user: lab\nusers:\n- name: lab\n  user: {}\ncurrent-context: lab\n";

    fn kubernetes(args: &[&str], env: &KubeEnvironment) -> Result<Option<KubernetesPlan>, String> {
        let cli = Cli::try_parse_from(["arpwatch", "watch", "--all"].iter().chain(args))
            .map_err(|e| e.to_string())?;
        let Command::Watch(args) = cli.command else { panic!("not watch") };
        KubernetesPlan::new(&args, env).map_err(|e| e.to_string())
    }

    #[test]
    fn kubernetes_auto_is_on_in_a_pod_or_with_a_kubeconfig_only() {
        let dir = TempDir::new("kube-auto");
        let file = dir.file("kubeconfig", KUBECONFIG);
        let file = file.to_str().unwrap();
        let outside = KubeEnvironment {
            kubeconfig: Some("/elsewhere/config".into()),
            home_config: Some("/root/.kube/config".into()),
            ..KubeEnvironment::default()
        };
        // KUBECONFIG and ~/.kube/config alone do not turn auto on: a laptop stays off the cluster.
        assert!(kubernetes(&[], &outside).unwrap().is_none());
        let plan = kubernetes(&["--kubeconfig", file], &outside).unwrap().unwrap();
        assert!(matches!(&plan.source, ApiSource::Kubeconfig { origin, .. } if origin == file));
        assert!(plan.events, "events are on with the API");
        assert_eq!(plan.lease_namespace, "arpwatch");
        let plan = kubernetes(
            &["--kubeconfig", file, "--kubernetes-events", "off", "--lease-namespace", "kube-arp"],
            &KubeEnvironment { pod_namespace: Some("monitoring".into()), ..outside },
        )
        .unwrap()
        .unwrap();
        assert!(!plan.events);
        assert_eq!(plan.lease_namespace, "kube-arp");
        // Raw observations carry no context.
        assert!(kubernetes(&["--raw", "--kubeconfig", file], &KubeEnvironment::default())
            .unwrap()
            .is_none());
    }

    #[test]
    fn kubernetes_on_takes_the_first_usable_configuration() {
        let dir = TempDir::new("kube-on");
        let file = dir.file("kubeconfig", KUBECONFIG);
        let env = KubeEnvironment {
            kubeconfig: Some(file.clone().into_os_string()),
            pod_namespace: Some("monitoring".into()),
            ..KubeEnvironment::default()
        };
        let plan = kubernetes(&["--kubernetes", "on"], &env).unwrap().unwrap();
        assert!(
            matches!(&plan.source, ApiSource::Kubeconfig { origin, .. } if origin == "KUBECONFIG")
        );
        assert_eq!(plan.lease_namespace, "monitoring");
        let env = KubeEnvironment { home_config: Some(file.clone()), ..KubeEnvironment::default() };
        let plan = kubernetes(&["--kubernetes", "on"], &env).unwrap().unwrap();
        assert!(
            matches!(&plan.source, ApiSource::Kubeconfig { origin, .. } if *origin == file.display().to_string())
        );
    }

    #[test]
    fn kubernetes_flags_that_cannot_work_are_usage_errors() {
        let none = KubeEnvironment::default();
        assert_eq!(
            kubernetes(&["--kubernetes", "on"], &none).unwrap_err(),
            "--kubernetes on: no Kubernetes API configuration was found (give --kubeconfig, set \
             KUBECONFIG or run in a pod with a service account)"
        );
        assert_eq!(
            kubernetes(&["--kubernetes", "off", "--kubeconfig", "k"], &none).unwrap_err(),
            "--kubeconfig has no use with --kubernetes off"
        );
        assert_eq!(
            kubernetes(&["--kubernetes", "off", "--kubernetes-events", "on"], &none).unwrap_err(),
            "--kubernetes-events on needs the Kubernetes API, which --kubernetes off turns off"
        );
        assert!(kubernetes(&["--kubernetes", "on", "--raw"], &none)
            .unwrap_err()
            .starts_with("--kubernetes on has no use with --raw"));
        let err = kubernetes(&["--kubeconfig", "/nonexistent/kubeconfig"], &none).unwrap_err();
        assert!(err.starts_with("--kubeconfig /nonexistent/kubeconfig: cannot be used: "), "{err}");
        let dir = TempDir::new("kube-bad");
        let file = dir.file("kubeconfig", KUBECONFIG);
        let file = file.to_str().unwrap();
        for ns in ["Kube", "a-", "a_b", ""] {
            let err =
                kubernetes(&["--kubeconfig", file, "--lease-namespace", ns], &none).unwrap_err();
            assert!(
                err.starts_with(&format!("--lease-namespace {ns:?}: not a namespace name")),
                "{err}"
            );
        }
        assert!(kubernetes(&["--kubernetes", "off"], &none).unwrap().is_none());
    }
}
