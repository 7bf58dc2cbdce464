//! The link watcher against the real kernel: a thread enters a fresh network namespace and runs a
//! `LinkWatcher` there, while the test creates, renames, changes, moves and deletes veth pairs in
//! that namespace with `ip -n`. Needs root; fails, never skips, without it.

mod support;

use arpwatch::{LinkChange, LinkInfo, LinkWatcher, LocalMacs};
use arpwatch_core::testkit::frames::mac_bytes;
use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::AsRawFd;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use support::lab::Netns;

/// How long one expected change may take to arrive.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the watcher thread tells the test.
enum Report {
    Started { links: Vec<LinkInfo>, local_macs: Arc<LocalMacs> },
    Change { change: LinkChange, local_macs: Arc<LocalMacs>, resyncs: u64 },
    Failed(String),
}

/// A thread inside a namespace, running a watcher on a current-thread runtime and reporting every
/// change. Dropping it stops and joins the thread.
struct WatcherThread {
    reports: Receiver<Report>,
    /// While held, the thread does not drive its runtime, so nobody reads the netlink socket.
    hold: Option<Sender<()>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl WatcherThread {
    /// Starts the watcher in `ns` and returns its initial links and local MACs. With `held`, the
    /// runtime stays idle after the start until [`release`](Self::release).
    fn start(ns: &Netns, held: bool) -> (WatcherThread, Vec<LinkInfo>, Arc<LocalMacs>) {
        let netns = ns.name.clone();
        let (report, reports) = channel();
        let (hold, held_until) = channel::<()>();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            watch_in(&netns, report, held.then_some(held_until), stopped)
        });
        let watcher =
            WatcherThread { reports, hold: Some(hold), stop: Some(stop), thread: Some(thread) };
        match watcher.reports.recv_timeout(CHANGE_TIMEOUT) {
            Ok(Report::Started { links, local_macs }) => (watcher, links, local_macs),
            Ok(Report::Failed(err)) => panic!("the watcher did not start: {err}"),
            Ok(Report::Change { change, .. }) => panic!("a change before the start: {change:?}"),
            Err(err) => panic!("the watcher did not start: {err}"),
        }
    }

    fn release(&mut self) {
        self.hold.take();
    }

    /// The next change, its local-MAC snapshot and the resync count at that point.
    fn next(&self) -> (LinkChange, Arc<LocalMacs>, u64) {
        match self.reports.recv_timeout(CHANGE_TIMEOUT) {
            Ok(Report::Change { change, local_macs, resyncs }) => (change, local_macs, resyncs),
            Ok(Report::Failed(err)) => panic!("the watcher failed: {err}"),
            Ok(Report::Started { .. }) => unreachable!("started twice"),
            Err(RecvTimeoutError::Timeout) => panic!("no link change within {CHANGE_TIMEOUT:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("the watcher thread ended"),
        }
    }

    /// The next `n` changes, and the local MACs after the last of them.
    fn changes(&self, n: usize) -> (Vec<LinkChange>, Arc<LocalMacs>) {
        let mut changes = Vec::with_capacity(n);
        let mut macs = None;
        for _ in 0..n {
            let (change, local_macs, _) = self.next();
            changes.push(change);
            macs = Some(local_macs);
        }
        (changes, macs.expect("n > 0"))
    }
}

impl Drop for WatcherThread {
    fn drop(&mut self) {
        self.hold.take();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A panic in the thread has already shown up as a closed channel in the test.
            let _ = thread.join();
        }
    }
}

