//! arpwatch serving Prometheus metrics in a namespace lab: readiness after attach, the series
//! during a real multi-responder (the kernel's own ARP), and bounded cardinality when thousands of
//! random addresses appear. The scrapes run on a thread inside the lab namespace, so they only
//! touch that namespace's loopback. Needs root; fails, never skips, without it.

mod support;

use arpwatch_core::testkit::frames::ArpFrame;
use std::time::{Duration, Instant};
use support::lab::{
    cluster, get, hold_vip_like_ipvs, sample, scrape_until, Arpwatch, Netns, TempConfig, METRICS,
};

const VIP: &str = "192.0.2.100";

#[test]
fn metrics_follow_a_multi_responder_and_stay_bounded_under_random_addresses() {
    let lan = cluster("metrics", 3);
    let (client, nodes) = (&lan.hosts[0], &lan.hosts[1..]);
    for node in nodes {
        hold_vip_like_ipvs(node, VIP, false);
    }
    // The VIP's pool, and a /23 of floating IPs a flood will sweep (512 IPs against the default
    // cap of 256 series per pool).
    let config = TempConfig::new(&format!(
        "[[pools]]\nname = \"vips\"\ncidrs = [\"{VIP}/32\"]\n\
         [[pools]]\nname = \"swept\"\ncidrs = [\"198.51.100.0/24\", \"203.0.113.0/24\"]\n"
    ));
    let mut watch = Arpwatch::start(
        Some(client),
        &[
            "watch",
            "--iface",
            "eth0",
            "--config",
            config.arg(),
            "--metrics-addr",
            METRICS,
            "--duration",
            "12",
        ],
    );
    watch.wait_attached(&["eth0"]);
    watch.wait_for_stderr("serving metrics", Duration::from_secs(10));
    assert_eq!(get(client, "/healthz").0, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(client, "/readyz").0 != 200 {
        assert!(
            Instant::now() < deadline,
            "/readyz never turned ready: {:?}",
            get(client, "/readyz")
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    client.udp_to(VIP);
    let claimants = format!(r#"arpwatch_pool_ip_claimants{{pool="vips",ip="{VIP}"}}"#);
    let body = scrape_until(client, Duration::from_secs(10), "three claimants", |b| {
        sample(b, &claimants) == Some(3.0)
    });
    let condition = format!(
        r#"arpwatch_pool_ip_condition{{pool="vips",ip="{VIP}",condition="multi_responder"}}"#
    );
    assert_eq!(sample(&body, &condition), Some(1.0), "the condition is active");
    let events = r#"arpwatch_events_total{event="multi_responder",severity="critical"}"#;
    let multi_responder_lines = sample(&body, events).expect("multi_responder events counted");
    let replies = r#"arpwatch_arp_frames_total{iface="eth0",direction="ingress",op="reply"}"#;
    assert_eq!(sample(&body, replies), Some(3.0));
    assert_eq!(sample(&body, "arpwatch_attached_interfaces"), Some(1.0));
    let kernel_arp = scrape_until(client, Duration::from_secs(5), "the kernel counters", |b| {
        sample(b, r#"arpwatch_kernel_arp_frames_total{direction="ingress"}"#)
            .is_some_and(|v| v >= 3.0)
    });
    assert_eq!(
        sample(&kernel_arp, r#"arpwatch_ring_full_drops_total{direction="ingress"}"#),
        Some(0.0)
    );

    // Thousands of gratuitous claims from random MACs for random addresses of the swept pools and
    // of no pool at all.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let frames: Vec<Vec<u8>> = (0..3000)
        .map(|_| {
            let r = next().to_be_bytes();
            let net = [[198, 51, 100], [203, 0, 113], [192, 0, 2]][r[0] as usize % 3];
            let mac = [0x02, r[1], r[2], r[3], r[4], r[5]];
            ArpFrame::gratuitous(2, mac, [net[0], net[1], net[2], r[6]]).bytes()
        })
        .collect();
    nodes[0].send_frames("eth0", &frames);
    let body =
        scrape_until(client, Duration::from_secs(10), "the swept series to be capped", |b| {
            sample(b, "arpwatch_pool_ip_series_dropped_total").is_some_and(|v| v > 0.0)
        });
    let swept = body
        .lines()
        .filter(|l| l.starts_with(r#"arpwatch_pool_ip_claimants{pool="swept""#))
        .count();
    assert_eq!(swept, 256, "pool-IP series are capped per pool");
    assert!(
        !body.lines().any(|l| l.contains(r#"ip="192.0.2."#) && !l.contains(VIP)),
        "no series for an IP outside the pools"
    );
    // A MAC is only in the owner's info series: one per pool IP with series.
    let mac_label =
        body.lines().find(|l| l.contains("02:") && !l.starts_with("arpwatch_pool_ip_owner{"));
    assert!(mac_label.is_none(), "no other label carries a MAC: {mac_label:?}");
    let swept_owners =
        body.lines().filter(|l| l.starts_with(r#"arpwatch_pool_ip_owner{pool="swept""#)).count();
    assert_eq!(swept_owners, 256, "one owner series per pool IP with series");
    assert!(
        body.lines().count() < 4000,
        "the whole exposition stays bounded: {} lines",
        body.lines().count()
    );

    let done = watch.finish(Duration::from_secs(30));
    assert!(done.status.success(), "{}", done.stderr);
    assert_eq!(
        done.events("multi_responder", VIP).len() as f64,
        multi_responder_lines,
        "the counter matches the lines printed (start, then ongoing when the third MAC joined)"
    );
}

#[test]
fn a_busy_metrics_address_is_a_usage_error() {
    let ns = Netns::new("busy");
    // Hold the port inside the namespace (on a thread that stays there until told), then ask
    // arpwatch for it.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let holder = {
        let path = format!("/var/run/netns/{}", ns.name);
        std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            let file = std::fs::File::open(&path).unwrap();
            // SAFETY: setns on a valid namespace descriptor, for this thread only.
            assert_eq!(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
            let _listener = std::net::TcpListener::bind(METRICS).expect("hold the port");
            ready_tx.send(()).unwrap();
            let _ = rx.recv_timeout(Duration::from_secs(30));
        })
    };
    ready_rx.recv_timeout(Duration::from_secs(10)).expect("port held");
    let watch = Arpwatch::start(
        Some(&ns),
        &["watch", "--iface", "lo", "--metrics-addr", METRICS, "--duration", "1"],
    );
    let done = watch.finish(Duration::from_secs(20));
    tx.send(()).unwrap();
    holder.join().unwrap();
    assert_eq!(done.status.code(), Some(2), "{}", done.stderr);
    assert!(
        done.stderr.contains(&format!("--metrics-addr {METRICS}: cannot listen")),
        "{}",
        done.stderr
    );
}
