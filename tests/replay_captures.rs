//! Replays the real captures of `../shared/pcaps` and checks every observation against
//! `GROUND_TRUTH.md` there (frame numbers count every packet of a file from 1, as in tshark).
//! The numbers were cross-checked with tshark 4.0.17; this test does not need it.

use std::collections::{BTreeSet, HashSet};
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use arpwatch_core::capture_file::{ReplayCounters, ReplayError};
use arpwatch_core::observation::{ArpOp, Direction, MacAddr, Observation, Timestamp};

fn captures_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/pcaps");
    assert!(
        dir.join("GROUND_TRUTH.md").is_file(),
        "the real captures are missing: expected them with GROUND_TRUTH.md in {}",
        dir.display()
    );
    dir
}

/// One capture read to its end: each observation with the number of its frame in the file.
struct Replayed {
    frames: Vec<(u64, Observation)>,
    counters: ReplayCounters,
}

impl Replayed {
    fn observations(&self) -> impl Iterator<Item = &Observation> {
        self.frames.iter().map(|(_, obs)| obs)
    }

    fn frame(&self, number: u64) -> &Observation {
        self.frames
            .iter()
            .find_map(|(n, obs)| (*n == number).then_some(obs))
            .unwrap_or_else(|| panic!("frame {number} is not an observation"))
    }

    fn frame_numbers(&self, keep: impl Fn(&Observation) -> bool) -> Vec<u64> {
        self.frames.iter().filter(|(_, obs)| keep(obs)).map(|(n, _)| *n).collect()
    }

    fn count(&self, keep: impl Fn(&Observation) -> bool) -> usize {
        self.observations().filter(|obs| keep(obs)).count()
    }
}

fn replay(name: &str) -> Replayed {
    let mut reader = arpwatch::open_capture(captures_dir().join(name)).unwrap();
    let mut frames = Vec::new();
    while let Some(observation) = reader.next() {
        let observation = observation.unwrap_or_else(|e| panic!("{e}"));
        // The reader counts a frame before it yields its observation.
        frames.push((reader.counters().frames, observation));
    }
    let counters = reader.counters();
    assert_eq!(
        counters.frames,
        counters.arp + counters.non_arp + counters.malformed + counters.unsupported_link_type,
        "{name}: every frame lands in exactly one counter"
    );
    assert_eq!(counters.arp, frames.len() as u64, "{name}: one observation per ARP frame");
    Replayed { frames, counters }
}

fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn is_request(obs: &Observation) -> bool {
    obs.op == ArpOp::Request
}

fn is_reply(obs: &Observation) -> bool {
    obs.op == ArpOp::Reply
}

#[test]
fn arpspoof_gateway_oneway_has_two_macs_for_the_gateway() {
    let r = replay("arpspoof_gateway_oneway.pcap");
    assert_eq!(r.counters.frames, 11);
    assert_eq!(r.frames.len(), 11);
    assert_eq!(r.count(is_request), 5);
    assert_eq!(r.count(is_reply), 6);
    let attacker = mac("60:67:20:77:15:22");
    let gateway = mac("bc:d1:77:09:14:15");
    let gateway_claims =
        |m: MacAddr| r.frame_numbers(|o| is_reply(o) && o.spa == ip("192.168.6.1") && o.sha == m);
    assert_eq!(gateway_claims(attacker), [1, 5, 6, 7, 9]);
    assert_eq!(gateway_claims(gateway), [4]);
    assert_eq!(r.frame(1).tpa, ip("192.168.6.117"));
    for n in [2, 8, 10, 11] {
        let obs = r.frame(n);
        assert!(is_request(obs));
        assert_eq!((obs.eth_dst, obs.tha, obs.sha), (attacker, attacker, attacker), "frame {n}");
        assert_eq!((obs.spa, obs.tpa), (ip("192.168.6.115"), ip("192.168.6.1")), "frame {n}");
    }
    assert_eq!(r.frame(3).eth_dst, MacAddr::BROADCAST);
    let attacker_ips: BTreeSet<_> =
        r.observations().filter(|o| o.sha == attacker).map(|o| o.spa).collect();
    assert_eq!(attacker_ips, [ip("192.168.6.1"), ip("192.168.6.115")].into());
    assert_eq!(r.count(|o| o.is_gratuitous() || o.is_probe()), 0);
    for obs in r.observations() {
        assert_eq!(obs.eth_src, obs.sha);
        assert_eq!(&*obs.iface, "arpspoof_gateway_oneway");
        assert_eq!(
            (obs.ifindex, obs.direction, obs.vlan.as_slice()),
            (0, Direction::Ingress, &[][..])
        );
    }
    // Microsecond pcap: 2017-12-01T04:14:20.629169Z.
    assert_eq!(r.frame(1).ts, Timestamp::from_nanos(1_512_101_660_629_169_000));
}

