//! The table of links by ifindex, and the changes it reports as rtnetlink messages and dumps are
//! applied to it. No I/O here: the watcher feeds it.

use arpwatch_core::ifname;
use arpwatch_core::observation::MacAddr;
use rtnetlink::packet_core::{
    DecodeError, DefaultNla, NetlinkDeserializable, NetlinkHeader, NetlinkSerializable, Nla,
    NlaBuffer, NlasIterator, Parseable, ParseableParametrized,
};
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags, LinkHeader, LinkMessage};
use rtnetlink::packet_route::{AddressFamily, RouteNetlinkMessage};
use std::collections::BTreeMap;
use std::sync::Arc;

const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const IFLA_IFNAME: u16 = 3;
/// The size of `struct ifinfomsg`, before a link message's attributes.
const LINK_HEADER_LEN: usize = 16;

/// One network interface of this host (of the network namespace arpwatch runs in).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    pub ifindex: u32,
    /// The name as arpwatch writes it ([`ifname::escape`]): the kernel's name unless that has
    /// bytes that are not UTF-8, control characters or backslashes. Selection, events, logs and
    /// metrics use this form; [`ifname::kernel_name`] gives the kernel's name back.
    pub name: String,
    /// The link-layer address (IFLA_ADDRESS) when it is six bytes long, as on Ethernet.
    pub mac: Option<[u8; 6]>,
    /// Administratively up (IFF_UP).
    pub up: bool,
    /// The loopback device (IFF_LOOPBACK), whatever it is called: loopback can be renamed.
    pub loopback: bool,
}

impl LinkInfo {
    /// The link an RTM_NEWLINK or RTM_DELLINK message describes. `None` for family-specific
    /// messages about a link, which are not about its existence: the bridge sends RTM_NEWLINK and
    /// RTM_DELLINK with family AF_BRIDGE when a port joins or leaves, and the port lives on.
    pub(crate) fn from_message(message: &LinkMessage) -> Option<LinkInfo> {
        if message.header.interface_family != AddressFamily::Unspec {
            return None;
        }
        let mut name = None;
        let mut mac = None;
        for attribute in &message.attributes {
            match attribute {
                LinkAttribute::IfName(n) => name = Some(ifname::escape(n.as_bytes())),
                // A name that is not UTF-8, as `RouteMessage` reads it.
                LinkAttribute::Other(nla) if nla.kind() == IFLA_IFNAME => {
                    let mut bytes = vec![0; nla.value_len()];
                    nla.emit_value(&mut bytes);
                    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
                    name = Some(ifname::escape(&bytes[..end]));
                }
                LinkAttribute::Address(bytes) => mac = <[u8; 6]>::try_from(bytes.as_slice()).ok(),
                _ => {}
            }
        }
        Some(LinkInfo {
            ifindex: message.header.index,
            name: name?,
            mac,
            up: message.header.flags.contains(LinkFlags::Up),
            loopback: message.header.flags.contains(LinkFlags::Loopback),
        })
    }
}

/// An rtnetlink message as the watcher reads it: the `rtnetlink` crate's own, except that a link
/// message it cannot read (it refuses a name that is not UTF-8, and the message would be dropped
/// with a hex dump in the log) is read attribute by attribute, keeping any attribute it cannot
/// parse, the name included, as raw bytes ([`LinkAttribute::Other`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RouteMessage(pub RouteNetlinkMessage);

impl NetlinkSerializable for RouteMessage {
    fn message_type(&self) -> u16 {
        self.0.message_type()
    }

    fn buffer_len(&self) -> usize {
        NetlinkSerializable::buffer_len(&self.0)
    }

    fn serialize(&self, buffer: &mut [u8]) {
        self.0.serialize(buffer)
    }
}

impl NetlinkDeserializable for RouteMessage {
    type Error = DecodeError;

    fn deserialize(header: &NetlinkHeader, payload: &[u8]) -> Result<Self, DecodeError> {
        let err = match RouteNetlinkMessage::deserialize(header, payload) {
            Ok(message) => return Ok(RouteMessage(message)),
            Err(err) => err,
        };
        let message = match header.message_type {
            RTM_NEWLINK => RouteNetlinkMessage::NewLink(link_message_leniently(payload)?),
            RTM_DELLINK => RouteNetlinkMessage::DelLink(link_message_leniently(payload)?),
            _ => return Err(err),
        };
        Ok(RouteMessage(message))
    }
}

