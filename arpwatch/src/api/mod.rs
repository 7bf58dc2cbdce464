//! The status API on the metrics listener (`/api/v1/...`), the status page (`/`) and the
//! `arpwatch status` client: what the agent knows right now, read-only. `docs/api.md`
//! documents it.
//!
//! The engine and the annotator live in the pipeline, on the watch loop; the HTTP server is
//! another task. A query never reaches into the pipeline: the HTTP handler sends it, with a
//! oneshot for the answer, into a small bounded queue ([`QUEUE`]) that the watch loop reads
//! between drains of the ring, as one more branch of its `select!`. The loop answers with
//! plain data bounded in size (at most [`MAX_LIMIT`] IPs, conditions or events), copied out of
//! the engine, and the HTTP task serialises it. So the packet path never waits for a client:
//!
//! - a full queue, or more than [`MAX_QUERIES_PER_SECOND`] queries in a second, is answered
//!   `503` at once, without touching the engine;
//! - a query costs the loop at most one pass over the tracked IPs (a page of `/api/v1/ips`)
//!   and a copy of what it answers, never a wait: the answer goes into a oneshot;
//! - a slow client only holds its own connection (the metrics server's limits apply).

pub mod client;
pub mod page;
mod ring;
mod serve;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use arpwatch_common::{direction, Counter};
use arpwatch_core::engine::Engine;
use arpwatch_core::enrich::Annotator;
use arpwatch_core::observation::Timestamp;
use arpwatch_core::status::{
    self, DirectionCounters, IpStatus, KernelCounters, OpenCondition, StatusView,
};

use crate::kernel::CounterTotals;

pub use ring::EventRing;
pub use serve::respond;

/// `limit` when a query gives none.
pub const DEFAULT_LIMIT: usize = 256;
/// The largest `limit` (a larger one is taken as this).
pub const MAX_LIMIT: usize = 1000;
/// Queries waiting for the watch loop at most.
const QUEUE: usize = 16;
/// The watch loop answers at most this many queries per second; the others get `503`.
const MAX_QUERIES_PER_SECOND: u32 = 50;
/// How long the HTTP side waits for the loop's answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);
/// What the status page shows at most.
const PAGE_IPS: usize = 256;
const PAGE_CONDITIONS: usize = 256;
const PAGE_EVENTS: usize = 100;

/// What the HTTP side asks the watch loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// A page of the watched IPs after `after`.
    Ips { after: Option<IpAddr>, limit: usize },
    /// One IP.
    Ip(IpAddr),
    /// The open conditions.
    Conditions { limit: usize },
    /// Events of the ring: at or after `since`, after the cursor `after`.
    Events { since: Option<Timestamp>, after: Option<u64>, limit: usize },
    /// Everything the status page shows.
    View,
}

/// The watch loop's answer: plain data, serialised by the HTTP side.
#[derive(Debug)]
pub enum Answer {
    Ips {
        ips: Vec<IpStatus>,
        more: bool,
        total: usize,
    },
    Ip(Option<Box<IpStatus>>),
    Conditions {
        conditions: Vec<OpenCondition>,
        total: usize,
    },
    Events(ring::Slice),
    View(Box<StatusView>),
    /// The pipeline has no engine (`--raw`).
    NoEngine,
}

/// One query and where its answer goes.
pub struct Request {
    query: Query,
    reply: oneshot::Sender<Answer>,
}

impl Request {
    pub fn query(&self) -> &Query {
        &self.query
    }

    /// Sends the answer; a client that went away meanwhile is no matter.
    pub fn answer(self, answer: Answer) {
        let _ = self.reply.send(answer);
    }
}

/// The HTTP side: sends queries. Cheap to clone.
#[derive(Clone)]
pub struct ApiHandle {
    sender: mpsc::Sender<Request>,
    /// The observer (`NODE_NAME`, else the hostname).
    node: Arc<str>,
}

/// Why a query got no answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Unanswered {
    /// The queue is full, or the loop is over its budget of queries.
    Busy,
    /// The watch loop has stopped.
    Stopped,
    /// No answer within [`ANSWER_TIMEOUT`].
    Timeout,
}

impl ApiHandle {
    /// Asks the watch loop; never waits for room in the queue.
    pub async fn ask(&self, query: Query) -> Result<Answer, Unanswered> {
        let (reply, answer) = oneshot::channel();
        self.sender.try_send(Request { query, reply }).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => Unanswered::Busy,
            mpsc::error::TrySendError::Closed(_) => Unanswered::Stopped,
        })?;
        match tokio::time::timeout(ANSWER_TIMEOUT, answer).await {
            Ok(Ok(answer)) => Ok(answer),
            // Dropped unanswered: refused for the budget, or the loop stopped.
            Ok(Err(_)) => Err(Unanswered::Busy),
            Err(_) => Err(Unanswered::Timeout),
        }
    }

    pub fn node(&self) -> &Arc<str> {
        &self.node
    }
}