#[test]
fn sanders_arppoison_has_four_arp_frames_among_165() {
    let r = replay("sanders_arppoison.pcapng");
    assert_eq!(r.counters.frames, 165);
    assert_eq!(r.counters.non_arp, 161);
    assert_eq!(r.counters.malformed, 0);
    assert_eq!(r.frame_numbers(|_| true), [54, 55, 56, 165]);
    let attacker = mac("00:25:b3:bf:91:ee");
    let victim = mac("00:21:70:c0:56:f0");
    let unicast_request = r.frame(54);
    assert!(is_request(unicast_request));
    assert_eq!((unicast_request.sha, unicast_request.spa), (attacker, ip("172.16.0.1")));
    assert_eq!(unicast_request.eth_dst, victim);
    let unsolicited_reply = r.frame(56);
    assert!(is_reply(unsolicited_reply));
    assert_eq!((unsolicited_reply.sha, unsolicited_reply.spa), (attacker, ip("172.16.0.1")));
    assert!(is_reply(r.frame(55)));
    assert_eq!((r.frame(55).sha, r.frame(55).spa), (victim, ip("172.16.0.107")));
    assert_eq!((r.frame(165).sha, r.frame(165).spa), (attacker, ip("172.16.0.105")));
    assert_eq!(r.frame(165).eth_dst, MacAddr::BROADCAST);
    // The gateway's own MAC sends no ARP at all.
    assert_eq!(r.count(|o| o.sha == mac("00:26:0b:31:07:33")), 0);
    // pcapng with an unnamed interface and microsecond timestamps.
    assert_eq!(&*unsolicited_reply.iface, "sanders_arppoison");
    assert_eq!(unsolicited_reply.ts, Timestamp::from_nanos(1_279_251_577_376_602_000));
}

#[test]
fn sgr_na_arp_spoofing_is_36_replies_from_one_mac_for_two_ips() {
    let r = replay("sgr_na-arpSpoofing.pcap");
    assert_eq!(r.counters.frames, 36);
    assert_eq!(r.count(is_reply), 36);
    assert!(r.observations().all(|o| o.sha == mac("00:e0:4d:3c:25:7b")));
    let claimed: BTreeSet<_> = r.observations().map(|o| o.spa).collect();
    assert_eq!(claimed, [ip("10.0.0.153"), ip("10.0.0.157")].into());
    let distinct: HashSet<_> = r.observations().map(|o| (o.eth_dst, o.spa, o.tha, o.tpa)).collect();
    assert_eq!(distinct.len(), 2, "34 of the 36 replies are exact repeats");
}

#[test]
fn wireshark_arp_storm_is_622_requests_from_one_router() {
    let r = replay("wireshark_arp-storm.pcap");
    assert_eq!(r.counters.frames, 622);
    assert_eq!(r.count(is_request), 622);
    assert!(r
        .observations()
        .all(|o| o.sha == mac("00:07:0d:af:f4:54") && o.eth_dst.is_broadcast()));
    let senders: HashSet<_> = r.observations().map(|o| o.spa).collect();
    let targets: HashSet<_> = r.observations().map(|o| o.tpa).collect();
    assert_eq!((senders.len(), targets.len()), (9, 303));
    let first = r.frames.first().unwrap().1.ts;
    let last = r.frames.last().unwrap().1.ts;
    assert_eq!(last.saturating_since(first).as_secs(), 28, "622 requests in 29 s");
}

