//! The command line turned, once, into what a command runs on: the configuration file read and
//! the flags applied to it and validated, the output format resolved, the interface selection
//! compiled, the kernel options in their own types. `main` builds a [`Plan`] from clap's
//! [`Cli`] and hands the commands plain structs; every problem found here is a
//! usage problem (exit status 2), named in one sentence.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use arpwatch_core::config::{Config, InvalidKey, Pool, MAX_FILE_BYTES};

use crate::cli::{Cli, Command, CommonArgs, ReplayArgs, WatchArgs};
use crate::kernel::AttachOptions;
use crate::links::IfaceSelector;
use crate::output::{default_format, Format};
use crate::UsageError;

/// What to run.
#[derive(Debug)]
pub enum Plan {
    Watch(WatchPlan),
    Replay(ReplayPlan),
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
    /// Bytes of lines that may wait for stdout (`--output-buffer`).
    pub output_buffer: usize,
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
            Command::Watch(args) => Plan::Watch(WatchPlan::new(args)?),
            Command::Replay(args) => Plan::Replay(ReplayPlan::new(args)?),
        })
    }
}

impl WatchPlan {
    fn new(args: WatchArgs) -> Result<WatchPlan, UsageError> {
        let pipeline = PipelinePlan::new(&args.common, false)?;
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
            output_buffer: args.output_buffer,
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
                interfaces: Vec::new(),
                macs: Vec::new(),
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
            Plan::Watch(_) => panic!("not replay"),
        }
    }

    fn watch(args: &[&str]) -> WatchPlan {
        match plan(args).unwrap() {
            Plan::Watch(p) => p,
            Plan::Replay(_) => panic!("not watch"),
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
}
