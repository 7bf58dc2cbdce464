//! A small Kubernetes API server for the tests: no kube-apiserver, etcd, envtest or kwok binary is
//! reachable from these machines, so the tests run this one. HTTP/1.1 and JSON over plain TCP, with
//! the list/watch protocol as kube-rs's watcher uses it, over the object manifests Kubernetes and
//! MetalLB v0.14+ write:
//!
//! - `GET` of a collection: a `...List` with `metadata.resourceVersion` (one cluster-wide counter,
//!   like etcd's revision); `labelSelector` (`k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`,
//!   `k notin (a)`) and `fieldSelector` (`metadata.name`, `metadata.namespace`) honoured; `limit`
//!   accepted and everything returned in one page (no `continue`).
//! - `GET ...?watch=true&resourceVersion=N`: `200` with `Transfer-Encoding: chunked`, one JSON
//!   watch event per line (`ADDED`, `MODIFIED`, `DELETED`), first every change after `N`, then the
//!   changes as they happen. `BOOKMARK` events every [`ApiServer::set_bookmark_interval`] and on
//!   [`ApiServer::bookmark`] when `allowWatchBookmarks=true`. A `resourceVersion` older than the
//!   oldest the server still remembers gets what a real API server sends: `200`, then an `ERROR`
//!   event whose `Status` has code 410 (`Expired`), then the end of the stream. An empty or `0`
//!   resourceVersion starts with a synthetic `ADDED` per object. `timeoutSeconds` ends the stream.
//! - Writes: `POST` (create; `409 AlreadyExists`; `generateName`), `PUT` (replace; `409 Conflict`
//!   on a stale `metadata.resourceVersion`), `PATCH` with `application/merge-patch+json`,
//!   `application/strategic-merge-patch+json` (treated as a merge patch: enough for the objects
//!   served here), `application/json-patch+json` and `application/apply-patch+yaml` (server-side
//!   apply, JSON bodies; `fieldManager` required as the real server requires it; creates when
//!   absent), `DELETE`. Every write is recorded ([`ApiServer::writes`]) with its answer.
//! - Discovery: `/version`, `/api`, `/apis`, `/api/v1`, `/apis/{group}/{version}`.
//! - Faults for the tests: [`ApiServer::expire_watches`] (410 on every open watch and on resumes
//!   from before it), [`ApiServer::drop_connections`], [`ApiServer::stop`] and
//!   [`ApiServer::restart`] (same port, a fresh watch cache: resumes from before get 410), and
//!   [`ApiServer::set_metallb`] (`false`: `metallb.io` paths answer 404 and discovery omits the
//!   group, as in a cluster without MetalLB's CRDs).
//!
//! It listens wherever its bind function says: 127.0.0.1 of the test's namespace
//! ([`ApiServer::start_local`]) or an address inside a lab namespace ([`ApiServer::start_in`]),
//! and writes a kubeconfig pointing at itself ([`ApiServer::kubeconfig`]).
//!
//! Threads only (no async runtime): one accept loop, one thread per connection.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One resource type the server serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// `""` for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
}

impl Kind {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    fn is_metallb(&self) -> bool {
        self.group == "metallb.io"
    }
}

pub const NODES: Kind =
    Kind { group: "", version: "v1", plural: "nodes", kind: "Node", namespaced: false };
pub const SERVICES: Kind =
    Kind { group: "", version: "v1", plural: "services", kind: "Service", namespaced: true };
pub const NAMESPACES: Kind =
    Kind { group: "", version: "v1", plural: "namespaces", kind: "Namespace", namespaced: false };
pub const LEASES: Kind = Kind {
    group: "coordination.k8s.io",
    version: "v1",
    plural: "leases",
    kind: "Lease",
    namespaced: true,
};
pub const EVENTS: Kind = Kind {
    group: "events.k8s.io",
    version: "v1",
    plural: "events",
    kind: "Event",
    namespaced: true,
};
pub const IP_ADDRESS_POOLS: Kind = Kind {
    group: "metallb.io",
    version: "v1beta1",
    plural: "ipaddresspools",
    kind: "IPAddressPool",
    namespaced: true,
};
pub const L2_ADVERTISEMENTS: Kind = Kind {
    group: "metallb.io",
    version: "v1beta1",
    plural: "l2advertisements",
    kind: "L2Advertisement",
    namespaced: true,
};
pub const SERVICE_L2_STATUSES: Kind = Kind {
    group: "metallb.io",
    version: "v1beta1",
    plural: "servicel2statuses",
    kind: "ServiceL2Status",
    namespaced: true,
};

pub const KINDS: [Kind; 8] = [
    NODES,
    SERVICES,
    NAMESPACES,
    LEASES,
    EVENTS,
    IP_ADDRESS_POOLS,
    L2_ADVERTISEMENTS,
    SERVICE_L2_STATUSES,
];

fn kind_of(api_version: &str, kind: &str) -> Option<Kind> {
    KINDS.iter().copied().find(|k| k.api_version() == api_version && k.kind == kind)
}

/// One request the server answered.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path and query as sent.
    pub target: String,
    pub status: u16,
}

/// One write (POST, PUT, PATCH, DELETE) and its answer.
#[derive(Debug, Clone)]
pub struct WriteRecord {
    pub method: String,
    /// The path, without the query.
    pub path: String,
    pub query: BTreeMap<String, String>,
    pub content_type: String,
    /// The body as sent, parsed as JSON (`Value::Null` when empty or not JSON).
    pub body: Value,
    pub status: u16,
    /// The resource written (`None` for a path the server does not serve).
    pub kind: Option<Kind>,
    pub namespace: Option<String>,
    /// The object's name: from the path, else (create) from the body.
    pub name: Option<String>,
    /// Who wrote it: the client's address (each observer of a lab has its own).
    pub peer: Option<SocketAddr>,
}

type Key = (String, String); // (namespace or "", name)

struct Change {
    rv: u64,
    kind: Kind,
    kind_event: &'static str,
    object: Value,
}

