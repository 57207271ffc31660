//! Client-side admission against the generated CRDs: every example is accepted, and every
//! manifest in `tests/invalid/` is rejected with an error that names the offending field.
//!
//! Each invalid manifest starts with `# expect-field: <path>`; the test requires an error on
//! exactly that field (or, for object-level rules, an error on the object whose message
//! names the field), so a manifest rejected for some other reason fails the test.

use std::path::{Path, PathBuf};

use mailops::check::{FieldError, Schemas, parse_documents};
use serde_json::Value;

fn files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

fn mailops_objects(path: &Path) -> Vec<(String, Value)> {
    let text = std::fs::read_to_string(path).unwrap();
    parse_documents(&path.display().to_string(), &text)
        .unwrap()
        .into_iter()
        .filter(|d| {
            d.value["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("mailops.dev/"))
        })
        .map(|d| (d.value["kind"].as_str().unwrap().to_string(), d.value))
        .collect()
}

fn names_field(error: &FieldError, field: &str) -> bool {
    if error.field == field {
        return true;
    }
    // Object-level rules (CEL on `spec.authentication`, a missing required property, an
    // unknown property) are reported on the parent; their message must carry the rest.
    let leaf = field.rsplit('.').next().unwrap_or(field);
    (field.starts_with(&format!("{}.", error.field)) || error.field == "(root)")
        && error.message.contains(leaf)
}

#[test]
fn every_example_is_admitted() {
    let schemas = Schemas::new().unwrap();
    let examples = files("examples");
    assert!(
        examples.len() >= 4,
        "expected the four example files, found {examples:?}"
    );
    let mut admitted = 0;
    for path in &examples {
        for (kind, object) in mailops_objects(path) {
            if let Err(errors) = schemas.admit(&kind, &object) {
                panic!("{}: {kind} rejected: {errors:?}", path.display());
            }
            admitted += 1;
        }
    }
    assert!(admitted >= 10, "only {admitted} objects in examples/");
}

#[test]
fn every_invalid_manifest_is_rejected_naming_its_field() {
    let schemas = Schemas::new().unwrap();
    let corpus = files("tests/invalid");
    assert!(
        corpus.len() >= 40,
        "the corpus has only {} manifests",
        corpus.len()
    );
    let mut failures = Vec::new();
    for path in &corpus {
        let text = std::fs::read_to_string(path).unwrap();
        let expected = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect-field: "))
            .unwrap_or_else(|| panic!("{} lacks its `# expect-field:` header", path.display()))
            .trim()
            .to_string();
        let objects = mailops_objects(path);
        assert_eq!(
            objects.len(),
            1,
            "{} must hold one mailops object",
            path.display()
        );
        let (kind, object) = &objects[0];
        match schemas.admit(kind, object) {
            Ok(_) => failures.push(format!("{}: accepted", path.display())),
            Err(errors) if !errors.iter().any(|e| names_field(e, &expected)) => failures.push(
                format!("{}: no error names {expected}: {errors:?}", path.display()),
            ),
            Err(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} manifests:\n{}",
        failures.len(),
        corpus.len(),
        failures.join("\n")
    );
}