/// The watch loop's side: receives queries, within a budget per second.
pub struct Queries {
    receiver: mpsc::Receiver<Request>,
    second: Instant,
    answered: u32,
}

/// The two ends of the query queue, for the observer `node`.
pub fn channel(node: &str) -> (ApiHandle, Queries) {
    let (sender, receiver) = mpsc::channel(QUEUE);
    let handle = ApiHandle { sender, node: node.into() };
    (handle, Queries { receiver, second: Instant::now(), answered: 0 })
}

impl Queries {
    /// The next query within the budget; queries over it are dropped unanswered (their client
    /// gets `503` at once). Pending forever once every sender is gone.
    pub async fn next(&mut self) -> Request {
        loop {
            let Some(request) = self.receiver.recv().await else {
                return std::future::pending().await;
            };
            let now = Instant::now();
            if now.duration_since(self.second) >= Duration::from_secs(1) {
                self.second = now;
                self.answered = 0;
            }
            if self.answered < MAX_QUERIES_PER_SECOND {
                self.answered += 1;
                return request;
            }
        }
    }
}

/// The next query of `queries`; never, without the API.
pub async fn next_query(queries: &mut Option<Queries>) -> Request {
    match queries {
        Some(queries) => queries.next().await,
        None => std::future::pending().await,
    }
}

/// What the watch loop answers from.
pub struct Sources<'a> {
    pub engine: &'a Engine,
    pub annotator: &'a Annotator,
    pub events: &'a EventRing,
    pub kernel: Option<&'a CounterTotals>,
    /// The wall-clock time of the answer.
    pub now: Timestamp,
}

/// Answers `query` from `sources`: copies, bounded by the query's limit.
pub fn answer(query: &Query, sources: &Sources<'_>) -> Answer {
    let engine = sources.engine;
    let status = |ip: IpAddr| {
        engine.ip_status(ip).map(|mut st| {
            status::annotate(&mut st, sources.annotator);
            st
        })
    };
    match *query {
        Query::Ips { after, limit } => {
            let page = engine.watched_ips(after, limit.min(MAX_LIMIT));
            let ips = page.ips.iter().filter_map(|ip| status(*ip)).collect();
            Answer::Ips { ips, more: page.more, total: page.total }
        }
        Query::Ip(ip) => Answer::Ip(status(ip).map(Box::new)),
        Query::Conditions { limit } => {
            let (conditions, total) = engine.open_conditions(limit.min(MAX_LIMIT));
            Answer::Conditions { conditions, total }
        }
        Query::Events { since, after, limit } => {
            Answer::Events(sources.events.slice(since, after, limit.min(MAX_LIMIT)))
        }
        Query::View => {
            let page = engine.watched_ips(None, PAGE_IPS);
            let ips = page.ips.iter().filter_map(|ip| status(*ip)).collect();
            let (conditions, total) = engine.open_conditions(PAGE_CONDITIONS);
            let events = sources.events.slice(None, None, PAGE_EVENTS);
            let recent_events =
                events.events.iter().filter_map(|line| serde_json::from_str(line).ok()).collect();
            Answer::View(Box::new(StatusView {
                generated: sources.now,
                node: None,
                ips,
                conditions,
                recent_events,
                kernel: sources.kernel.map(kernel_counters),
                truncated: page.more || total > PAGE_CONDITIONS,
            }))
        }
    }
}

/// The kernel's counters as the status model has them.
pub fn kernel_counters(totals: &CounterTotals) -> KernelCounters {
    let of = |dir: u8| DirectionCounters {
        frames: totals.frames(dir),
        arp: totals.get(Counter::Arp, dir),
        ndp: totals.get(Counter::Ndp, dir),
        malformed: totals.get(Counter::Malformed, dir),
        ring_full_drops: totals.get(Counter::RingFull, dir),
        suppressed: totals.get(Counter::Suppressed, dir),
    };
    KernelCounters { ingress: of(direction::INGRESS), egress: of(direction::EGRESS) }
}

/// A view with nothing in it, made at `now` (the page of an agent without an engine).
pub fn empty_view(now: Timestamp) -> StatusView {
    StatusView {
        generated: now,
        node: None,
        ips: Vec::new(),
        conditions: Vec::new(),
        recent_events: Vec::new(),
        kernel: None,
        truncated: false,
    }
}

#[cfg(test)]
mod tests;
