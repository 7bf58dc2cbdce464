//! Cluster context (issue 12) in namespace labs: the built arpwatch runs with `--kubeconfig`
//! against the test API server of `support/apiserver.rs`, which serves the lab as a Kubernetes
//! cluster: one Node per node namespace (its InternalIP the node's eth0 address), the Lease each
//! node's arpwatch would publish (`arpwatch.io/interfaces`: every interface's MAC), LoadBalancer
//! Services, and MetalLB's IPAddressPool, L2Advertisement and ServiceL2Status as MetalLB v0.14+
//! writes them. The kernel's own ARP answers, as in `labs_incidents`.
//!
//! The API server listens on a management network of its own (bridge `mgmt`, 198.51.100.0/24, in
//! the lab's switch namespace), which each observer joins with an interface `mgmt0` it does not
//! watch: several observers reach one API server, and each one's writes are told apart by its
//! address. Needs root; fails, never skips, without it.

mod support;

use arpwatch_core::testkit::frames::{ip_bytes, mac_bytes, ArpFrame};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};
use support::apiserver::{self, ApiServer, WriteRecord, EVENTS, SERVICE_L2_STATUSES};
use support::lab::{arpwatch_bin, cluster, hold_vip_like_ipvs, Lan, Netns, TempConfig};

const VIP: &str = "192.0.2.100";
/// The API server, on the management network.
const API_ADDR: &str = "198.51.100.1";
const NODES: [&str; 3] = ["node-a", "node-b", "node-c"];
/// The lease namespace of every observer.
const LEASE_NS: &str = "arpwatch";
/// How long an observer may take to list everything and build its first snapshot.
const SYNC: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------
// The lab

/// A client at 192.0.2.1 (host 0) and nodes `node-a`, `node-b`, ... at 192.0.2.11, .12, ...
/// (hosts 1, 2, ...), an API server on the management network, serving a Node per node.
struct Lab {
    /// First, so it stops before the namespaces go.
    api: ApiServer,
    lan: Lan,
    mgmt_ports: usize,
}

impl Lab {
    fn new(tag: &str, nodes: usize) -> Lab {
        let lan = cluster(tag, nodes);
        let sw = &lan.switch;
        sw.ip(&["link", "add", "mgmt", "type", "bridge", "stp_state", "0", "forward_delay", "0"]);
        sw.ip(&["link", "set", "mgmt", "up"]);
        sw.add_addr("mgmt", &format!("{API_ADDR}/24"));
        let addr: SocketAddr = format!("{API_ADDR}:0").parse().unwrap();
        let api = ApiServer::start_in(&sw.name, addr);
        let lab = Lab { api, lan, mgmt_ports: 0 };
        for (n, name) in NODES.iter().take(nodes).enumerate() {
            lab.api.apply(node_object(name, &format!("192.0.2.{}", 11 + n)));
        }
        lab
    }

    fn client(&self) -> &Netns {
        &self.lan.hosts[0]
    }

    /// Node `n` (0: node-a).
    fn node(&self, n: usize) -> &Netns {
        &self.lan.hosts[1 + n]
    }

    /// Publishes node `n`'s Lease as its arpwatch would: every interface but loopback, with its
    /// MAC. Call it once the node's interfaces are all there.
    fn publish_lease(&self, n: usize) {
        self.api.apply(lease_object(NODES[n], &interfaces(self.node(n))));
    }

    /// Connects `host` (an index into the LAN's hosts) to the management network; returns its
    /// address there.
    fn join_mgmt(&mut self, host: usize) -> String {
        self.mgmt_ports += 1;
        let port = format!("m{}", self.mgmt_ports);
        let addr = format!("198.51.100.{}", 10 + self.mgmt_ports);
        let ns = &self.lan.hosts[host];
        ns.veth_to("mgmt0", &self.lan.switch, &port);
        self.lan.switch.ip(&["link", "set", &port, "master", "mgmt"]);
        ns.add_addr("mgmt0", &format!("{addr}/24"));
        addr
    }

    /// Starts arpwatch on `host`'s eth0 as the observer `node_name`, with the lab's kubeconfig,
    /// and waits until it is attached and its pipeline uses the first cluster snapshot.
    fn observe(&mut self, host: usize, node_name: &str, seconds: u32, extra: &[&str]) -> Live {
        self.join_mgmt(host);
        let seconds = seconds.to_string();
        let mut args = vec!["watch", "--format", "json", "--iface", "eth0", "--duration", &seconds];
        args.extend(["--kubeconfig", self.api.kubeconfig(), "--lease-namespace", LEASE_NS]);
        args.extend_from_slice(extra);
        let mut live = Live::start(&self.lan.hosts[host], &args, node_name);
        live.wait_stderr("watching eth0 ", Duration::from_secs(20));
        // Logged once the pipeline judges and names by the first snapshot.
        live.wait_stderr("kubernetes: cluster context in use: ", SYNC);
        live
    }
}

