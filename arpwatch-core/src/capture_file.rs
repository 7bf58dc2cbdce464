//! Capture files (pcap and pcapng, through the `pcap-file` crate) read from any `std::io::Read`:
//! their ARP frames become the same [`Observation`]s a live run produces, decoded by
//! [`crate::decode`] with the kernel's rules.
//!
//! Reading is lazy and streaming: a [`CaptureReader`] is an iterator over one capture's
//! observations in file order (the shell's `replay` module opens the files and chains several),
//! so a capture of any size feeds the engine with bounded memory.
//!
//! How an observation is filled from a capture:
//! - `ts`: the frame's capture timestamp (pcap: microsecond or nanosecond files; pcapng: the
//!   interface's `if_tsresol` and `if_tsoffset`). A pcapng simple packet block has no timestamp and
//!   takes the one of the frame before it.
//! - `iface`: the pcapng interface's `if_name` option when it has one; otherwise the file name
//!   without directory and extension (`/tmp/lab-1.pcap` gives `lab-1`), with `#N` appended for
//!   pcapng interface N > 0 so that unnamed interfaces stay apart.
//! - `ifindex`: the pcapng interface id (0 for pcap).
//! - `direction`: egress for frames a Linux cooked capture marks `PACKET_OUTGOING` (sent by the
//!   capturing host), ingress for everything else.
//! - `eth_src`, `eth_dst` on Linux cooked captures: see [`crate::decode`].
//!
//! Every [`ReplayError`] is a runtime failure (exit status 1), a missing file included; its
//! message is one sentence naming the file and what is wrong with it.

use std::fmt;
use std::io::{self, Chain, Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use byteorder::{BigEndian, LittleEndian};
use pcap_file::pcap::PcapReader;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::{
    ENHANCED_PACKET_BLOCK, INTERFACE_DESCRIPTION_BLOCK, PACKET_BLOCK, SECTION_HEADER_BLOCK,
    SIMPLE_PACKET_BLOCK,
};
use pcap_file::pcapng::{Block, PcapNgReader, RawBlock};
use pcap_file::{DataLink, Endianness, PcapError, TsResolution};

use crate::decode::{Decoded, LinkType};
use crate::observation::{Direction, Observation, Proto, Timestamp};

const NANOS_PER_SEC: u64 = 1_000_000_000;
/// The largest frame libpcap accepts whatever the header's snapshot length says; a record longer
/// than this and than the snapshot length means the file is damaged.
const MAX_PCAP_FRAME_LEN: u32 = 262_144;
/// pcapng's default timestamp resolution when an interface has no `if_tsresol`: microseconds.
const PCAPNG_DEFAULT_UNITS_PER_SEC: u128 = 1_000_000;

/// What one capture file contained. `frames` is the sum of the other four.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayCounters {
    /// Every packet record of the file.
    pub frames: u64,
    /// Valid Ethernet/IPv4 ARP frames: one observation each.
    pub arp: u64,
    /// Valid IPv6 Neighbor Solicitations and Advertisements: one observation each.
    pub ndp: u64,
    /// Frames of a supported link type that are neither (other IPv6 and ICMPv6 included).
    pub other: u64,
    /// Frames that claim ARP, or ICMPv6 NS/NA, but are not one arpwatch decodes (see
    /// [`crate::decode::MalformedReason`], 802.3 LLC/SNAP ARP included).
    pub malformed: u64,
    /// Frames on a pcapng interface whose link type arpwatch does not decode, skipped.
    pub unsupported_link_type: u64,
}

impl fmt::Display for ReplayCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} frames: {} ARP, {} ND, {} other, {} malformed, {} on unsupported link types",
            self.frames, self.arp, self.ndp, self.other, self.malformed, self.unsupported_link_type
        )
    }
}

