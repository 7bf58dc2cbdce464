//! The test API server of `support/apiserver.rs` on its own, driven by a plain HTTP/1.1 client
//! written here: lists, watch streams, bookmarks, the 410 that forces a re-list, dropped
//! connections, a stop and a restart, writes. The cluster labs rely on it, so it is checked
//! without arpwatch. Needs no privilege (it listens on 127.0.0.1).

#[path = "support/apiserver.rs"]
#[allow(dead_code)]
mod apiserver;

use apiserver::{ApiServer, EVENTS, LEASES, NODES};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One request on a fresh connection (`Connection: close`): status and JSON body.
fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    content_type: &str,
    body: &Value,
) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let body = if body.is_null() { Vec::new() } else { serde_json::to_vec(body).unwrap() };
    write!(
        stream,
        "{method} {target} HTTP/1.1\r\nHost: lab\r\nAccept: application/json\r\n\
         Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(&body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a head");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(head.to_ascii_lowercase().contains("content-length:"), "{head}");
    (status, serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}")))
}

fn get(addr: SocketAddr, target: &str) -> (u16, Value) {
    request(addr, "GET", target, "application/json", &Value::Null)
}

/// A watch response read as it streams.
struct Watch {
    reader: BufReader<TcpStream>,
    status: u16,
    ended: bool,
}

impl Watch {
    fn open(addr: SocketAddr, target: &str) -> Watch {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut writer = stream.try_clone().unwrap();
        write!(writer, "GET {target} HTTP/1.1\r\nHost: lab\r\nAccept: application/json\r\n\r\n")
            .unwrap();
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let status = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut chunked = false;
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            chunked |= line.to_ascii_lowercase().starts_with("transfer-encoding: chunked");
        }
        assert!(chunked || status != 200, "a watch streams chunked");
        Watch { reader, status, ended: false }
    }

    /// The next event; `None` at the last chunk (the server ended the stream). Panics on a
    /// connection closed without it, or after 5 s.
    fn next(&mut self) -> Option<Value> {
        if self.ended {
            return None;
        }
        let mut size = String::new();
        let n = self.reader.read_line(&mut size).expect("a chunk within 5 s");
        assert!(n > 0, "connection closed without the last chunk");
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        let mut chunk = vec![0; size + 2];
        self.reader.read_exact(&mut chunk).unwrap();
        if size == 0 {
            self.ended = true;
            return None;
        }
        let line = std::str::from_utf8(&chunk[..size]).unwrap();
        assert!(line.ends_with('\n'), "one event per line: {line:?}");
        Some(serde_json::from_str(line.trim_end()).unwrap())
    }

    /// Whether the connection ends without the last chunk (dropped) within 5 s.
    fn dropped(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => rest.is_empty(),
            Err(_) => true,
        }
    }
}

fn node(name: &str, ip: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}]}
    })
}

fn rv(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"].as_str().expect("resourceVersion").parse().unwrap()
}

#[test]
fn list_then_watch_streams_changes_after_the_list_version() {
    let server = ApiServer::start_local();
    server.apply(node("node-a", "192.0.2.11"));
    let (status, list) = get(server.addr(), "/api/v1/nodes?limit=500");
    assert_eq!(status, 200);
    assert_eq!(list["kind"], "NodeList");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["metadata"]["name"], "node-a");
    let version = rv(&list);

    let mut watch = Watch::open(
        server.addr(),
        &format!("/api/v1/nodes?watch=true&timeoutSeconds=290&allowWatchBookmarks=true&resourceVersion={version}"),
    );
    assert_eq!(watch.status, 200);
    server.apply(node("node-b", "192.0.2.12"));
    let added = watch.next().unwrap();
    assert_eq!(added["type"], "ADDED");
    assert_eq!(added["object"]["metadata"]["name"], "node-b");
    assert!(rv(&added["object"]) > version);
    server.apply(node("node-b", "192.0.2.13"));
    let modified = watch.next().unwrap();
    assert_eq!(modified["type"], "MODIFIED");
    assert_eq!(modified["object"]["status"]["addresses"][0]["address"], "192.0.2.13");
    assert!(server.delete(NODES, "", "node-a"));
    let deleted = watch.next().unwrap();
    assert_eq!(deleted["type"], "DELETED");
    assert_eq!(deleted["object"]["metadata"]["name"], "node-a");

    // A watch resumed from the list's version replays what happened since.
    let mut resumed =
        Watch::open(server.addr(), &format!("/api/v1/nodes?watch=true&resourceVersion={version}"));
    let kinds: Vec<Value> = (0..3).map(|_| resumed.next().unwrap()["type"].clone()).collect();
    assert_eq!(kinds, ["ADDED", "MODIFIED", "DELETED"]);
}

