//! The shape of `src/`, kept by a test rather than by review: no loop among the modules'
//! imports, the cache and the webhook never reaching up into the controllers, and no file
//! or function past the house limits (500 and 60 lines). The imports are read from the
//! source text: `use crate::…` and `use super::…` statements (braces expanded) and
//! `crate::…` paths written inline, resolved to the longest module they name and through
//! re-exports (`crate::Error` is `error`). `cargo test --test architecture print_graph --
//! --ignored --nocapture` prints the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 500;
const MAX_FN_LINES: usize = 60;

/// Every library source file, with its module path (`controller::binding`). A file
/// included with `#[path]` (`index_queries.rs`, `*_tests.rs`) belongs to the module
/// that includes it: its imports are that module's.
fn modules() -> BTreeMap<String, Vec<(PathBuf, String)>> {
    let mut out: BTreeMap<String, Vec<(PathBuf, String)>> = BTreeMap::new();
    let mut included = BTreeMap::new();
    let mut tests = BTreeSet::new();
    let files = rust_files(Path::new("src"));
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (i, line) in text.lines().enumerate() {
            let under_test = i > 0 && text.lines().nth(i - 1) == Some("#[cfg(test)]");
            if let Some(rest) = line.trim().strip_prefix("#[path = \"") {
                let target = rest.trim_end_matches("\"]");
                let next = text.lines().nth(i + 1).unwrap_or_default();
                let name = next.trim().trim_start_matches("mod ").trim_end_matches(';');
                let real = format!("{}::{name}", module_of(file));
                let included_file = file.parent().unwrap().join(target);
                if under_test {
                    tests.insert(included_file);
                } else {
                    included.insert(included_file, (module_of(file), real));
                }
            }
        }
    }
    for file in files {
        if file == Path::new("src/main.rs") || tests.contains(&file) {
            continue; // the binary uses the library from outside; tests may use anything
        }
        let (node, real) = included
            .get(&file)
            .cloned()
            .unwrap_or_else(|| (module_of(&file), module_of(&file)));
        out.entry(node).or_default().push((file, real));
    }
    out
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn module_of(file: &Path) -> String {
    let rel = file.strip_prefix("src").unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts.join("::")
}

/// The text without comments and without its `#[cfg(test)]` modules, so neither a path
/// named in a doc comment nor a test's `use super::*` counts as an import.
fn code_of(text: &str) -> String {
    let code = text
        .lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    without_test_modules(&code)
}

fn without_test_modules(code: &str) -> String {
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let brace = rest.find('{');
        let semi = rest.find(';');
        let end = match (brace, semi) {
            (Some(b), Some(s)) if s < b => s + 1,
            (Some(b), _) => {
                let mut depth = 0;
                let close = rest[b..].char_indices().find(|(_, c)| {
                    depth += match c {
                        '{' => 1,
                        '}' => -1,
                        _ => 0,
                    };
                    depth == 0
                });
                b + close.map_or(rest.len() - b - 1, |(i, _)| i) + 1
            }
            (None, Some(s)) => s + 1,
            (None, None) => rest.len(),
        };
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// `a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else {
        return vec![tree];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.len() - 1];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| expand(p).into_iter().map(move |e| format!("{prefix}{e}")))
        .collect()
}

/// The `use` trees of a file, braces expanded, with whether each is a `pub use`.
fn use_trees(code: &str) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let before = rest[..i].trim_end();
        let public = before.ends_with("pub");
        let glued = rest[..i].chars().last();
        rest = &rest[i + 4..];
        if glued.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let Some(end) = rest.find(';') else { break };
        out.extend(expand(rest[..end].trim()).into_iter().map(|p| (public, p)));
        rest = &rest[end..];
    }
    out
}