/// Every interface of `ns` but loopback: (name, MAC).
fn interfaces(ns: &Netns) -> Vec<(String, String)> {
    let out = ns.ip(&["-j", "link", "show"]);
    let links: Value = serde_json::from_slice(&out.stdout).expect("ip -j link");
    links
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["link_type"] == "ether")
        .map(|l| {
            (l["ifname"].as_str().unwrap().to_owned(), l["address"].as_str().unwrap().to_owned())
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Objects, as Kubernetes and MetalLB write them

fn node_object(name: &str, ip: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"podCIDR": "10.244.0.0/24", "podCIDRs": ["10.244.0.0/24"]},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": ip},
                {"type": "Hostname", "address": name},
            ],
            "conditions": [{
                "type": "Ready", "status": "True", "reason": "KubeletReady",
                "message": "kubelet is posting ready status",
                "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z",
            }],
            "nodeInfo": {"kubeletVersion": "v1.33.0", "containerRuntimeVersion": "containerd://2.0.0",
                         "kernelVersion": "6.12.0", "osImage": "lab", "operatingSystem": "linux",
                         "architecture": "amd64", "machineID": "", "systemUUID": "", "bootID": "",
                         "kubeProxyVersion": ""},
        },
    })
}

/// The Lease `arpwatch-<node>` as the node's arpwatch publishes it (docs/kubernetes.md).
fn lease_object(node: &str, interfaces: &[(String, String)]) -> Value {
    let ifaces: BTreeMap<&str, &str> =
        interfaces.iter().map(|(name, mac)| (name.as_str(), mac.as_str())).collect();
    let now = apiserver::micro_time_now();
    json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": format!("arpwatch-{node}"),
            "namespace": LEASE_NS,
            "labels": {"app.kubernetes.io/name": "arpwatch"},
            "annotations": {"arpwatch.io/interfaces": serde_json::to_string(&ifaces).unwrap()},
        },
        "spec": {
            "holderIdentity": node,
            "leaseDurationSeconds": 60,
            "acquireTime": now,
            "renewTime": now,
        },
    })
}

/// A LoadBalancer Service whose VIP MetalLB assigned (`status.loadBalancer.ingress`).
fn service_object(namespace: &str, name: &str, vip: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": {"metallb.io/ip-allocated-from-pool": "lab-pool"},
        },
        "spec": {
            "type": "LoadBalancer",
            "clusterIP": "203.0.113.10",
            "clusterIPs": ["203.0.113.10"],
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "externalTrafficPolicy": "Cluster",
            "internalTrafficPolicy": "Cluster",
            "allocateLoadBalancerNodePorts": true,
            "selector": {"app": name},
            "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30080}],
            "sessionAffinity": "None",
        },
        "status": {"loadBalancer": {"ingress": [{"ip": vip, "ipMode": "VIP"}]}},
    })
}

fn ip_address_pool(name: &str, addresses: &[&str]) -> Value {
    json!({
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": "metallb-system"},
        "spec": {"addresses": addresses, "autoAssign": true, "avoidBuggyIPs": false},
    })
}

fn l2_advertisement(name: &str, pools: &[&str], interfaces: &[&str]) -> Value {
    let mut spec = json!({"ipAddressPools": pools});
    if !interfaces.is_empty() {
        spec["interfaces"] = json!(interfaces);
    }
    json!({
        "apiVersion": "metallb.io/v1beta1",
        "kind": "L2Advertisement",
        "metadata": {"name": name, "namespace": "metallb-system"},
        "spec": spec,
    })
}