/// A link message whose attributes are parsed one by one, those that fail kept raw.
fn link_message_leniently(payload: &[u8]) -> Result<LinkMessage, DecodeError> {
    let mut message = LinkMessage::default();
    message.header = LinkHeader::parse(payload)?;
    let family = message.header.interface_family;
    for nla in NlasIterator::new(payload.get(LINK_HEADER_LEN..).unwrap_or_default()) {
        let nla: NlaBuffer<&[u8]> = nla?;
        let attribute = LinkAttribute::parse_with_param(&nla, family)
            .or_else(|_| DefaultNla::parse(&nla).map(LinkAttribute::Other))?;
        message.attributes.push(attribute);
    }
    Ok(message)
}

/// A change to the set of links or to their names. Flag, state and address changes are not
/// changes here; [`LocalMacs`] and the watcher's table follow them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkChange {
    /// A link that was not in the table: created, moved into this namespace, or a new link that
    /// reuses the ifindex of a removed one (always reported after that one's `Removed`).
    Added(LinkInfo),
    /// The link `ifindex` is now called `new.name`; it was called `old`.
    Renamed { ifindex: u32, old: String, new: LinkInfo },
    /// The link `ifindex`, last called `name`, is gone (deleted or moved to another namespace).
    Removed { ifindex: u32, name: String },
}

impl LinkChange {
    pub fn ifindex(&self) -> u32 {
        match self {
            LinkChange::Added(link) => link.ifindex,
            LinkChange::Renamed { ifindex, .. } | LinkChange::Removed { ifindex, .. } => *ifindex,
        }
    }
}

/// The MACs of this host's links and the links that carry them. Several links can share a MAC
/// (a bridge takes a port's, VLAN links take their parent's), so a MAC has a list of owners. The
/// all-zero address of loopback is nobody's MAC.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalMacs {
    owners: BTreeMap<[u8; 6], Vec<String>>,
}

impl LocalMacs {
    fn of<'a>(links: impl Iterator<Item = &'a LinkInfo>) -> LocalMacs {
        let mut owners = BTreeMap::<[u8; 6], Vec<String>>::new();
        for link in links {
            if let Some(mac) = link.mac.filter(|mac| *mac != [0; 6]) {
                owners.entry(mac).or_default().push(link.name.clone());
            }
        }
        LocalMacs { owners }
    }

    /// The names of the local links that carry `mac`, in ifindex order; empty when the MAC is
    /// not this host's.
    pub fn owners(&self, mac: &[u8; 6]) -> &[String] {
        self.owners.get(mac).map_or(&[], Vec::as_slice)
    }

    pub fn is_local(&self, mac: &[u8; 6]) -> bool {
        self.owners.contains_key(mac)
    }
}

/// Events name the first of a MAC's links as the local interface that owns it.
impl arpwatch_core::enrich::LocalMacs for LocalMacs {
    fn owner(&self, mac: MacAddr) -> Option<&str> {
        self.owners(&mac.0).first().map(String::as_str)
    }
}

/// The links by ifindex, and the local MACs derived from them.
#[derive(Debug, Default)]
pub(crate) struct LinkTable {
    links: BTreeMap<u32, LinkInfo>,
    /// Rebuilt only when a name or MAC changes; shared with whoever holds a snapshot.
    local_macs: Arc<LocalMacs>,
}

impl LinkTable {
    /// The table as a dump of every link describes it.
    pub(crate) fn new(dump: Vec<LinkInfo>) -> LinkTable {
        let mut table = LinkTable {
            links: dump.into_iter().map(|link| (link.ifindex, link)).collect(),
            ..Default::default()
        };
        table.rebuild_local_macs();
        table
    }

    pub(crate) fn links(&self) -> impl Iterator<Item = &LinkInfo> {
        self.links.values()
    }

    #[cfg(test)]
    fn get(&self, ifindex: u32) -> Option<&LinkInfo> {
        self.links.get(&ifindex)
    }

    pub(crate) fn local_macs(&self) -> Arc<LocalMacs> {
        Arc::clone(&self.local_macs)
    }

    /// Applies one rtnetlink notification. Notifications arrive in the kernel's order, so a
    /// deleted link's RTM_DELLINK comes before any RTM_NEWLINK that reuses its ifindex.
    pub(crate) fn apply(&mut self, message: &RouteNetlinkMessage) -> Option<LinkChange> {
        match message {
            RouteNetlinkMessage::NewLink(link) => self.update(LinkInfo::from_message(link)?),
            RouteNetlinkMessage::DelLink(link) => {
                self.remove(LinkInfo::from_message(link)?.ifindex)
            }
            _ => None,
        }
    }