/// Why a capture could not be replayed. All of these are runtime failures (exit status 1).
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot open {}: {source}", .path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot read {}: {source}", .path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{} is not a pcap or pcapng capture: {reason}", .path.display())]
    NotACapture { path: PathBuf, reason: String },
    #[error("{} is truncated or damaged: it ends inside {}", .path.display(), record_after(*.frames))]
    Truncated { path: PathBuf, frames: u64 },
    #[error("{} is damaged {}: {detail}", .path.display(), position(*.frames))]
    Damaged { path: PathBuf, frames: u64, detail: String },
    #[error(
        "{} uses link type {}, which arpwatch cannot decode (it reads Ethernet and Linux \
         cooked captures)",
        .path.display(), link_type_name(*.code)
    )]
    UnsupportedLinkType { path: PathBuf, code: u32 },
}

impl ReplayError {
    /// The capture the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ReplayError::Open { path, .. }
            | ReplayError::Read { path, .. }
            | ReplayError::NotACapture { path, .. }
            | ReplayError::Truncated { path, .. }
            | ReplayError::Damaged { path, .. }
            | ReplayError::UnsupportedLinkType { path, .. } => path,
        }
    }
}

fn record_after(frames: u64) -> String {
    if frames == 0 {
        "its header or first record".to_owned()
    } else {
        format!("the record after frame {frames}")
    }
}

fn position(frames: u64) -> String {
    if frames == 0 {
        "before its first frame".to_owned()
    } else {
        format!("after frame {frames}")
    }
}

fn link_type_name(code: u32) -> String {
    match DataLink::from(code) {
        DataLink::Unknown(_) => code.to_string(),
        known => format!("{code} ({known:?})"),
    }
}

/// The file's bytes: the four already read to tell pcap from pcapng, then the rest.
type Input<R> = Chain<Cursor<[u8; 4]>, R>;

/// Reads one capture file, yielding the observation of each valid ARP frame in file order.
/// Iteration ends after the last frame or after the first error.
pub struct CaptureReader<R: Read> {
    path: PathBuf,
    format: Format<R>,
    counters: ReplayCounters,
    done: bool,
}

enum Format<R: Read> {
    Pcap(PcapFile<R>),
    PcapNg(PcapNgFile<R>),
}

impl<R: Read> CaptureReader<R> {
    /// Reads a capture from any byte source; `path` names it in errors and interface names.
    pub fn new(mut reader: R, path: impl Into<PathBuf>) -> Result<Self, ReplayError> {
        let path = path.into();
        let mut magic = [0u8; 4];
        let len = read_up_to(&mut reader, &mut magic)
            .map_err(|source| ReplayError::Read { path: path.clone(), source })?;
        let input = Cursor::new(magic).chain(reader);
        let format = match magic {
            _ if len < magic.len() => {
                let reason = if len == 0 {
                    "it is empty".to_owned()
                } else {
                    format!("it is only {len} bytes long")
                };
                return Err(ReplayError::NotACapture { path, reason });
            }
            [0xa1, 0xb2, 0xc3, 0xd4]
            | [0xd4, 0xc3, 0xb2, 0xa1]
            | [0xa1, 0xb2, 0x3c, 0x4d]
            | [0x4d, 0x3c, 0xb2, 0xa1] => Format::Pcap(PcapFile::new(input, &path)?),
            [0x0a, 0x0d, 0x0d, 0x0a] => Format::PcapNg(PcapNgFile::new(input, &path)?),
            [a, b, c, d] => {
                let reason = format!("it starts with {a:02x} {b:02x} {c:02x} {d:02x}");
                return Err(ReplayError::NotACapture { path, reason });
            }
        };
        Ok(CaptureReader { path, format, counters: ReplayCounters::default(), done: false })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What was read so far; the whole file's once iteration has ended without an error.
    pub fn counters(&self) -> ReplayCounters {
        self.counters
    }
}

impl<R: Read> Iterator for CaptureReader<R> {
    type Item = Result<Observation, ReplayError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = match &mut self.format {
            Format::Pcap(file) => file.next_observation(&self.path, &mut self.counters),
            Format::PcapNg(file) => file.next_observation(&self.path, &mut self.counters),
        };
        self.done = !matches!(next, Some(Ok(_)));
        next
    }
}

