//! Where observations go: printed raw (`--raw`) or fed to the detection engine, whose events are
//! annotated (node, local interface) and printed. Live capture and replay both drive this one
//! pipeline; the formats are the core's `wire` module. It flows one way: an observation goes in,
//! lines come out, the metrics are told; nothing reaches into it from outside but the settings:
//! a reloaded configuration, this host's MACs, and the cluster snapshot (`--kubernetes`), whose
//! pools are merged with the file's and whose Services get a Kubernetes Event when a condition
//! about their VIP starts. With the status API, the pipeline keeps its latest events in a ring
//! and answers the API's queries ([`Pipeline::answer`]) from the engine, between observations.

use std::io::{self, Write};
use std::sync::Arc;

use arpwatch_core::cluster::{ClusterSnapshot, Declaration};
use arpwatch_core::config::{Config, Pool};
use arpwatch_core::engine::{Engine, EngineStats};
use arpwatch_core::enrich::{Annotator, LocalMacs};
use arpwatch_core::event::Event;
use arpwatch_core::observation::{Observation, Timestamp};
use arpwatch_core::wire;

use crate::api::{self, Answer, EventRing, Request};
use crate::cluster::EventSink;
use crate::kernel::CounterTotals;
use crate::metrics::{wall_clock_now, Metrics};

/// How observations and events are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Json,
    /// One readable line each.
    Text,
}

/// What to do with observations.
pub enum Mode {
    /// Print every observation.
    Raw,
    /// Feed the detection engine, annotate its events and print them.
    Detect { engine: Box<Engine>, annotator: Annotator },
}

pub struct Pipeline<W: Write> {
    mode: Mode,
    format: Format,
    out: W,
    /// Reused for every call into the engine, so the hot path does not allocate.
    events: Vec<Event>,
    /// Counts frames and reads the engine for Prometheus, when metrics are served.
    metrics: Option<Metrics>,
    /// With `--kubernetes`: what the cluster adds to the configuration.
    cluster: Option<ClusterSettings>,
    /// With the status API: the latest events, as their JSON lines.
    recent: Option<EventRing>,
    /// Reused for the JSON line of an event or observation.
    line: Vec<u8>,
}

/// The configuration as the file and the cluster make it, kept apart so that either can change.
struct ClusterSettings {
    /// The file's configuration, with the flags applied.
    file: Config,
    /// The cluster's pools and declarations now given to the engine.
    pools: Vec<Pool>,
    declarations: Vec<(std::net::IpAddr, Declaration)>,
    events: Option<EventSink>,
    /// Why the merged pools were last refused, so it is logged once.
    refused: Option<String>,
}

impl<W: Write> Pipeline<W> {
    pub fn new(mode: Mode, format: Format, out: W, metrics: Option<Metrics>) -> Self {
        let pipeline = Pipeline {
            mode,
            format,
            out,
            events: Vec::new(),
            metrics,
            cluster: None,
            recent: None,
            line: Vec::new(),
        };
        // A scrape before the first frame already sees every event kind, at zero.
        pipeline.read_engine();
        pipeline
    }

    pub fn observe(&mut self, obs: &Observation) -> io::Result<()> {
        match &mut self.mode {
            Mode::Raw => {
                if let Some(metrics) = &mut self.metrics {
                    metrics.observe(obs, None);
                }
                match self.format {
                    Format::Json => {
                        self.line.clear();
                        wire::write_observation_json_line(&mut self.line, obs);
                        self.out.write_all(&self.line)
                    }
                    Format::Text => wire::write_observation_text_line(&mut self.out, obs),
                }
            }
            Mode::Detect { engine, annotator } => {
                // A Node's address seen with a new MAC: that MAC joins its node's pools.
                let learned = annotator.observe(obs);
                engine.observe(obs, &mut self.events);
                if let Some(metrics) = &mut self.metrics {
                    metrics.observe(obs, Some(engine));
                }
                if learned {
                    self.follow_annotator();
                }
                self.write_events()
            }
        }
    }

