//! The README stays true: it shows the two set-up commands `.ci/run` relies on and
//! documents every condition reason the operator can write.

use mailops::api::conditions::Reason;

fn read(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn every_reason_has_a_row_in_the_troubleshooting_table() {
    let readme = read("README.md");
    let missing: Vec<&str> = Reason::ALL
        .iter()
        .map(|r| r.as_str())
        .filter(|r| !readme.lines().any(|l| l.starts_with(&format!("| `{r}` |"))))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md has no troubleshooting row for {missing:?}"
    );
}

#[test]
fn the_two_commands_are_shown_and_ci_runs_the_same_tests() {
    let readme = read("README.md");
    assert!(readme.contains("cargo run --release -- check examples/"));
    assert!(
        readme
            .lines()
            .any(|l| l.trim_start().starts_with("cargo test "))
    );
    let ci = read(".ci/run");
    assert!(
        ci.contains("cargo test --locked"),
        ".ci/run must run the README's test command"
    );
}

#[test]
fn every_metric_is_explained() {
    let readme = read("README.md");
    let metrics = mailops::metrics::Metrics::new();
    // Families without samples are not exposed; give each one a sample.
    metrics.record_reconcile(
        "EmailProvider",
        "success",
        std::time::Duration::from_millis(5),
    );
    metrics.record_kube_request("get");
    metrics.record_token_request("success");
    metrics.record_probe("ews", "success");
    metrics.set_objects("EmailProvider", "True", 1);
    let exposition = metrics.encode();
    let names: Vec<String> = exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| match l.split_whitespace().collect::<Vec<_>>()[..] {
            // OpenMetrics names a counter family without the `_total` its samples carry.
            [name, "counter"] => format!("{name}_total"),
            [name, ..] => name.to_string(),
            [] => String::new(),
        })
        .collect();
    assert_eq!(names.len(), 7, "{exposition}");
    for name in names {
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "README.md does not explain {name}"
        );
    }
}