/// Fills `buf` as far as the reader goes; returns how many bytes it got.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut len = 0;
    while len < buf.len() {
        match reader.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(len)
}

fn read_error(path: &Path, frames: u64, error: PcapError) -> ReplayError {
    let path = path.to_owned();
    match error {
        PcapError::IncompleteBuffer => ReplayError::Truncated { path, frames },
        PcapError::IoError(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            ReplayError::Truncated { path, frames }
        }
        PcapError::IoError(source) => ReplayError::Read { path, source },
        other => ReplayError::Damaged { path, frames, detail: other.to_string() },
    }
}

/// The interface name for a file without one: the file name less directory and extension.
fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map_or_else(|| path.display().to_string(), |s| s.to_string_lossy().into_owned())
}

/// Counts one decoded frame and returns its observation if it is ARP.
fn observe(
    decoded: Decoded,
    counters: &mut ReplayCounters,
    ts: Timestamp,
    iface: &Arc<str>,
    ifindex: u32,
) -> Option<Observation> {
    match decoded {
        Decoded::Neigh(frame) => {
            let direction = frame.link_direction().unwrap_or(Direction::Ingress);
            let obs = frame.into_observation(ts, Arc::clone(iface), ifindex, direction);
            match obs.proto() {
                Proto::Arp => counters.arp += 1,
                Proto::Ndp => counters.ndp += 1,
            }
            Some(obs)
        }
        Decoded::Other => {
            counters.other += 1;
            None
        }
        Decoded::Malformed(_) => {
            counters.malformed += 1;
            None
        }
    }
}

struct PcapFile<R: Read> {
    reader: PcapReader<Input<R>>,
    link: LinkType,
    /// Nanoseconds per unit of a record's fractional timestamp: 1000 or 1.
    nanos_per_frac: u64,
    max_frame_len: u32,
    iface: Arc<str>,
}

impl<R: Read> PcapFile<R> {
    fn new(input: Input<R>, path: &Path) -> Result<Self, ReplayError> {
        let reader = PcapReader::new(input).map_err(|e| read_error(path, 0, e))?;
        let header = reader.header();
        let code = u32::from(header.datalink);
        let link = LinkType::from_code(code)
            .ok_or_else(|| ReplayError::UnsupportedLinkType { path: path.to_owned(), code })?;
        let nanos_per_frac = match header.ts_resolution {
            TsResolution::MicroSecond => 1_000,
            TsResolution::NanoSecond => 1,
        };
        Ok(PcapFile {
            reader,
            link,
            nanos_per_frac,
            max_frame_len: header.snaplen.max(MAX_PCAP_FRAME_LEN),
            iface: file_stem(path).into(),
        })
    }

    fn next_observation(
        &mut self,
        path: &Path,
        counters: &mut ReplayCounters,
    ) -> Option<Result<Observation, ReplayError>> {
        // Raw records: pcap-file's checked packets reject `orig_len > snaplen`, which every
        // capture taken with `tcpdump -s` has.
        while let Some(record) = self.reader.next_raw_packet() {
            let record = match record {
                Ok(record) => record,
                Err(e) => return Some(Err(read_error(path, counters.frames, e))),
            };
            if record.incl_len > self.max_frame_len {
                return Some(Err(ReplayError::Damaged {
                    path: path.to_owned(),
                    frames: counters.frames,
                    detail: format!(
                        "the next record claims {} bytes, more than any frame can have",
                        record.incl_len
                    ),
                }));
            }
            counters.frames += 1;
            let ts = Timestamp::from_nanos(
                u64::from(record.ts_sec) * NANOS_PER_SEC
                    + u64::from(record.ts_frac) * self.nanos_per_frac,
            );
            let decoded = self.link.decode(&record.data);
            if let Some(observation) = observe(decoded, counters, ts, &self.iface, 0) {
                return Some(Ok(observation));
            }
        }
        None
    }
}