    /// Lets time pass for the engine when no frame arrives (live capture ticks at
    /// [`next_deadline`](Self::next_deadline) and once a second), so timeouts fire and lasting
    /// conditions end.
    pub fn tick(&mut self, now: Timestamp) -> io::Result<()> {
        if let Mode::Detect { engine, .. } = &mut self.mode {
            engine.tick(now, &mut self.events);
            if let Some(metrics) = &mut self.metrics {
                metrics.refresh_claimants(engine);
            }
            self.write_events()?;
        }
        // The totals are read at the flush that follows every tick.
        Ok(())
    }

    /// A reloaded configuration: the engine keeps its state and judges by the new settings from
    /// now on (`Engine::reconfigure`), and the metrics' pool series follow. With a cluster, its
    /// pools still follow the file's.
    pub fn reconfigure(&mut self, config: &Config) {
        match &mut self.cluster {
            Some(cluster) => {
                cluster.file = config.clone();
                self.apply_config();
            }
            None => self.apply(config),
        }
    }

    fn apply(&mut self, config: &Config) {
        // Raw mode has no engine, and so no pool series to follow.
        if let Mode::Detect { engine, .. } = &mut self.mode {
            engine.reconfigure(&config.engine);
            if let Some(metrics) = &mut self.metrics {
                metrics.reconfigure(config, engine);
            }
        }
    }

    /// From now on the configuration is `file` (the one the pipeline was made with) plus what
    /// the cluster snapshots say; `events`, when given, records Kubernetes Events.
    pub fn follow_cluster(&mut self, file: Config, events: Option<EventSink>) {
        self.cluster = Some(ClusterSettings {
            file,
            pools: Vec::new(),
            declarations: Vec::new(),
            events,
            refused: None,
        });
    }

    /// A new cluster snapshot (`None`: none yet): the annotator names nodes and Services with
    /// it, and the engine watches its pools (after the file's) and checks its declarations.
    pub fn set_cluster(&mut self, snapshot: Option<Arc<ClusterSnapshot>>) {
        if self.cluster.is_none() {
            return;
        }
        if let Mode::Detect { annotator, .. } = &mut self.mode {
            annotator.set_cluster(snapshot);
        }
        self.follow_annotator();
    }

    /// Gives the engine the cluster's pools and declarations as the annotator has them now (the
    /// snapshot's, with the MACs it learnt on the wire), when they changed: Lease renewals change
    /// the snapshot every few seconds, the pools seldom.
    fn follow_annotator(&mut self) {
        let (Some(cluster), Mode::Detect { engine, annotator }) =
            (&mut self.cluster, &mut self.mode)
        else {
            return;
        };
        let declarations = annotator.declarations();
        if declarations != cluster.declarations {
            cluster.declarations = declarations.clone();
            engine.set_declarations(declarations);
        }
        let pools = annotator.cluster_pools();
        if pools != cluster.pools {
            cluster.pools = pools;
            self.apply_config();
        }
    }

    /// Applies the file's configuration with the cluster's pools after its own; if the two
    /// together are refused (a name used twice), the file's alone, saying why once.
    fn apply_config(&mut self) {
        let Some(cluster) = &mut self.cluster else {
            return;
        };
        let mut merged = cluster.file.clone();
        merged.engine.pools.extend(cluster.pools.iter().cloned());
        let config = match merged.engine.validate() {
            Ok(()) => {
                cluster.refused = None;
                merged
            }
            Err(err) => {
                let problem = err.to_string();
                if cluster.refused.as_ref() != Some(&problem) {
                    log::warn!(
                        "kubernetes: the cluster's pools are left out, as the configuration \
                         refuses them: {problem}"
                    );
                    cluster.refused = Some(problem);
                }
                cluster.file.clone()
            }
        };
        self.apply(&config);
    }