struct State {
    /// The last resourceVersion handed out.
    rv: u64,
    /// A watch may resume from this version or later; older gets the 410 `ERROR` event.
    oldest: u64,
    objects: BTreeMap<&'static str, BTreeMap<Key, Value>>,
    history: Vec<Change>,
    writes: Vec<WriteRecord>,
    requests: Vec<Request>,
    metallb: bool,
    /// Bumped by [`ApiServer::expire_watches`]: open watches send the 410 and end.
    expiry: u64,
    /// Bumped by [`ApiServer::bookmark`].
    bookmarks: u64,
    bookmark_interval: Duration,
    /// Open watch streams per plural.
    watching: BTreeMap<&'static str, usize>,
    /// Watch requests ever received per plural.
    watches_started: BTreeMap<&'static str, usize>,
    /// `ERROR` events with code 410 sent, per plural.
    expired_sent: BTreeMap<&'static str, usize>,
    uid: u64,
    /// Writes that get this answer instead (status, reason), for the tests of error paths.
    fail_writes: Option<(u16, String)>,
}

struct Inner {
    state: Mutex<State>,
    changed: Condvar,
    connections: Mutex<BTreeMap<u64, TcpStream>>,
    next_connection: Mutex<u64>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

type Bind = Box<dyn Fn() -> io::Result<TcpListener> + Send + Sync>;

struct Running {
    stop: Arc<AtomicBool>,
    accept: JoinHandle<()>,
}

/// The server. Stops (and closes every connection) when dropped.
pub struct ApiServer {
    inner: Arc<Inner>,
    addr: SocketAddr,
    bind: Bind,
    running: Option<Running>,
    kubeconfig: PathBuf,
}

static NEXT_FILE: AtomicU32 = AtomicU32::new(0);

/// Binds `addr` inside the network namespace `/var/run/netns/NAME` (from a short-lived thread
/// that entered it: the socket stays in that namespace).
pub fn bind_in_netns(netns: &str, addr: SocketAddr) -> io::Result<TcpListener> {
    let path = format!("/var/run/netns/{netns}");
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        let ns = std::fs::File::open(&path)?;
        // SAFETY: setns on a valid namespace descriptor, for this thread only.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        TcpListener::bind(addr)
    })
    .join()
    .map_err(|_| io::Error::other("bind thread panicked"))?
}

impl ApiServer {
    /// A server on 127.0.0.1 (an ephemeral port) of the calling process's namespace.
    pub fn start_local() -> ApiServer {
        let first = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = first.local_addr().unwrap();
        Self::start_with(first, Box::new(move || TcpListener::bind(addr)))
    }