#[test]
fn sgr_hs_arp_scan_is_509_requests_across_a_slash_24() {
    let r = replay("sgr_hs-arpScan.pcap");
    assert_eq!(r.counters.frames, 509);
    assert_eq!(r.count(is_request), 509);
    let scanner = mac("00:0c:29:20:a8:7f");
    assert!(r.observations().all(|o| o.sha == scanner && o.spa == ip("10.0.0.128")));
    assert!(r
        .observations()
        .all(|o| matches!(o.tpa, IpAddr::V4(ip) if ip.octets()[..3] == [10, 0, 0])));
    let targets: HashSet<_> = r.observations().map(|o| o.tpa).collect();
    assert_eq!(targets.len(), 256);
    // The scanner asks for its own address twice: SPA == TPA, not someone else's announcement.
    assert_eq!(r.frame_numbers(Observation::is_gratuitous), [129, 383]);
    let first = r.frames.first().unwrap().1.ts;
    let last = r.frames.last().unwrap().1.ts;
    assert_eq!(last.saturating_since(first).as_millis(), 1017);
}

#[test]
fn windows_probes_has_17_probes_and_5_announcements() {
    let r = replay("wireshark_smb-on-windows-10_probes.pcapng");
    assert_eq!(r.counters.frames, 1000);
    assert_eq!(r.frames.len(), 90);
    let first_vm = mac("00:0c:29:61:f5:5f");
    let second_vm = mac("00:0c:29:03:df:ad");
    let probes = |m: MacAddr, target: &str| {
        r.frame_numbers(|o| o.is_probe() && o.sha == m && o.tpa == ip(target))
    };
    assert_eq!(probes(first_vm, "169.254.145.153"), [14, 15, 17]);
    assert_eq!(probes(first_vm, "192.168.199.133"), [27, 44, 62]);
    assert_eq!(probes(second_vm, "169.254.195.103"), [311, 331, 458, 460, 463]);
    assert_eq!(probes(second_vm, "192.168.199.132"), [358, 377, 386, 492, 513, 528]);
    assert_eq!(r.count(Observation::is_probe), 17);
    assert_eq!(r.frame_numbers(Observation::is_gratuitous), [18, 72, 392, 465, 534]);
    let interface = r"\Device\NPF_{6E513D91-54C1-4F9E-8CC8-6078DB1E7B55}";
    assert!(r.observations().all(|o| &*o.iface == interface && o.ifindex == 0));
    // No IP is claimed by two MACs.
    let bindings: BTreeSet<_> =
        r.observations().filter(|o| !o.spa.is_unspecified()).map(|o| (o.spa, o.sha)).collect();
    let ips: BTreeSet<_> = bindings.iter().map(|(ip, _)| *ip).collect();
    assert_eq!(bindings.len(), ips.len(), "{bindings:?}");
    assert_eq!(r.count(is_request), 56);
    assert_eq!(r.count(is_reply), 34);
}

#[test]
fn packetlife_hsrp_announces_the_virtual_mac_every_three_seconds() {
    let r = replay("packetlife_gratuitous_arp_hsrp.pcap");
    assert_eq!(r.counters.frames, 6);
    let hsrp = mac("00:00:0c:07:ac:01");
    assert!(r
        .observations()
        .all(|o| is_reply(o) && o.is_gratuitous() && o.sha == hsrp && o.spa == ip("10.0.0.6")));
    assert_eq!(r.frame_numbers(|o| o.eth_dst.is_broadcast()), [1, 3, 5]);
    assert_eq!(r.frame_numbers(|o| o.eth_dst == mac("01:00:0c:cd:cd:cd")), [2, 4, 6]);
    let gap = r.frame(3).ts.saturating_since(r.frame(1).ts);
    assert_eq!(gap.as_millis(), 2808);
}