    /// When the engine next needs a [`tick`](Self::tick) to report a timer's event on time (see
    /// `Engine::next_deadline`); `None` when nothing is waiting or the pipeline prints raw.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        match &self.mode {
            Mode::Detect { engine, .. } => engine.next_deadline(),
            Mode::Raw => None,
        }
    }

    /// Lets events say when their MAC is this host's own, and on which interface.
    pub fn set_local_macs(&mut self, local_macs: Arc<dyn LocalMacs + Send + Sync>) {
        if let Mode::Detect { annotator, .. } = &mut self.mode {
            annotator.set_local_macs(local_macs);
        }
    }

    /// Keeps the latest events from now on, for the status API.
    pub fn keep_recent_events(&mut self) {
        self.recent.get_or_insert_with(EventRing::default);
    }

    /// Answers a query of the status API from the engine as it is now, with the kernel's
    /// latest counters; bounded work, no waiting (see [`crate::api`]).
    pub fn answer(&self, request: Request, kernel: Option<&CounterTotals>) {
        let answer = match (&self.mode, &self.recent) {
            (Mode::Detect { engine, annotator }, Some(events)) => {
                let sources =
                    api::Sources { engine, annotator, events, kernel, now: wall_clock_now() };
                api::answer(request.query(), &sources)
            }
            (Mode::Detect { engine, annotator }, None) => {
                let events = &EventRing::new(1, 0);
                let sources =
                    api::Sources { engine, annotator, events, kernel, now: wall_clock_now() };
                api::answer(request.query(), &sources)
            }
            (Mode::Raw, _) => Answer::NoEngine,
        };
        request.answer(answer);
    }

    fn write_events(&mut self) -> io::Result<()> {
        let written = self.annotate_and_write_events();
        // What an error left unwritten is dropped with the rest, as before the error.
        self.events.clear();
        written
    }

    /// Annotates and writes the engine's events where they are: an event is a few hundred
    /// bytes, and a storm makes one every other frame, so they are not moved out one by one.
    fn annotate_and_write_events(&mut self) -> io::Result<()> {
        let Mode::Detect { engine, annotator } = &self.mode else {
            return Ok(());
        };
        let kubernetes =
            self.cluster.as_ref().and_then(|c| Some((c.events.as_ref()?, annotator.cluster()?)));
        for event in &mut self.events {
            annotator.annotate(event);
            if let Some((sink, snapshot)) = kubernetes {
                sink.offer(event, snapshot.services(event.ip));
            }
            if let Some(metrics) = &mut self.metrics {
                metrics.event(event, engine);
            }
            // The JSON line made once, for stdout and for the ring.
            let json = self.format == Format::Json || self.recent.is_some();
            if json {
                self.line.clear();
                wire::write_json_line(&mut self.line, event);
            }
            match self.format {
                Format::Json => self.out.write_all(&self.line)?,
                Format::Text => wire::write_text_line(&mut self.out, event)?,
            }
            if let Some(recent) = &mut self.recent {
                let line = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
                // The JSON writer writes UTF-8: the text it is given and ASCII.
                recent.push(event.ts, std::str::from_utf8(line).unwrap_or_default());
            }
        }
        Ok(())
    }

    /// What was written, for tests that read the lines back.
    #[cfg(test)]
    pub fn output(&self) -> &W {
        &self.out
    }

    fn read_engine(&self) {
        if let (Mode::Detect { engine, .. }, Some(metrics)) = (&self.mode, &self.metrics) {
            metrics.read_engine(engine);
        }
    }

    /// Writes out what is buffered (the watch loop calls it after each drain of the ring), and
    /// lets the metrics read the engine's totals.
    pub fn flush(&mut self) -> io::Result<()> {
        self.read_engine();
        self.out.flush()
    }

    /// The end of the input: closes what is still open at `now` (when the input had a time at
    /// all) and flushes; returns the engine's statistics when the pipeline detects.
    pub fn finish(&mut self, now: Option<Timestamp>) -> io::Result<Option<EngineStats>> {
        if let Some(now) = now {
            self.tick(now)?;
        }
        self.flush()?;
        Ok(match &self.mode {
            Mode::Raw => None,
            Mode::Detect { engine, .. } => Some(engine.stats()),
        })
    }
}

