#!/usr/bin/env python3
"""Checks every PromQL expression of the Grafana dashboard (deploy/grafana/arpwatch.json).

  python3 deploy/grafana/check_dashboard.py           # check (deploy/check.sh runs this)
  python3 deploy/grafana/check_dashboard.py --write   # regenerate the rules file after an edit

1. Extracts every expression: each panel target's `expr`, and the selector of each template
   variable's `label_values(...)` query. Grafana's variables are substituted with concrete values
   (`$job` with arpwatch, the multi-value ones with their "All" regex `.*`, `$__rate_interval`
   with 5m, `$__interval` with 1m, `$__range` with 1h); any other `$` fails.
2. Checks that every metric an expression reads is one arpwatch exports, as docs/metrics.md lists
   them (a histogram's `_bucket`, `_sum`, `_count` included), or Prometheus' own `up`. The Rust
   test `metrics::tests::documented` checks that docs/metrics.md lists exactly the metrics the
   registry exports, so this is a check against the code.
3. Writes them as recording rules, one per expression (`dashboard:<panel>:<refId>`), in
   arpwatch.dashboard.rules.yml, which is committed: the check fails when it is not what the
   dashboard makes (run --write).
4. Runs `promtool check rules` on it, then `promtool test rules arpwatch.dashboard.rules.test.yml`
   (synthetic series of two nodes; asserts each rule's value in a representative case), and
   checks that the test asserts every rule.
Any failure exits non-zero with the reason.
"""

import json
import pathlib
import re
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DASHBOARD = HERE / "arpwatch.json"
RULES = HERE / "arpwatch.dashboard.rules.yml"
TEST = HERE / "arpwatch.dashboard.rules.test.yml"
METRICS_DOC = ROOT / "docs" / "metrics.md"

# Grafana's variables and what the check puts in their place: the "All" value of the
# multi-value ones (allValue ".*"), a job, and intervals.
SUBSTITUTIONS = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "$job": "arpwatch",
    "$instance": ".*",
    "$node": ".*",
    "$pool": ".*",
    "$ip": ".*",
}
# Metrics that are not arpwatch's but every Prometheus has.
PROMETHEUS_METRICS = {"up"}

# PromQL words that are not metric names.
FUNCTIONS = {
    "abs", "absent", "absent_over_time", "avg", "avg_over_time", "bottomk", "ceil", "changes",
    "clamp", "clamp_max", "clamp_min", "count", "count_over_time", "count_values", "day_of_month",
    "day_of_week", "delta", "deriv", "exp", "floor", "group", "histogram_quantile", "holt_winters",
    "idelta", "increase", "irate", "label_join", "label_replace", "last_over_time", "ln", "log2",
    "log10", "max", "max_over_time", "min", "min_over_time", "predict_linear", "quantile",
    "quantile_over_time", "rate", "resets", "round", "scalar", "sgn", "sort", "sort_desc",
    "stddev", "stdvar", "sum", "sum_over_time", "time", "timestamp", "topk", "vector",
}
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
            "group_left", "group_right", "inf", "nan"}


def fail(message):
    sys.exit(f"check_dashboard: FAILED: {message}")


def slug(text):
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def substitute(expr, where):
    for name in sorted(SUBSTITUTIONS, key=len, reverse=True):
        expr = expr.replace("${" + name[1:] + "}", SUBSTITUTIONS[name])
        expr = expr.replace(name, SUBSTITUTIONS[name])
    if "$" in expr:
        fail(f"{where}: a variable the check does not know: {expr}")
    return expr


def expressions(dashboard):
    """(record name, expression, where) for every query of the dashboard."""
    found = []

    def walk(panels):
        for panel in panels:
            walk(panel.get("panels", []))
            for target in panel.get("targets", []):
                expr = target.get("expr")
                if expr is None:
                    continue
                where = f"panel {panel['id']} {panel['title']!r} target {target['refId']}"
                record = f"dashboard:{slug(panel['title'])}:{target['refId'].lower()}"
                found.append((record, substitute(expr, where), where))

    walk(dashboard["panels"])
    for var in dashboard["templating"]["list"]:
        if var["type"] != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        where = f"variable {var['name']}"
        m = re.fullmatch(r"label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)", query.strip())
        if not m:
            fail(f"{where}: only label_values(selector, label) queries are checked: {query}")
        selector, label = m.groups()
        expr = f"count by ({label}) ({substitute(selector, where)})"
        found.append((f"dashboard:variable_{var['name']}", expr, where))
    records = [record for record, _, _ in found]
    duplicates = {r for r in records if records.count(r) > 1}
    if duplicates:
        fail(f"two queries would make the same rule (give the panels distinct titles): {duplicates}")
    return found