#[test]
fn packetlife_dot1q_decodes_vlan_123_on_every_arp_frame() {
    let r = replay("packetlife_ICMP_across_dot1q.pcap");
    assert_eq!(r.counters.frames, 15);
    assert_eq!(r.frame_numbers(|_| true), [1, 2, 3, 4, 6, 7]);
    assert!(r.observations().all(|o| o.vlan.as_slice() == [123]));
    let router = (ip("192.168.123.1"), mac("00:19:06:ea:b8:c1"));
    let switch = (ip("192.168.123.2"), mac("00:18:73:de:57:c1"));
    for (n, (addr, hw)) in [(1, router), (2, switch)] {
        let obs = r.frame(n);
        assert!(is_reply(obs) && obs.is_gratuitous(), "frame {n}");
        assert_eq!((obs.spa, obs.sha, obs.eth_dst), (addr, hw, MacAddr::BROADCAST), "frame {n}");
    }
    // Then a request and a reply each way.
    let exchange: Vec<_> = [3, 4, 6, 7]
        .iter()
        .map(|&n| {
            let o = r.frame(n);
            (o.op, o.spa, o.tpa)
        })
        .collect();
    assert_eq!(
        exchange,
        [
            (ArpOp::Request, switch.0, router.0),
            (ArpOp::Reply, router.0, switch.0),
            (ArpOp::Request, router.0, switch.0),
            (ArpOp::Reply, switch.0, router.0),
        ]
    );
}

#[test]
fn zeek_linux_sll_decodes_cooked_frames() {
    let r = replay("zeek_linuxsll-arp.pcap");
    assert_eq!(r.counters.frames, 12);
    let asker = mac("00:50:56:8b:cf:fa");
    let asks = r.frame_numbers(|o| {
        is_request(o) && o.sha == asker && o.spa == ip("10.1.10.100") && o.tpa == ip("10.1.10.1")
    });
    assert_eq!(asks, [2, 3, 4, 6, 7, 9, 10, 11, 12]);
    assert_eq!(r.count(|o| o.spa == ip("10.1.10.1")), 0, "nobody answers");
    let announcer = mac("00:50:56:8b:3f:0d");
    let announcements = r.frame_numbers(|o| {
        is_request(o) && o.is_gratuitous() && o.sha == announcer && o.spa == ip("192.168.22.81")
    });
    assert_eq!(announcements, [5, 8]);
    assert_eq!(r.frame_numbers(Observation::is_gratuitous), [5, 8]);
    for obs in r.observations() {
        // Cooked capture: the link-layer address is the sender, PACKET_BROADCAST the destination.
        assert_eq!(obs.eth_src, obs.sha);
        assert_eq!(obs.eth_dst, MacAddr::BROADCAST);
        assert_eq!(obs.direction, Direction::Ingress);
        assert_eq!(&*obs.iface, "zeek_linuxsll-arp");
    }
}

#[test]
fn zeek_snap_arp_is_malformed_not_observed() {
    let r = replay("zeek_snap-arp.pcapng");
    assert_eq!(r.frames.len(), 0);
    assert_eq!((r.counters.frames, r.counters.malformed), (4, 4));
}

#[test]
fn zeek_arp_leak_yields_nothing() {
    let r = replay("zeek_arp-leak.pcap");
    assert_eq!(r.frames.len(), 0);
    assert_eq!((r.counters.frames, r.counters.malformed), (6, 6));
}

#[test]
fn tcpdump_arp_too_long_tha_yields_nothing() {
    let r = replay("tcpdump_arp-too-long-tha.pcap");
    assert_eq!(r.frames.len(), 0);
    assert_eq!((r.counters.frames, r.counters.malformed), (1, 1));
}

#[test]
fn tcpdump_arp_oobr_fuzzed_does_not_crash() {
    let r = replay("tcpdump_arp-oobr_fuzzed.pcap");
    assert_eq!(r.counters.frames, 2282);
    assert!(r.counters.malformed > 0);
}

