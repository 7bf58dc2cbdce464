#!/usr/bin/env bash
# Checks the deployment artifacts, the way CI runs them (.ci/run calls this script):
#   1. Kubernetes manifests against the Kubernetes JSON schemas (kubernetes-validate, strict,
#      oldest and newest Kubernetes it carries), then what no schema covers: the PodMonitor CRD
#      and the kustomization, checked for consistency with the DaemonSet, and the RBAC: exactly
#      the access the cluster context uses (docs/kubernetes.md), bound to the DaemonSet's
#      ServiceAccount, nothing more.
#   2. Alert rules: promtool check rules, then promtool test rules (a firing and a not-firing
#      case for each alert). The Grafana dashboard: every query reads only metrics arpwatch
#      exports, made into recording rules, promtool check rules and promtool test rules on
#      synthetic series (deploy/grafana/check_dashboard.py).
#   3. The container image: deploy/image.sh builds the static binary and the image, and checks
#      entrypoint, user and labels.
#   4. The systemd unit: systemd-analyze verify (any diagnostic fails) and its exposure score.
#   5. The ConfigMap's arpwatch.toml, parsed by the binary itself.
# It installs what it needs (pip: kubernetes-validate; Debian: prometheus for promtool, systemd,
# buildah) and fails, never skips, when a check cannot run.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "deploy/check: FAILED: $*" >&2; exit 1; }
step() { echo "== deploy/check: $*"; }

step "tools"
missing=()
command -v promtool >/dev/null || missing+=(prometheus)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v buildah >/dev/null || command -v podman >/dev/null || missing+=(buildah)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq || fail "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
    || fail "cannot install ${missing[*]}"
fi
kv_version=1.37.0
if ! command -v kubernetes-validate >/dev/null || [ "$(kubernetes-validate --version)" != "$kv_version" ]; then
  python3 -m pip install -q "kubernetes-validate==$kv_version" || fail "cannot install kubernetes-validate"
fi
for tool in promtool systemd-analyze kubernetes-validate python3 readelf; do
  command -v "$tool" >/dev/null || fail "$tool is not installed"
done

step "kubernetes manifests against the schemas"
k8s=deploy/kubernetes
core=("$k8s/namespace.yaml" "$k8s/serviceaccount.yaml" "$k8s/configmap.yaml" "$k8s/daemonset.yaml"
      "$k8s/rbac-read.yaml" "$k8s/rbac-leases.yaml" "$k8s/rbac-events.yaml")
for version in 1.28.0 1.37.0; do
  out=$(kubernetes-validate --strict --kubernetes-version "$version" "${core[@]}" 2>&1) \
    || { echo "$out" >&2; fail "manifests do not validate against Kubernetes $version"; }
  # A kind without a schema is only a warning to kubernetes-validate; here every core file has one.
  if grep -q "Couldn't find schema" <<<"$out"; then
    echo "$out" >&2
    fail "a core manifest has no schema in Kubernetes $version"
  fi
done

step "PodMonitor, kustomization and RBAC (no schema: consistency with the DaemonSet)"
python3 - "$k8s" <<'PY' || fail "PodMonitor, kustomization or RBAC check"
import pathlib, sys, yaml

k8s = pathlib.Path(sys.argv[1])
def load(name):
    return yaml.safe_load((k8s / name).read_text())
def load_all(name):
    return [d for d in yaml.safe_load_all((k8s / name).read_text()) if d is not None]
def check(ok, what):
    if not ok:
        sys.exit(f"{what}")

kust = load("kustomization.yaml")
listed = set(kust["resources"])
present = {p.name for p in k8s.glob("*.yaml")} - {"kustomization.yaml"}
check(listed == present, f"kustomization resources {sorted(listed)} != files {sorted(present)}")

ds = load("daemonset.yaml")
pm = load("podmonitor.yaml")
pod = ds["spec"]["template"]
container = pod["spec"]["containers"][0]
ports = {p["name"]: p["containerPort"] for p in container["ports"]}
args = container["args"]
metrics_port = int(args[args.index("--metrics-addr") + 1].rsplit(":", 1)[1])

