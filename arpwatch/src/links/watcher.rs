//! Following the links of this network namespace over rtnetlink: one dump at start, then the
//! RTNLGRP_LINK notifications, with a fresh dump whenever notifications were lost.
//!
//! Lost notifications: the kernel multicasts link notifications into the socket's receive buffer
//! without waiting for the reader; when the buffer is full it drops them and the next read fails
//! with ENOBUFS (netlink-proto turns that into an `Overrun` message). The table can then no longer
//! be trusted, so the watcher dumps every link again and reports the difference between its table
//! and the dump as ordinary changes ([`LinkTable::resync`]). Notifications that were already read
//! before the dump was requested are dropped, as the dump supersedes them. Those read during or
//! after the dump are applied on top of it as usual; one that the dump already reflects can then
//! replay a step (an `Added` for a link the dump missed because it was already gone, followed by
//! its `Removed`), but every change is consistent with the one before it and the table ends up as
//! the kernel's.

use anyhow::{anyhow, Context, Result};
use futures::channel::mpsc::UnboundedReceiver;
use futures::StreamExt;
use rtnetlink::packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use rtnetlink::packet_route::link::LinkMessage;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::proto::ConnectionHandle;
use rtnetlink::sys::protocols::NETLINK_ROUTE;
use rtnetlink::sys::{AsyncSocket, SocketAddr};
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::task::JoinHandle;

use super::table::{LinkTable, RouteMessage};
use super::{LinkChange, LinkInfo, LocalMacs};

/// The rtnetlink multicast group of link notifications (RTNLGRP_LINK).
const RTNLGRP_LINK: u32 = 1;

/// The links of the network namespace this watcher was started in, kept current.
///
/// [`next_change`](Self::next_change) is cancel-safe, so it can be one branch of a
/// `tokio::select!` loop: a change is taken off the queue only when it is returned, and a resync
/// interrupted by another branch starts over on the next call.
#[derive(Debug)]
pub struct LinkWatcher {
    handle: ConnectionHandle<RouteMessage>,
    notifications: UnboundedReceiver<(NetlinkMessage<RouteMessage>, SocketAddr)>,
    /// Reads the socket and hands notifications and replies over; aborted on drop.
    connection: JoinHandle<()>,
    table: LinkTable,
    /// Changes worked out but not yet returned: one message or resync can imply several.
    pending: VecDeque<LinkChange>,
    resync_due: bool,
    resyncs: u64,
}

impl LinkWatcher {
    /// Subscribes to link notifications, then lists the links that exist. The socket, and so what
    /// the watcher sees, belongs to the network namespace of the calling thread (the one
    /// `ip netns exec` chose). Must run inside a tokio runtime, which runs the socket's task.
    pub async fn start() -> Result<LinkWatcher> {
        // Subscribing first: a link created between the dump and the subscription would be missed.
        // The messages are read as `RouteMessage`, so a link whose name is not UTF-8 is seen too.
        let (mut connection, handle, notifications) =
            rtnetlink::proto::new_connection::<RouteMessage>(NETLINK_ROUTE)
                .context("could not open an rtnetlink socket to follow network interfaces")?;
        connection
            .socket_mut()
            .socket_mut()
            .bind(&SocketAddr::new(0, 1 << (RTNLGRP_LINK - 1)))
            .context("could not subscribe to rtnetlink link notifications")?;
        let connection = tokio::spawn(connection);
        let mut watcher = LinkWatcher {
            handle,
            notifications,
            connection,
            table: LinkTable::default(),
            pending: VecDeque::new(),
            resync_due: false,
            resyncs: 0,
        };
        watcher.table = LinkTable::new(dump_links(&watcher.handle).await?);
        watcher.links().for_each(note_written_name);
        Ok(watcher)
    }

    /// Every link, in ifindex order, as of the last change returned (or the start).
    pub fn links(&self) -> impl Iterator<Item = &LinkInfo> {
        self.table.links()
    }

    /// This host's MACs and the links that carry them, as of now. The snapshot is cheap to
    /// clone and does not change; call again after a change for a current one.
    pub fn local_macs(&self) -> Arc<LocalMacs> {
        self.table.local_macs()
    }

    /// How many times lost notifications forced a fresh dump.
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }

    /// Waits for the next link added, renamed or removed. Changes of one link come in the
    /// kernel's order. Fails only when the rtnetlink socket fails.
    ///
    /// The table and local MACs may already include changes queued behind the returned one (one
    /// message or one resync can imply several changes), never fewer.
    pub async fn next_change(&mut self) -> Result<LinkChange> {
        loop {
            if let Some(change) = self.pending.pop_front() {
                if let LinkChange::Added(link) | LinkChange::Renamed { new: link, .. } = &change {
                    note_written_name(link);
                }
                return Ok(change);
            }
            if self.resync_due {
                self.resync().await?;
                continue;
            }
            let (message, _) = self.notifications.next().await.ok_or_else(|| {
                anyhow!("the rtnetlink socket closed: network interfaces can no longer be followed")
            })?;
            match message.payload {
                NetlinkPayload::InnerMessage(RouteMessage(message)) => {
                    self.pending.extend(self.table.apply(&message))
                }
                NetlinkPayload::Overrun(_) => {
                    log::warn!("link notifications were lost (netlink socket buffer overrun); listing the links again");
                    self.resync_due = true;
                }
                _ => {}
            }
        }
    }

    async fn resync(&mut self) -> Result<()> {
        // Everything read so far predates the dump requested below, which supersedes it.
        while self.notifications.try_recv().is_ok() {}
        let dump = dump_links(&self.handle).await?;
        self.pending.extend(self.table.resync(dump));
        self.resync_due = false;
        self.resyncs += 1;
        Ok(())
    }
}

/// Says once, when a link appears or takes the name, that its name is written escaped
/// ([`arpwatch_core::ifname`]): events, logs and selection globs use that form.
fn note_written_name(link: &LinkInfo) {
    if link.name.contains('\\') {
        log::info!(
            "interface {} has a name that is not plain text; arpwatch writes it {}",
            link.ifindex,
            link.name
        );
    }
}

impl Drop for LinkWatcher {
    fn drop(&mut self) {
        // The task owns the socket: ending it closes the socket.
        self.connection.abort();
    }
}

async fn dump_links(handle: &ConnectionHandle<RouteMessage>) -> Result<Vec<LinkInfo>> {
    let failed = "could not list the network interfaces over rtnetlink";
    let request = RouteMessage(RouteNetlinkMessage::GetLink(LinkMessage::default()));
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let request = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(request));
    let mut replies = handle
        .request(request, SocketAddr::new(0, 0))
        .map_err(|err| anyhow!("{err}"))
        .context(failed)?;
    let mut links = Vec::new();
    while let Some(reply) = replies.next().await {
        match reply.payload {
            NetlinkPayload::InnerMessage(RouteMessage(RouteNetlinkMessage::NewLink(link))) => {
                links.extend(LinkInfo::from_message(&link))
            }
            NetlinkPayload::Error(err) => return Err(anyhow!("{err}")).context(failed),
            _ => {}
        }
    }
    Ok(links)
}