/// A path as written in `module`, made absolute (`crate::` and `super::` resolved, and a
/// path starting at a child module of `module`).
fn absolute(module: &str, path: &str, children: &BTreeSet<String>) -> Option<Vec<String>> {
    let segs: Vec<String> = path.split("::").map(String::from).collect();
    match segs.first().map(String::as_str) {
        Some("crate") => Some(segs[1..].to_vec()),
        Some(first) if children.contains(&child(module, first)) => {
            let mut at: Vec<String> = module.split("::").map(String::from).collect();
            at.retain(|s| !s.is_empty());
            at.extend(segs.iter().cloned());
            Some(at)
        }
        Some("super") => {
            let mut at: Vec<String> = module.split("::").map(String::from).collect();
            let mut segs = segs.as_slice();
            while segs.first().map(String::as_str) == Some("super") {
                at.pop();
                segs = &segs[1..];
            }
            at.extend(segs.iter().cloned());
            Some(at)
        }
        _ => None,
    }
}

fn child(module: &str, name: &str) -> String {
    if module.is_empty() {
        name.to_string()
    } else {
        format!("{module}::{name}")
    }
}

/// Every path a file names through `crate::`, `super::` or a child module, made absolute.
fn paths_named(module: &str, code: &str, children: &BTreeSet<String>) -> Vec<Vec<String>> {
    let mut paths: Vec<String> = use_trees(code).into_iter().map(|(_, p)| p).collect();
    for (i, _) in code.match_indices("crate::") {
        let tail: String = code[i..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        paths.push(tail);
    }
    paths
        .iter()
        .filter_map(|p| absolute(module, p, children))
        .collect()
}

/// What each module re-exports: `(module, name)` → the path it comes from.
fn re_exports(
    modules: &BTreeMap<String, Vec<(PathBuf, String)>>,
) -> BTreeMap<(String, String), Vec<String>> {
    let mut out = BTreeMap::new();
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    for (node, files) in modules {
        for (file, real) in files {
            let code = code_of(&std::fs::read_to_string(file).unwrap());
            for (public, tree) in use_trees(&code) {
                let Some(source) = absolute(real, &tree, &names).filter(|_| public) else {
                    continue;
                };
                match source.last().map(String::as_str) {
                    Some("*") => {
                        let from = source[..source.len() - 1].join("::");
                        for name in public_items(modules.get(&from).into_iter().flatten()) {
                            let mut item = source[..source.len() - 1].to_vec();
                            item.push(name.clone());
                            out.insert((node.clone(), name), item);
                        }
                    }
                    Some("self") | None => {}
                    Some(name) => {
                        out.insert((node.clone(), name.to_string()), source.clone());
                    }
                }
            }
        }
    }
    out
}

/// The names a module's files declare `pub` (what a glob re-export brings along).
fn public_items<'a>(files: impl Iterator<Item = &'a (PathBuf, String)>) -> Vec<String> {
    const KINDS: [&str; 7] = ["struct", "enum", "fn", "const", "type", "trait", "static"];
    let mut out = Vec::new();
    for (file, _) in files {
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        for line in code.lines() {
            // `#[kube(kind = "EmailProvider", ...)]`: the type kube-derive declares.
            if let Some(at) = line.find("kind = \"") {
                let name = line[at + 8..].split('"').next().unwrap_or_default();
                out.push(name.to_string());
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.first() != Some(&"pub") {
                continue;
            }
            if let Some(at) = words.iter().position(|w| KINDS.contains(w))
                && let Some(name) = words.get(at + 1)
            {
                let name: String = name
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                out.push(name);
            }
        }
    }
    out
}

/// The module a path lands in: its longest prefix that is a module, followed through
/// that module's re-exports (`crate::Error` is `error::Error`).
fn landing(
    path: &[String],
    modules: &BTreeMap<String, Vec<(PathBuf, String)>>,
    exports: &BTreeMap<(String, String), Vec<String>>,
) -> Option<String> {
    let n = (0..=path.len())
        .rev()
        .find(|n| modules.contains_key(&path[..*n].join("::")))?;
    let module = path[..n].join("::");
    match path
        .get(n)
        .and_then(|name| exports.get(&(module.clone(), name.clone())))
    {
        Some(source) if source.as_slice() != path => landing(source, modules, exports),
        _ => Some(module),
    }
}

/// Module → the other modules it imports from.
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let exports = re_exports(&modules);
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (node, files) in &modules {
        let edges = graph.entry(node.clone()).or_default();
        for (file, real) in files {
            let code = code_of(&std::fs::read_to_string(file).unwrap());
            for path in paths_named(real, &code, &names) {
                if let Some(target) = landing(&path, &modules, &exports)
                    && &target != node
                    && !target.is_empty()
                {
                    edges.insert(target);
                }
            }
        }
    }
    graph
}