    /// A server on `addr` inside the network namespace named `netns` (port 0: an ephemeral
    /// port, kept across [`restart`](Self::restart)).
    pub fn start_in(netns: &str, addr: SocketAddr) -> ApiServer {
        let first = bind_in_netns(netns, addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let addr = first.local_addr().unwrap();
        let netns = netns.to_owned();
        Self::start_with(first, Box::new(move || bind_in_netns(&netns, addr)))
    }

    fn start_with(first: TcpListener, bind: Bind) -> ApiServer {
        let addr = first.local_addr().unwrap();
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                rv: 1,
                oldest: 0,
                objects: BTreeMap::new(),
                history: Vec::new(),
                writes: Vec::new(),
                requests: Vec::new(),
                metallb: true,
                expiry: 0,
                bookmarks: 0,
                bookmark_interval: Duration::from_secs(2),
                watching: BTreeMap::new(),
                watches_started: BTreeMap::new(),
                expired_sent: BTreeMap::new(),
                uid: 0,
                fail_writes: None,
            }),
            changed: Condvar::new(),
            connections: Mutex::new(BTreeMap::new()),
            next_connection: Mutex::new(0),
        });
        let kubeconfig = std::env::temp_dir().join(format!(
            "arpwatch-kubeconfig-{}-{}.yaml",
            std::process::id(),
            NEXT_FILE.fetch_add(1, Ordering::Relaxed)
        ));
        let mut server = ApiServer { inner, addr, bind, running: None, kubeconfig };
        server.write_kubeconfig();
        server.run(first);
        // The namespaces kube-rs and the tests name.
        for ns in ["default", "arpwatch", "metallb-system", "kube-system"] {
            server
                .apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
        }
        server
    }

    fn run(&mut self, listener: TcpListener) {
        listener.set_nonblocking(true).expect("nonblocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let inner = self.inner.clone();
        let stopping = stop.clone();
        let accept = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.set_nodelay(true);
                        let inner = inner.clone();
                        let id = {
                            let mut next = inner.next_connection.lock().unwrap();
                            *next += 1;
                            *next
                        };
                        if let Ok(clone) = stream.try_clone() {
                            inner.connections.lock().unwrap().insert(id, clone);
                        }
                        std::thread::spawn(move || {
                            let _ = serve_connection(&inner, stream);
                            inner.connections.lock().unwrap().remove(&id);
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        self.running = Some(Running { stop, accept });
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig file naming this server (plain HTTP, a user with no credentials), for
    /// `--kubeconfig`. Removed when the server drops.
    pub fn kubeconfig(&self) -> &str {
        self.kubeconfig.to_str().expect("utf-8 temp path")
    }

    fn write_kubeconfig(&self) {
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n    server: {}\n\
             users:\n- name: lab\n  user: {{}}\ncontexts:\n- name: lab\n  context:\n    \
             cluster: lab\n    user: lab\n    namespace: default\ncurrent-context: lab\n",
            self.url()
        );
        std::fs::write(&self.kubeconfig, config).expect("write kubeconfig");
    }

    /// Stops listening and closes every connection (open watches end without a last chunk, as
    /// when the API server's process dies). The objects are kept.
    pub fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop.store(true, Ordering::Relaxed);
            let _ = running.accept.join();
        }
        self.drop_connections();
    }

    /// Listens again on the same address, with the objects kept (etcd survived) and a fresh
    /// watch cache: a watch resumed from a version older than now gets the 410 `ERROR` event,
    /// as from a restarted kube-apiserver, and the client re-lists.
    pub fn restart(&mut self) {
        assert!(self.running.is_none(), "restart of a running server");
        let listener = {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match (self.bind)() {
                    Ok(l) => break l,
                    Err(e) if Instant::now() < deadline => {
                        let _ = e;
                        std::thread::sleep(Duration::from_millis(100))
                    }
                    Err(e) => panic!("rebind {}: {e}", self.addr),
                }
            }
        };
        {
            let mut state = self.inner.lock();
            state.oldest = state.rv;
            state.history.clear();
        }
        self.run(listener);
    }

    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Closes every open connection (watches and idle keep-alive connections alike) without
    /// stopping the server: the client reconnects and resumes its watches.
    pub fn drop_connections(&self) {
        let connections = std::mem::take(&mut *self.inner.connections.lock().unwrap());
        for stream in connections.values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
        self.inner.changed.notify_all();
    }

    /// Every open watch gets an `ERROR` event with a 410 `Status` and ends; a watch resumed from a
    /// version up to now gets the same. The client must re-list.
    pub fn expire_watches(&self) {
        let mut state = self.inner.lock();
        state.expiry += 1;
        state.rv += 1;
        state.oldest = state.rv;
        state.history.clear();
        drop(state);
        self.inner.changed.notify_all();
    }

    /// Sends a `BOOKMARK` on every open watch that asked for bookmarks.
    pub fn bookmark(&self) {
        self.inner.lock().bookmarks += 1;
        self.inner.changed.notify_all();
    }

    pub fn set_bookmark_interval(&self, every: Duration) {
        self.inner.lock().bookmark_interval = every;
        self.inner.changed.notify_all();
    }

    /// `false`: MetalLB's CRDs are absent (404 on `metallb.io`, no group in discovery).
    pub fn set_metallb(&self, installed: bool) {
        self.inner.lock().metallb = installed;
    }

    /// Every write from now on gets `status` with `reason` (e.g. 403 `Forbidden`), until `None`.
    pub fn fail_writes(&self, answer: Option<(u16, &str)>) {
        self.inner.lock().fail_writes = answer.map(|(s, r)| (s, r.to_owned()));
    }

    /// Creates or replaces an object (by `apiVersion`, `kind`, namespace and name), as another
    /// client of the API (an operator, MetalLB's speaker, the kubelet) would: a new
    /// resourceVersion, `ADDED` or `MODIFIED` to the watchers. Returns the stored object.
    pub fn apply(&self, object: Value) -> Value {
        let kind = kind_of(
            object["apiVersion"].as_str().expect("apiVersion"),
            object["kind"].as_str().expect("kind"),
        )
        .unwrap_or_else(|| panic!("a kind this server does not serve: {object}"));
        let ns = object["metadata"]["namespace"].as_str().unwrap_or("").to_owned();
        assert_eq!(kind.namespaced, !ns.is_empty(), "namespace of {object}");
        let mut state = self.inner.lock();
        let stored = state.store(kind, &ns, object);
        drop(state);
        self.inner.changed.notify_all();
        stored
    }

    /// Deletes an object; `DELETED` to the watchers. Whether it existed.
    pub fn delete(&self, kind: Kind, namespace: &str, name: &str) -> bool {
        let mut state = self.inner.lock();
        let deleted = state.remove(kind, namespace, name).is_some();
        drop(state);
        self.inner.changed.notify_all();
        deleted
    }

    /// The stored object, if any.
    pub fn get(&self, kind: Kind, namespace: &str, name: &str) -> Option<Value> {
        let state = self.inner.lock();
        state.objects.get(kind.plural)?.get(&(namespace.to_owned(), name.to_owned())).cloned()
    }

    /// Every stored object of `kind` (all namespaces), in namespace and name order.
    pub fn list(&self, kind: Kind) -> Vec<Value> {
        let state = self.inner.lock();
        state.objects.get(kind.plural).map(|m| m.values().cloned().collect()).unwrap_or_default()
    }

    /// Every write received so far, in order.
    pub fn writes(&self) -> Vec<WriteRecord> {
        self.inner.lock().writes.clone()
    }

    /// Every request answered so far (method, path and query, status), in order.
    pub fn requests(&self) -> Vec<Request> {
        self.inner.lock().requests.clone()
    }

    /// How many watch streams of `plural` are open now.
    pub fn watching(&self, plural: &str) -> usize {
        self.inner.lock().watching.get(plural).copied().unwrap_or(0)
    }

    /// How many watch requests of `plural` arrived so far.
    pub fn watches_started(&self, plural: &str) -> usize {
        self.inner.lock().watches_started.get(plural).copied().unwrap_or(0)
    }

    /// How many watches of `plural` got the 410 `ERROR` event so far.
    pub fn expired_sent(&self, plural: &str) -> usize {
        self.inner.lock().expired_sent.get(plural).copied().unwrap_or(0)
    }

    /// Waits until a watch of every kind in `plurals` is open; panics after `timeout` with the
    /// requests seen.
    pub fn wait_watching(&self, plurals: &[&str], timeout: Duration) {
        self.wait_until(timeout, &format!("watches of {plurals:?}"), |s| {
            plurals.iter().all(|p| s.watching.get(p).copied().unwrap_or(0) > 0)
        });
    }

    /// Waits until `done` holds of the writes so far; returns them. Panics after `timeout` with
    /// the writes seen.
    pub fn wait_writes(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&[WriteRecord]) -> bool,
    ) -> Vec<WriteRecord> {
        self.wait_until(timeout, what, |s| done(&s.writes));
        self.writes()
    }

    fn wait_until(&self, timeout: Duration, what: &str, done: impl Fn(&State) -> bool) {
        let deadline = Instant::now() + timeout;
        let mut state = self.inner.lock();
        loop {
            if done(&state) {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let requests: Vec<String> = state
                    .requests
                    .iter()
                    .map(|r| format!("{} {} -> {}", r.method, r.target, r.status))
                    .collect();
                let writes: Vec<String> = state
                    .writes
                    .iter()
                    .map(|w| format!("{} {} -> {}: {}", w.method, w.path, w.status, w.body))
                    .collect();
                panic!(
                    "API server: {what} not seen within {timeout:?}\nrequests:\n{}\nwrites:\n{}",
                    requests.join("\n"),
                    writes.join("\n")
                );
            }
            state = self
                .inner
                .changed
                .wait_timeout(state, left.min(Duration::from_millis(100)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.kubeconfig);
    }
}

fn now_rfc3339(micros: bool) -> String {
    let now = time::OffsetDateTime::now_utc();
    let t = if micros {
        now.replace_nanosecond(now.nanosecond() / 1000 * 1000).unwrap()
    } else {
        now.replace_nanosecond(0).unwrap()
    };
    if micros {
        let f = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
        );
        t.format(&f).unwrap()
    } else {
        t.format(&time::format_description::well_known::Rfc3339).unwrap()
    }
}

