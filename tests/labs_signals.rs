//! arpwatch under what operators and their tools do to a running agent: stdout nobody reads (a
//! stalled log collector), SIGHUP and a configuration file replaced in place (systemd's
//! `ExecReload`, a Kubernetes ConfigMap update), SIGUSR1. The built binary runs in namespace labs
//! with the kernel's own ARP; the HTTP requests run on threads inside the lab's namespace, so
//! they touch only its loopback. Needs root; fails, never skips, without it.

mod support;

use arpwatch_core::testkit::frames::ArpFrame;
use std::time::{Duration, Instant};
use support::lab::{
    cluster, get_within, hold_vip_like_ipvs, pair, sample, scrape_until, Arpwatch, Pair,
    TempConfig, METRICS,
};

const VIP: &str = "192.0.2.100";

#[test]
fn a_stalled_stdout_stalls_neither_the_probes_nor_sigterm_and_drops_are_counted() {
    let Pair { observer, peer } = pair("stall");
    let mut watch = Arpwatch::start_unread(
        Some(&observer),
        &[
            "watch",
            "--iface",
            "eth0",
            "--raw",
            "--metrics-addr",
            METRICS,
            "--output-buffer",
            "65536",
        ],
    );
    watch.wait_attached(&["eth0"]);
    watch.wait_for_stderr("serving metrics", Duration::from_secs(10));

    // 3000 distinct announcements, one raw line each (about 280 bytes): far more than the pipe
    // (64 KiB) and the output queue (64 KiB) hold.
    let frames: Vec<Vec<u8>> = (0..3000u32)
        .map(|i| {
            let [_, a, b, c] = i.to_be_bytes();
            ArpFrame::gratuitous(2, [0x02, 0, 0, a, b, c], [198, 51, 100, (i % 250) as u8 + 1])
                .bytes()
        })
        .collect();
    peer.send_frames("eth0", &frames);
    let dropped = "arpwatch_output_dropped_lines_total";
    let body = scrape_until(&observer, Duration::from_secs(10), "dropped lines", |b| {
        sample(b, dropped).is_some_and(|v| v > 0.0)
    });
    assert!(sample(&body, "arpwatch_output_queued_bytes").is_some_and(|v| v <= 65536.0));

    // stdout is still stalled: the liveness probe is answered at once, every time.
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let asked = Instant::now();
        let answer = get_within(&observer, "/healthz", Duration::from_secs(1));
        assert_eq!(answer.map(|(status, _)| status), Some(200), "/healthz within 1 s");
        slowest = slowest.max(asked.elapsed());
    }
    eprintln!("slowest /healthz with stdout stalled: {slowest:?}");

    let asked = Instant::now();
    watch.signal(libc::SIGTERM);
    let done = watch.finish(Duration::from_secs(10));
    let took = asked.elapsed();
    eprintln!("SIGTERM to exit with stdout stalled: {took:?}");
    assert!(took < Duration::from_secs(2), "SIGTERM took {took:?} with stdout stalled");
    assert!(done.status.success(), "{}\n{}", done.status, done.stderr);
    let summary = done
        .stderr
        .lines()
        .find(|l| l.starts_with("arpwatch: output: "))
        .unwrap_or_else(|| panic!("no output summary:\n{}", done.stderr));
    let count = |key: &str| -> u64 {
        summary
            .split(' ')
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {summary}"))
    };
    let (written, lost) = (count("written_lines"), count("dropped_lines"));
    // Every line is either written or counted: nothing is lost silently.
    assert!(lost >= sample(&body, dropped).unwrap() as u64, "{summary}");
    assert!(written + lost >= 3000, "{summary}");
    assert!(done.stderr.contains("stdout is not keeping up"), "{}", done.stderr);
}