/// The IPv6 captures hold Neighbor Discovery and no ARP: until ND is decoded (issue 11) every
/// frame of theirs is counted as not ARP, and nothing is made of it.
#[test]
fn ipv6_only_captures_hold_no_arp() {
    for (name, frames) in [
        ("realjimmy_ipv6_dad_conflict.pcap", 3),
        ("wireshark_c1222_over_ipv6_sll.pcap", 11),
        ("wireshark_eigrp-for-ipv6-updates.pcap", 421),
    ] {
        let r = replay(name);
        assert_eq!((r.counters.frames, r.counters.non_arp), (frames, frames), "{name}");
        assert!(r.frames.is_empty(), "{name}");
    }
}

/// Every capture of the directory is covered above, so a new one is not silently skipped.
#[test]
fn every_capture_in_the_directory_is_checked() {
    let mut names: Vec<String> = fs::read_dir(captures_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".pcap") || name.ends_with(".pcapng"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "arpspoof_gateway_oneway.pcap",
            "packetlife_ICMP_across_dot1q.pcap",
            "packetlife_gratuitous_arp_hsrp.pcap",
            "realjimmy_ipv6_dad_conflict.pcap",
            "sanders_arppoison.pcapng",
            "sgr_hs-arpScan.pcap",
            "sgr_na-arpSpoofing.pcap",
            "tcpdump_arp-oobr_fuzzed.pcap",
            "tcpdump_arp-too-long-tha.pcap",
            "wireshark_arp-storm.pcap",
            "wireshark_c1222_over_ipv6_sll.pcap",
            "wireshark_eigrp-for-ipv6-updates.pcap",
            "wireshark_smb-on-windows-10_probes.pcapng",
            "zeek_arp-leak.pcap",
            "zeek_linuxsll-arp.pcap",
            "zeek_snap-arp.pcapng",
        ]
    );
}

#[test]
fn several_files_replay_in_the_order_given() {
    let dir = captures_dir();
    let paths =
        [dir.join("packetlife_gratuitous_arp_hsrp.pcap"), dir.join("zeek_linuxsll-arp.pcap")];
    let mut replay = arpwatch::Replay::open(&paths).unwrap();
    let ifaces: Vec<String> = replay.by_ref().map(|obs| obs.unwrap().iface.to_string()).collect();
    assert_eq!(ifaces.len(), 18);
    assert!(ifaces[..6].iter().all(|i| i == "packetlife_gratuitous_arp_hsrp"));
    assert!(ifaces[6..].iter().all(|i| i == "zeek_linuxsll-arp"));
    let summaries = replay.summaries();
    assert_eq!(summaries.len(), 2);
    assert_eq!((summaries[0].path.as_path(), summaries[0].counters.arp), (paths[0].as_path(), 6));
    assert_eq!((summaries[1].path.as_path(), summaries[1].counters.arp), (paths[1].as_path(), 12));
}

#[test]
fn observations_serialise_to_the_raw_contract() {
    let r = replay("packetlife_ICMP_across_dot1q.pcap");
    assert_eq!(
        serde_json::to_value(arpwatch_core::wire::RawLine(r.frame(1))).unwrap(),
        serde_json::json!({
            "ts": "2008-06-20T10:20:37.965649Z",
            "iface": "packetlife_ICMP_across_dot1q",
            "ifindex": 0,
            "direction": "ingress",
            "vlan": [123],
            "proto": "arp",
            "op": "reply",
            "eth_src": "00:19:06:ea:b8:c1",
            "eth_dst": "ff:ff:ff:ff:ff:ff",
            "sha": "00:19:06:ea:b8:c1",
            "spa": "192.168.123.1",
            "tha": "ff:ff:ff:ff:ff:ff",
            "tpa": "192.168.123.1",
        })
    );
}

/// A directory of its own under the system's temporary directory, removed when dropped.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(test: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("arpwatch-replay-{test}-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        ScratchDir(dir)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Reads a whole file through the reader, returning its first error.
fn first_error(path: &Path) -> ReplayError {
    match arpwatch::open_capture(path) {
        Err(e) => e,
        Ok(reader) => reader
            .filter_map(Result::err)
            .next()
            .unwrap_or_else(|| panic!("{} replayed without an error", path.display())),
    }
}

