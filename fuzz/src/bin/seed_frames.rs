//! Writes every frame of the given captures as one corpus file for `decode_frame`: a link-type
//! selector byte (0 Ethernet, 1 Linux cooked v1, 2 v2) followed by the frame. Run by `run.sh`, so
//! the corpus is seeded from ../shared/pcaps at run time and nothing is copied into the repository.
//! The crafted frames of the testkit's catalogue (ARP and Neighbor Discovery: every malformed kind,
//! tags, cuts) go in too, as Ethernet frames, and an ARP request and ND messages (an NS with
//! options, a DAD probe, an NA) in both Linux cooked framings.

use arpwatch_core::testkit::{catalogue, frames};
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::{Block, PcapNgReader};
use std::fs::File;
use std::path::PathBuf;

fn selector(linktype: u32) -> Option<u8> {
    match linktype {
        1 => Some(0),
        113 => Some(1),
        276 => Some(2),
        _ => None,
    }
}

fn main() {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let out = args.next().expect("usage: seed_frames OUT_DIR CAPTURE...");
    std::fs::create_dir_all(&out).expect("create the corpus directory");
    let mut written = 0usize;
    for path in args {
        let mut frames: Vec<Vec<u8>> = Vec::new();
        if let Ok(mut pcap) = PcapReader::new(File::open(&path).expect("open capture")) {
            let link = selector(u32::from(pcap.header().datalink));
            while let Some(Ok(packet)) = pcap.next_packet() {
                if let Some(link) = link {
                    frames.push([&[link][..], &packet.data].concat());
                }
            }
        } else if let Ok(mut pcapng) = PcapNgReader::new(File::open(&path).expect("open capture")) {
            let mut links = Vec::new();
            while let Some(Ok(block)) = pcapng.next_block() {
                match block {
                    Block::InterfaceDescription(idb) => {
                        links.push(selector(u32::from(idb.linktype)))
                    }
                    Block::EnhancedPacket(epb) => {
                        if let Some(Some(link)) = links.get(epb.interface_id as usize) {
                            frames.push([&[*link][..], &epb.data].concat());
                        }
                    }
                    _ => {}
                }
            }
        }
        let stem = path.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        for (i, frame) in frames.iter().enumerate() {
            std::fs::write(out.join(format!("{stem}-{i}")), frame).expect("write a seed");
            written += 1;
        }
    }
    for (i, case) in catalogue::cases().into_iter().enumerate() {
        std::fs::write(out.join(format!("catalogue-{i}")), [&[0][..], &case.bytes].concat())
            .expect("write a seed");
        written += 1;
    }
    let request =
        frames::ArpFrame::request(catalogue::NODE_A, catalogue::CLIENT_IP, catalogue::VIP)
            .tagged(&[(frames::TPID_8021Q, 5)]);
    let ns =
        frames::NdFrame::solicitation(catalogue::NODE_A, catalogue::LINK_LOCAL_A, catalogue::VIP6)
            .options(vec![
                frames::NdOption::Nonce([1, 2, 3, 4, 5, 6]),
                frames::NdOption::source(catalogue::NODE_A),
            ]);
    let dad = frames::NdFrame::dad_probe(catalogue::NODE_A, catalogue::VIP6)
        .tagged(&[(frames::TPID_8021Q, 5)]);
    let na = frames::NdFrame::advertisement(
        catalogue::NODE_B,
        catalogue::VIP6,
        catalogue::NODE_A,
        catalogue::CLIENT_IP6,
    );
    let cooked = [
        ("arp", 1u8, request.linux_sll(frames::PACKET_BROADCAST)),
        ("arp", 2, request.linux_sll2(frames::PACKET_OUTGOING)),
        ("ns", 1, ns.linux_sll(frames::PACKET_MULTICAST)),
        ("dad", 2, dad.linux_sll2(frames::PACKET_MULTICAST)),
        ("na", 1, na.linux_sll(frames::PACKET_OUTGOING)),
        ("na", 2, na.linux_sll2(frames::PACKET_HOST)),
    ];
    for (what, selector, frame) in cooked {
        let name = format!("cooked-{what}-{selector}");
        std::fs::write(out.join(name), [&[selector][..], &frame].concat()).expect("write a seed");
        written += 1;
    }
    eprintln!("seed_frames: {written} frames");
}
