//! Reading `mailops check` input: files, folders and standard input, split into YAML
//! documents, each remembered with where it came from.

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
    /// The document as JSON.
    pub value: Value,
}

/// Read every path: `-` is standard input, folders are walked for `*.yaml` / `*.yml` in
/// name order.
pub fn read_paths(paths: &[PathBuf]) -> Result<Vec<(String, String)>> {
    let mut sources = Vec::new();
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
        } else {
            collect(path, &mut sources)?;
        }
    }
    Ok(sources)
}

fn collect(path: &Path, out: &mut Vec<(String, String)>) -> Result<()> {
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for entry in entries {
            let is_yaml = entry.extension().is_some_and(|e| e == "yaml" || e == "yml");
            if entry.is_dir() || is_yaml {
                collect(&entry, out)?;
            }
        }
        return Ok(());
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::Parse(format!("{}: not UTF-8 text, so not YAML", path.display())))?;
    out.push((path.display().to_string(), text));
    Ok(())
}

/// Split one source into documents. A syntax error is reported with its line and column
/// only: the parser's snippet would quote the input, which may hold Secret data.
pub fn parse_documents(source: &str, text: &str) -> Result<Vec<Document>> {
    let options = serde_saphyr::options! { with_snippet: false };
    let values: Vec<Value> =
        serde_saphyr::from_multiple_with_options(text, options).map_err(|e| {
            let detail = e.to_string();
            let first_line = detail
                .lines()
                .next()
                .unwrap_or("syntax error")
                .trim_start_matches("error: ");
            Error::Parse(format!("{source}: not valid YAML: {first_line}"))
        })?;
    Ok(values
        .into_iter()
        .filter(|v| !v.is_null())
        .enumerate()
        .map(|(i, value)| Document {
            source: source.to_string(),
            index: i + 1,
            value,
        })
        .collect())
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
}