/// A Lease's `renewTime`/`acquireTime` (a MicroTime) for now.
pub fn micro_time_now() -> String {
    now_rfc3339(true)
}

impl State {
    /// Stores `object` (create or replace) with fresh metadata; records the change.
    fn store(&mut self, kind: Kind, ns: &str, mut object: Value) -> Value {
        self.rv += 1;
        let rv = self.rv;
        let name = object["metadata"]["name"].as_str().expect("metadata.name").to_owned();
        let key = (ns.to_owned(), name);
        let old = self.objects.get(kind.plural).and_then(|m| m.get(&key)).cloned();
        {
            let meta = object
                .as_object_mut()
                .expect("an object")
                .entry("metadata")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("metadata is an object");
            meta.insert("resourceVersion".into(), json!(rv.to_string()));
            if kind.namespaced {
                meta.insert("namespace".into(), json!(ns));
            }
            match &old {
                Some(old) => {
                    for keep in ["uid", "creationTimestamp"] {
                        meta.insert(keep.into(), old["metadata"][keep].clone());
                    }
                    let generation = old["metadata"]["generation"].as_u64().unwrap_or(1);
                    meta.insert("generation".into(), json!(generation + 1));
                }
                None => {
                    self.uid += 1;
                    meta.insert(
                        "uid".into(),
                        json!(format!("00000000-0000-4000-8000-{:012x}", self.uid)),
                    );
                    meta.entry("creationTimestamp").or_insert_with(|| json!(now_rfc3339(false)));
                    meta.insert("generation".into(), json!(1));
                }
            }
        }
        object["apiVersion"] = json!(kind.api_version());
        object["kind"] = json!(kind.kind);
        self.objects.entry(kind.plural).or_default().insert(key, object.clone());
        let kind_event = if old.is_some() { "MODIFIED" } else { "ADDED" };
        self.history.push(Change { rv, kind, kind_event, object: object.clone() });
        object
    }

    fn remove(&mut self, kind: Kind, ns: &str, name: &str) -> Option<Value> {
        let mut object =
            self.objects.get_mut(kind.plural)?.remove(&(ns.to_owned(), name.to_owned()))?;
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.history.push(Change {
            rv: self.rv,
            kind,
            kind_event: "DELETED",
            object: object.clone(),
        });
        Some(object)
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

struct HttpRequest {
    method: String,
    target: String,
    path: String,
    query: BTreeMap<String, String>,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
    peer: Option<SocketAddr>,
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn parse_query(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Reads one request; `None` at a clean end of the connection.
fn read_request(reader: &mut BufReader<TcpStream>) -> io::Result<Option<HttpRequest>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(io::Error::other(format!("bad request line {line:?}")));
    };
    let (method, target) = (method.to_owned(), target.to_owned());
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let mut body = Vec::new();
    if headers.get("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(io::Error::other)?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(len) = headers.get("content-length") {
        let len: usize = len.parse().map_err(io::Error::other)?;
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    Ok(Some(HttpRequest {
        path: path.to_owned(),
        query: parse_query(query),
        method,
        target: target.clone(),
        headers,
        body,
        peer: reader.get_ref().peer_addr().ok(),
    }))
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        410 => "Gone",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

fn write_response(stream: &mut TcpStream, status: u16, body: &Value) -> io::Result<()> {
    let body = serde_json::to_vec(body).unwrap();
    write!(
        stream,
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Cache-Control: no-cache, private\r\n\r\n",
        reason_phrase(status),
        body.len()
    )?;
    stream.write_all(&body)?;
    stream.flush()
}

/// A `Status` object as the API server writes it for a failure.
pub fn status(code: u16, reason: &str, message: &str, details: Option<Value>) -> Value {
    let mut s = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(d) = details {
        s["details"] = d;
    }
    s
}

fn serve_connection(inner: &Arc<Inner>, stream: TcpStream) -> io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    while let Some(req) = read_request(&mut reader)? {
        let close = req.headers.get("connection").is_some_and(|c| c.eq_ignore_ascii_case("close"));
        let watch = req.method == "GET"
            && matches!(req.query.get("watch").map(String::as_str), Some("true" | "1"));
        if watch {
            serve_watch(inner, &mut writer, &req)?;
            // A watch ends its response with the last chunk; the connection may be reused.
        } else {
            let (status, body) = handle(inner, &req);
            inner.lock().requests.push(Request {
                method: req.method.clone(),
                target: req.target.clone(),
                status,
            });
            write_response(&mut writer, status, &body)?;
        }
        if close {
            break;
        }
    }
    Ok(())
}

/// What a path names.
struct Route {
    kind: Kind,
    namespace: Option<String>,
    name: Option<String>,
}

enum Target {
    Route(Route),
    Discovery(Value),
    NotFound,
}

fn route(state: &State, path: &str) -> Target {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segs.as_slice() {
        ["version"] => return Target::Discovery(version()),
        ["api"] => {
            return Target::Discovery(json!({
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}]
            }))
        }
        ["apis"] => return Target::Discovery(api_group_list(state.metallb)),
        ["api", "v1"] => return Target::Discovery(resource_list(state, "", "v1")),
        ["apis", group, version] => {
            if let Some(list) = group_resources(state, group, version) {
                return Target::Discovery(list);
            }
            return Target::NotFound;
        }
        _ => {}
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Target::NotFound,
    };
    let (namespace, plural, name) = match rest {
        ["namespaces", ns, plural] => (Some(*ns), *plural, None),
        ["namespaces", ns, plural, name] | ["namespaces", ns, plural, name, "status"] => {
            (Some(*ns), *plural, Some(*name))
        }
        // A Namespace object itself.
        ["namespaces", name] if group.is_empty() => (None, "namespaces", Some(*name)),
        [plural] => (None, *plural, None),
        [plural, name] | [plural, name, "status"] => (None, *plural, Some(*name)),
        _ => return Target::NotFound,
    };
    let Some(kind) = KINDS
        .iter()
        .copied()
        .find(|k| k.group == group && k.version == version && k.plural == plural)
    else {
        return Target::NotFound;
    };
    if kind.is_metallb() && !state.metallb {
        return Target::NotFound;
    }
    if namespace.is_some() && !kind.namespaced {
        return Target::NotFound;
    }
    Target::Route(Route {
        kind,
        namespace: namespace.map(str::to_owned),
        name: name.map(str::to_owned),
    })
}

fn version() -> Value {
    json!({
        "major": "1", "minor": "33", "gitVersion": "v1.33.0", "gitCommit": "arpwatch-test",
        "gitTreeState": "clean", "buildDate": "2025-04-23T00:00:00Z", "goVersion": "go1.24.2",
        "compiler": "gc", "platform": "linux/amd64"
    })
}

fn api_group_list(metallb: bool) -> Value {
    let group = |name: &str, versions: &[&str], preferred: &str| {
        json!({
            "name": name,
            "versions": versions.iter().map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v})).collect::<Vec<_>>(),
            "preferredVersion": {"groupVersion": format!("{name}/{preferred}"), "version": preferred},
        })
    };
    let mut groups =
        vec![group("coordination.k8s.io", &["v1"], "v1"), group("events.k8s.io", &["v1"], "v1")];
    if metallb {
        // MetalLB serves several versions; the preferred one (v1beta2) holds only bgppeers.
        groups.push(group("metallb.io", &["v1beta2", "v1beta1"], "v1beta2"));
    }
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn group_resources(state: &State, group: &str, version: &str) -> Option<Value> {
    if group == "metallb.io" {
        if !state.metallb {
            return None;
        }
        if version == "v1beta2" {
            return Some(json!({
                "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "metallb.io/v1beta2",
                "resources": [{"name": "bgppeers", "singularName": "bgppeer", "namespaced": true,
                               "kind": "BGPPeer", "verbs": ["get", "list", "watch"]}]
            }));
        }
    }
    let list = resource_list(state, group, version);
    (!list["resources"].as_array().unwrap().is_empty()).then_some(list)
}