fn watch_in(
    netns: &str,
    report: Sender<Report>,
    held_until: Option<Receiver<()>>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let ns = std::fs::File::open(format!("/run/netns/{netns}")).expect("the namespace file");
    // SAFETY: `ns` is an open network-namespace file; setns changes only this thread's namespace.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns into {netns}: {}", std::io::Error::last_os_error());
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let mut watcher = match runtime.block_on(LinkWatcher::start()) {
        Ok(watcher) => watcher,
        Err(err) => {
            let _ = report.send(Report::Failed(format!("{err:#}")));
            return;
        }
    };
    let started = Report::Started {
        links: watcher.links().cloned().collect(),
        local_macs: watcher.local_macs(),
    };
    if report.send(started).is_err() {
        return;
    }
    if let Some(held_until) = held_until {
        // Returns when the test releases the hold or goes away.
        let _ = held_until.recv();
    }
    runtime.block_on(async {
        loop {
            tokio::select! {
                change = watcher.next_change() => {
                    let report_sent = match change {
                        Ok(change) => report.send(Report::Change {
                            change,
                            local_macs: watcher.local_macs(),
                            resyncs: watcher.resyncs(),
                        }),
                        Err(err) => {
                            let _ = report.send(Report::Failed(format!("{err:#}")));
                            return;
                        }
                    };
                    if report_sent.is_err() {
                        return;
                    }
                }
                _ = &mut stopped => return,
            }
        }
    });
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

/// The namespace's links as `ip` sees them: ifindex -> (name, MAC), any byte of a name that is
/// not UTF-8 replaced by U+FFFD.
fn kernel_links(ns: &Netns) -> BTreeMap<u32, (String, String)> {
    let out = ns.ip(&["-j", "link", "show"]);
    let links: serde_json::Value =
        serde_json::from_str(&String::from_utf8_lossy(&out.stdout)).expect("ip -j output");
    links
        .as_array()
        .expect("a list of links")
        .iter()
        .map(|link| {
            let ifindex = link["ifindex"].as_u64().expect("ifindex") as u32;
            let name = link["ifname"].as_str().expect("ifname").to_owned();
            let mac = link["address"].as_str().unwrap_or_default().to_owned();
            (ifindex, (name, mac))
        })
        .collect()
}

/// The (ifindex, name) pairs these changes added, which must be all they are.
fn added(changes: &[LinkChange]) -> BTreeSet<(u32, String)> {
    changes
        .iter()
        .map(|change| match change {
            LinkChange::Added(link) => (link.ifindex, link.name.clone()),
            other => panic!("expected an addition, got {other:?} among {changes:?}"),
        })
        .collect()
}

/// The (ifindex, name) pairs these changes removed, which must be all they are.
fn removed(changes: &[LinkChange]) -> BTreeSet<(u32, String)> {
    changes
        .iter()
        .map(|change| match change {
            LinkChange::Removed { ifindex, name } => (*ifindex, name.clone()),
            other => panic!("expected a removal, got {other:?} among {changes:?}"),
        })
        .collect()
}

fn pair(ns: &Netns, a: &str, b: &str) -> BTreeSet<(u32, String)> {
    [a, b].into_iter().map(|name| (ns.ifindex(name) as u32, name.to_owned())).collect()
}

#[test]
fn start_lists_the_namespace_links_and_macs() {
    let ns = Netns::new("links");
    ns.ip(&["link", "add", "eth0", "type", "veth", "peer", "name", "eth1"]);
    ns.ip(&["link", "add", "br0", "type", "bridge"]);
    let kernel = kernel_links(&ns);

    let (_watcher, links, local_macs) = WatcherThread::start(&ns, false);
    let seen: BTreeMap<u32, (String, String)> = links
        .iter()
        .map(|link| (link.ifindex, (link.name.clone(), link.mac.map(mac_text).unwrap_or_default())))
        .collect();
    assert_eq!(seen, kernel);
    let lo = links.iter().find(|link| link.name == "lo").expect("loopback");
    assert!(lo.loopback && lo.up, "{lo:?}");
    assert!(
        links.iter().filter(|link| link.name != "lo").all(|link| !link.loopback && !link.up),
        "{links:?}"
    );
    for name in ["eth0", "eth1", "br0"] {
        assert_eq!(local_macs.owners(&mac_bytes(&ns.mac(name))), [name]);
    }
    assert!(!local_macs.is_local(&[0; 6]));
}

/// Fifty rounds of churn; every change arrives in order, with the kernel's ifindexes, and nothing
/// else does: flag changes, MAC changes and bridge membership are no changes, a recreated name
/// gets a new ifindex, an explicitly reused ifindex is a new link and never a rename.
#[test]
fn churn_is_reported_change_by_change() {
    const ROUNDS: usize = 50;
    let ns = Netns::new("links");
    let elsewhere = Netns::new("links");
    ns.ip(&["link", "add", "br0", "type", "bridge"]);
    let (watcher, _, _) = WatcherThread::start(&ns, false);
    let deadline = Instant::now() + Duration::from_secs(240);

    for round in 0..ROUNDS {
        assert!(Instant::now() < deadline, "round {round}: the churn takes too long");
        let [a, b, c, x, y] = ["a", "b", "c", "x", "y"].map(|prefix| format!("{prefix}{round}"));

        ns.ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
        let (changes, macs) = watcher.changes(2);
        let first = pair(&ns, &a, &b);
        assert_eq!(added(&changes), first, "round {round}");
        for change in &changes {
            let LinkChange::Added(link) = change else { unreachable!() };
            let mac = mac_bytes(&ns.mac(&link.name));
            assert_eq!(link.mac, Some(mac), "{link:?}");
            assert_eq!(macs.owners(&mac), [link.name.as_str()]);
        }
        let a_index = ns.ifindex(&a) as u32;

        // None of these is an addition, rename or removal.
        ns.ip(&["link", "set", &a, "master", "br0"]);
        ns.ip(&["link", "set", &a, "nomaster"]);
        let new_mac = format!("02:00:00:00:{round:02x}:01");
        ns.ip(&["link", "set", &a, "address", &new_mac]);
        ns.ip(&["link", "set", &a, "name", &c]);
        let (changes, macs) = watcher.changes(1);
        match &changes[0] {
            LinkChange::Renamed { ifindex, old, new } => {
                assert_eq!(
                    (*ifindex, old.as_str(), new.ifindex, new.name.as_str()),
                    (a_index, a.as_str(), a_index, c.as_str())
                );
                assert_eq!(new.mac, Some(mac_bytes(&new_mac)), "the address set before the rename");
            }
            other => panic!("round {round}: expected {a} renamed to {c}, got {other:?}"),
        }
        assert_eq!(macs.owners(&mac_bytes(&new_mac)), [c.as_str()]);
        ns.ip(&["link", "set", &c, "up"]);
        ns.ip(&["link", "set", &c, "down"]);

        ns.ip(&["link", "del", &c]);
        let (changes, macs) = watcher.changes(2);
        let renamed_pair: BTreeSet<_> =
            first.iter().map(|(i, n)| (*i, if *n == a { c.clone() } else { n.clone() })).collect();
        assert_eq!(removed(&changes), renamed_pair, "round {round}");
        assert!(!macs.is_local(&mac_bytes(&new_mac)));

        // The same names again: new links with new ifindexes. Moving one end to another
        // namespace removes it here.
        ns.ip(&["link", "add", &a, "type", "veth", "peer", "name", &b]);
        let (changes, _) = watcher.changes(2);
        let second = pair(&ns, &a, &b);
        assert_eq!(added(&changes), second, "round {round}");
        assert!(
            second.iter().all(|(i, _)| first.iter().all(|(j, _)| i != j)),
            "{first:?} then {second:?}"
        );
        ns.ip(&["link", "set", &b, "netns", &elsewhere.name]);
        let (changes, _) = watcher.changes(1);
        assert_eq!(removed(&changes), second.iter().filter(|(_, n)| *n == b).cloned().collect());
        ns.ip(&["link", "del", &a]);
        let (changes, _) = watcher.changes(1);
        assert_eq!(removed(&changes), second.iter().filter(|(_, n)| *n == a).cloned().collect());

        // Every round puts a new pair on ifindexes 4000 and 4001, which the last round's pair had.
        ns.ip(&[
            "link", "add", &x, "index", "4000", "type", "veth", "peer", "name", &y, "index", "4001",
        ]);
        let (changes, _) = watcher.changes(2);
        assert_eq!(
            added(&changes),
            BTreeSet::from([(4000, x.clone()), (4001, y.clone())]),
            "round {round}"
        );
        ns.ip(&["link", "del", &x]);
        let (changes, _) = watcher.changes(2);
        assert_eq!(
            removed(&changes),
            BTreeSet::from([(4000, x.clone()), (4001, y.clone())]),
            "round {round}"
        );
    }

    // Nothing spurious is queued behind the last round: the next change is the sentinel's.
    ns.ip(&["link", "add", "end0", "type", "veth", "peer", "name", "end1"]);
    let (changes, _) = watcher.changes(2);
    assert_eq!(added(&changes), pair(&ns, "end0", "end1"));
}

/// With nobody reading the socket, a burst of changes overflows its buffer; the watcher notices
/// the loss, lists the links again, and reports changes that take its table to the kernel's.
#[test]
fn lost_notifications_are_recovered_by_a_resync() {
    const PAIRS: usize = 100;
    let ns = Netns::new("links");
    let (mut watcher, links, _) = WatcherThread::start(&ns, true);
    let mut model: BTreeMap<u32, String> =
        links.into_iter().map(|link| (link.ifindex, link.name)).collect();

    for i in 0..PAIRS {
        ns.ip(&["link", "add", &format!("p{i}"), "type", "veth", "peer", "name", &format!("q{i}")]);
    }
    for i in (0..PAIRS).step_by(3) {
        ns.ip(&["link", "set", &format!("p{i}"), "name", &format!("r{i}")]);
    }
    for i in (1..PAIRS).step_by(3) {
        ns.ip(&["link", "del", &format!("p{i}")]);
    }
    let expected: BTreeMap<u32, String> =
        kernel_links(&ns).into_iter().map(|(i, (name, _))| (i, name)).collect();
    watcher.release();

    // Bounded: at most one change per link that ever existed, twice over.
    let mut resyncs = 0;
    for _ in 0..4 * PAIRS + 10 {
        if model == expected {
            break;
        }
        let (change, _, count) = watcher.next();
        resyncs = count;
        apply(&mut model, change);
    }
    assert_eq!(model, expected, "the changes did not bring the watcher to the kernel's links");
    assert!(resyncs >= 1, "the burst did not overflow the socket: the test proves nothing");

    // Whatever came after the resync is behind us once the sentinel's changes arrive.
    ns.ip(&["link", "add", "end0", "type", "veth", "peer", "name", "end1"]);
    let sentinel = pair(&ns, "end0", "end1");
    for _ in 0..4 * PAIRS + 10 {
        if sentinel.iter().all(|(i, n)| model.get(i) == Some(n)) {
            break;
        }
        apply(&mut model, watcher.next().0);
    }
    let expected: BTreeMap<u32, String> =
        kernel_links(&ns).into_iter().map(|(i, (name, _))| (i, name)).collect();
    assert_eq!(model, expected);
}

/// Applies a change to a model of the links, checking that it follows from the model as it stands.
fn apply(model: &mut BTreeMap<u32, String>, change: LinkChange) {
    match change {
        LinkChange::Added(link) => {
            assert!(!model.contains_key(&link.ifindex), "{link:?} added over {model:?}");
            model.insert(link.ifindex, link.name);
        }
        LinkChange::Renamed { ifindex, old, new } => {
            assert_eq!(ifindex, new.ifindex);
            assert_eq!(model.insert(ifindex, new.name), Some(old), "a rename from another name");
        }
        LinkChange::Removed { ifindex, name } => {
            assert_eq!(model.remove(&ifindex), Some(name), "a removal of another link");
        }
    }
}

/// `ip -n NS ARGS...` with arguments that need not be UTF-8 (interface names).
fn ip_bytes(ns: &Netns, args: &[&[u8]]) {
    use std::os::unix::ffi::OsStrExt;
    let out = std::process::Command::new("ip")
        .args(["-n", &ns.name])
        .args(args.iter().map(|a| std::ffi::OsStr::from_bytes(a)))
        .output()
        .expect("run ip");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Names that are not UTF-8 (which the rtnetlink crate refuses: such a link used to be dropped
/// with a hex dump in the log) are listed, followed and written escaped.
#[test]
fn a_name_that_is_not_utf8_is_listed_and_followed_escaped() {
    use arpwatch_core::ifname;
    let ns = Netns::new("links");
    ip_bytes(&ns, &[b"link", b"add", b"w\xff", b"type", b"veth", b"peer", b"name", b"w1"]);
    let (watcher, links, local_macs) = WatcherThread::start(&ns, false);
    let kernel: BTreeMap<u32, String> =
        kernel_links(&ns).into_iter().map(|(i, (name, _))| (i, name)).collect();
    let lossy = |written: &str| {
        String::from_utf8_lossy(&ifname::unescape(written).expect("a written name")).into_owned()
    };
    let seen: BTreeMap<u32, String> =
        links.iter().map(|link| (link.ifindex, lossy(&link.name))).collect();
    assert_eq!(seen, kernel);
    let weird = links.iter().find(|link| link.name == r"w\xff").expect("the link is listed");
    assert_eq!(local_macs.owners(&weird.mac.expect("a veth has a MAC")), [r"w\xff"]);

    let w1 = links.iter().find(|link| link.name == "w1").expect("its peer").ifindex;
    ip_bytes(&ns, &[b"link", b"set", b"w1", b"name", b"\xfe\\z"]);
    match watcher.next().0 {
        LinkChange::Renamed { ifindex, old, new } => {
            assert_eq!((ifindex, old.as_str(), new.name.as_str()), (w1, "w1", r"\xfe\\z"));
        }
        other => panic!("expected the rename, got {other:?}"),
    }
    ip_bytes(&ns, &[b"link", b"del", b"w\xff"]);
    let (changes, _) = watcher.changes(2);
    assert_eq!(
        removed(&changes),
        [(weird.ifindex, r"w\xff".to_owned()), (w1, r"\xfe\\z".to_owned())].into()
    );
}