struct PcapNgFile<R: Read> {
    reader: PcapNgReader<Input<R>>,
    /// The interfaces of the current section, by id.
    interfaces: Vec<Interface>,
    stem: String,
    /// The timestamp of the last frame, for simple packet blocks, which carry none.
    last_ts: Timestamp,
}

struct Interface {
    link: Result<LinkType, u32>,
    name: Arc<str>,
    units_per_sec: u128,
    offset_secs: i64,
}

impl Interface {
    fn new(
        block: &InterfaceDescriptionBlock,
        id: usize,
        stem: &str,
        path: &Path,
        frames: u64,
    ) -> Result<Self, ReplayError> {
        let code = u32::from(block.linktype);
        let mut name = None;
        let mut units_per_sec = PCAPNG_DEFAULT_UNITS_PER_SEC;
        let mut offset_secs = 0;
        for option in &block.options {
            match option {
                InterfaceDescriptionOption::IfName(n) if !n.is_empty() => name = Some(n.as_ref()),
                InterfaceDescriptionOption::IfTsResol(resolution) => {
                    units_per_sec =
                        units_per_sec_of(*resolution).ok_or_else(|| ReplayError::Damaged {
                            path: path.to_owned(),
                            frames,
                            detail: format!(
                                "interface {id} has a timestamp resolution ({resolution:#04x}) \
                                 finer than arpwatch can represent"
                            ),
                        })?;
                }
                // The option is a signed number of seconds stored as 64 bits.
                InterfaceDescriptionOption::IfTsOffset(offset) => offset_secs = *offset as i64,
                _ => {}
            }
        }
        let name = match (name, id) {
            (Some(name), _) => name.into(),
            (None, 0) => stem.into(),
            (None, id) => format!("{stem}#{id}").into(),
        };
        Ok(Interface {
            link: LinkType::from_code(code).ok_or(code),
            name,
            units_per_sec,
            offset_secs,
        })
    }

    fn timestamp(&self, ticks: u64) -> Timestamp {
        let nanos =
            i128::try_from(u128::from(ticks) * u128::from(NANOS_PER_SEC) / self.units_per_sec)
                .unwrap_or(i128::MAX)
                .saturating_add(i128::from(self.offset_secs) * i128::from(NANOS_PER_SEC));
        Timestamp::from_nanos(u64::try_from(nanos.max(0)).unwrap_or(u64::MAX))
    }
}

/// Units per second of an `if_tsresol` value: a negative power of ten, or of two when the high
/// bit is set. `None` when the number does not fit in 128 bits.
fn units_per_sec_of(resolution: u8) -> Option<u128> {
    let exponent = u32::from(resolution & 0x7f);
    if resolution & 0x80 == 0 {
        10u128.checked_pow(exponent)
    } else {
        1u128.checked_shl(exponent)
    }
}

impl<R: Read> PcapNgFile<R> {
    fn new(input: Input<R>, path: &Path) -> Result<Self, ReplayError> {
        let reader = PcapNgReader::new(input).map_err(|e| read_error(path, 0, e))?;
        Ok(PcapNgFile {
            reader,
            interfaces: Vec::new(),
            stem: file_stem(path),
            last_ts: Timestamp::default(),
        })
    }