fn resource_list(_state: &State, group: &str, version: &str) -> Value {
    let resources: Vec<Value> = KINDS
        .iter()
        .filter(|k| k.group == group && k.version == version)
        .map(|k| {
            json!({
                "name": k.plural, "singularName": k.kind.to_ascii_lowercase(), "namespaced": k.namespaced,
                "kind": k.kind,
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            })
        })
        .collect();
    let gv = if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}

// ---------------------------------------------------------------------------------------------
// Selectors

enum Requirement {
    Eq(String, String),
    NotEq(String, String),
    Exists(String),
    NotExists(String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

fn split_top_level(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0, 0, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out.into_iter().map(str::trim).filter(|p| !p.is_empty()).collect()
}

fn parse_label_selector(s: &str) -> Result<Vec<Requirement>, String> {
    let set = |v: &str| -> Result<Vec<String>, String> {
        let v = v.trim();
        let v = v
            .strip_prefix('(')
            .and_then(|v| v.strip_suffix(')'))
            .ok_or_else(|| format!("bad set {v:?}"))?;
        Ok(v.split(',').map(|x| x.trim().to_owned()).collect())
    };
    split_top_level(s)
        .into_iter()
        .map(|p| {
            if let Some((k, v)) = p.split_once("!=") {
                Ok(Requirement::NotEq(k.trim().into(), v.trim().into()))
            } else if let Some((k, v)) = p.split_once("==") {
                Ok(Requirement::Eq(k.trim().into(), v.trim().into()))
            } else if let Some((k, v)) = p.split_once('=') {
                Ok(Requirement::Eq(k.trim().into(), v.trim().into()))
            } else if let Some((k, v)) = p.split_once(" notin ") {
                Ok(Requirement::NotIn(k.trim().into(), set(v)?))
            } else if let Some((k, v)) = p.split_once(" in ") {
                Ok(Requirement::In(k.trim().into(), set(v)?))
            } else if let Some(k) = p.strip_prefix('!') {
                Ok(Requirement::NotExists(k.trim().into()))
            } else if p.chars().all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c)) {
                Ok(Requirement::Exists(p.into()))
            } else {
                Err(format!("unable to parse requirement: {p:?}"))
            }
        })
        .collect()
}

fn labels_match(object: &Value, selector: &[Requirement]) -> bool {
    let labels = object["metadata"]["labels"].as_object();
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    selector.iter().all(|r| match r {
        Requirement::Eq(k, v) => get(k) == Some(v.as_str()),
        Requirement::NotEq(k, v) => get(k) != Some(v.as_str()),
        Requirement::Exists(k) => get(k).is_some(),
        Requirement::NotExists(k) => get(k).is_none(),
        Requirement::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
        Requirement::NotIn(k, vs) => !get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
    })
}

fn parse_field_selector(s: &str) -> Result<Vec<(String, bool, String)>, String> {
    split_top_level(s)
        .into_iter()
        .map(|p| {
            let (k, eq, v) = if let Some((k, v)) = p.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = p.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = p.split_once('=') {
                (k, true, v)
            } else {
                return Err(format!("invalid field selector {p:?}"));
            };
            match k.trim() {
                "metadata.name" | "metadata.namespace" => {
                    Ok((k.trim().to_owned(), eq, v.trim().to_owned()))
                }
                other => Err(format!("field label not supported: {other}")),
            }
        })
        .collect()
}

fn fields_match(object: &Value, selector: &[(String, bool, String)]) -> bool {
    selector.iter().all(|(k, eq, v)| {
        let field = k.strip_prefix("metadata.").unwrap_or(k);
        let actual = object["metadata"][field].as_str().unwrap_or("");
        (actual == v) == *eq
    })
}

struct Filter {
    namespace: Option<String>,
    labels: Vec<Requirement>,
    fields: Vec<(String, bool, String)>,
}

