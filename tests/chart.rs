//! The chart ships exactly the CRDs the Rust types generate: its `crds/` copy can drift
//! from neither `mailops::api::crds_yaml()` nor the top-level `crds/` file.

use std::path::Path;

const TOP_LEVEL: &str = "crds/mailops.dev.yaml";
const CHART_COPY: &str = "charts/mailops/crds/mailops.dev.yaml";

#[test]
fn chart_crds_match_the_rust_types_and_the_top_level_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let generated = mailops::api::crds_yaml().unwrap();
    let chart_path = root.join(CHART_COPY);
    if std::env::var_os("MAILOPS_BLESS").is_some() {
        std::fs::write(&chart_path, &generated).unwrap();
    }
    let chart = std::fs::read_to_string(&chart_path).unwrap_or_default();
    let top_level = std::fs::read_to_string(root.join(TOP_LEVEL)).unwrap_or_default();
    assert!(
        chart == generated,
        "{CHART_COPY} is out of date with src/api; regenerate it with `cargo run -- crd > {CHART_COPY}` (or MAILOPS_BLESS=1 cargo test --test chart)"
    );
    assert!(
        chart == top_level,
        "{CHART_COPY} differs from {TOP_LEVEL}; regenerate both with MAILOPS_BLESS=1 cargo test --test crds --test chart"
    );
}