#[test]
fn bookmarks_carry_the_current_version_on_request_and_on_a_timer() {
    let server = ApiServer::start_local();
    let (_, list) = get(server.addr(), "/api/v1/nodes");
    let mut watch = Watch::open(
        server.addr(),
        &format!("/api/v1/nodes?watch=true&allowWatchBookmarks=true&resourceVersion={}", rv(&list)),
    );
    server.apply(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"}, "spec": {"type": "LoadBalancer"}}));
    server.bookmark();
    let bookmark = watch.next().unwrap();
    assert_eq!(bookmark["type"], "BOOKMARK");
    assert_eq!(bookmark["object"]["kind"], "Node");
    assert_eq!(bookmark["object"]["apiVersion"], "v1");
    // A Service changed meanwhile: the version moved on, and the node watch says so.
    assert!(rv(&bookmark["object"]) > rv(&list));
    server.set_bookmark_interval(Duration::from_millis(200));
    assert_eq!(watch.next().unwrap()["type"], "BOOKMARK");

    // Without allowWatchBookmarks, none.
    let mut plain = Watch::open(
        server.addr(),
        &format!("/api/v1/nodes?watch=true&timeoutSeconds=1&resourceVersion={}", rv(&list)),
    );
    server.bookmark();
    assert_eq!(plain.next(), None, "timeoutSeconds ends the stream with the last chunk");
}

#[test]
fn an_expired_version_is_a_200_then_an_error_event_with_410() {
    let server = ApiServer::start_local();
    let (_, list) = get(server.addr(), "/api/v1/nodes");
    let mut open = Watch::open(
        server.addr(),
        &format!("/api/v1/nodes?watch=true&resourceVersion={}", rv(&list)),
    );
    server.expire_watches();
    let error = open.next().unwrap();
    assert_eq!(error["type"], "ERROR");
    assert_eq!(error["object"]["kind"], "Status");
    assert_eq!(error["object"]["code"], 410);
    assert_eq!(error["object"]["reason"], "Expired");
    assert_eq!(open.next(), None, "the stream ends after the error");
    assert_eq!(server.expired_sent("nodes"), 1);

    // Resuming from the old version: the same, at once.
    let mut resumed = Watch::open(
        server.addr(),
        &format!("/api/v1/nodes?watch=true&resourceVersion={}", rv(&list)),
    );
    assert_eq!(resumed.status, 200, "a real API server answers 200, then the ERROR event");
    assert_eq!(resumed.next().unwrap()["object"]["code"], 410);
    // A re-list gives a version the watch accepts.
    let (_, relist) = get(server.addr(), "/api/v1/nodes");
    server.apply(node("node-a", "192.0.2.11"));
    let mut fresh = Watch::open(
        server.addr(),
        &format!("/api/v1/nodes?watch=true&resourceVersion={}", rv(&relist)),
    );
    assert_eq!(fresh.next().unwrap()["type"], "ADDED");
}

#[test]
fn dropped_connections_stop_and_restart() {
    let mut server = ApiServer::start_local();
    let (_, list) = get(server.addr(), "/api/v1/nodes");
    let target = format!("/api/v1/nodes?watch=true&resourceVersion={}", rv(&list));
    let mut watch = Watch::open(server.addr(), &target);
    server.wait_watching(&["nodes"], Duration::from_secs(5));
    server.drop_connections();
    assert!(watch.dropped(), "the watch ends without its last chunk");

    server.stop();
    assert!(TcpStream::connect(server.addr()).is_err(), "nothing listens while stopped");
    server.apply(node("node-a", "192.0.2.11")); // changed while the API server was away
    server.restart();
    let (status, relist) = get(server.addr(), "/api/v1/nodes");
    assert_eq!(status, 200);
    assert_eq!(relist["items"][0]["metadata"]["name"], "node-a", "objects survive a restart");
    // The restarted server's watch cache starts now: the old version is too old.
    let mut stale = Watch::open(server.addr(), &target);
    assert_eq!(stale.next().unwrap()["object"]["code"], 410);
    let kubeconfig = std::fs::read_to_string(server.kubeconfig()).unwrap();
    assert!(kubeconfig.contains(&format!("server: http://{}", server.addr())), "{kubeconfig}");
}

#[test]
fn selectors_namespaces_and_absent_crds() {
    let server = ApiServer::start_local();
    for (ns, name, app) in
        [("arpwatch", "arpwatch-node-a", "arpwatch"), ("kube-node-lease", "node-a", "kubelet")]
    {
        server.apply(json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": ns, "labels": {"app.kubernetes.io/name": app}},
            "spec": {"holderIdentity": "node-a"}}));
    }
    let (_, all) = get(server.addr(), "/apis/coordination.k8s.io/v1/leases");
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    let (_, ours) = get(
        server.addr(),
        "/apis/coordination.k8s.io/v1/namespaces/arpwatch/leases?labelSelector=app.kubernetes.io%2Fname%3Darpwatch",
    );
    assert_eq!(ours["items"].as_array().unwrap().len(), 1);
    assert_eq!(ours["items"][0]["metadata"]["name"], "arpwatch-node-a");
    let (_, none) = get(
        server.addr(),
        "/apis/coordination.k8s.io/v1/leases?labelSelector=app.kubernetes.io%2Fname+notin+%28arpwatch%2Ckubelet%29",
    );
    assert!(none["items"].as_array().unwrap().is_empty());
    let (_, by_name) = get(
        server.addr(),
        "/apis/coordination.k8s.io/v1/leases?fieldSelector=metadata.name%3Dnode-a",
    );
    assert_eq!(by_name["items"][0]["metadata"]["namespace"], "kube-node-lease");

    let pools = "/apis/metallb.io/v1beta1/ipaddresspools";
    assert_eq!(get(server.addr(), pools).0, 200);
    let (_, groups) = get(server.addr(), "/apis");
    assert!(groups.to_string().contains("metallb.io"));
    server.set_metallb(false);
    let (status, body) = get(server.addr(), pools);
    assert_eq!((status, body["reason"].as_str()), (404, Some("NotFound")));
    assert_eq!(Watch::open(server.addr(), &format!("{pools}?watch=true")).status, 404);
    let (_, groups) = get(server.addr(), "/apis");
    assert!(!groups.to_string().contains("metallb.io"));
    assert_eq!(get(server.addr(), "/version").1["major"], "1");
}