/// A ServiceL2Status as MetalLB's speaker on `node` writes it (`generateName: l2-`, owned by the
/// speaker pod, empty spec; the node and Service immutable: a failover is a new object).
fn service_l2_status(
    name: &str,
    node: &str,
    svc_ns: &str,
    svc: &str,
    interfaces: &[&str],
) -> Value {
    let ifaces: Vec<Value> = interfaces.iter().map(|i| json!({"name": i})).collect();
    json!({
        "apiVersion": "metallb.io/v1beta1",
        "kind": "ServiceL2Status",
        "metadata": {
            "name": name,
            "generateName": "l2-",
            "namespace": "metallb-system",
            "labels": {
                "metallb.io/node": node,
                "metallb.io/service-name": svc,
                "metallb.io/service-namespace": svc_ns,
            },
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "Pod", "name": format!("speaker-{node}"),
                "uid": "00000000-0000-4000-8000-00000000aaaa", "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": {},
        "status": {"node": node, "serviceName": svc, "serviceNamespace": svc_ns, "interfaces": ifaces},
    })
}

/// MetalLB announcing `VIP` from `lab-pool` on `interfaces` (empty: all), with Service
/// `default/web` holding it.
fn metallb_web(api: &ApiServer, interfaces: &[&str]) {
    api.apply(ip_address_pool("lab-pool", &[&format!("{VIP}/32")]));
    api.apply(l2_advertisement("lab-l2", &["lab-pool"], interfaces));
    api.apply(service_object("default", "web", VIP));
}

// ---------------------------------------------------------------------------------------------
// A running arpwatch whose events are read as they come

struct Live {
    child: Child,
    events: Receiver<Value>,
    seen: Vec<Value>,
    stderr: Receiver<String>,
    stderr_seen: Vec<String>,
}

impl Live {
    fn start(ns: &Netns, args: &[&str], node_name: &str) -> Live {
        let mut cmd = ns.command(arpwatch_bin());
        cmd.args(args)
            .env("NODE_NAME", node_name)
            // Every cluster snapshot the pipeline takes, with what changed (`wait_applied`).
            .env("RUST_LOG", "info,arpwatch::watch=debug")
            .env_remove("KUBECONFIG")
            .env_remove("HTTPS_PROXY")
            .env_remove("HTTP_PROXY")
            .env_remove("https_proxy")
            .env_remove("http_proxy")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start arpwatch");
        let (tx, events) = channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let event: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| json!({"not_json": line, "error": e.to_string()}));
                if tx.send(event).is_err() {
                    break;
                }
            }
        });
        let (tx, stderr) = channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Live { child, events, seen: Vec::new(), stderr, stderr_seen: Vec::new() }
    }

    fn drain(&mut self) {
        while let Ok(e) = self.events.try_recv() {
            self.seen.push(e);
        }
        while let Ok(l) = self.stderr.try_recv() {
            self.stderr_seen.push(l);
        }
    }

    fn wait_stderr(&mut self, needle: &str, timeout: Duration) -> String {
        self.wait_line(&format!("{needle:?}"), 0, timeout, |l| l.contains(needle))
    }

    /// Waits until the pipeline uses a cluster snapshot in which `change` (as
    /// `ClusterSnapshot::changes_since` names it: `+service default/web`, ...) happened; returns
    /// the log line.
    fn wait_applied(&mut self, change: &str, timeout: Duration) -> String {
        self.wait_line(&format!("a cluster snapshot with {change:?}"), 0, timeout, |l| {
            l.split_once("kubernetes: cluster context applied: ")
                .and_then(|(_, rest)| rest.split_once("; changed: "))
                .is_some_and(|(_, changes)| changes.split(", ").any(|c| c == change))
        })
    }

    /// How many stderr lines were read so far: `wait_line`'s `from`, for lines printed after now.
    fn stderr_mark(&mut self) -> usize {
        self.drain();
        self.stderr_seen.len()
    }

    /// The first stderr line from the `from`th on for which `pred` holds; panics after
    /// `timeout`.
    fn wait_line(
        &mut self,
        what: &str,
        from: usize,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            self.drain();
            if let Some(l) = self.stderr_seen.iter().skip(from).find(|l| pred(l)) {
                return l.clone();
            }
            assert!(
                Instant::now() < deadline,
                "arpwatch did not print {what} within {timeout:?}; stderr:\n{}",
                self.stderr_seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ends the run with SIGTERM, as Kubernetes stops a pod; returns every event.
    fn terminate(self, timeout: Duration) -> Done {
        // SAFETY: plain kill(2) on our own child, not yet waited for.
        assert_eq!(unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) }, 0);
        self.finish(timeout)
    }

    /// The first event (since the start) for which `pred` holds; panics after `timeout`.
    fn wait_event(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            self.drain();
            if let Some(e) = self.seen.iter().find(|e| pred(e)) {
                return e.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {timeout:?}; events:\n{}\nstderr:\n{}",
                self.lines(),
                self.stderr_seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn lines(&self) -> String {
        self.seen.iter().map(Value::to_string).collect::<Vec<_>>().join("\n")
    }

    /// Waits for the exit (`--duration`), at most `timeout`; returns every event.
    fn finish(mut self, timeout: Duration) -> Done {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "arpwatch did not exit within {timeout:?}; stderr:\n{}",
                self.stderr_seen.join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // The readers end with the pipes.
        while let Ok(e) = self.events.recv_timeout(Duration::from_millis(500)) {
            self.seen.push(e);
        }
        self.drain();
        assert!(status.success(), "arpwatch failed: {status}\n{}", self.stderr_seen.join("\n"));
        Done { events: std::mem::take(&mut self.seen), stderr: self.stderr_seen.join("\n") }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

struct Done {
    events: Vec<Value>,
    stderr: String,
}

impl Done {
    fn of(&self, event: &str, ip: &str) -> Vec<&Value> {
        self.events.iter().filter(|e| e["event"] == event && e["ip"] == ip).collect()
    }

    fn all(&self) -> String {
        let lines: Vec<String> = self.events.iter().map(Value::to_string).collect();
        format!("events:\n{}\nstderr:\n{}", lines.join("\n"), self.stderr)
    }
}

/// Seconds from one event timestamp (`2026-01-01T10:00:00.123456789Z`) to a later one, less
/// than a day apart.
fn seconds_between(from: &Value, to: &Value) -> f64 {
    let of_day = |ts: &Value| {
        let ts = ts.as_str().unwrap_or_else(|| panic!("a timestamp: {ts}"));
        let time = ts.split_once('T').and_then(|(_, t)| t.strip_suffix('Z')).expect(ts);
        let parts: Vec<f64> = time.split(':').map(|p| p.parse().expect(ts)).collect();
        parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
    };
    (of_day(to) - of_day(from)).rem_euclid(86_400.0)
}

fn object_of(pairs: &[(&str, &str)]) -> Value {
    Value::Object(pairs.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect())
}

/// A speaker's gratuitous announcement of `ip` from `node`'s eth0, MetalLB style: a request and
/// a reply at once.
fn announce(node: &Netns, ip: &str) {
    let mac = mac_bytes(&node.mac("eth0"));
    let frames = [1, 2].map(|op| ArpFrame::gratuitous(op, mac, ip_bytes(ip)).bytes());
    node.send_frames("eth0", &frames);
}

/// The VIP moves from `from` to `to` (eth0), the new holder announcing it.
fn fail_over(from: &Netns, to: &Netns) {
    from.ip(&["addr", "del", &format!("{VIP}/32"), "dev", "eth0"]);
    to.add_addr("eth0", &format!("{VIP}/32"));
    announce(to, VIP);
}

// ---------------------------------------------------------------------------------------------
// Scenarios

#[test]
fn ipvs_without_strict_arp_the_multi_responder_names_every_node_and_the_service() {
    let mut lab = Lab::new("kipvs", 3);
    for n in 0..3 {
        hold_vip_like_ipvs(lab.node(n), VIP, false);
        lab.publish_lease(n);
    }
    lab.api.apply(service_object("default", "web", VIP));
    let expected = object_of(&[
        (&lab.node(0).mac("eth0"), "node-a"),
        (&lab.node(1).mac("eth0"), "node-b"),
        (&lab.node(2).mac("eth0"), "node-c"),
    ]);

    let watch = lab.observe(0, "gateway", 4, &[]);
    lab.client().udp_to(VIP);
    let done = watch.finish(Duration::from_secs(30));

    let multi = done.of("multi_responder", VIP);
    let start =
        multi.iter().find(|e| e["state"] == "start").unwrap_or_else(|| panic!("{}", done.all()));
    // Every MAC seen answering by then is named; the ongoing line (if any) has all three.
    let last = multi.last().unwrap();
    assert_eq!(
        last["mac_nodes"],
        expected,
        "every answering MAC named by its node: {}",
        done.all()
    );
    assert_eq!(last["services"], json!(["default/web"]), "{}", done.all());
    for mac in start["macs"].as_array().unwrap() {
        assert_eq!(start["mac_nodes"][mac.as_str().unwrap()], expected[mac.as_str().unwrap()]);
        assert_eq!(start["mac_ifaces"][mac.as_str().unwrap()], "eth0", "{start}");
    }
    assert!(start.get("foreign_macs").is_none(), "every MAC is a node's: {start}");
    assert!(start.get("context").is_none(), "fresh context: {start}");
    // The client watching with a kubeconfig is no Node: it publishes no inventory of its own.
    assert!(
        lab.api.get(support::apiserver::LEASES, LEASE_NS, "arpwatch-gateway").is_none(),
        "a host agent that is not a Node publishes no Lease: {:#?}",
        lab.api.writes()
    );
}

#[test]
fn a_node_answering_on_an_unconfigured_second_nic_is_named_with_that_nic() {
    // node-a has a second NIC on the same segment, with no address: with arp_ignore=0 Linux
    // answers for the VIP on both. MetalLB is told to announce on eth0 only.
    let mut lab = Lab::new("nic2", 1);
    lab.lan.connect(1, "eth1");
    let node = lab.node(0);
    node.add_addr("eth0", &format!("{VIP}/32"));
    let (eth0, eth1) = (node.mac("eth0"), node.mac("eth1"));
    lab.publish_lease(0);
    metallb_web(&lab.api, &["eth0"]);
    lab.api.apply(service_l2_status("l2-7x2kq", "node-a", "default", "web", &["eth0"]));

    let watch = lab.observe(0, "gateway", 4, &[]);
    lab.client().udp_to(VIP);
    let done = watch.finish(Duration::from_secs(30));

    let named: Vec<&Value> =
        done.events.iter().filter(|e| e["ip"] == VIP && e["mac_ifaces"][&eth1] == "eth1").collect();
    assert!(!named.is_empty(), "an event names eth1 in mac_ifaces: {}", done.all());
    let with_both = named
        .iter()
        .find(|e| e["mac_ifaces"][&eth0] == "eth0")
        .unwrap_or_else(|| panic!("both NICs named: {}", done.all()));
    assert_eq!(with_both["mac_nodes"], object_of(&[(&eth0, "node-a"), (&eth1, "node-a")]));
    let unexpected = done.of("unexpected_interface", VIP);
    assert!(!unexpected.is_empty(), "unexpected_interface against spec.interfaces: {}", done.all());
    let first = unexpected[0];
    assert_eq!(first["mac"], eth1.as_str(), "{first}");
    assert_eq!(first["mac_node"], "node-a", "{first}");
    assert_eq!(first["mac_ifaces"][&eth1], "eth1", "{first}");
    assert_eq!(first["services"], json!(["default/web"]), "{first}");
}

#[test]
fn the_status_names_node_a_while_node_b_answers_is_an_announcer_mismatch() {
    let mut lab = Lab::new("annmis", 2);
    lab.node(1).add_addr("eth0", &format!("{VIP}/32"));
    lab.publish_lease(0);
    lab.publish_lease(1);
    metallb_web(&lab.api, &[]);
    lab.api.apply(service_l2_status("l2-a9f3c", "node-a", "default", "web", &["eth0"]));
    let config = TempConfig::new("[thresholds]\nannouncer_grace = \"1s\"\n");
    let mac_b = lab.node(1).mac("eth0");

    let mut watch = lab.observe(0, "gateway", 6, &["--config", config.arg()]);
    lab.client().udp_to(VIP);
    let claim = watch.wait_event("node B's answer", Duration::from_secs(5), |e| {
        e["event"] == "new_binding" && e["ip"] == VIP && e["mac"] == mac_b.as_str()
    });
    announce(lab.node(1), VIP); // node B keeps claiming the VIP
    let mismatch = watch.wait_event("announcer_mismatch", Duration::from_secs(5), |e| {
        e["event"] == "announcer_mismatch" && e["ip"] == VIP
    });
    let done = watch.finish(Duration::from_secs(30));

    assert_eq!(mismatch["state"], "start", "{}", done.all());
    // From node B's first answer, reported once the grace period (1 s) is over.
    assert_eq!(mismatch["first_seen"], claim["ts"], "{mismatch}");
    let lasted = seconds_between(&claim["ts"], &mismatch["ts"]);
    assert!(lasted >= 1.0, "dated at the end of the grace period, {lasted} s on: {mismatch}");
    assert_eq!(mismatch["severity"], "critical");
    assert_eq!(mismatch["mac"], mac_b.as_str());
    assert_eq!(mismatch["mac_node"], "node-b");
    assert_eq!(
        mismatch["announcer"],
        json!({"node": "node-a", "interfaces": ["eth0"], "source": "metallb"}),
        "{mismatch}"
    );
    assert_eq!(mismatch["services"], json!(["default/web"]));
}

#[test]
fn a_failover_whose_status_follows_within_the_grace_period_is_no_announcer_mismatch() {
    let mut lab = Lab::new("annfo", 2);
    lab.node(0).add_addr("eth0", &format!("{VIP}/32"));
    lab.publish_lease(0);
    lab.publish_lease(1);
    metallb_web(&lab.api, &[]);
    lab.api.apply(service_l2_status("l2-a9f3c", "node-a", "default", "web", &["eth0"]));

    // The default grace period: the status follows the wire STATUS_LAG after the failover.
    const GRACE: Duration = Duration::from_secs(5);
    const STATUS_LAG: Duration = Duration::from_secs(1);
    let mac_a = lab.node(0).mac("eth0");
    let mut watch = lab.observe(0, "gateway", 60, &[]);
    lab.client().udp_to(VIP);
    watch.wait_event("node A's answer (the declared announcer)", Duration::from_secs(5), |e| {
        e["event"] == "new_binding" && e["ip"] == VIP && e["mac"] == mac_a.as_str()
    });
    fail_over(lab.node(0), lab.node(1));
    let change = watch.wait_event("owner_change", Duration::from_secs(5), |e| {
        e["event"] == "owner_change" && e["ip"] == VIP
    });
    // No later than the engine saw node B's claim, from which the grace period counts.
    let failed_over = Instant::now();
    // The scenario, not a wait: MetalLB's status lags the wire. Then its speaker on node B
    // writes its own status, and node A's speaker deletes its own.
    std::thread::sleep(STATUS_LAG);
    lab.api.apply(service_l2_status("l2-k4m8d", "node-b", "default", "web", &["eth0"]));
    lab.api.delete(SERVICE_L2_STATUSES, "metallb-system", "l2-a9f3c");
    watch.wait_applied(
        &format!("announcer {VIP}: node-a on eth0 (metallb) -> node-b on eth0 (metallb)"),
        GRACE,
    );
    let followed = failed_over.elapsed();
    assert!(followed < GRACE, "the status followed within the grace period: {followed:?}");
    // A mismatch would start at the end of the grace period: the run goes on past it.
    let past_grace = failed_over + GRACE + Duration::from_secs(1);
    std::thread::sleep(past_grace.saturating_duration_since(Instant::now()));
    let done = watch.terminate(Duration::from_secs(30));

    assert!(done.of("announcer_mismatch", VIP).is_empty(), "{}", done.all());
    assert_eq!(change["old_node"], "node-a", "{change}");
    assert_eq!(change["new_node"], "node-b", "{change}");
    assert_eq!(change["services"], json!(["default/web"]), "{change}");
    assert!(done.of("multi_responder", VIP).is_empty(), "{}", done.all());
}

#[test]
fn a_foreign_mac_claiming_a_vip_is_an_unknown_responder_with_no_mac_list_anywhere() {
    let mut lab = Lab::new("foreign", 1);
    let foreign = lab.lan.add_host("foreignx", &format!("{VIP}/24"));
    let intruder = lab.lan.hosts[foreign].mac("eth0");
    lab.publish_lease(0);
    metallb_web(&lab.api, &[]);

    // No --config: the allowed MACs come from the cluster alone.
    let watch = lab.observe(0, "gateway", 3, &[]);
    lab.client().udp_to(VIP);
    let done = watch.finish(Duration::from_secs(30));

    let unknown = done.of("unknown_responder", VIP);
    let first = unknown.first().unwrap_or_else(|| panic!("{}", done.all()));
    assert_eq!(first["mac"], intruder.as_str());
    assert_eq!(first["severity"], "critical");
    assert_eq!(first["foreign_macs"], json!([intruder]), "{first}");
    assert!(first.get("mac_node").is_none(), "the intruder is no node's: {first}");
    assert_eq!(first["pool"], "metallb/lab-pool", "{first}");
    assert_eq!(first["services"], json!(["default/web"]), "{first}");
}

#[test]
fn events_keep_flowing_while_the_api_server_is_away_and_context_returns_after_it() {
    const LATE_VIP: &str = "192.0.2.101";
    let mut lab = Lab::new("apidown", 2);
    lab.node(0).add_addr("eth0", &format!("{VIP}/32"));
    lab.node(1).add_addr("eth0", &format!("{LATE_VIP}/32"));
    lab.publish_lease(0);
    lab.publish_lease(1);
    lab.api.apply(service_object("default", "web", VIP));

    let mut watch = lab.observe(0, "gateway", 90, &[]);
    let client = &lab.lan.hosts[0];
    client.udp_to(VIP);
    let bound = watch.wait_event("new_binding with context", Duration::from_secs(5), |e| {
        e["event"] == "new_binding" && e["ip"] == VIP
    });
    assert_eq!(bound["mac_node"], "node-a", "{bound}");
    assert_eq!(bound["services"], json!(["default/web"]), "{bound}");

    // The API server goes away, and the client finds it gone.
    let mark = watch.stderr_mark();
    lab.api.stop();
    let stopped = Instant::now();
    watch.wait_line("a failed watch", mark, Duration::from_secs(10), |l| {
        l.contains("kubernetes: ") && l.ends_with("; retrying")
    });
    let (a, b) = (&lab.lan.hosts[1], &lab.lan.hosts[2]);
    fail_over(a, b);
    let asked = Instant::now();
    let change = watch.wait_event("owner_change without the API", Duration::from_secs(5), |e| {
        e["event"] == "owner_change" && e["ip"] == VIP
    });
    assert!(asked.elapsed() < Duration::from_secs(3), "not delayed by the API: {change}");
    // A Service created while the API server was away, for a VIP node B holds.
    lab.api.apply(service_object("default", "late", LATE_VIP));
    std::thread::sleep(Duration::from_secs(3).saturating_sub(stopped.elapsed()));

    let services_lists = |api: &ApiServer| {
        api.requests()
            .iter()
            .filter(|r| {
                r.target.starts_with("/api/v1/services")
                    && !r.target.contains("watch=")
                    && r.status == 200
            })
            .count()
    };
    let listed_before = services_lists(&lab.api);
    lab.api.restart();
    // The restarted server's watch cache is fresh: the watcher gets the 410, re-lists, watches.
    let deadline = Instant::now() + Duration::from_secs(45);
    while services_lists(&lab.api) == listed_before || lab.api.watching("services") == 0 {
        assert!(
            Instant::now() < deadline,
            "no re-list of Services within 45 s: {:#?}",
            lab.api.requests()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(lab.api.expired_sent("services") >= 1, "the resumed watch got the 410 and re-listed");
    watch.wait_applied("+service default/late", Duration::from_secs(10));
    client.udp_to(LATE_VIP);
    let late = watch.wait_event("new_binding of the late VIP", Duration::from_secs(5), |e| {
        e["event"] == "new_binding" && e["ip"] == LATE_VIP
    });
    assert_eq!(late["mac_node"], "node-b", "{late}");
    assert_eq!(late["services"], json!(["default/late"]), "context is back: {late}");
    assert!(late.get("context").is_none(), "{late}");
}

#[test]
fn dropped_watches_and_a_410_are_followed_by_a_resume_and_a_relist_and_the_own_lease_is_published()
{
    const VIP_1: &str = "192.0.2.101";
    const VIP_2: &str = "192.0.2.102";
    let mut lab = Lab::new("relist", 1);
    for vip in [VIP_1, VIP_2] {
        lab.node(0).add_addr("eth0", &format!("{vip}/32"));
    }
    lab.publish_lease(0);
    // The observer is a Node too (a gateway that is part of the cluster): it publishes its Lease.
    lab.api.apply(node_object("gateway", "192.0.2.1"));
    lab.api.set_bookmark_interval(Duration::from_millis(500));

    let mut watch = lab.observe(0, "gateway", 60, &[]);
    let kinds = ["nodes", "services", "leases"];
    let started = |api: &ApiServer| kinds.map(|k| api.watches_started(k));
    let wait_rewatch = |api: &ApiServer, before: [usize; 3], what: &str| {
        let deadline = Instant::now() + Duration::from_secs(45);
        while (0..3)
            .any(|i| api.watches_started(kinds[i]) <= before[i] || api.watching(kinds[i]) == 0)
        {
            assert!(
                Instant::now() < deadline,
                "no new watches after {what}: {:#?}",
                api.requests()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    // Every connection dropped (a load balancer in front of the API server restarting): the
    // watches resume, and what changes next arrives.
    let before = started(&lab.api);
    lab.api.drop_connections();
    wait_rewatch(&lab.api, before, "the dropped connections");
    lab.api.apply(service_object("default", "one", VIP_1));
    watch.wait_applied("+service default/one", Duration::from_secs(10));
    lab.client().udp_to(VIP_1);
    let one = watch.wait_event("new_binding of VIP 1", Duration::from_secs(5), |e| {
        e["event"] == "new_binding" && e["ip"] == VIP_1
    });
    assert_eq!(one["services"], json!(["default/one"]), "{one}");

    // Every watch expired: the 410 ERROR event, a re-list, and the next change arrives.
    let before = started(&lab.api);
    lab.api.expire_watches();
    wait_rewatch(&lab.api, before, "the 410");
    assert!(kinds.iter().all(|k| lab.api.expired_sent(k) >= 1));
    lab.api.apply(service_object("default", "two", VIP_2));
    watch.wait_applied("+service default/two", Duration::from_secs(10));
    lab.client().udp_to(VIP_2);
    let two = watch.wait_event("new_binding of VIP 2", Duration::from_secs(5), |e| {
        e["event"] == "new_binding" && e["ip"] == VIP_2
    });
    assert_eq!(two["services"], json!(["default/two"]), "{two}");
    assert_eq!(two["mac_node"], "node-a", "{two}");

    // The observer's own Lease: holder, duration, every interface but loopback.
    let lease = lab.api.get(support::apiserver::LEASES, LEASE_NS, "arpwatch-gateway");
    let lease =
        lease.unwrap_or_else(|| panic!("no Lease arpwatch-gateway: {:#?}", lab.api.writes()));
    assert_eq!(lease["spec"]["holderIdentity"], "gateway", "{lease}");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 60, "{lease}");
    assert_eq!(lease["metadata"]["labels"]["app.kubernetes.io/name"], "arpwatch", "{lease}");
    let published: Value = serde_json::from_str(
        lease["metadata"]["annotations"]["arpwatch.io/interfaces"].as_str().expect("annotation"),
    )
    .expect("JSON annotation");
    let expected: BTreeMap<String, String> = interfaces(lab.client()).into_iter().collect();
    assert_eq!(published, json!(expected), "{lease}");
}

/// The Events the observers wrote about `default/web` with `reason`.
fn event_writes<'a>(writes: &'a [WriteRecord], reason_lower: &str) -> Vec<&'a WriteRecord> {
    let prefix = format!("arpwatch-web-{reason_lower}-");
    writes
        .iter()
        .filter(|w| {
            w.kind == Some(EVENTS) && w.name.as_deref().is_some_and(|n| n.starts_with(&prefix))
        })
        .collect()
}

#[test]
fn a_multi_responder_on_a_services_vip_is_one_event_on_that_service_and_repeats_update_it() {
    // Two observers on the segment (two gateways, say) see the same condition: one Event, one
    // reporter. The owner folds the repeats into its series.
    let mut lab = Lab::new("kevent", 3);
    let second = lab.lan.add_host("keventd", "192.0.2.2/24");
    for n in 0..3 {
        hold_vip_like_ipvs(lab.node(n), VIP, false);
        lab.publish_lease(n);
    }
    let service = lab.api.apply(service_object("default", "web", VIP));
    let config = TempConfig::new("[thresholds]\nreport_interval = \"1s\"\n");

    let mut one = lab.observe(0, "gateway-1", 12, &["--config", config.arg()]);
    let mut two = lab.observe(second, "gateway-2", 12, &["--config", config.arg()]);
    let (c1, c2) = (&lab.lan.hosts[0], &lab.lan.hosts[second]);
    c1.udp_to(VIP);
    c2.udp_to(VIP);
    for watch in [&mut one, &mut two] {
        watch.wait_event("multi_responder start", Duration::from_secs(5), |e| {
            e["event"] == "multi_responder" && e["ip"] == VIP && e["state"] == "start"
        });
    }
    lab.api.wait_writes(Duration::from_secs(10), "the Event's creation", |w| {
        event_writes(w, "multipleresponders").iter().any(|w| w.method == "POST" && w.status == 201)
    });
    // Repeats: both clients ask again (their entries flushed), the nodes answer again, until
    // one comes a report interval after the start and the reporter folds it into the series.
    let series_updated = |w: &[WriteRecord]| {
        event_writes(w, "multipleresponders").iter().any(|w| w.method == "PATCH" && w.status == 200)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let writes = loop {
        let writes = lab.api.writes();
        if series_updated(&writes) {
            break writes;
        }
        assert!(Instant::now() < deadline, "no series update within 10 s: {writes:#?}");
        for c in [c1, c2] {
            c.ip(&["neigh", "flush", "dev", "eth0"]);
            c.udp_to(VIP);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let done = [one.finish(Duration::from_secs(30)), two.finish(Duration::from_secs(30))];

    let ours = event_writes(&writes, "multipleresponders");
    let created: Vec<&&WriteRecord> =
        ours.iter().filter(|w| w.method == "POST" && w.status == 201).collect();
    assert_eq!(created.len(), 1, "one Event created: {ours:#?}");
    let creator = created[0].peer.map(|p| p.ip());
    for w in &ours {
        if w.method == "POST" {
            assert!(w.status == 201 || w.status == 409, "{w:#?}");
        } else {
            assert_eq!(w.peer.map(|p| p.ip()), creator, "only the reporter updates it: {w:#?}");
        }
    }
    let name = created[0].name.clone().unwrap();
    let events: Vec<Value> = lab
        .api
        .list(EVENTS)
        .into_iter()
        .filter(|e| e["regarding"]["name"] == "web" && e["reason"] == "MultipleResponders")
        .collect();
    assert_eq!(events.len(), 1, "one Event on the Service: {events:#?}");
    let event = &events[0];
    assert_eq!(event["metadata"]["name"], name.as_str());
    assert_eq!(event["metadata"]["namespace"], "default");
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["regarding"]["kind"], "Service");
    assert_eq!(event["regarding"]["namespace"], "default");
    assert_eq!(event["regarding"]["uid"], service["metadata"]["uid"], "{event}");
    assert!(event["series"]["count"].as_u64().is_some_and(|c| c >= 2), "{event}");
    let note = event["note"].as_str().unwrap_or_default();
    // The line of the condition's start: the nodes that answered by then, by name.
    let named = NODES.iter().filter(|n| note.contains(*n)).count();
    assert!(named >= 2, "the note names the answering nodes: {note}");
    assert!(note.contains("default/web"), "{note}");
    for d in &done {
        assert!(!d.of("multi_responder", VIP).is_empty(), "{}", d.all());
    }
}
