//! Reloads through a real pipeline (engine, annotator, metrics): the engine's state survives, new
//! pools apply, the metrics' pool series follow, and a bad file keeps the previous configuration.

use std::path::PathBuf;

use clap::Parser;

use super::*;
use crate::cli::Cli;
use crate::metrics::{Exporter, Metrics, MetricsOptions};
use crate::output::{Format, Mode};
use crate::plan::Plan;
use arpwatch_core::engine::Engine;
use arpwatch_core::enrich::Annotator;
use arpwatch_core::testkit::observations::{frame, Frame};

const VIP: &str = "192.0.2.240";
const CLIENT: &str = "02:00:00:00:00:99";
const A: &str = "02:00:00:00:00:0a";
const B: &str = "02:00:00:00:00:0b";

fn config(macs: &str) -> String {
    format!(
        "[thresholds]\nquiet_window = \"5s\"\n[[pools]]\nname = \"vips\"\ncidrs = [\"192.0.2.240/28\"]\nmacs = [{macs}]\n"
    )
}

/// A configuration file of its own, removed when dropped; replaced the way Kubernetes and
/// editors do it (a new file renamed over the old one).
struct File(PathBuf);

impl File {
    fn new(tag: &str, text: &str) -> File {
        let path =
            std::env::temp_dir().join(format!("arpwatch-reload-{tag}-{}.toml", std::process::id()));
        let file = File(path);
        file.replace(text);
        file
    }

    fn replace(&self, text: &str) {
        let next = self.0.with_extension("next");
        std::fs::write(&next, text).unwrap();
        std::fs::rename(&next, &self.0).unwrap();
    }
}

impl Drop for File {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

struct Lab {
    pipeline: Pipeline<Vec<u8>>,
    exporter: Exporter,
    reloader: Reloader,
}

impl Lab {
    /// `arpwatch watch --all --config FILE` with `extra` flags, up to the pipeline and the
    /// reloader (inside a runtime: the reloader handles signals).
    fn new(file: &File, extra: &[&str]) -> Lab {
        let mut args = vec!["arpwatch", "watch", "--all", "--config", file.0.to_str().unwrap()];
        args.extend_from_slice(extra);
        let Plan::Watch(plan) = Plan::from_cli(Cli::try_parse_from(args).unwrap()).unwrap() else {
            panic!("not watch");
        };
        let config = plan.pipeline.config;
        let metrics = Metrics::new(&config, &MetricsOptions::default());
        let (exporter, health) = (metrics.exporter(), metrics.health());
        health.config_loaded(true, wall_clock_now());
        let mode = Mode::Detect {
            engine: Box::new(Engine::new(&config.engine)),
            annotator: Annotator::new("node-a"),
        };
        let pipeline = Pipeline::new(mode, Format::Json, Vec::new(), Some(metrics));
        let reloader = Reloader::new(plan.pipeline.source, config, Some(health)).unwrap();
        Lab { pipeline, exporter, reloader }
    }

    fn feed(&mut self, frame: Frame) {
        self.pipeline.observe(&frame).unwrap();
    }

    /// The JSON lines printed so far: (event, state, mac).
    fn events(&self) -> Vec<(String, String, String)> {
        std::str::from_utf8(self.pipeline.output())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .map(|e| {
                let text = |key: &str| e[key].as_str().unwrap_or_default().to_owned();
                (text("event"), text("state"), text("mac"))
            })
            .collect()
    }

    fn of(&self, kind: &str) -> Vec<(String, String, String)> {
        self.events().into_iter().filter(|(event, ..)| event == kind).collect()
    }