#[test]
fn truncated_captures_give_an_error_not_a_panic() {
    let scratch = ScratchDir::new("truncated");
    for name in ["wireshark_arp-storm.pcap", "wireshark_smb-on-windows-10_probes.pcapng"] {
        let bytes = fs::read(captures_dir().join(name)).unwrap();
        let cut = scratch.0.join(name);
        fs::write(&cut, &bytes[..bytes.len() - 7]).unwrap();
        let error = first_error(&cut);
        assert!(matches!(error, ReplayError::Truncated { .. }), "{name}: {error:?}");
        let message = error.to_string();
        assert!(message.starts_with(&cut.display().to_string()), "{message}");
        assert!(message.contains("truncated"), "{message}");
        // Any shorter cut, header included, ends cleanly: with an error, or with fewer frames
        // where it falls between two records.
        for len in (0..bytes.len()).step_by(997) {
            fs::write(&cut, &bytes[..len]).unwrap();
            if let Ok(reader) = arpwatch::open_capture(&cut) {
                reader.for_each(drop);
            }
        }
    }
}

#[test]
fn random_bytes_are_not_a_capture() {
    let scratch = ScratchDir::new("random");
    let path = scratch.0.join("noise.pcap");
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    fs::write(&path, &noise).unwrap();
    let error = first_error(&path);
    assert_eq!(
        error.to_string(),
        format!(
            "{} is not a pcap or pcapng capture: it starts with {:02x} {:02x} {:02x} {:02x}",
            path.display(),
            noise[0],
            noise[1],
            noise[2],
            noise[3]
        )
    );
}

#[test]
fn a_damaged_file_is_one_error_and_the_files_after_it_are_still_read() {
    let scratch = ScratchDir::new("damaged");
    let storm = fs::read(captures_dir().join("wireshark_arp-storm.pcap")).unwrap();
    let cut = scratch.0.join("cut.pcap");
    fs::write(&cut, &storm[..3000]).unwrap();
    let noise = scratch.0.join("noise.pcapng");
    fs::write(&noise, b"\x0a\x0d\x0d\x0a garbage").unwrap();
    let (first, last) = (
        captures_dir().join("packetlife_gratuitous_arp_hsrp.pcap"),
        captures_dir().join("zeek_linuxsll-arp.pcap"),
    );
    let mut replay =
        arpwatch::Replay::open([first.clone(), cut.clone(), noise.clone(), last.clone()]).unwrap();
    let items: Vec<Result<String, ReplayError>> =
        replay.by_ref().map(|item| item.map(|obs| obs.iface.to_string())).collect();
    let errors: Vec<&ReplayError> = items.iter().filter_map(|i| i.as_ref().err()).collect();
    assert!(matches!(errors[..], [ReplayError::Truncated { .. }, ReplayError::Damaged { .. }]));
    assert_eq!((errors[0].path(), errors[1].path()), (cut.as_path(), noise.as_path()));
    let ifaces: Vec<&str> = items.iter().filter_map(|i| i.as_deref().ok()).collect();
    assert_eq!(ifaces.len(), 6 + 39 + 12);
    assert_eq!(ifaces.last(), Some(&"zeek_linuxsll-arp"));
    let read: Vec<&Path> = replay.summaries().iter().map(|s| s.path.as_path()).collect();
    assert_eq!(read, [first.as_path(), last.as_path()]);
    assert_eq!(replay.failed(), [cut, noise]);
}

#[test]
fn a_missing_file_is_named_in_the_error() {
    let path = captures_dir().join("no-such-capture.pcap");
    let error = arpwatch::Replay::open([captures_dir().join("zeek_arp-leak.pcap"), path.clone()])
        .err()
        .expect("a missing file must fail before the replay starts");
    assert!(matches!(error, ReplayError::Open { .. }));
    assert!(error.to_string().starts_with(&format!("cannot open {}: ", path.display())));
    // So must a directory.
    let error = arpwatch::Replay::open([captures_dir()]).err().expect("a directory is no capture");
    assert_eq!(
        error.to_string(),
        format!("cannot open {}: it is a directory", captures_dir().display())
    );
}
