//! Reading `mailops check` input: files, folders and standard input, split into YAML
//! documents, each remembered with where it came from.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{Error, Result};

/// One YAML document of the input.
#[derive(Clone, Debug)]
pub struct Document {
    /// File name (or `<stdin>`).
    pub source: String,
    /// 1-based index among the non-empty documents of that file.
    pub index: usize,
    /// 1-based position among the `items` of a `kind: List` document, for its items.
    pub item: Option<usize>,
    /// The document as JSON.
    pub value: Value,
}

/// Read every path: `-` is standard input, folders are walked for `*.yaml` / `*.yml` in
/// name order. A file reached twice (named twice, or through a symlink) is read once.
pub fn read_paths(paths: &[PathBuf]) -> Result<Vec<(String, String)>> {
    let mut sources = Vec::new();
    let mut seen = BTreeSet::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|source| Error::Io {
                    path: "<stdin>".into(),
                    source,
                })?;
            sources.push(("<stdin>".to_string(), text));
        } else if path.is_dir() {
            // A folder named on the command line is walked even when it is a symlink.
            walk(path, &mut seen, &mut sources)?;
        } else {
            // So is any file named there, even a FIFO such as `<(helm template ...)`.
            read_once(path, &mut seen, &mut sources)?;
        }
    }
    Ok(sources)
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Walk a folder. Symlinked folders inside it are not followed: `up -> ..` would make the
/// walk endless. Symlinked files are read.
fn walk(dir: &Path, seen: &mut BTreeSet<PathBuf>, out: &mut Vec<(String, String)>) -> Result<()> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let file_type = entry.file_type().map_err(io_error(&entry.path()))?;
        entries.push((entry.path(), file_type));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, file_type) in entries {
        if file_type.is_dir() {
            walk(&path, seen, out)?;
            continue;
        }
        let is_yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
        // Only regular files (also through a symlink): reading a FIFO found in a tree
        // would block, and a symlinked folder is not followed.
        let is_file = file_type.is_file()
            || (file_type.is_symlink() && std::fs::metadata(&path).is_ok_and(|m| m.is_file()));
        if is_yaml && is_file {
            read_once(&path, seen, out)?;
        }
    }
    Ok(())
}

fn read_once(
    path: &Path,
    seen: &mut BTreeSet<PathBuf>,
    out: &mut Vec<(String, String)>,
) -> Result<()> {
    let identity = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if !seen.insert(identity) {
        return Ok(());
    }
    let bytes = std::fs::read(path).map_err(io_error(path))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::Parse(format!("{}: not UTF-8 text, so not YAML", path.display())))?;
    out.push((path.display().to_string(), text));
    Ok(())
}

/// Split one source into documents. A syntax error is reported with its line and column
/// only: the parser's snippet would quote the input, which may hold Secret data.
///
/// The parser's budget (events, nodes, anchors, alias expansion) applies to each document
/// on its own, so a stream may hold any number of documents (`helm template` of thousands
/// of objects) while one "billion laughs" document still fails fast. The per-document
/// alias limits are tighter than the parser's defaults, which let one such document grow
/// to ~200 MB before failing; no manifest comes near them.
pub fn parse_documents(source: &str, text: &str) -> Result<Vec<Document>> {
    // kubectl reads YAML with go-yaml v2 (YAML 1.1): `017` is octal 15, and of a key
    // given twice the last one counts.
    let options = serde_saphyr::options! {
        with_snippet: false,
        legacy_octal_numbers: true,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::LastWins,
        budget: serde_saphyr::budget! {
            // The text is already in memory; the cap is for endless readers.
            max_reader_input_bytes: None,
            max_recorded_anchor_events: MAX_ALIAS_EVENTS,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: MAX_ALIAS_EVENTS,
        },
    };
    let mut reader = std::io::Cursor::new(text.as_bytes());
    let mut documents = Vec::new();
    for value in serde_saphyr::read_with_options::<_, Value>(&mut reader, options) {
        let value = value.map_err(|e| not_yaml(source, &e))?;
        if !value.is_null() {
            documents.push(Document {
                source: source.to_string(),
                index: documents.len() + 1,
                item: None,
                value,
            });
        }
    }
    Ok(documents)
}

/// Events one document may copy through anchors and aliases.
const MAX_ALIAS_EVENTS: usize = 100_000;

fn not_yaml(source: &str, error: &serde_saphyr::Error) -> Error {
    let detail = error.to_string();
    let first_line = detail
        .lines()
        .next()
        .unwrap_or("syntax error")
        .trim_start_matches("error: ");
    Error::Parse(format!("{source}: not valid YAML: {first_line}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_numbered_and_empty_ones_skipped() {
        let docs = parse_documents("f.yaml", "---\na: 1\n---\n---\nb: 2\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!((docs[0].index, docs[1].index), (1, 2));
        assert_eq!(docs[1].value["b"], 2);
    }

    #[test]
    fn syntax_errors_name_the_place_but_never_quote_the_input() {
        let text = "kind: Secret\nstringData:\n  password: SENTINEL-4711\n  bad: [unclosed\n";
        let err = parse_documents("s.yaml", text).unwrap_err().to_string();
        assert!(err.starts_with("s.yaml: not valid YAML"), "{err}");
        assert!(err.contains("line"), "{err}");
        assert!(!err.contains("SENTINEL"), "{err}");
    }

    #[test]
    fn yaml_is_read_as_kubectl_reads_it() {
        let docs = parse_documents("f.yaml", "a: 017\nb: yes\nc: 1\nc: 2\nd: 0x1F\n").unwrap();
        assert_eq!(
            docs[0].value,
            serde_json::json!({"a": 15, "b": true, "c": 2, "d": 31})
        );
    }

    #[test]
    fn a_billion_laughs_document_fails_cleanly() {
        let mut text = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let started = std::time::Instant::now();
        let err = parse_documents("bomb.yaml", &text).unwrap_err().to_string();
        assert!(err.starts_with("bomb.yaml: not valid YAML"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn many_small_aliases_across_a_long_stream_are_accepted() {
        let doc = "defaults: &d {a: 1, b: 2}\nuse: *d\n";
        let text = vec![doc; 5_000].join("---\n");
        assert_eq!(parse_documents("f.yaml", &text).unwrap().len(), 5_000);
    }
}