    fn metric(&mut self, series: &str) -> Option<f64> {
        self.pipeline.flush().unwrap();
        self.exporter.encode().lines().find_map(|line| {
            line.strip_prefix(series)?.strip_prefix(' ')?.split(' ').next()?.parse().ok()
        })
    }
}

/// Replies of `mac` for the VIP to the client at `secs`.
fn reply(secs: f64, mac: &str) -> Frame {
    frame(secs).reply(mac, VIP).to(CLIENT, "192.0.2.99")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn a_reload_keeps_the_engines_state_and_applies_the_new_pools() {
    let runtime = runtime();
    let _inside = runtime.enter();
    let file = File::new("state", &config(""));
    let mut lab = Lab::new(&file, &[]);

    // A and B answer the client's request: a multi-responder starts.
    lab.feed(reply(0.0, A));
    lab.feed(reply(0.1, B));
    assert_eq!(lab.of("multi_responder").len(), 1);
    assert!(lab.of("unknown_responder").is_empty(), "any MAC may answer so far");

    // Only A may answer the pool now.
    file.replace(&config(&format!("\"{A}\"")));
    assert!(lab.reloader.file_changed());
    lab.reloader.reload(Trigger::FileChanged, &mut lab.pipeline);
    assert!(!lab.reloader.file_changed(), "the reload read the file as it is now");
    assert_eq!(lab.metric("arpwatch_config_last_reload_successful"), Some(1.0));

    lab.feed(reply(2.0, A));
    lab.feed(reply(2.1, B));
    let unknown = lab.of("unknown_responder");
    assert_eq!(unknown.len(), 1, "{unknown:?}");
    assert_eq!(unknown[0].2, B);

    // The condition that started before the reload still ends, once, after the quiet window;
    // it never started a second time.
    lab.pipeline.tick(frame(8.0).0.ts).unwrap();
    let states: Vec<String> = lab.of("multi_responder").into_iter().map(|e| e.1).collect();
    assert_eq!(states.first().map(String::as_str), Some("start"));
    assert_eq!(states.last().map(String::as_str), Some("end"));
    assert_eq!(states.iter().filter(|s| *s == "start").count(), 1, "{states:?}");
    // The bindings were kept: A and B are not new after the reload.
    assert_eq!(lab.of("new_binding").len(), 2);
}

#[test]
fn a_bad_file_keeps_the_previous_configuration_and_says_so_in_the_metric() {
    let runtime = runtime();
    let _inside = runtime.enter();
    let file = File::new("bad", &config(""));
    let mut lab = Lab::new(&file, &["--pool", "198.51.100.1"]);
    let started = lab.metric("arpwatch_config_last_reload_success_timestamp_seconds").unwrap();
    assert!(started > 1e9, "set at start: {started}");
    let before = lab.reloader.current.clone();

    file.replace("[[pools]]\nname = \"vips\"\ncidrs = [\"192.0.2.240/33\"]\n");
    assert!(lab.reloader.file_changed());
    lab.reloader.reload(Trigger::FileChanged, &mut lab.pipeline);
    assert_eq!(lab.reloader.current, before);
    assert_eq!(lab.metric("arpwatch_config_last_reload_successful"), Some(0.0));
    assert_eq!(
        lab.metric("arpwatch_config_last_reload_success_timestamp_seconds"),
        Some(started),
        "only a success moves the timestamp"
    );
    // Not retried until the file changes again (no log line every poll).
    assert!(!lab.reloader.file_changed());
    // The engine still runs the previous pools: any MAC may answer.
    lab.feed(reply(0.0, B));
    assert!(lab.of("unknown_responder").is_empty());

    // A file that is gone is a failure too, and so is its return noticed.
    std::fs::remove_file(&file.0).unwrap();
    assert!(lab.reloader.file_changed());
    lab.reloader.reload(Trigger::FileChanged, &mut lab.pipeline);
    assert_eq!(lab.metric("arpwatch_config_last_reload_successful"), Some(0.0));
    assert!(!lab.reloader.file_changed());

    file.replace(&config(&format!("\"{A}\"")));
    assert!(lab.reloader.file_changed());
    lab.reloader.reload(Trigger::Hangup, &mut lab.pipeline);
    assert_eq!(lab.metric("arpwatch_config_last_reload_successful"), Some(1.0));
    // The flags apply to the reloaded file as they did at start.
    let pools: Vec<&str> =
        lab.reloader.current.engine.pools.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(pools, ["vips", "cli"]);
    lab.feed(reply(1.0, B));
    assert_eq!(lab.of("unknown_responder").len(), 1);
}

#[test]
fn the_pool_series_follow_the_reloaded_pools() {
    let runtime = runtime();
    let _inside = runtime.enter();
    let two = "[[pools]]\nname = \"vips\"\ncidrs = [\"192.0.2.240/28\"]\n\
               [[pools]]\nname = \"old\"\ncidrs = [\"198.51.100.0/24\"]\n";
    let file = File::new("series", two);
    let mut lab = Lab::new(&file, &[]);
    lab.feed(reply(0.0, A));
    lab.feed(frame(0.0).reply(A, "198.51.100.7").to(CLIENT, "192.0.2.99"));
    // The owner changes: a count the reload must keep.
    lab.feed(reply(20.0, B));
    let vip_changes = r#"arpwatch_pool_ip_owner_changes_total{pool="vips",ip="192.0.2.240"}"#;
    let old_claimants = r#"arpwatch_pool_ip_claimants{pool="old",ip="198.51.100.7"}"#;
    assert_eq!(lab.metric(vip_changes), Some(1.0));
    assert_eq!(lab.metric(old_claimants), Some(1.0));

    // "old" is gone; "vips" stays (listed second now) with a smaller range that keeps the VIP.
    file.replace(
        "[[pools]]\nname = \"new\"\ncidrs = [\"203.0.113.0/24\"]\n\
         [[pools]]\nname = \"vips\"\ncidrs = [\"192.0.2.240/30\"]\n",
    );
    lab.reloader.reload(Trigger::Hangup, &mut lab.pipeline);
    assert_eq!(lab.metric(vip_changes), Some(1.0), "a kept pool keeps its counts");
    assert_eq!(lab.metric(old_claimants), None, "a removed pool's series are gone");
    lab.feed(reply(40.0, A));
    assert_eq!(lab.metric(vip_changes), Some(2.0));
    lab.feed(frame(41.0).reply(B, "203.0.113.9").to(CLIENT, "192.0.2.99"));
    assert_eq!(lab.metric(r#"arpwatch_pool_ip_claimants{pool="new",ip="203.0.113.9"}"#), Some(1.0));
}