#[test]
fn sighup_and_a_changed_file_reload_the_configuration_and_the_engine_keeps_its_state() {
    let lan = cluster("reload", 2);
    let (client, nodes) = (&lan.hosts[0], &lan.hosts[1..]);
    for node in nodes {
        hold_vip_like_ipvs(node, VIP, false);
    }
    let (a, b) = (nodes[0].mac("eth0"), nodes[1].mac("eth0"));
    let pool = |macs: &str| {
        format!(
            "[thresholds]\nquiet_window = \"4s\"\n\
             [[pools]]\nname = \"vips\"\ncidrs = [\"{VIP}/32\"]\nmacs = [{macs}]\n"
        )
    };
    let config = TempConfig::new(&pool(""));
    let mut watch = Arpwatch::start(
        Some(client),
        &[
            "watch",
            "--iface",
            "eth0",
            "--format",
            "json",
            "--config",
            config.arg(),
            "--metrics-addr",
            METRICS,
        ],
    );
    watch.wait_attached(&["eth0"]);
    watch.wait_for_stderr("serving metrics", Duration::from_secs(10));
    let reload_ok = "arpwatch_config_last_reload_successful";
    let condition = format!(
        r#"arpwatch_pool_ip_condition{{pool="vips",ip="{VIP}",condition="multi_responder"}}"#
    );
    let unknown = r#"arpwatch_events_total{event="unknown_responder",severity="critical"}"#;

    // Both nodes answer the client: a multi-responder starts; any MAC may answer the pool.
    client.udp_to(VIP);
    let body = scrape_until(client, Duration::from_secs(10), "the multi-responder", |b| {
        sample(b, &condition) == Some(1.0)
    });
    assert_eq!(sample(&body, reload_ok), Some(1.0));
    assert_eq!(sample(&body, unknown), Some(0.0));

    // Only node a may answer now, from SIGHUP on.
    config.replace(&pool(&format!("\"{a}\"")));
    watch.signal(libc::SIGHUP);
    watch.wait_for_stderr(
        &format!("reloaded the configuration from {} (SIGHUP)", config.arg()),
        Duration::from_secs(10),
    );
    client.ip(&["neigh", "flush", "dev", "eth0"]);
    client.udp_to(VIP);
    scrape_until(client, Duration::from_secs(10), "node b as an unknown responder", |b| {
        sample(b, unknown).is_some_and(|v| v >= 1.0)
    });

    // A file that does not validate: the previous configuration stays, and the metric says so.
    config.replace(&format!("[[pools]]\nname = \"vips\"\ncidrs = [\"{VIP}/33\"]\n"));
    watch.signal(libc::SIGHUP);
    let line = watch
        .wait_for_stderr("keeping the previous configuration (SIGHUP)", Duration::from_secs(10));
    assert!(line.contains("pools[0].cidrs[0]"), "the sentence names the key: {line}");
    scrape_until(client, Duration::from_secs(5), "the failed reload", |b| {
        sample(b, reload_ok) == Some(0.0)
    });

    // SIGUSR1 is no stop.
    watch.signal(libc::SIGUSR1);
    watch.wait_for_stderr("SIGUSR1 ignored", Duration::from_secs(10));
    assert_eq!(get_within(client, "/healthz", Duration::from_secs(2)).map(|r| r.0), Some(200));

    // The file fixed in place is reloaded without a signal.
    config.replace(&pool(&format!("\"{a}\"")));
    watch.wait_for_stderr(
        &format!("reloaded the configuration from {} (the file changed)", config.arg()),
        Duration::from_secs(10),
    );
    scrape_until(client, Duration::from_secs(5), "the successful reload", |b| {
        sample(b, reload_ok) == Some(1.0)
    });

    // The multi-responder that started before the reloads ends after the quiet window.
    scrape_until(client, Duration::from_secs(15), "the end of the multi-responder", |b| {
        sample(b, &condition) == Some(0.0)
    });
    watch.signal(libc::SIGTERM);
    let done = watch.finish(Duration::from_secs(20));
    assert!(done.status.success(), "{}\n{}", done.status, done.stderr);

    let states: Vec<String> = done
        .events("multi_responder", VIP)
        .iter()
        .map(|e| e["state"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(states.iter().filter(|s| *s == "start").count(), 1, "{states:?}");
    assert_eq!(states.last().map(String::as_str), Some("end"), "{states:?}");
    let bindings = done.events("new_binding", VIP);
    assert_eq!(bindings.len(), 2, "the bindings survived the reloads: {bindings:#?}");
    let foreign = done.events("unknown_responder", VIP);
    assert!(!foreign.is_empty());
    assert!(foreign.iter().all(|e| e["mac"] == b.as_str()), "{foreign:#?}");
}
