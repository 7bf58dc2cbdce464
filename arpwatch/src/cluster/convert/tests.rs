//! Objects as the API server returns them (Kubernetes 1.3x, MetalLB v0.14+), deserialized as the
//! client does, then converted.

use super::*;
use serde_json::json;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn dynamic(value: serde_json::Value) -> DynamicObject {
    serde_json::from_value(value).unwrap()
}

#[test]
fn a_node_gives_its_name_labels_and_internal_and_external_addresses() {
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": "node-a",
            "uid": "8d1f5a5e-6a0b-4d0e-9d53-1f2b3c4d5e6f",
            "resourceVersion": "48121",
            "labels": {
                "kubernetes.io/hostname": "node-a",
                "kubernetes.io/os": "linux",
                "node-role.kubernetes.io/worker": ""
            },
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"}
        },
        "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24", "fd00:10:244:1::/64"]},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": "192.0.2.11"},
                {"type": "InternalIP", "address": "2001:db8::11"},
                {"type": "ExternalIP", "address": "198.51.100.11"},
                {"type": "Hostname", "address": "node-a"},
                {"type": "InternalDNS", "address": "node-a.cluster.example"}
            ],
            "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-11-21T10:00:00Z", "lastTransitionTime": "2026-11-20T10:00:00Z", "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
            "nodeInfo": {"architecture": "amd64", "bootID": "b", "containerRuntimeVersion": "containerd://2.0.0", "kernelVersion": "6.12.0", "kubeProxyVersion": "", "kubeletVersion": "v1.33.2", "machineID": "m", "operatingSystem": "linux", "osImage": "Debian GNU/Linux 13", "systemUUID": "s"}
        }
    }))
    .unwrap();
    let info = super::node(&node).unwrap().unwrap();
    assert_eq!(&*info.name, "node-a");
    assert_eq!(info.labels["kubernetes.io/hostname"], "node-a");
    assert_eq!(info.labels.len(), 3);
    assert_eq!(info.addresses, [ip("192.0.2.11"), ip("2001:db8::11"), ip("198.51.100.11")]);
}

#[test]
fn only_load_balancer_services_are_kept_with_their_ingress_ips_and_vip_host() {
    let lb: Service = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "uid": "0b6c9c38-3f9e-4c59-a3a4-5a0e6f1d2c3b",
            "annotations": {
                "metallb.universe.tf/allow-shared-ip": "shop-vip",
                "kube-vip.io/vipHost": "node-b"
            }
        },
        "spec": {
            "type": "LoadBalancer",
            "clusterIP": "10.96.12.34",
            "clusterIPs": ["10.96.12.34"],
            "externalTrafficPolicy": "Cluster",
            "ipFamilies": ["IPv4", "IPv6"],
            "ipFamilyPolicy": "PreferDualStack",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080, "nodePort": 31080}],
            "selector": {"app": "web"}
        },
        "status": {"loadBalancer": {"ingress": [
            {"ip": "192.0.2.240", "ipMode": "VIP"},
            {"ip": "2001:db8::f0", "ipMode": "VIP"},
            {"hostname": "web.example"}
        ]}}
    }))
    .unwrap();
    let info = service(&lb).unwrap().unwrap();
    assert_eq!((info.namespace.as_str(), info.name.as_str()), ("shop", "web"));
    assert_eq!(info.ingress_ips, [ip("192.0.2.240"), ip("2001:db8::f0")]);
    assert_eq!(info.vip_host.as_deref(), Some("node-b"));

    // Not assigned yet: kept, with no IP.
    let pending: Service = serde_json::from_value(json!({
        "metadata": {"name": "api", "namespace": "shop"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 443}]},
        "status": {"loadBalancer": {}}
    }))
    .unwrap();
    let info = service(&pending).unwrap().unwrap();
    assert!(info.ingress_ips.is_empty() && info.vip_host.is_none());

    let cluster_ip: Service = serde_json::from_value(json!({
        "metadata": {"name": "kubernetes", "namespace": "default"},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1", "ports": [{"port": 443}]},
        "status": {"loadBalancer": {}}
    }))
    .unwrap();
    assert_eq!(service(&cluster_ip).unwrap(), None);
}

#[test]
fn an_arpwatch_lease_gives_the_node_inventory() {
    let lease: Lease = serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": "arpwatch-node-b",
            "namespace": "arpwatch",
            "labels": {"app.kubernetes.io/name": "arpwatch"},
            "annotations": {"arpwatch.io/interfaces": "{\"eth0\":\"02:00:00:00:0b:01\",\"eth1\":\"02:00:00:00:0B:02\"}"}
        },
        "spec": {
            "holderIdentity": "node-b",
            "leaseDurationSeconds": 60,
            "acquireTime": "2026-11-21T09:00:00.000000Z",
            "renewTime": "2026-11-21T10:00:00.250000Z"
        }
    }))
    .unwrap();
    let inventory = super::lease(&lease).unwrap().unwrap();
    assert_eq!(&*inventory.node, "node-b");
    assert_eq!(
        inventory.interfaces,
        [
            (Arc::from("eth0"), MacAddr([2, 0, 0, 0, 0xb, 1])),
            (Arc::from("eth1"), MacAddr([2, 0, 0, 0, 0xb, 2]))
        ]
    );
    assert_eq!(inventory.renewed.to_rfc3339(), "2026-11-21T10:00:00.25Z");
    assert_eq!(inventory.duration, Duration::from_secs(60));

    // No holder: the name says the node. No renewal time: stale from the start.
    let bare: Lease = serde_json::from_value(json!({
        "metadata": {"name": "arpwatch-node-c", "namespace": "arpwatch"},
        "spec": {}
    }))
    .unwrap();
    let inventory = super::lease(&bare).unwrap().unwrap();
    assert_eq!(&*inventory.node, "node-c");
    assert!(inventory.interfaces.is_empty());
    assert_eq!(inventory.renewed, Timestamp::from_nanos(0));

    let broken: Lease = serde_json::from_value(json!({
        "metadata": {"name": "arpwatch-node-d", "annotations": {"arpwatch.io/interfaces": "{\"eth0\":\"nope\"}"}},
        "spec": {"holderIdentity": "node-d"}
    }))
    .unwrap();
    assert_eq!(
        super::lease(&broken).unwrap_err(),
        "lease arpwatch-node-d: annotation arpwatch.io/interfaces: eth0: 'nope' is not a MAC \
         address (expected six hex octets such as 02:00:5e:00:01:0a)"
    );
}