check(pm["apiVersion"] == "monitoring.coreos.com/v1" and pm["kind"] == "PodMonitor", "PodMonitor apiVersion/kind")
check(pm["metadata"]["namespace"] == ds["metadata"]["namespace"], "PodMonitor namespace differs from the DaemonSet's")
known = {"jobLabel", "selector", "podMetricsEndpoints", "namespaceSelector", "podTargetLabels", "sampleLimit"}
check(set(pm["spec"]) <= known, f"unexpected PodMonitor spec keys {set(pm['spec']) - known}")
labels = pod["metadata"]["labels"]
for key, value in pm["spec"]["selector"]["matchLabels"].items():
    check(labels.get(key) == value, f"PodMonitor selector {key}={value} matches no pod label")
check(pm["spec"]["jobLabel"] in labels, "PodMonitor jobLabel names no pod label")
check(labels[pm["spec"]["jobLabel"]] == "arpwatch", "the job label must be arpwatch (the alert rules select job=\"arpwatch\")")
for endpoint in pm["spec"]["podMetricsEndpoints"]:
    check(endpoint["port"] in ports, f"PodMonitor port {endpoint['port']} is not a container port name")
    check(ports[endpoint["port"]] == metrics_port, "PodMonitor port differs from --metrics-addr")
    check(endpoint.get("path", "/metrics") == "/metrics", "PodMonitor path is not /metrics")

annotations = pod["metadata"]["annotations"]
check(annotations["prometheus.io/scrape"] == "true", "prometheus.io/scrape annotation")
check(int(annotations["prometheus.io/port"]) == metrics_port, "prometheus.io/port differs from --metrics-addr")
for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
    get = container[probe]["httpGet"]
    check(get["path"] == path and ports.get(get["port"]) == metrics_port, f"{probe} must GET {path} on the metrics port")