/// The import loops: strongly connected groups of more than one module (Tarjan).
fn loops(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut group = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    group.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if group.len() > 1 {
                    group.sort();
                    self.found.push(group);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found
}

#[test]
fn no_module_imports_back_into_its_importers() {
    let graph = import_graph();
    assert!(
        graph["controller::binding"].contains("cache"),
        "the reader of imports misses a known import: {:?}",
        graph["controller::binding"]
    );
    assert_eq!(loops(&graph), Vec::<Vec<String>>::new(), "import loops");
}

#[test]
fn the_cache_and_the_webhook_stand_below_the_controllers() {
    let graph = import_graph();
    let upward: Vec<String> = graph
        .iter()
        .filter(|(m, _)| m.starts_with("cache") || m.starts_with("webhook"))
        .flat_map(|(m, to)| {
            to.iter()
                .filter(|t| t.starts_with("controller"))
                .map(move |t| format!("{m} -> {t}"))
        })
        .collect();
    assert!(upward.is_empty(), "{upward:?}");
}

#[test]
fn a_loop_is_found_when_there_is_one() {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph.insert("a".into(), ["b".to_string()].into());
    graph.insert("b".into(), ["c".to_string()].into());
    graph.insert("c".into(), ["a".to_string()].into());
    graph.insert("d".into(), ["a".to_string()].into());
    assert_eq!(loops(&graph), vec![vec!["a", "b", "c"]]);
    assert_eq!(
        expand("crate::x::{a, b::{c, d}}"),
        ["crate::x::a", "crate::x::b::c", "crate::x::b::d"]
    );
}

#[test]
fn no_source_file_is_longer_than_the_limit() {
    let long: Vec<String> = rust_files(Path::new("src"))
        .into_iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(&f).unwrap().lines().count();
            (n > MAX_FILE_LINES).then(|| format!("{f:?}: {n} lines"))
        })
        .collect();
    assert!(long.is_empty(), "{long:?}");
}

/// Each `fn` with its length, from its signature to the `}` at its own indentation.
fn function_lengths(text: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let words: Vec<&str> = trimmed.split_whitespace().collect();
        let Some(at) = words.iter().position(|w| *w == "fn") else {
            continue;
        };
        let before_ok = words[..at]
            .iter()
            .all(|w| matches!(*w, "pub" | "async" | "const" | "unsafe") || w.starts_with("pub("));
        if !before_ok || words.get(at + 1).is_none() {
            continue;
        }
        let name: String = words[at + 1]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let body = lines[i..]
            .iter()
            .position(|l| l.trim_end().ends_with(';') && !l.contains('{') || l.contains('{'));
        if body.is_none_or(|b| !lines[i + b].contains('{')) {
            continue; // a declaration without a body (in a trait)
        }
        let closing = format!("{}}}", " ".repeat(indent));
        let end = lines[i..]
            .iter()
            .position(|l| l.starts_with(&closing) && l.len() - l.trim_start().len() == indent)
            .unwrap_or(0);
        out.push((name, end + 1));
    }
    out
}

#[test]
fn no_function_is_longer_than_the_limit() {
    let long: Vec<String> = rust_files(Path::new("src"))
        .into_iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            function_lengths(&text)
                .into_iter()
                .filter(|(_, n)| *n > MAX_FN_LINES)
                .map(move |(name, n)| format!("{f:?} fn {name}: {n} lines"))
        })
        .collect();
    assert!(long.is_empty(), "{long:?}");
}

#[test]
fn function_lengths_are_measured_to_their_own_closing_brace() {
    let text = "fn a() {\n    if x {\n    }\n}\n\n    pub async fn b(\n        x: u8,\n    ) -> u8 {\n        x\n    }\n";
    assert_eq!(
        function_lengths(text),
        [("a".to_string(), 4), ("b".to_string(), 5)]
    );
}

/// Not a check: prints the import graph, one module a line.
#[test]
#[ignore]
fn print_graph() {
    for (m, to) in import_graph() {
        println!("{m} -> {to:?}");
    }
}