impl Filter {
    fn new(route: &Route, query: &BTreeMap<String, String>) -> Result<Filter, Value> {
        let bad = |m: String| status(400, "BadRequest", &m, None);
        Ok(Filter {
            namespace: route.namespace.clone(),
            labels: parse_label_selector(query.get("labelSelector").map_or("", |s| s))
                .map_err(bad)?,
            fields: parse_field_selector(query.get("fieldSelector").map_or("", |s| s))
                .map_err(bad)?,
        })
    }

    fn matches(&self, object: &Value) -> bool {
        self.namespace.as_deref().is_none_or(|ns| object["metadata"]["namespace"] == ns)
            && labels_match(object, &self.labels)
            && fields_match(object, &self.fields)
    }
}

// ---------------------------------------------------------------------------------------------
// Requests

fn not_found(route: &Route, name: &str) -> Value {
    let what = if route.kind.group.is_empty() {
        route.kind.plural.to_owned()
    } else {
        format!("{}.{}", route.kind.plural, route.kind.group)
    };
    status(
        404,
        "NotFound",
        &format!("{what} \"{name}\" not found"),
        Some(json!({"name": name, "group": route.kind.group, "kind": route.kind.plural})),
    )
}

fn handle(inner: &Arc<Inner>, req: &HttpRequest) -> (u16, Value) {
    let mut state = inner.lock();
    let target = route(&state, &req.path);
    let write = req.method != "GET";
    let routed = matches!(target, Target::Route(_));
    let (status_code, body) = match target {
        Target::Discovery(body) if !write => (200, body),
        Target::Discovery(_) => (405, status(405, "MethodNotAllowed", "method not allowed", None)),
        Target::NotFound => {
            (404, status(404, "NotFound", "the server could not find the requested resource", None))
        }
        Target::Route(route) => {
            let answer = match &state.fail_writes {
                Some((code, reason)) if write => (
                    *code,
                    status(*code, reason, &format!("{} refused by the test", req.method), None),
                ),
                _ => serve_route(&mut state, &route, req),
            };
            if write {
                record_write(&mut state, Some(&route), req, answer.0);
            }
            answer
        }
    };
    if write && !routed {
        record_write(&mut state, None, req, status_code);
    }
    drop(state);
    if write && status_code < 300 {
        inner.changed.notify_all();
    }
    (status_code, body)
}

fn record_write(state: &mut State, route: Option<&Route>, req: &HttpRequest, status: u16) {
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let name = route
        .and_then(|r| r.name.clone())
        .or_else(|| body["metadata"]["name"].as_str().map(str::to_owned));
    state.writes.push(WriteRecord {
        method: req.method.clone(),
        path: req.path.clone(),
        query: req.query.clone(),
        content_type: req.headers.get("content-type").cloned().unwrap_or_default(),
        body,
        status,
        kind: route.map(|r| r.kind),
        namespace: route.and_then(|r| r.namespace.clone()),
        name,
        peer: req.peer,
    });
}

fn serve_route(state: &mut State, route: &Route, req: &HttpRequest) -> (u16, Value) {
    let ns = route.namespace.clone().unwrap_or_default();
    let kind = route.kind;
    if kind.namespaced && route.name.is_some() && route.namespace.is_none() {
        return (404, status(404, "NotFound", "a namespaced object needs a namespace", None));
    }
    match (req.method.as_str(), &route.name) {
        ("GET", None) => {
            let filter = match Filter::new(route, &req.query) {
                Ok(f) => f,
                Err(s) => return (400, s),
            };
            let items: Vec<Value> = state
                .objects
                .get(kind.plural)
                .map(|m| m.values().filter(|o| filter.matches(o)).cloned().collect())
                .unwrap_or_default();
            (
                200,
                json!({
                    "kind": format!("{}List", kind.kind),
                    "apiVersion": kind.api_version(),
                    "metadata": {"resourceVersion": state.rv.to_string()},
                    "items": items,
                }),
            )
        }
        ("GET", Some(name)) => {
            match state.objects.get(kind.plural).and_then(|m| m.get(&(ns.clone(), name.clone()))) {
                Some(o) => (200, o.clone()),
                None => (404, not_found(route, name)),
            }
        }
        ("POST", None) => {
            let Ok(mut object) = serde_json::from_slice::<Value>(&req.body) else {
                return (400, status(400, "BadRequest", "the body is not JSON", None));
            };
            if let Err(s) = check_type(&object, kind) {
                return (400, s);
            }
            if kind.namespaced {
                let body_ns = object["metadata"]["namespace"].as_str().unwrap_or(&ns);
                if body_ns != ns {
                    return (400, status(400, "BadRequest", "the namespace of the provided object does not match the namespace sent on the request", None));
                }
            }
            if object["metadata"]["name"].as_str().unwrap_or("").is_empty() {
                match object["metadata"]["generateName"].as_str() {
                    Some(prefix) => {
                        let name = format!("{prefix}{:05x}", state.rv % 0xfffff);
                        object["metadata"]["name"] = json!(name);
                    }
                    None => {
                        return (
                            422,
                            status(422, "Invalid", "name or generateName is required", None),
                        )
                    }
                }
            }
            let name = object["metadata"]["name"].as_str().unwrap().to_owned();
            let exists = state
                .objects
                .get(kind.plural)
                .is_some_and(|m| m.contains_key(&(ns.clone(), name.clone())));
            if exists {
                return (
                    409,
                    status(
                        409,
                        "AlreadyExists",
                        &format!("{}.{} \"{name}\" already exists", kind.plural, kind.group),
                        Some(json!({"name": name, "group": kind.group, "kind": kind.plural})),
                    ),
                );
            }
            if let Some(o) = object["metadata"].as_object_mut() {
                o.remove("resourceVersion");
            }
            (201, state.store(kind, &ns, object))
        }
        ("PUT", Some(name)) => {
            let Ok(object) = serde_json::from_slice::<Value>(&req.body) else {
                return (400, status(400, "BadRequest", "the body is not JSON", None));
            };
            if let Err(s) = check_type(&object, kind) {
                return (400, s);
            }
            if object["metadata"]["name"] != name.as_str() {
                return (
                    400,
                    status(
                        400,
                        "BadRequest",
                        "the name of the object does not match the name on the URL",
                        None,
                    ),
                );
            }
            let Some(old) =
                state.objects.get(kind.plural).and_then(|m| m.get(&(ns.clone(), name.clone())))
            else {
                return (404, not_found(route, name));
            };
            if let Some(rv) = object["metadata"]["resourceVersion"].as_str() {
                if !rv.is_empty() && old["metadata"]["resourceVersion"] != rv {
                    return (409, conflict(kind, name));
                }
            }
            (200, state.store(kind, &ns, object))
        }
        ("PATCH", Some(name)) => patch(state, route, req, &ns, name),
        ("DELETE", Some(name)) => match state.remove(kind, &ns, name) {
            Some(o) => (200, o),
            None => (404, not_found(route, name)),
        },
        _ => (405, status(405, "MethodNotAllowed", "method not allowed", None)),
    }
}