    /// A link as it is now. RTM_NEWLINK also reports flag, state and address changes of a known
    /// link: those change the table but are not a [`LinkChange`].
    fn update(&mut self, link: LinkInfo) -> Option<LinkChange> {
        let (change, macs_changed) = match self.links.get(&link.ifindex) {
            None => (Some(LinkChange::Added(link.clone())), link.mac.is_some()),
            Some(known) => {
                let renamed = known.name != link.name;
                let change = renamed.then(|| LinkChange::Renamed {
                    ifindex: link.ifindex,
                    old: known.name.clone(),
                    new: link.clone(),
                });
                (change, (renamed && link.mac.is_some()) || known.mac != link.mac)
            }
        };
        self.links.insert(link.ifindex, link);
        if macs_changed {
            self.rebuild_local_macs();
        }
        change
    }

    fn remove(&mut self, ifindex: u32) -> Option<LinkChange> {
        let gone = self.links.remove(&ifindex)?;
        if gone.mac.is_some() {
            self.rebuild_local_macs();
        }
        Some(LinkChange::Removed { ifindex, name: gone.name })
    }

    /// Brings the table in line with a fresh dump after notifications were lost, and returns the
    /// changes that explain the difference: first every removal (so a name a vanished link had is
    /// free before a new link takes it), then renames and additions, each in ifindex order.
    ///
    /// A link is its ifindex: one deleted and recreated with the same ifindex while notifications
    /// were being lost shows here as a rename, or as nothing if it kept its name. The kernel hands
    /// out ifindexes cyclically, so only an explicitly chosen index is reused that soon.
    pub(crate) fn resync(&mut self, dump: Vec<LinkInfo>) -> Vec<LinkChange> {
        let fresh: BTreeMap<u32, LinkInfo> =
            dump.into_iter().map(|link| (link.ifindex, link)).collect();
        let vanished: Vec<u32> =
            self.links.keys().filter(|ifindex| !fresh.contains_key(ifindex)).copied().collect();
        let mut changes: Vec<LinkChange> =
            vanished.into_iter().filter_map(|ifindex| self.remove(ifindex)).collect();
        changes.extend(fresh.into_values().filter_map(|link| self.update(link)));
        changes
    }

