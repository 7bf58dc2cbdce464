//! The rtnetlink questions the probe asks outside aya, answered synchronously (attach, detach and
//! the counters' reading run between two turns of the watch loop): which XDP program holds an
//! interface's slot, whether a `clsact` qdisc arpwatch added can go, and how many packets an
//! interface counted.

use std::io;

use rtnetlink::packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage, LinkXdp};
use rtnetlink::packet_route::tc::{TcAttribute, TcHandle, TcMessage};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// Sends one request and collects the messages of its answer until the kernel's `DONE` (a dump)
/// or its acknowledgement (anything else: it is asked for); a netlink error becomes the
/// `io::Error` of its errno.
fn request(message: RouteNetlinkMessage, dump: bool) -> io::Result<Vec<RouteNetlinkMessage>> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut request = NetlinkMessage::from(message);
    request.header.flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { NLM_F_ACK };
    request.header.sequence_number = 1;
    request.finalize();
    let mut bytes = vec![0; request.buffer_len()];
    request.serialize(&mut bytes);
    socket.send(&bytes, 0)?;

    let mut answer = Vec::new();
    loop {
        let (datagram, _) = socket.recv_from_full()?;
        let mut offset = 0;
        while offset < datagram.len() {
            let message =
                NetlinkMessage::<RouteNetlinkMessage>::deserialize(&datagram[offset..])
                    .map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err.to_string()))?;
            let length = message.header.length as usize;
            match message.payload {
                NetlinkPayload::Done(_) => return Ok(answer),
                // An error message with code 0 is the acknowledgement.
                NetlinkPayload::Error(err) => {
                    return match err.code {
                        Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                        None => Ok(answer),
                    };
                }
                NetlinkPayload::InnerMessage(inner) => answer.push(inner),
                _ => {}
            }
            if length == 0 {
                break;
            }
            offset += length;
        }
    }
}

/// The attributes of interface `ifindex`, as the kernel describes it.
fn link_attributes(ifindex: u32) -> io::Result<impl Iterator<Item = LinkAttribute>> {
    let mut link = LinkMessage::default();
    link.header.index = ifindex;
    let answer = request(RouteNetlinkMessage::GetLink(link), false)?;
    Ok(answer
        .into_iter()
        .filter_map(|message| match message {
            RouteNetlinkMessage::NewLink(link) => Some(link.attributes),
            _ => None,
        })
        .flatten())
}

/// The id of the XDP program attached to `ifindex` (any mode), if one is.
pub fn xdp_program(ifindex: u32) -> io::Result<Option<u32>> {
    let id = link_attributes(ifindex)?
        .filter_map(|attribute| match attribute {
            LinkAttribute::Xdp(xdp) => Some(xdp),
            _ => None,
        })
        .flatten()
        .find_map(|xdp| match xdp {
            LinkXdp::ProgId(id)
            | LinkXdp::DrvProgId(id)
            | LinkXdp::SkbProgId(id)
            | LinkXdp::HwProgId(id)
                if id != 0 =>
            {
                Some(id)
            }
            _ => None,
        });
    Ok(id)
}

/// What became of a `clsact` qdisc arpwatch had added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clsact {
    /// It held nothing else and was deleted.
    Removed,
    /// Someone attached filters to it meanwhile: kept, with that many filters.
    KeptInUse(usize),
}

/// Deletes the `clsact` qdisc of `ifindex` if neither its ingress nor its egress holds a filter.
/// Call it only for a qdisc arpwatch added, after detaching its own filters.
pub fn remove_clsact_if_unused(ifindex: u32) -> io::Result<Clsact> {
    let mut filters = 0;
    for minor in [TcHandle::MIN_INGRESS, TcHandle::MIN_EGRESS] {
        let mut dump = TcMessage::default();
        dump.header.index = ifindex as i32;
        dump.header.parent = TcHandle { major: 0xffff, minor };
        // A dump also lists each filter's chain entry (handle 0): only filters count.
        filters += request(RouteNetlinkMessage::GetTrafficFilter(dump), true)?
            .iter()
            .filter(|m| {
                matches!(m, RouteNetlinkMessage::NewTrafficFilter(f) if f.header.handle != TcHandle::UNSPEC)
            })
            .count();
    }
    if filters > 0 {
        return Ok(Clsact::KeptInUse(filters));
    }
    let mut qdisc = TcMessage::default();
    qdisc.header.index = ifindex as i32;
    qdisc.header.parent = TcHandle::CLSACT;
    qdisc.header.handle = TcHandle { major: 0xffff, minor: 0 };
    // With its kind named, the kernel refuses to delete an `ingress` qdisc in its place.
    qdisc.attributes.push(TcAttribute::Kind("clsact".to_owned()));
    request(RouteNetlinkMessage::DelQueueDiscipline(qdisc), false)?;
    Ok(Clsact::Removed)
}

/// The packets interface `ifindex` received and sent, as its own counters have them.
pub fn link_packets(ifindex: u32) -> io::Result<[u64; 2]> {
    link_attributes(ifindex)?
        .find_map(|attribute| match attribute {
            LinkAttribute::Stats64(stats) => Some([stats.rx_packets, stats.tx_packets]),
            _ => None,
        })
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no link statistics"))
}