fn conflict(kind: Kind, name: &str) -> Value {
    status(
        409,
        "Conflict",
        &format!(
            "Operation cannot be fulfilled on {}.{} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
            kind.plural, kind.group
        ),
        Some(json!({"name": name, "group": kind.group, "kind": kind.plural})),
    )
}

fn check_type(object: &Value, kind: Kind) -> Result<(), Value> {
    let ok = object["apiVersion"] == kind.api_version().as_str() && object["kind"] == kind.kind;
    if ok || (object.get("apiVersion").is_none() && object.get("kind").is_none()) {
        Ok(())
    } else {
        Err(status(
            400,
            "BadRequest",
            &format!(
                "the API version in the data ({}) does not match the expected API version ({}) or kind {}",
                object["apiVersion"], kind.api_version(), kind.kind
            ),
            None,
        ))
    }
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = Value::Object(Map::new());
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn pointer_parent<'a>(doc: &'a mut Value, path: &str) -> Option<(&'a mut Value, String)> {
    let (parent, last) = path.rsplit_once('/')?;
    let last = last.replace("~1", "/").replace("~0", "~");
    Some((doc.pointer_mut(parent)?, last))
}

/// RFC 6902 JSON patch (add, remove, replace, test).
fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), String> {
    for op in ops.as_array().ok_or("a JSON patch is a list")? {
        let path = op["path"].as_str().ok_or("op without path")?;
        match op["op"].as_str() {
            Some("test") => {
                if doc.pointer(path) != Some(&op["value"]) {
                    return Err(format!("test failed at {path}"));
                }
            }
            Some(kind @ ("add" | "replace" | "remove")) => {
                let (parent, last) =
                    pointer_parent(doc, path).ok_or(format!("no parent of {path}"))?;
                match parent {
                    Value::Object(m) => {
                        if kind == "remove" {
                            m.remove(&last).ok_or(format!("nothing at {path}"))?;
                        } else {
                            if kind == "replace" && !m.contains_key(&last) {
                                return Err(format!("nothing at {path}"));
                            }
                            m.insert(last, op["value"].clone());
                        }
                    }
                    Value::Array(a) => {
                        let i = if last == "-" {
                            a.len()
                        } else {
                            last.parse().map_err(|_| format!("bad index {last}"))?
                        };
                        match kind {
                            "add" if i <= a.len() => a.insert(i, op["value"].clone()),
                            "replace" if i < a.len() => a[i] = op["value"].clone(),
                            "remove" if i < a.len() => {
                                a.remove(i);
                            }
                            _ => return Err(format!("index {i} out of range at {path}")),
                        }
                    }
                    _ => return Err(format!("{path}: parent is not a container")),
                }
            }
            other => return Err(format!("unsupported op {other:?}")),
        }
    }
    Ok(())
}

fn patch(
    state: &mut State,
    route: &Route,
    req: &HttpRequest,
    ns: &str,
    name: &str,
) -> (u16, Value) {
    let kind = route.kind;
    let content_type = req
        .headers
        .get("content-type")
        .map(|c| c.split(';').next().unwrap_or("").trim().to_owned())
        .unwrap_or_default();
    let Ok(body) = serde_json::from_slice::<Value>(&req.body) else {
        return (400, status(400, "BadRequest", "the patch is not JSON (this test server reads JSON only, also for apply-patch+yaml)", None));
    };
    let existing = state
        .objects
        .get(kind.plural)
        .and_then(|m| m.get(&(ns.to_owned(), name.to_owned())))
        .cloned();
    let mut object = match (&existing, content_type.as_str()) {
        (Some(o), _) => o.clone(),
        (None, "application/apply-patch+yaml") => json!({"metadata": {"name": name}}),
        (None, _) => return (404, not_found(route, name)),
    };
    match content_type.as_str() {
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
            merge_patch(&mut object, &body);
        }
        "application/json-patch+json" => {
            if let Err(e) = json_patch(&mut object, &body) {
                return (422, status(422, "Invalid", &e, None));
            }
        }
        "application/apply-patch+yaml" => {
            if req.query.get("fieldManager").is_none_or(|m| m.is_empty()) {
                return (400, status(400, "BadRequest", "PATCH, application/apply-patch+yaml requests must include the fieldManager parameter", None));
            }
            if let Err(s) = check_type(&body, kind) {
                return (400, s);
            }
            if body["metadata"]["name"].as_str().is_some_and(|n| n != name) {
                return (
                    400,
                    status(
                        400,
                        "BadRequest",
                        "the name of the object does not match the name on the URL",
                        None,
                    ),
                );
            }
            // Server-side apply, approximated: the applied fields are merged in (a field the
            // manager stopped applying is not removed).
            let mut applied = body.clone();
            if let Some(m) = applied["metadata"].as_object_mut() {
                m.remove("resourceVersion");
            }
            merge_patch(&mut object, &applied);
        }
        other => {
            return (415, status(415, "UnsupportedMediaType", &format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other:?})"), None));
        }
    }
    if let (Some(old), Some(rv)) = (&existing, body["metadata"]["resourceVersion"].as_str()) {
        if old["metadata"]["resourceVersion"] != rv {
            return (409, conflict(kind, name));
        }
    }
    object["metadata"]["name"] = json!(name);
    let code = if existing.is_some() { 200 } else { 201 };
    (code, state.store(kind, ns, object))
}

