//! docs/metrics.md lists exactly the metrics the registry exports: what the Grafana dashboard's
//! check (`deploy/grafana/check_dashboard.py`) and the alert rules read as the list of arpwatch's
//! metrics is the code's.

use std::collections::BTreeSet;

use super::*;
use crate::stdout::OutputStats;

/// The sample names of every metric family in `text`, from its `# TYPE` lines, as queries name
/// them: a counter with `_total`, an info with `_info`, a histogram by its base name.
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| match l.split_once(' ').expect("# TYPE name type") {
            (name, "counter") => format!("{name}_total"),
            (name, "info") => format!("{name}_info"),
            (name, "gauge" | "histogram") => name.to_owned(),
            (name, kind) => panic!("{name}: a type docs/metrics.md does not cover: {kind}"),
        })
        .collect()
}

/// The metric names in the first column of docs/metrics.md's tables.
fn documented() -> BTreeSet<String> {
    let doc = include_str!("../../../../docs/metrics.md");
    doc.lines()
        .filter_map(|l| l.strip_prefix("| `")?.split_once('`'))
        .map(|(name, _)| name)
        .filter(|name| name.starts_with("arpwatch_"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn docs_metrics_md_lists_exactly_the_exported_metrics() {
    // Every family with a series (one without any has no `# TYPE` line): the readings of the
    // engine (read at each flush), the kernel and the output; a pool IP answered by this node;
    // an attached interface; the Kubernetes client's.
    let mut lab = Lab::detect(POOL_CONFIG);
    lab.health.set_kernel(&CounterTotals::default());
    lab.health.watch_output(Arc::new(OutputStats::default()));
    lab.health.set_ingress_hooks([("eth0", "xdp", "native")]);
    let kubernetes = lab.health.kubernetes();
    kubernetes.synced("nodes", true);
    kubernetes.objects("nodes", 1);
    kubernetes.error("nodes");
    lab.feed(reply(&eth("eth0"), at(0), VIP, mac(1)).egress());
    let exported = exported(&lab.text());
    let documented = documented();
    assert!(exported.len() > 30, "{exported:?}");
    assert_eq!(
        exported.difference(&documented).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "exported, not in docs/metrics.md"
    );
    assert_eq!(
        documented.difference(&exported).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "in docs/metrics.md, not exported"
    );
}