    fn rebuild_local_macs(&mut self) {
        self.local_macs = Arc::new(LocalMacs::of(self.links.values()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(ifindex: u32, name: &str, mac: Option<[u8; 6]>) -> LinkInfo {
        LinkInfo { ifindex, name: name.into(), mac, up: false, loopback: false }
    }

    fn mac(last: u8) -> Option<[u8; 6]> {
        Some([0x02, 0, 0, 0, 0, last])
    }

    fn message(family: AddressFamily, link: &LinkInfo) -> LinkMessage {
        let mut message = LinkMessage::default();
        message.header.interface_family = family;
        message.header.index = link.ifindex;
        if link.up {
            message.header.flags |= LinkFlags::Up;
        }
        if link.loopback {
            message.header.flags |= LinkFlags::Loopback;
        }
        message.attributes.push(LinkAttribute::IfName(link.name.clone()));
        if let Some(mac) = link.mac {
            message.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        message
    }

    fn new_link(link: &LinkInfo) -> RouteNetlinkMessage {
        RouteNetlinkMessage::NewLink(message(AddressFamily::Unspec, link))
    }

    fn del_link(link: &LinkInfo) -> RouteNetlinkMessage {
        RouteNetlinkMessage::DelLink(message(AddressFamily::Unspec, link))
    }

    fn removed(ifindex: u32, name: &str) -> LinkChange {
        LinkChange::Removed { ifindex, name: name.into() }
    }

    #[test]
    fn messages_describe_links() {
        let lo = LinkInfo { up: true, loopback: true, ..link(1, "lo", Some([0; 6])) };
        assert_eq!(LinkInfo::from_message(&message(AddressFamily::Unspec, &lo)), Some(lo));
        let eth = link(2, "eth0", mac(1));
        assert_eq!(
            LinkInfo::from_message(&message(AddressFamily::Unspec, &eth)),
            Some(eth.clone())
        );

        // An address that is not six bytes (a tunnel's IPv4 endpoint, say) is no MAC.
        let mut tunnel = message(AddressFamily::Unspec, &link(3, "ipip0", None));
        tunnel.attributes.push(LinkAttribute::Address(vec![192, 0, 2, 1]));
        assert_eq!(LinkInfo::from_message(&tunnel).unwrap().mac, None);

        assert_eq!(LinkInfo::from_message(&message(AddressFamily::Bridge, &eth)), None);
        let mut nameless = message(AddressFamily::Unspec, &eth);
        nameless.attributes.retain(|a| !matches!(a, LinkAttribute::IfName(_)));
        assert_eq!(LinkInfo::from_message(&nameless), None);
    }

    /// The bytes of an RTM_NEWLINK message for `link` named `name` (any bytes), as the kernel
    /// sends them, read back the way the watcher reads them.
    fn read_back(link: &LinkInfo, name: &[u8]) -> Result<RouteMessage, DecodeError> {
        use rtnetlink::packet_core::Emitable;
        let mut message = self::message(AddressFamily::Unspec, link);
        message.attributes.retain(|a| !matches!(a, LinkAttribute::IfName(_)));
        let mut nul_terminated = name.to_vec();
        nul_terminated.push(0);
        message
            .attributes
            .insert(0, LinkAttribute::Other(DefaultNla::new(IFLA_IFNAME, nul_terminated)));
        let mut payload = vec![0; message.buffer_len()];
        message.emit(&mut payload);
        let mut header = NetlinkHeader::default();
        header.message_type = RTM_NEWLINK;
        RouteMessage::deserialize(&header, &payload)
    }

    #[test]
    fn a_name_that_is_not_utf8_is_read_and_written_escaped() {
        let veth = link(7, "placeholder", mac(7));
        let RouteMessage(RouteNetlinkMessage::NewLink(message)) =
            read_back(&veth, b"veth\xff").expect("read leniently")
        else {
            panic!("not a new link");
        };
        let info = LinkInfo::from_message(&message).unwrap();
        assert_eq!(info, LinkInfo { name: r"veth\xff".into(), ..veth.clone() });
        // Ordinary names take the crate's own path, and a backslash is doubled.
        for (name, written) in [(&b"eth0"[..], "eth0"), (br"a\b", r"a\\b")] {
            let RouteMessage(RouteNetlinkMessage::NewLink(message)) =
                read_back(&veth, name).unwrap()
            else {
                panic!("not a new link");
            };
            assert!(message.attributes.iter().any(|a| matches!(a, LinkAttribute::IfName(_))));
            assert_eq!(LinkInfo::from_message(&message).unwrap().name, written);
        }
        // A deletion is read the same way; other messages are not.
        let mut header = NetlinkHeader::default();
        header.message_type = RTM_DELLINK;
        assert!(RouteMessage::deserialize(&header, &[0; 3]).is_err(), "too short for a link");
    }

    #[test]
    fn a_dump_fills_the_table_and_the_local_macs() {
        let lo = LinkInfo { loopback: true, ..link(1, "lo", Some([0; 6])) };
        let table = LinkTable::new(vec![
            lo,
            link(2, "eth0", mac(1)),
            link(5, "br0", mac(1)),
            link(9, "wg0", None),
        ]);
        assert_eq!(table.links().map(|l| l.ifindex).collect::<Vec<_>>(), [1, 2, 5, 9]);
        assert_eq!(table.get(5).unwrap().name, "br0");
        let macs = table.local_macs();
        assert_eq!(macs.owners(&mac(1).unwrap()), ["eth0", "br0"]);
        assert!(!macs.is_local(&[0; 6]), "loopback's zero address is nobody's MAC");
        assert!(!macs.is_local(&mac(2).unwrap()));
        assert!(macs.owners(&mac(2).unwrap()).is_empty());
    }

    #[test]
    fn a_new_ifindex_is_added() {
        let mut table = LinkTable::new(vec![link(1, "lo", None)]);
        let veth = link(7, "veth0", mac(7));
        assert_eq!(table.apply(&new_link(&veth)), Some(LinkChange::Added(veth.clone())));
        assert_eq!(table.local_macs().owners(&mac(7).unwrap()), ["veth0"]);
    }

    #[test]
    fn flag_and_state_changes_are_not_changes() {
        let veth = link(7, "veth0", mac(7));
        let mut table = LinkTable::new(vec![veth.clone()]);
        let before = table.local_macs();
        let up = LinkInfo { up: true, ..veth.clone() };
        assert_eq!(table.apply(&new_link(&up)), None);
        assert_eq!(table.apply(&new_link(&up)), None, "repeated notification");
        assert!(table.get(7).unwrap().up);
        assert!(Arc::ptr_eq(&before, &table.local_macs()), "local MACs untouched");
    }

    #[test]
    fn an_address_change_updates_the_local_macs_only() {
        let mut table = LinkTable::new(vec![link(7, "veth0", mac(7))]);
        assert_eq!(table.apply(&new_link(&link(7, "veth0", mac(8)))), None);
        let macs = table.local_macs();
        assert!(!macs.is_local(&mac(7).unwrap()));
        assert_eq!(macs.owners(&mac(8).unwrap()), ["veth0"]);
    }

    #[test]
    fn a_new_name_on_a_known_ifindex_is_a_rename() {
        let mut table = LinkTable::new(vec![link(7, "veth0", mac(7))]);
        let renamed = link(7, "eth0", mac(7));
        assert_eq!(
            table.apply(&new_link(&renamed)),
            Some(LinkChange::Renamed { ifindex: 7, old: "veth0".into(), new: renamed.clone() })
        );
        assert_eq!(table.local_macs().owners(&mac(7).unwrap()), ["eth0"]);
        assert_eq!(table.apply(&new_link(&renamed)), None);
    }

    #[test]
    fn a_reused_ifindex_is_a_new_link_after_the_removal() {
        let old = link(7, "veth0", mac(7));
        let mut table = LinkTable::new(vec![old.clone()]);
        assert_eq!(table.apply(&del_link(&old)), Some(removed(7, "veth0")));
        assert!(table.get(7).is_none());
        assert!(!table.local_macs().is_local(&mac(7).unwrap()));
        let reuse = link(7, "other", mac(9));
        assert_eq!(
            table.apply(&new_link(&reuse)),
            Some(LinkChange::Added(reuse)),
            "never a rename"
        );
        // The same name on the same ifindex after a removal is a new link too.
        assert_eq!(
            table.apply(&del_link(&table.get(7).unwrap().clone())),
            Some(removed(7, "other"))
        );
        assert_eq!(table.apply(&new_link(&old)), Some(LinkChange::Added(old)));
    }

    #[test]
    fn removing_an_unknown_link_is_not_a_change() {
        let mut table = LinkTable::new(vec![]);
        assert_eq!(table.apply(&del_link(&link(7, "veth0", None))), None);
    }

    #[test]
    fn bridge_port_messages_are_not_link_changes() {
        let port = link(7, "veth0", mac(7));
        let mut table = LinkTable::new(vec![port.clone()]);
        let joined = RouteNetlinkMessage::NewLink(message(AddressFamily::Bridge, &port));
        let left = RouteNetlinkMessage::DelLink(message(AddressFamily::Bridge, &port));
        assert_eq!(table.apply(&joined), None);
        assert_eq!(table.apply(&left), None, "leaving a bridge is not a deletion");
        assert_eq!(table.get(7), Some(&port));
        let unknown =
            RouteNetlinkMessage::NewLink(message(AddressFamily::Bridge, &link(8, "veth1", None)));
        assert_eq!(table.apply(&unknown), None);
        assert!(table.get(8).is_none());
    }

    #[test]
    fn resync_reports_the_difference_removals_first() {
        let mut table = LinkTable::new(vec![
            link(1, "lo", None),
            link(3, "eth0", mac(3)),
            link(4, "veth0", mac(4)),
            link(6, "gone", mac(6)),
        ]);
        let dump = vec![
            link(1, "lo", None),
            LinkInfo { up: true, ..link(4, "veth0", mac(4)) }, // flags only
            link(6, "kept", mac(6)),                           // renamed
            link(9, "eth0", mac(9)),                           // takes the vanished link's name
        ];
        assert_eq!(
            table.resync(dump.clone()),
            [
                removed(3, "eth0"),
                LinkChange::Renamed {
                    ifindex: 6,
                    old: "gone".into(),
                    new: link(6, "kept", mac(6))
                },
                LinkChange::Added(link(9, "eth0", mac(9))),
            ]
        );
        assert_eq!(table.links().cloned().collect::<Vec<_>>(), dump);
        let macs = table.local_macs();
        assert!(!macs.is_local(&mac(3).unwrap()));
        assert_eq!(macs.owners(&mac(9).unwrap()), ["eth0"]);
        assert_eq!(macs.owners(&mac(6).unwrap()), ["kept"]);
        assert!(table.resync(dump).is_empty(), "nothing changed since");
    }

    #[test]
    fn change_knows_its_ifindex() {
        assert_eq!(LinkChange::Added(link(3, "a", None)).ifindex(), 3);
        assert_eq!(removed(4, "b").ifindex(), 4);
        let renamed = LinkChange::Renamed { ifindex: 5, old: "c".into(), new: link(5, "d", None) };
        assert_eq!(renamed.ifindex(), 5);
    }
}
