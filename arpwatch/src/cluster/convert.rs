//! API objects to the core's plain inputs ([`arpwatch_core::cluster`]): what each kind of object
//! says that matters, copied out; nothing else of an object is kept. A conversion returns
//! `Ok(None)` for an object that says nothing to arpwatch (a Service that is not a LoadBalancer)
//! and an error, one sentence naming the object, for one it cannot read.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use arpwatch_core::cluster::{
    AddressPool, Inventory, L2Advertisement, L2Status, LabelRequirement, LabelSelector, NodeInfo,
    ServiceInfo,
};
use arpwatch_core::observation::{MacAddr, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::jiff;
use kube::api::DynamicObject;
use kube::ResourceExt;
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// The annotation of an arpwatch Lease listing the node's interfaces: a JSON object
/// `{"ifname": "mac"}`.
pub const INTERFACES_ANNOTATION: &str = "arpwatch.io/interfaces";
/// kube-vip's annotation naming the node that holds a Service's VIP.
const KUBE_VIP_HOST: &str = "kube-vip.io/vipHost";

/// Why an object could not be read.
pub type Problem = String;

pub fn node(node: &Node) -> Result<Option<NodeInfo>, Problem> {
    let addresses = node
        .status
        .iter()
        .flat_map(|status| status.addresses.iter().flatten())
        .filter(|a| a.type_ == "InternalIP" || a.type_ == "ExternalIP")
        // A hostname or a malformed address names nothing on the wire.
        .filter_map(|a| a.address.parse::<IpAddr>().ok())
        .collect();
    Ok(Some(NodeInfo { name: node.name_any().into(), labels: node.labels().clone(), addresses }))
}

/// LoadBalancer Services only; the others are of no interest.
pub fn service(service: &Service) -> Result<Option<ServiceInfo>, Problem> {
    let spec = service.spec.as_ref();
    if spec.and_then(|s| s.type_.as_deref()) != Some("LoadBalancer") {
        return Ok(None);
    }
    let ingress_ips = service
        .status
        .iter()
        .filter_map(|status| status.load_balancer.as_ref())
        .flat_map(|lb| lb.ingress.iter().flatten())
        .filter_map(|ingress| ingress.ip.as_deref())
        .filter_map(|ip| ip.parse::<IpAddr>().ok())
        .collect();
    Ok(Some(ServiceInfo {
        namespace: service.namespace().unwrap_or_default(),
        name: service.name_any(),
        ingress_ips,
        vip_host: service.annotations().get(KUBE_VIP_HOST).map(|host| Arc::from(host.as_str())),
    }))
}

/// An arpwatch Lease: the node is its holder (the name without `arpwatch-` when it has none).
pub fn lease(lease: &Lease) -> Result<Option<Inventory>, Problem> {
    let name = lease.name_any();
    let spec = lease.spec.clone().unwrap_or_default();
    let node = match spec.holder_identity.filter(|h| !h.is_empty()) {
        Some(holder) => holder,
        None => match name.strip_prefix(super::lease::LEASE_PREFIX) {
            Some(node) => node.to_owned(),
            None => return Err(format!("lease {name}: no spec.holderIdentity names its node")),
        },
    };
    let interfaces = match lease.annotations().get(INTERFACES_ANNOTATION) {
        Some(json) => parse_interfaces(json)
            .map_err(|err| format!("lease {name}: annotation {INTERFACES_ANNOTATION}: {err}"))?,
        None => Vec::new(),
    };
    // Never renewed (or not said when): as old as can be, so stale.
    let renewed =
        spec.renew_time.or(spec.acquire_time).map_or(Timestamp::from_nanos(0), |t| timestamp(t.0));
    let duration = spec.lease_duration_seconds.and_then(|s| u64::try_from(s).ok()).unwrap_or(0);
    Ok(Some(Inventory {
        node: node.into(),
        interfaces,
        renewed,
        duration: Duration::from_secs(duration),
    }))
}

/// `{"eth0": "02:00:00:00:00:01", ...}` as (name, MAC) pairs, in name order.
pub fn parse_interfaces(json: &str) -> Result<Vec<(Arc<str>, MacAddr)>, Problem> {
    let map: BTreeMap<String, String> = serde_json::from_str(json)
        .map_err(|err| format!("not a JSON object of interface names to MACs: {err}"))?;
    map.into_iter()
        .map(|(name, mac)| {
            let mac = mac.parse::<MacAddr>().map_err(|err| format!("{name}: {err}"))?;
            Ok((Arc::from(name), mac))
        })
        .collect()
}

/// A wall-clock instant from the API (before 1970 counts as 1970).
pub fn timestamp(t: jiff::Timestamp) -> Timestamp {
    Timestamp::from_nanos(u64::try_from(t.as_nanosecond()).unwrap_or(0))
}

/// The API's form of a wall-clock instant.
pub fn micro_time(t: Timestamp) -> meta::MicroTime {
    // Nanoseconds in a u64 are always within jiff's range.
    meta::MicroTime(
        jiff::Timestamp::from_nanosecond(i128::from(t.as_nanos()))
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
    )
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct PoolSpec {
    addresses: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct L2AdvertisementSpec {
    ip_address_pools: Vec<String>,
    ip_address_pool_selectors: Vec<meta::LabelSelector>,
    node_selectors: Vec<meta::LabelSelector>,
    interfaces: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct L2StatusStatus {
    node: String,
    service_name: String,
    service_namespace: String,
    interfaces: Vec<L2StatusInterface>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct L2StatusInterface {
    name: String,
}

/// `field` (`spec` or `status`) of a MetalLB object; absent reads as empty.
fn part<T: DeserializeOwned + Default>(
    obj: &DynamicObject,
    kind: &str,
    field: &str,
) -> Result<T, Problem> {
    match obj.data.get(field) {
        None | Some(serde_json::Value::Null) => Ok(T::default()),
        Some(value) => T::deserialize(value)
            .map_err(|err| format!("{kind} {}: {field}: {err}", qualified_name(obj))),
    }
}

fn qualified_name(obj: &DynamicObject) -> String {
    match obj.namespace() {
        Some(ns) => format!("{ns}/{}", obj.name_any()),
        None => obj.name_any(),
    }
}

pub fn address_pool(obj: &DynamicObject) -> Result<Option<AddressPool>, Problem> {
    let spec: PoolSpec = part(obj, "IPAddressPool", "spec")?;
    Ok(Some(AddressPool {
        name: obj.name_any(),
        labels: obj.labels().clone(),
        addresses: spec.addresses,
    }))
}

pub fn l2_advertisement(obj: &DynamicObject) -> Result<Option<L2Advertisement>, Problem> {
    let spec: L2AdvertisementSpec = part(obj, "L2Advertisement", "spec")?;
    Ok(Some(L2Advertisement {
        name: obj.name_any(),
        pools: spec.ip_address_pools,
        pool_selectors: spec.ip_address_pool_selectors.into_iter().map(selector).collect(),
        node_selectors: spec.node_selectors.into_iter().map(selector).collect(),
        interfaces: spec.interfaces,
    }))
}

/// A ServiceL2Status whose status does not name a node and a Service yet (the speaker fills it
/// in after creating the object) says nothing.
pub fn l2_status(obj: &DynamicObject) -> Result<Option<L2Status>, Problem> {
    let status: L2StatusStatus = part(obj, "ServiceL2Status", "status")?;
    if status.node.is_empty() || status.service_name.is_empty() {
        return Ok(None);
    }
    Ok(Some(L2Status {
        node: status.node.into(),
        service_namespace: status.service_namespace,
        service_name: status.service_name,
        interfaces: status.interfaces.into_iter().map(|i| Arc::from(i.name)).collect(),
    }))
}

fn selector(selector: meta::LabelSelector) -> LabelSelector {
    LabelSelector {
        match_labels: selector.match_labels.unwrap_or_default(),
        match_expressions: selector
            .match_expressions
            .into_iter()
            .flatten()
            .map(|r| LabelRequirement {
                key: r.key,
                operator: r.operator,
                values: r.values.unwrap_or_default(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests;