/// JSON when stdout is not a terminal, text when a person is watching.
pub fn default_format(requested: Option<Format>) -> Format {
    use std::io::IsTerminal;
    requested.unwrap_or(if io::stdout().is_terminal() { Format::Text } else { Format::Json })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arpwatch_core::cluster::{ClusterInputs, Inventory, NodeInfo, ServiceInfo};
    use arpwatch_core::testkit::observations::{at, frame, ip, mac};
    use std::time::Duration;

    const FILE: &str = "[[pools]]\nname = \"vips\"\ncidrs = [\"198.51.100.0/28\"]\n";

    fn snapshot() -> Arc<ClusterSnapshot> {
        let inputs = ClusterInputs {
            nodes: ["node-a", "node-b"]
                .iter()
                .enumerate()
                .map(|(i, name)| NodeInfo {
                    name: (*name).into(),
                    addresses: vec![ip(&format!("192.0.2.{}", 11 + i))],
                    ..NodeInfo::default()
                })
                .collect(),
            services: vec![ServiceInfo {
                namespace: "shop".into(),
                name: "web".into(),
                ingress_ips: vec![ip("192.0.2.240")],
                vip_host: None,
            }],
            ..ClusterInputs::default()
        };
        let local = Inventory {
            node: "node-a".into(),
            interfaces: vec![("eth0".into(), mac("02:00:00:00:0a:01"))],
            renewed: at(0.0),
            duration: Duration::from_secs(60),
        };
        Arc::new(ClusterSnapshot::build(&inputs, Some(&local), at(0.0)))
    }

    #[test]
    fn the_cluster_adds_its_pools_after_the_files_and_a_vips_condition_goes_to_its_service() {
        let config = Config::from_toml(FILE).unwrap();
        let mode = Mode::Detect {
            engine: Box::new(Engine::new(&config.engine)),
            annotator: Annotator::new("node-a"),
        };
        let mut pipeline = Pipeline::new(mode, Format::Json, Vec::new(), None);
        let (sink, mut findings) = crate::cluster::event_channel(&Default::default());
        pipeline.follow_cluster(config.clone(), Some(sink));
        pipeline.set_cluster(Some(snapshot()));
        let pool = |pipeline: &Pipeline<Vec<u8>>, addr: &str| {
            let Mode::Detect { engine, .. } = &pipeline.mode else { unreachable!() };
            engine.pools().find(ip(addr)).cloned()
        };
        assert_eq!(pool(&pipeline, "198.51.100.1").unwrap().name.as_ref(), "vips");
        let vips = pool(&pipeline, "192.0.2.240").unwrap();
        assert_eq!(vips.name.as_ref(), arpwatch_core::cluster::SERVICES_POOL);
        assert!(!vips.allows_mac(mac("02:00:00:00:0b:01")), "node-b's MAC is not known yet");

        // node-b's MAC, learnt from its Node address on the wire, and node-a's answer the VIP.
        pipeline.observe(&frame(1.0).reply("02:00:00:00:0b:01", "192.0.2.12")).unwrap();
        pipeline.observe(&frame(2.0).reply("02:00:00:00:0a:01", "192.0.2.240")).unwrap();
        pipeline.observe(&frame(2.1).reply("02:00:00:00:0b:01", "192.0.2.240")).unwrap();
        assert!(
            pool(&pipeline, "192.0.2.240").unwrap().allows_mac(mac("02:00:00:00:0b:01")),
            "learnt: node-b's MAC may answer the Services' VIPs"
        );
        let finding = findings.try_recv().expect("a finding for shop/web");
        assert_eq!((finding.namespace.as_str(), finding.service.as_str()), ("shop", "web"));
        assert_eq!(finding.event_name(), "arpwatch-web-multipleresponders-51282c1d");
        assert!(finding.starts);
        assert!(finding.note.contains("multi_responder 192.0.2.240"), "{}", finding.note);

        // A reload keeps the cluster's pools after the file's new ones.
        let reloaded = Config::from_toml(&FILE.replace("vips", "floating")).unwrap();
        pipeline.reconfigure(&reloaded);
        assert_eq!(pool(&pipeline, "198.51.100.1").unwrap().name.as_ref(), "floating");
        let vips = pool(&pipeline, "192.0.2.240").unwrap();
        assert_eq!(vips.name.as_ref(), arpwatch_core::cluster::SERVICES_POOL);
    }
}
