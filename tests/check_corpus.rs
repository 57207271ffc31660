//! The parity corpus judged offline: every document of `tests/valid/` and `examples/` is
//! admitted, and every manifest below `tests/invalid/` (Secrets and Namespaces in
//! `core/`) is refused with an error naming the field of its `# expect-field:` header.
//! `tests/apiserver_parity.rs` holds the same corpus against a real API server.

use std::path::{Path, PathBuf};

use mailops::check::{Problem, Schemas, admission_problems, parse_documents};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(yaml_files(&path));
        } else if path.extension().is_some_and(|e| e == "yaml") {
            files.push(path);
        }
    }
    files.sort();
    files
}

fn problems_of(schemas: &Schemas, path: &Path) -> Vec<(usize, Vec<Problem>)> {
    let text = std::fs::read_to_string(path).unwrap();
    parse_documents(&path.display().to_string(), &text)
        .unwrap()
        .iter()
        .map(|doc| (doc.index, admission_problems(schemas, doc)))
        .collect()
}

/// The error is on the field, or on its parent with the field's last part in the message
/// (an unknown field is reported on its parent).
fn names_field(problem: &Problem, field: &str) -> bool {
    let Some(at) = problem.field.as_deref() else {
        return false;
    };
    let leaf = field
        .rsplit(['.', '['])
        .next()
        .unwrap_or(field)
        .trim_end_matches(']');
    at == field
        || (field.starts_with(&format!("{at}."))
            || field.starts_with(&format!("{at}["))
            || at == "(root)")
            && problem.message.contains(leaf)
}

#[test]
fn every_valid_document_is_admitted() {
    let schemas = Schemas::new().unwrap();
    let mut documents = 0;
    for dir in ["tests/valid", "examples"] {
        for path in yaml_files(&root().join(dir)) {
            for (index, problems) in problems_of(&schemas, &path) {
                assert!(
                    problems.is_empty(),
                    "{}: document {index}: {problems:#?}",
                    path.display()
                );
                documents += 1;
            }
        }
    }
    assert!(documents >= 40, "only {documents} valid documents");
}

#[test]
fn every_invalid_manifest_is_refused_naming_its_field() {
    let schemas = Schemas::new().unwrap();
    let files = yaml_files(&root().join("tests/invalid"));
    assert!(
        files.len() >= 110,
        "the invalid corpus has only {} files",
        files.len()
    );
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let expected = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect-field: "))
            .unwrap_or_else(|| panic!("{} lacks its `# expect-field:` header", path.display()))
            .trim()
            .to_string();
        let documents = problems_of(&schemas, path);
        assert_eq!(
            documents.len(),
            1,
            "{}: one document per file",
            path.display()
        );
        let problems = &documents[0].1;
        if !problems.iter().any(|p| names_field(p, &expected)) {
            failures.push(format!(
                "{}: no problem names {expected}: {problems:?}",
                path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