#[test]
fn writes_create_conflict_patch_apply_and_are_recorded() {
    let server = ApiServer::start_local();
    let events = "/apis/events.k8s.io/v1/namespaces/default/events";
    let event = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"name": "arpwatch-web-multipleresponders-1a2b", "namespace": "default"},
        "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "arpwatch.io/arpwatch",
        "reportingInstance": "arpwatch-node-a", "action": "Observed", "reason": "MultipleResponders",
        "regarding": {"kind": "Service", "namespace": "default", "name": "web", "apiVersion": "v1"},
        "note": "192.0.2.100 answered by node-a, node-b", "type": "Warning"
    });
    let (status, created) = request(server.addr(), "POST", events, "application/json", &event);
    assert_eq!(status, 201, "{created}");
    let (status, again) = request(server.addr(), "POST", events, "application/json", &event);
    assert_eq!((status, again["reason"].as_str()), (409, Some("AlreadyExists")));

    let name = format!("{events}/arpwatch-web-multipleresponders-1a2b");
    let series = json!({"series": {"count": 2, "lastObservedTime": "2026-01-01T00:00:05.000000Z"}});
    let (status, patched) =
        request(server.addr(), "PATCH", &name, "application/merge-patch+json", &series);
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["series"]["count"], 2);
    assert_eq!(patched["reason"], "MultipleResponders", "a merge patch keeps the rest");
    let nameless = json!({"metadata": {"resourceVersion": created["metadata"]["resourceVersion"]}, "note": "x"});
    assert_eq!(request(server.addr(), "PUT", &name, "application/json", &nameless).0, 400);

    // Server-side apply of a Lease: fieldManager required; creates, then updates.
    let lease = "/apis/coordination.k8s.io/v1/namespaces/arpwatch/leases/arpwatch-node-a";
    let body = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "arpwatch-node-a", "annotations": {"arpwatch.io/interfaces": "{\"eth0\":\"02:00:00:00:0a:01\"}"}},
        "spec": {"holderIdentity": "node-a", "leaseDurationSeconds": 60}});
    assert_eq!(
        request(server.addr(), "PATCH", lease, "application/apply-patch+yaml", &body).0,
        400
    );
    let with_manager = format!("{lease}?fieldManager=arpwatch&force=true");
    let (status, applied) =
        request(server.addr(), "PATCH", &with_manager, "application/apply-patch+yaml", &body);
    assert_eq!(status, 201, "{applied}");
    let (status, _) =
        request(server.addr(), "PATCH", &with_manager, "application/apply-patch+yaml", &body);
    assert_eq!(status, 200);
    let stored = server.get(LEASES, "arpwatch", "arpwatch-node-a").unwrap();
    assert_eq!(stored["metadata"]["namespace"], "arpwatch");
    assert_eq!(stored["spec"]["leaseDurationSeconds"], 60);
    // PUT with the current version replaces; with a stale one, 409 Conflict.
    let mut replaced = stored.clone();
    replaced["spec"]["holderIdentity"] = json!("node-b");
    assert_eq!(request(server.addr(), "PUT", lease, "application/json", &replaced).0, 200);
    assert_eq!(request(server.addr(), "PUT", lease, "application/json", &replaced).0, 409);
    // A JSON patch.
    let ops = json!([{"op": "replace", "path": "/spec/leaseDurationSeconds", "value": 30}]);
    assert_eq!(request(server.addr(), "PATCH", lease, "application/json-patch+json", &ops).0, 200);
    assert_eq!(
        server.get(LEASES, "arpwatch", "arpwatch-node-a").unwrap()["spec"]["leaseDurationSeconds"],
        30
    );

    let writes = server.writes();
    let summary: Vec<(&str, u16)> = writes.iter().map(|w| (w.method.as_str(), w.status)).collect();
    assert_eq!(
        summary,
        [
            ("POST", 201),
            ("POST", 409),
            ("PATCH", 200),
            ("PUT", 400),
            ("PATCH", 400),
            ("PATCH", 201),
            ("PATCH", 200),
            ("PUT", 200),
            ("PUT", 409),
            ("PATCH", 200)
        ]
    );
    assert_eq!(writes[0].kind, Some(EVENTS));
    assert_eq!(writes[0].name.as_deref(), Some("arpwatch-web-multipleresponders-1a2b"));
    assert_eq!(writes[2].content_type, "application/merge-patch+json");
    assert_eq!(writes[5].query.get("fieldManager").map(String::as_str), Some("arpwatch"));
}

#[test]
fn a_watch_from_no_version_starts_with_the_current_objects() {
    let server = ApiServer::start_local();
    server.apply(node("node-a", "192.0.2.11"));
    let mut watch = Watch::open(server.addr(), "/api/v1/nodes?watch=true");
    let first = watch.next().unwrap();
    assert_eq!(
        (first["type"].as_str(), first["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("node-a"))
    );
}