#[test]
fn metallb_pools_and_advertisements_as_metallb_writes_them() {
    let pool = dynamic(json!({
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "first-pool", "namespace": "metallb-system", "labels": {"zone": "east"}},
        "spec": {
            "addresses": ["192.0.2.240/28", "198.51.100.10-198.51.100.20", "2001:db8::f0/124"],
            "autoAssign": true,
            "avoidBuggyIPs": false
        }
    }));
    let pool = address_pool(&pool).unwrap().unwrap();
    assert_eq!(pool.name, "first-pool");
    assert_eq!(pool.labels["zone"], "east");
    assert_eq!(
        pool.addresses,
        ["192.0.2.240/28", "198.51.100.10-198.51.100.20", "2001:db8::f0/124"]
    );

    let advertisement = dynamic(json!({
        "apiVersion": "metallb.io/v1beta1",
        "kind": "L2Advertisement",
        "metadata": {"name": "east", "namespace": "metallb-system"},
        "spec": {
            "ipAddressPools": ["first-pool"],
            "ipAddressPoolSelectors": [
                {"matchLabels": {"zone": "east"}},
                {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "api"]}]}
            ],
            "nodeSelectors": [{"matchExpressions": [{"key": "node-role.kubernetes.io/control-plane", "operator": "DoesNotExist"}]}],
            "interfaces": ["eth0", "bond0"]
        }
    }));
    let advertisement = l2_advertisement(&advertisement).unwrap().unwrap();
    assert_eq!(advertisement.name, "east");
    assert_eq!(advertisement.pools, ["first-pool"]);
    assert_eq!(advertisement.pool_selectors.len(), 2);
    assert_eq!(advertisement.pool_selectors[0].match_labels["zone"], "east");
    assert_eq!(
        advertisement.pool_selectors[1].match_expressions,
        [LabelRequirement {
            key: "tier".into(),
            operator: "In".into(),
            values: vec!["web".into(), "api".into()]
        }]
    );
    assert_eq!(
        advertisement.node_selectors[0].match_expressions[0],
        LabelRequirement {
            key: "node-role.kubernetes.io/control-plane".into(),
            operator: "DoesNotExist".into(),
            values: vec![]
        }
    );
    assert_eq!(advertisement.interfaces, ["eth0", "bond0"]);

    // The default L2Advertisement of the MetalLB docs: every pool, every node, every interface.
    let everything = dynamic(json!({
        "apiVersion": "metallb.io/v1beta1",
        "kind": "L2Advertisement",
        "metadata": {"name": "example", "namespace": "metallb-system"}
    }));
    assert_eq!(
        l2_advertisement(&everything).unwrap().unwrap(),
        L2Advertisement { name: "example".into(), ..L2Advertisement::default() }
    );

    let wrong = dynamic(json!({
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "bad", "namespace": "metallb-system"},
        "spec": {"addresses": "192.0.2.0/24"}
    }));
    let err = address_pool(&wrong).unwrap_err();
    assert!(err.starts_with("IPAddressPool metallb-system/bad: spec: invalid type"), "{err}");
}

#[test]
fn a_service_l2_status_names_the_announcer_once_the_speaker_filled_it_in() {
    let status = dynamic(json!({
        "apiVersion": "metallb.io/v1beta1",
        "kind": "ServiceL2Status",
        "metadata": {
            "name": "l2-7wdkz",
            "generateName": "l2-",
            "namespace": "metallb-system",
            "labels": {
                "metallb.io/node": "node-a",
                "metallb.io/service-name": "web",
                "metallb.io/service-namespace": "shop"
            },
            "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "speaker-x8k2p", "uid": "4e1c1e55-0a3b-4b5e-8f43-51c1a1d2e3f4", "controller": true}]
        },
        "spec": {},
        "status": {
            "node": "node-a",
            "serviceName": "web",
            "serviceNamespace": "shop",
            "interfaces": [{"name": "eth0"}, {"name": "eth1"}]
        }
    }));
    assert_eq!(
        l2_status(&status).unwrap().unwrap(),
        L2Status {
            node: "node-a".into(),
            service_namespace: "shop".into(),
            service_name: "web".into(),
            interfaces: vec!["eth0".into(), "eth1".into()],
        }
    );
    // Just created by the speaker: no status yet.
    let fresh = dynamic(json!({
        "apiVersion": "metallb.io/v1beta1",
        "kind": "ServiceL2Status",
        "metadata": {"name": "l2-abcde", "namespace": "metallb-system"},
        "spec": {}
    }));
    assert_eq!(l2_status(&fresh).unwrap(), None);
}