    fn next_observation(
        &mut self,
        path: &Path,
        counters: &mut ReplayCounters,
    ) -> Option<Result<Observation, ReplayError>> {
        loop {
            // A block is in its section's byte order; a new section header needs none.
            let endianness = self.reader.section().endianness;
            let raw = match self.reader.next_raw_block()? {
                Ok(raw) => raw,
                Err(e) => return Some(Err(read_error(path, counters.frames, e))),
            };
            // Only the blocks replay needs are parsed, so that a block it does not use (name
            // resolution, statistics) that pcap-file refuses cannot stop a replay.
            let block = match raw.type_ {
                SECTION_HEADER_BLOCK => {
                    self.interfaces.clear();
                    continue;
                }
                INTERFACE_DESCRIPTION_BLOCK
                | ENHANCED_PACKET_BLOCK
                | PACKET_BLOCK
                | SIMPLE_PACKET_BLOCK => match parse_block(raw, endianness) {
                    Ok(block) => block,
                    Err(e) => return Some(Err(read_error(path, counters.frames, e))),
                },
                _ => continue,
            };
            // (interface id, raw timestamp if the block has one, frame bytes)
            let (id, ticks, data) = match &block {
                Block::InterfaceDescription(description) => {
                    let id = self.interfaces.len();
                    match Interface::new(description, id, &self.stem, path, counters.frames) {
                        Ok(interface) => self.interfaces.push(interface),
                        Err(e) => return Some(Err(e)),
                    }
                    continue;
                }
                // pcap-file stores the raw timestamp units in a `Duration` of nanoseconds,
                // whatever the interface's resolution; they are scaled below.
                Block::EnhancedPacket(packet) => {
                    (packet.interface_id, Some(packet.timestamp.as_nanos() as u64), &packet.data)
                }
                Block::Packet(packet) => {
                    (u32::from(packet.interface_id), Some(packet.timestamp), &packet.data)
                }
                Block::SimplePacket(packet) => (0, None, &packet.data),
                _ => continue,
            };
            let Some(interface) = self.interfaces.get(id as usize) else {
                return Some(Err(ReplayError::Damaged {
                    path: path.to_owned(),
                    frames: counters.frames,
                    detail: format!(
                        "a packet names interface {id}, which the file never describes"
                    ),
                }));
            };
            counters.frames += 1;
            let ts = ticks.map_or(self.last_ts, |ticks| interface.timestamp(ticks));
            self.last_ts = ts;
            let link = match interface.link {
                Ok(link) => link,
                // A capture on several interfaces may mix in one arpwatch cannot read (USB,
                // radiotap): skip its frames, unless nothing in the file can be read at all.
                Err(code) => {
                    if self.interfaces.iter().all(|i| i.link.is_err()) {
                        return Some(Err(ReplayError::UnsupportedLinkType {
                            path: path.to_owned(),
                            code,
                        }));
                    }
                    counters.unsupported_link_type += 1;
                    continue;
                }
            };
            if let Some(observation) = observe(link.decode(data), counters, ts, &interface.name, id)
            {
                return Some(Ok(observation));
            }
        }
    }
}