// ---------------------------------------------------------------------------------------------
// Watch

fn write_chunk(stream: &mut TcpStream, event: &Value) -> io::Result<()> {
    let mut line = serde_json::to_vec(event).unwrap();
    line.push(b'\n');
    write!(stream, "{:x}\r\n", line.len())?;
    stream.write_all(&line)?;
    stream.write_all(b"\r\n")?;
    stream.flush()
}

fn end_chunks(stream: &mut TcpStream) -> io::Result<()> {
    stream.write_all(b"0\r\n\r\n")?;
    stream.flush()
}

fn serve_watch(inner: &Arc<Inner>, stream: &mut TcpStream, req: &HttpRequest) -> io::Result<()> {
    let mut state = inner.lock();
    let target = route(&state, &req.path);
    let route = match target {
        Target::Route(r) if r.name.is_none() => r,
        _ => {
            state.requests.push(Request {
                method: "GET".into(),
                target: req.target.clone(),
                status: 404,
            });
            drop(state);
            return write_response(
                stream,
                404,
                &status(404, "NotFound", "the server could not find the requested resource", None),
            );
        }
    };
    let filter = match Filter::new(&route, &req.query) {
        Ok(f) => f,
        Err(s) => {
            state.requests.push(Request {
                method: "GET".into(),
                target: req.target.clone(),
                status: 400,
            });
            drop(state);
            return write_response(stream, 400, &s);
        }
    };
    let kind = route.kind;
    let bookmarks = req.query.get("allowWatchBookmarks").is_some_and(|v| v == "true");
    let timeout = req
        .query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    let deadline = Instant::now() + timeout;
    let from = req.query.get("resourceVersion").cloned().unwrap_or_default();
    state.requests.push(Request { method: "GET".into(), target: req.target.clone(), status: 200 });
    *state.watches_started.entry(kind.plural).or_default() += 1;

    // What to send first.
    let mut pending: Vec<Value> = Vec::new();
    let mut sent_rv;
    let mut expired = false;
    if from.is_empty() || from == "0" {
        // "Any version": the current state as synthetic ADDED events.
        for o in state
            .objects
            .get(kind.plural)
            .map(|m| m.values().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            if filter.matches(o) {
                pending.push(json!({"type": "ADDED", "object": o}));
            }
        }
        sent_rv = state.rv;
    } else {
        let Ok(rv) = from.parse::<u64>() else {
            drop(state);
            return write_response(
                stream,
                400,
                &status(400, "BadRequest", &format!("invalid resource version {from:?}"), None),
            );
        };
        if rv < state.oldest {
            expired = true;
        }
        sent_rv = rv;
    }
    let expiry = state.expiry;
    let bookmark_seen = state.bookmarks;
    *state.watching.entry(kind.plural).or_default() += 1;
    drop(state);
    inner.changed.notify_all();

    let result = (|| -> io::Result<()> {
        write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\
             Cache-Control: no-cache, private\r\n\r\n"
        )?;
        stream.flush()?;
        if expired {
            write_chunk(stream, &json!({"type": "ERROR", "object": gone(&from)}))?;
            *inner.lock().expired_sent.entry(kind.plural).or_default() += 1;
            return end_chunks(stream);
        }
        for event in pending.drain(..) {
            write_chunk(stream, &event)?;
        }
        let mut bookmark_seen = bookmark_seen;
        let mut last_bookmark = Instant::now();
        loop {
            let mut state = inner.lock();
            if state.expiry != expiry {
                *state.expired_sent.entry(kind.plural).or_default() += 1;
                drop(state);
                write_chunk(
                    stream,
                    &json!({"type": "ERROR", "object": gone(&sent_rv.to_string())}),
                )?;
                return end_chunks(stream);
            }
            for change in state.history.iter().filter(|c| c.rv > sent_rv && c.kind == kind) {
                if filter.matches(&change.object) {
                    pending.push(json!({"type": change.kind_event, "object": change.object}));
                }
            }
            sent_rv = sent_rv.max(state.history.last().map_or(sent_rv, |c| c.rv));
            let interval = state.bookmark_interval;
            let want_bookmark = bookmarks
                && (state.bookmarks != bookmark_seen || last_bookmark.elapsed() >= interval);
            let bookmark_rv = state.rv;
            bookmark_seen = state.bookmarks;
            if pending.is_empty() && !want_bookmark {
                let now = Instant::now();
                if now >= deadline {
                    drop(state);
                    return end_chunks(stream);
                }
                let wake = deadline.min(last_bookmark + interval).saturating_duration_since(now);
                let _ = inner
                    .changed
                    .wait_timeout(
                        state,
                        wake.clamp(Duration::from_millis(5), Duration::from_millis(200)),
                    )
                    .unwrap_or_else(|e| e.into_inner());
                // Wakes on every change and every dropped connection: a write to a closed
                // socket fails below and ends this thread.
                if connection_closed(stream) {
                    return Err(io::ErrorKind::ConnectionAborted.into());
                }
                continue;
            }
            drop(state);
            for event in pending.drain(..) {
                write_chunk(stream, &event)?;
            }
            if want_bookmark {
                write_chunk(
                    stream,
                    &json!({"type": "BOOKMARK", "object": {
                        "kind": kind.kind, "apiVersion": kind.api_version(),
                        "metadata": {"resourceVersion": bookmark_rv.to_string()}
                    }}),
                )?;
                sent_rv = sent_rv.max(bookmark_rv);
                last_bookmark = Instant::now();
            }
        }
    })();
    let mut state = inner.lock();
    if let Some(n) = state.watching.get_mut(kind.plural) {
        *n = n.saturating_sub(1);
    }
    drop(state);
    inner.changed.notify_all();
    result
}

/// Whether the connection is closed: by the client, or by the test
/// ([`ApiServer::drop_connections`] shuts it down). A non-blocking peek reads 0 bytes then.
fn connection_closed(stream: &TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut byte = 0u8;
    // SAFETY: a 1-byte peek into a local buffer on a valid socket.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            (&mut byte as *mut u8).cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n == 0
}

fn gone(from: &str) -> Value {
    status(410, "Expired", &format!("too old resource version: {from}"), None)
}