caps = container["securityContext"]["capabilities"]
check(caps["drop"] == ["ALL"] and sorted(caps["add"]) == ["BPF", "NET_ADMIN", "PERFMON"], "capabilities")
check(pod["spec"]["hostNetwork"] is True, "hostNetwork")
env = {e["name"]: e for e in container["env"]}
check(env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName", "NODE_NAME from spec.nodeName")
sa = load("serviceaccount.yaml")
check(sa["automountServiceAccountToken"] is False, "the ServiceAccount must not mount a token by default")
check(pod["spec"].get("automountServiceAccountToken") is True,
      "the DaemonSet's pods mount the token (the cluster context needs it)")
check(pod["spec"]["serviceAccountName"] == sa["metadata"]["name"], "the DaemonSet's ServiceAccount")
if "--kubernetes" in args:
    check(args[args.index("--kubernetes") + 1] in ("auto", "on"), "--kubernetes must be auto or on")
namespace = ds["metadata"]["namespace"]
check(sa["metadata"]["namespace"] == namespace, "the ServiceAccount's namespace")
lease_ns = args[args.index("--lease-namespace") + 1] if "--lease-namespace" in args else namespace
print("PodMonitor and kustomization consistent with the DaemonSet")

# RBAC: exactly what the cluster context uses (docs/kubernetes.md, "RBAC").
# (scope, apiGroup, resource, verb); scope "cluster" or the namespace of a Role.
expected = set()
for resource in ("nodes", "services"):
    expected |= {("cluster", "", resource, v) for v in ("get", "list", "watch")}
for resource in ("ipaddresspools", "l2advertisements", "servicel2statuses"):
    expected |= {("cluster", "metallb.io", resource, v) for v in ("get", "list", "watch")}
expected |= {(lease_ns, "coordination.k8s.io", "leases", v)
             for v in ("get", "list", "watch", "create", "update", "patch")}
expected |= {("cluster", "events.k8s.io", "events", v) for v in ("create", "get", "patch")}

roles, bindings = {}, []
for name in ("rbac-read.yaml", "rbac-leases.yaml", "rbac-events.yaml"):
    for doc in load_all(name):
        kind = doc["kind"]
        if kind in ("ClusterRole", "Role"):
            check("aggregationRule" not in doc, f"{kind} {doc['metadata']['name']}: no aggregation")
            scope = "cluster" if kind == "ClusterRole" else doc["metadata"]["namespace"]
            roles[(kind, doc["metadata"]["name"])] = (scope, doc["rules"])
        elif kind in ("ClusterRoleBinding", "RoleBinding"):
            bindings.append(doc)
        else:
            check(False, f"{name}: unexpected kind {kind}")
granted = set()
for binding in bindings:
    ref = binding["roleRef"]
    check(ref["apiGroup"] == "rbac.authorization.k8s.io", f"binding {binding['metadata']['name']}: roleRef apiGroup")
    check((ref["kind"], ref["name"]) in roles, f"binding {binding['metadata']['name']} refers to no role here")
    scope, rules = roles[(ref["kind"], ref["name"])]
    if binding["kind"] == "RoleBinding":
        check(ref["kind"] == "Role" and binding["metadata"]["namespace"] == scope,
              f"RoleBinding {binding['metadata']['name']}: a Role of its own namespace")
    check(binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": namespace}],
          f"binding {binding['metadata']['name']}: the one subject is the DaemonSet's ServiceAccount")
    for rule in rules:
        check(set(rule) <= {"apiGroups", "resources", "verbs"}, f"{ref['name']}: unexpected rule keys {set(rule)}")
        for field in ("apiGroups", "resources", "verbs"):
            check("*" not in rule[field], f"{ref['name']}: wildcard in {field}")
        granted |= {(scope, g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
check(granted == expected,
      f"RBAC grants {sorted(granted - expected)} beyond the cluster context and lacks {sorted(expected - granted)}")
print(f"RBAC: {len(granted)} permissions, exactly those of the cluster context, bound to {namespace}/{sa['metadata']['name']}")
PY

step "alert rules"
promtool check rules deploy/prometheus/arpwatch.rules.yml || fail "promtool check rules"
(cd deploy/prometheus && promtool test rules arpwatch.rules.test.yml) || fail "promtool test rules"

step "grafana dashboard: every query checked with promtool"
python3 deploy/grafana/check_dashboard.py || fail "the Grafana dashboard's queries"

step "container image (static binary, build, inspect)"
deploy/image.sh || fail "image build"
binary="${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-musl/release/arpwatch"
binary=$(realpath "$binary")

step "systemd unit"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
# verify wants ExecStart to exist: the same unit, pointing at the binary just built.
sed "s#/usr/local/bin/arpwatch#$binary#" deploy/systemd/arpwatch.service >"$scratch/arpwatch.service"
# systemd-analyze verify exits 0 on unknown keys and bad values: any diagnostic is a failure.
diagnostics=$(systemd-analyze verify "$scratch/arpwatch.service" 2>&1) || fail "systemd-analyze verify: $diagnostics"
[ -z "$diagnostics" ] || fail "systemd-analyze verify: $diagnostics"
systemd-analyze security --offline=yes --threshold=40 "$scratch/arpwatch.service" >"$scratch/security.txt" 2>&1 \
  || { cat "$scratch/security.txt" >&2; fail "the unit's exposure level rose above 4.0"; }
tail -n1 "$scratch/security.txt"

step "the ConfigMap's arpwatch.toml, parsed by arpwatch"
python3 -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["data"]["arpwatch.toml"], end="")' \
  "$k8s/configmap.yaml" >"$scratch/arpwatch.toml"
# replay loads the configuration before it opens any capture: exit status 2 is a configuration
# error; an empty "capture" then fails with status 1, after the configuration was accepted.
status=0
"$binary" replay --config "$scratch/arpwatch.toml" /dev/null >/dev/null 2>"$scratch/replay.err" || status=$?
if [ "$status" -eq 2 ] || grep -q "config" "$scratch/replay.err"; then
  cat "$scratch/replay.err" >&2
  fail "the ConfigMap's arpwatch.toml is rejected"
fi

step "all deployment checks passed"