fn parse_block(raw: RawBlock<'_>, endianness: Endianness) -> Result<Block<'_>, PcapError> {
    match endianness {
        Endianness::Big => raw.try_into_block::<BigEndian>(),
        Endianness::Little => raw.try_into_block::<LittleEndian>(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observation::{ArpOp, MacAddr};
    use crate::testkit::frames::{self, ArpFrame as Wire};
    use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
    use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
    use pcap_file::pcapng::blocks::packet::PacketBlock;
    use pcap_file::pcapng::blocks::simple_packet::SimplePacketBlock;
    use pcap_file::pcapng::PcapNgWriter;
    use std::borrow::Cow;
    use std::time::Duration;

    const SENDER: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
    const SENDER_IP: [u8; 4] = [192, 0, 2, 10];
    const TARGET_IP: [u8; 4] = [192, 0, 2, 1];

    /// SENDER at 192.0.2.10 asks for 192.0.2.1.
    fn ethernet_arp_request() -> Vec<u8> {
        Wire::request(SENDER, SENDER_IP, TARGET_IP).bytes()
    }

    fn ethernet_ipv4() -> Vec<u8> {
        frames::ipv4_tcp_frame(SENDER, [0x02, 0, 0, 0, 0, 0x0b])
    }

    /// A Linux cooked capture v1 reply sent by the capturing host (PACKET_OUTGOING).
    fn sll_outgoing_reply() -> Vec<u8> {
        Wire::reply(SENDER, SENDER_IP, [0; 6], TARGET_IP).linux_sll(frames::PACKET_OUTGOING)
    }

    fn pcap(header: PcapHeader, frames: &[(Duration, Vec<u8>)]) -> Vec<u8> {
        let mut writer = PcapWriter::with_header(Vec::new(), header).unwrap();
        for (ts, data) in frames {
            writer.write_packet(&PcapPacket::new(*ts, data.len() as u32, data)).unwrap();
        }
        writer.into_writer()
    }

    fn read_all(
        bytes: &[u8],
        name: &str,
    ) -> (Vec<Result<Observation, ReplayError>>, ReplayCounters) {
        let mut reader = CaptureReader::new(bytes, name).unwrap();
        let results = reader.by_ref().collect();
        (results, reader.counters())
    }

    fn observations(bytes: &[u8], name: &str) -> (Vec<Observation>, ReplayCounters) {
        let (results, counters) = read_all(bytes, name);
        (results.into_iter().map(Result::unwrap).collect(), counters)
    }

    #[test]
    fn nanosecond_pcap_keeps_nanoseconds_and_names_the_interface_after_the_file() {
        let header = PcapHeader { ts_resolution: TsResolution::NanoSecond, ..Default::default() };
        let ts = Duration::new(1_700_000_000, 123_456_789);
        let bytes = pcap(header, &[(ts, ethernet_ipv4()), (ts, ethernet_arp_request())]);
        let (obs, counters) = observations(&bytes, "/tmp/lab-1.pcap");
        assert_eq!(obs.len(), 1);
        assert_eq!(obs[0].ts, Timestamp::from_nanos(1_700_000_000_123_456_789));
        assert_eq!(&*obs[0].iface, "lab-1");
        assert_eq!((obs[0].ifindex, obs[0].direction), (0, Direction::Ingress));
        assert_eq!(counters, ReplayCounters { frames: 2, arp: 1, other: 1, ..Default::default() });
    }

    #[test]
    fn linux_sll_outgoing_frames_are_egress() {
        let header = PcapHeader { datalink: DataLink::LINUX_SLL, ..Default::default() };
        let bytes = pcap(header, &[(Duration::from_secs(1), sll_outgoing_reply())]);
        let (obs, _) = observations(&bytes, "any.pcap");
        assert_eq!(obs[0].direction, Direction::Egress);
        assert_eq!(obs[0].op, ArpOp::Reply);
        assert_eq!(obs[0].eth_src, MacAddr(SENDER));
        assert_eq!(obs[0].eth_dst, MacAddr::ZERO);
    }

    fn interface(
        linktype: DataLink,
        options: Vec<InterfaceDescriptionOption<'static>>,
    ) -> InterfaceDescriptionBlock<'static> {
        InterfaceDescriptionBlock { linktype, snaplen: 0, options }
    }

    fn packet(interface_id: u32, ticks: u64, data: &[u8]) -> EnhancedPacketBlock<'_> {
        EnhancedPacketBlock {
            interface_id,
            // pcap-file writes the nanoseconds of this `Duration` as the raw timestamp units.
            timestamp: Duration::from_nanos(ticks),
            original_len: data.len() as u32,
            data: Cow::Borrowed(data),
            options: vec![],
        }
    }

    #[test]
    fn pcapng_interfaces_carry_name_id_and_timestamp_resolution() {
        let request = ethernet_arp_request();
        let reply = sll_outgoing_reply();
        let mut writer = PcapNgWriter::new(Vec::new()).unwrap();
        let named_ns = vec![
            InterfaceDescriptionOption::IfName("eth7".into()),
            InterfaceDescriptionOption::IfTsResol(9),
        ];
        writer.write_pcapng_block(interface(DataLink::ETHERNET, named_ns)).unwrap();
        let offset = vec![InterfaceDescriptionOption::IfTsOffset(100)];
        writer.write_pcapng_block(interface(DataLink::LINUX_SLL, offset)).unwrap();
        let binary = vec![InterfaceDescriptionOption::IfTsResol(0x80 | 10)];
        writer.write_pcapng_block(interface(DataLink::ETHERNET, binary)).unwrap();
        writer.write_pcapng_block(packet(0, 1_700_000_000_123_456_789, &request)).unwrap();
        writer.write_pcapng_block(packet(1, 5_000_001, &reply)).unwrap();
        let simple = SimplePacketBlock { original_len: 42, data: Cow::Borrowed(&request) };
        writer.write_pcapng_block(simple).unwrap();
        writer.write_pcapng_block(packet(2, 3 * 1024 + 512, &request)).unwrap();

        let (obs, counters) = observations(&writer.into_inner(), "dumps/multi.pcapng");
        assert_eq!(counters.arp, 4);
        let seen: Vec<_> =
            obs.iter().map(|o| (o.iface.to_string(), o.ifindex, o.direction, o.ts)).collect();
        assert_eq!(
            seen,
            [
                ("eth7".into(), 0, Direction::Ingress, Timestamp(1_700_000_000_123_456_789)),
                ("multi#1".into(), 1, Direction::Egress, Timestamp(105_000_001_000)),
                // A simple packet block belongs to interface 0 and has no timestamp of its own.
                ("eth7".into(), 0, Direction::Ingress, Timestamp(105_000_001_000)),
                ("multi#2".into(), 2, Direction::Ingress, Timestamp(3_500_000_000)),
            ]
        );
    }

    #[test]
    fn pcapng_frames_of_an_unsupported_interface_are_counted_and_skipped() {
        let request = ethernet_arp_request();
        let mut writer = PcapNgWriter::new(Vec::new()).unwrap();
        writer.write_pcapng_block(interface(DataLink::ETHERNET, vec![])).unwrap();
        writer.write_pcapng_block(interface(DataLink::USB_LINUX, vec![])).unwrap();
        writer.write_pcapng_block(packet(1, 1, &[0; 64])).unwrap();
        writer.write_pcapng_block(packet(0, 2, &request)).unwrap();
        let (obs, counters) = observations(&writer.into_inner(), "mixed.pcapng");
        assert_eq!(obs.len(), 1);
        assert_eq!(
            counters,
            ReplayCounters { frames: 2, arp: 1, unsupported_link_type: 1, ..Default::default() }
        );
    }

    #[test]
    fn blocks_replay_does_not_use_are_not_parsed() {
        let request = ethernet_arp_request();
        let mut writer = PcapNgWriter::new(Vec::new()).unwrap();
        writer.write_pcapng_block(interface(DataLink::ETHERNET, vec![])).unwrap();
        // A name resolution block whose IPv4 record names a host in invalid UTF-8, which
        // pcap-file's block parser refuses.
        let body = [0, 1, 0, 6, 10, 0, 0, 1, 0xff, 0, 0, 0, 0, 0, 0, 0];
        let names = RawBlock {
            type_: 4,
            initial_len: 12 + body.len() as u32,
            body: Cow::Borrowed(&body),
            trailer_len: 12 + body.len() as u32,
        };
        writer.write_raw_block(&names).unwrap();
        writer.write_pcapng_block(packet(0, 1, &request)).unwrap();
        let (obs, _) = observations(&writer.into_inner(), "names.pcapng");
        assert_eq!(obs.len(), 1);
    }

    #[test]
    fn a_capture_of_only_unsupported_link_types_is_an_error() {
        let header = PcapHeader { datalink: DataLink::IEEE802_11, ..Default::default() };
        let error = CaptureReader::new(&pcap(header, &[])[..], "wifi.pcap").err().unwrap();
        assert_eq!(
            error.to_string(),
            "wifi.pcap uses link type 105 (IEEE802_11), which arpwatch cannot decode (it reads \
             Ethernet and Linux cooked captures)"
        );

        let mut writer = PcapNgWriter::new(Vec::new()).unwrap();
        writer.write_pcapng_block(interface(DataLink::Unknown(999), vec![])).unwrap();
        writer.write_pcapng_block(packet(0, 1, &[0; 64])).unwrap();
        let (results, _) = read_all(&writer.into_inner(), "odd.pcapng");
        let error = results.into_iter().next().unwrap().unwrap_err();
        assert!(error.to_string().starts_with("odd.pcapng uses link type 999, "), "{error}");
    }

    #[test]
    fn a_packet_on_an_undescribed_interface_is_damage() {
        let request = ethernet_arp_request();
        let mut writer = PcapNgWriter::new(Vec::new()).unwrap();
        writer.write_pcapng_block(interface(DataLink::ETHERNET, vec![])).unwrap();
        writer.write_pcapng_block(packet(0, 1, &request)).unwrap();
        let stray = PacketBlock {
            interface_id: 3,
            drop_count: 0,
            timestamp: 2,
            captured_len: request.len() as u32,
            original_len: request.len() as u32,
            data: Cow::Borrowed(&request),
            options: vec![],
        };
        writer.write_pcapng_block(stray).unwrap();
        let (results, counters) = read_all(&writer.into_inner(), "stray.pcapng");
        assert_eq!(results.len(), 2, "the reader stops at the first error");
        assert_eq!(
            results[1].as_ref().unwrap_err().to_string(),
            "stray.pcapng is damaged after frame 1: a packet names interface 3, which the file \
             never describes"
        );
        assert_eq!(counters.frames, 1);
    }

    #[test]
    fn a_record_longer_than_any_frame_is_damage() {
        let mut bytes = pcap(PcapHeader::default(), &[]);
        // Big-endian record header: seconds, microseconds, captured and original length.
        for field in [0u32, 0, 300_000, 300_000] {
            bytes.extend(field.to_be_bytes());
        }
        bytes.resize(bytes.len() + 300_000, 0);
        let (results, _) = read_all(&bytes, "huge.pcap");
        assert_eq!(
            results[0].as_ref().unwrap_err().to_string(),
            "huge.pcap is damaged before its first frame: the next record claims 300000 bytes, \
             more than any frame can have"
        );
    }

    #[test]
    fn short_inputs_are_named_for_what_they_are() {
        let message = |bytes: &[u8]| match CaptureReader::new(bytes, "x.pcap") {
            Err(e) => e.to_string(),
            Ok(reader) => reader.filter_map(Result::err).next().unwrap().to_string(),
        };
        assert_eq!(message(b""), "x.pcap is not a pcap or pcapng capture: it is empty");
        assert_eq!(
            message(&[0xd4, 0xc3, 0xb2]),
            "x.pcap is not a pcap or pcapng capture: it is only 3 bytes long"
        );
        assert_eq!(
            message(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0]),
            "x.pcap is truncated or damaged: it ends inside its header or first record"
        );
        let whole = pcap(PcapHeader::default(), &[(Duration::ZERO, ethernet_arp_request())]);
        assert_eq!(
            message(&whole[..whole.len() - 1]),
            "x.pcap is truncated or damaged: it ends inside its header or first record"
        );
        let two = pcap(
            PcapHeader::default(),
            &[(Duration::ZERO, ethernet_ipv4()), (Duration::ZERO, ethernet_arp_request())],
        );
        assert_eq!(
            message(&two[..two.len() - 1]),
            "x.pcap is truncated or damaged: it ends inside the record after frame 1"
        );
    }

    #[test]
    fn timestamp_resolutions_beyond_128_bits_are_refused() {
        assert_eq!(units_per_sec_of(6), Some(1_000_000));
        assert_eq!(units_per_sec_of(0x80 | 10), Some(1024));
        assert_eq!(units_per_sec_of(38), Some(10u128.pow(38)));
        assert_eq!(units_per_sec_of(39), None);
        assert_eq!(units_per_sec_of(0x80 | 127), Some(1 << 127));
    }
}