def check_layout(dashboard):
    """Panel ids unique, no two panels overlapping on the 24-column grid, every query on the
    `${datasource}` variable."""
    panels = list(dashboard["panels"])
    for panel in dashboard["panels"]:
        panels += panel.get("panels", [])
    ids = [p["id"] for p in panels]
    if len(ids) != len(set(ids)):
        fail(f"panel ids are not unique: {ids}")
    cells = {}
    for p in dashboard["panels"]:
        g = p["gridPos"]
        if g["x"] + g["w"] > 24:
            fail(f"panel {p['id']} {p['title']!r} is wider than the grid")
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                if (x, y) in cells:
                    fail(f"panels {cells[(x, y)]} and {p['id']} overlap at ({x}, {y})")
                cells[(x, y)] = p["id"]
    for p in panels:
        for holder in [p] + p.get("targets", []):
            ds = holder.get("datasource")
            if p["type"] != "row" and ds != {"type": "prometheus", "uid": "${datasource}"}:
                fail(f"panel {p['id']} {p['title']!r}: datasource {ds}, not ${{datasource}}")


def metric_names(expr):
    """The metric names an expression reads: identifiers that are not functions, keywords,
    label names (inside {...} or the parentheses of by/without/on/ignoring/group_*) or
    durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges
    text = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text
    )
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        word = m.group(0)
        start = m.start()
        if start > 0 and (text[start - 1].isdigit() or text[start - 1] == "."):
            continue  # a number such as 1e-9
        if word in FUNCTIONS or word in KEYWORDS:
            continue
        names.add(word)
    return names


def documented_metrics():
    """The metric names of docs/metrics.md's tables (first column), with a histogram's series."""
    names = set()
    for line in METRICS_DOC.read_text().splitlines():
        m = re.match(r"\|\s*`(arpwatch_[a-z0-9_]+)`\s*\|\s*([^|]*)\|", line)
        if not m:
            continue
        name, kind = m.groups()
        names.add(name)
        if kind.strip().startswith("histogram"):
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    if not names:
        fail(f"no metric found in {METRICS_DOC}")
    return names


def rules_yaml(found):
    lines = [
        "# GENERATED by deploy/grafana/check_dashboard.py --write from deploy/grafana/arpwatch.json:",
        "# one recording rule per query of the dashboard, its Grafana variables substituted, so",
        "# promtool can check and test them (deploy/grafana/arpwatch.dashboard.rules.test.yml).",
        "# Not meant to be loaded into Prometheus. Do not edit by hand.",
        "groups:",
        "  - name: arpwatch-dashboard",
        "    rules:",
    ]
    for record, expr, where in found:
        lines.append(f"      # {where}")
        lines.append(f"      - record: {record}")
        lines.append(f"        expr: {json.dumps(expr)}")
    return "\n".join(lines) + "\n"


def run(*command):
    print("+", " ".join(command), flush=True)
    result = subprocess.run(command, cwd=HERE, capture_output=True, text=True)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    if result.returncode != 0:
        fail(f"{' '.join(command)} exited with {result.returncode}")


def main():
    write = sys.argv[1:] == ["--write"]
    if sys.argv[1:] not in ([], ["--write"]):
        sys.exit(__doc__)
    dashboard = json.loads(DASHBOARD.read_text())
    if dashboard.get("schemaVersion", 0) < 36:
        fail("schemaVersion below 36")
    datasource = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    if [v["name"] for v in datasource] != ["datasource"]:
        fail("the dashboard needs exactly one datasource variable, named datasource")
    check_layout(dashboard)
    found = expressions(dashboard)

    known = documented_metrics() | PROMETHEUS_METRICS
    unknown = {}
    for record, expr, where in found:
        names = metric_names(expr)
        if not names:
            fail(f"{where}: reads no metric: {expr}")
        for name in names - known:
            unknown.setdefault(name, []).append(where)
    if unknown:
        detail = "; ".join(f"{name} (in {', '.join(w)})" for name, w in sorted(unknown.items()))
        fail(f"metrics arpwatch does not export (not in docs/metrics.md): {detail}")
    used = set().union(*(metric_names(expr) for _, expr, _ in found))
    print(f"{len(found)} expressions, {len(used)} metrics, all exported: {', '.join(sorted(used))}")

    text = rules_yaml(found)
    if write:
        RULES.write_text(text)
        print(f"wrote {RULES.relative_to(ROOT)}")
    elif not RULES.exists() or RULES.read_text() != text:
        fail(f"{RULES.relative_to(ROOT)} is not what the dashboard makes: "
             "run python3 deploy/grafana/check_dashboard.py --write")

    test = TEST.read_text()
    untested = [record for record, _, _ in found if not re.search(re.escape(record) + r"\b", test)]
    if untested:
        fail(f"{TEST.name} asserts no value of {', '.join(untested)}")
    run("promtool", "check", "rules", RULES.name)
    run("promtool", "test", "rules", TEST.name)
    print("dashboard expressions: all checked")


if __name__ == "__main__":
    main()
