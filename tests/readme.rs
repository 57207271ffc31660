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
