//! Parity of `mailops check` with a real API server. Every document under `tests/valid/`,
//! `tests/invalid/` and `examples/` goes through `kubectl apply --dry-run=server` against
//! the cluster in `KUBECONFIG` and through check's admission; the test fails on any
//! disagreement, listing them. Run it by hand:
//!
//! ```sh
//! KUBECONFIG=~/.kube/config cargo test --test apiserver_parity -- --ignored --nocapture
//! ```
//!
//! It server-side-applies the CRDs of `crds/` first, and refuses to run where an admission
//! webhook would see the requests (a mailops webhook would add its own verdict). Nothing is
//! created but the namespaces the documents need: namespace names (and the names of
//! cluster-scoped mailops objects) get the prefix `mpar-` when they stay valid with it, the
//! same rewritten document going to both sides, so no object of another user of the
//! cluster is touched; the namespaces are deleted at the end. `KUBECTL` picks the client.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mailops::check::{Document, Schemas, admission_problems, parse_documents};
use serde_json::Value;

const PREFIX: &str = "mpar-";
const CRDS: [&str; 3] = [
    "emailproviders.mailops.dev",
    "exchangeserviceaccounts.mailops.dev",
    "mailboxbindings.mailops.dev",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `kubectl` against the cluster in `KUBECONFIG`.
struct Kubectl {
    binary: String,
}

impl Kubectl {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.binary)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.binary))
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Namespaces created for the run, deleted when it ends, whatever its outcome.
struct Namespaces<'a> {
    kubectl: &'a Kubectl,
    created: BTreeSet<String>,
}

impl Namespaces<'_> {
    fn ensure(&mut self, name: &str) {
        if self.created.contains(name) || !dns_label(name) {
            return;
        }
        let exists = self
            .kubectl
            .run(&["get", "namespace", name])
            .status
            .success();
        if !exists {
            self.kubectl.ok(&["create", "namespace", name]);
            self.kubectl
                .ok(&["label", "namespace", name, "mailops.dev/parity-test=true"]);
            self.created.insert(name.to_string());
        }
    }
}

impl Drop for Namespaces<'_> {
    fn drop(&mut self) {
        for name in &self.created {
            // Waits until the namespace is gone, so that the next run can create it again.
            let _ =
                self.kubectl
                    .run(&["delete", "namespace", name, "--wait=true", "--timeout=120s"]);
        }
    }
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, of any length.
fn label_shaped(name: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    name.starts_with(alnum) && name.ends_with(alnum) && name.chars().all(|c| alnum(c) || c == '-')
}

fn dns_label(name: &str) -> bool {
    name.len() <= 63 && label_shaped(name)
}

fn dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(label_shaped)
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// Whether a webhook rule matches the mailops kinds, Secrets or Namespaces.
fn rule_covers_corpus(rule: &Value) -> bool {
    let groups = strings(&rule["apiGroups"]);
    let resources = strings(&rule["resources"]);
    groups.iter().any(|g| *g == "*" || *g == "mailops.dev")
        || groups.iter().any(|g| g.is_empty())
            && resources
                .iter()
                .any(|r| matches!(*r, "*" | "secrets" | "namespaces"))
}

/// Webhooks that a dry-run request for these kinds would reach.
fn webhooks_in_the_way(kubectl: &Kubectl) -> Vec<String> {
    let mut found = Vec::new();
    for kind in [
        "validatingwebhookconfigurations",
        "mutatingwebhookconfigurations",
    ] {
        let list: Value = serde_json::from_str(&kubectl.ok(&["get", kind, "-o", "json"])).unwrap();
        for config in list["items"].as_array().into_iter().flatten() {
            for hook in config["webhooks"].as_array().into_iter().flatten() {
                let matches = hook["rules"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(rule_covers_corpus);
                let name = config["metadata"]["name"].as_str().unwrap_or_default();
                if matches || name.contains("mailops") {
                    found.push(format!(
                        "{kind}/{name} ({})",
                        hook["name"].as_str().unwrap_or_default()
                    ));
                }
            }
        }
    }
    found
}

/// Every document of the corpus, rewritten for this cluster.
fn corpus(schemas: &Schemas) -> Vec<(String, usize, Document, bool)> {
    let mut files = Vec::new();
    for dir in ["tests/valid", "tests/invalid", "examples"] {
        collect(&root().join(dir), &mut files);
    }
    files.sort();
    let mut documents = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.strip_prefix(root()).unwrap().display().to_string();
        for mut doc in parse_documents(&name, &text).unwrap() {
            let namespaced = namespaced(schemas, &doc.value);
            rewrite(&mut doc.value, namespaced);
            documents.push((name.clone(), doc.index, doc, namespaced));
        }
    }
    documents
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
}

fn namespaced(schemas: &Schemas, value: &Value) -> bool {
    match value["kind"].as_str().unwrap_or_default() {
        "Namespace" => false,
        kind if schemas.knows(kind) => schemas.is_namespaced(kind),
        _ => true,
    }
}

/// Give namespaces, Namespaces and cluster-scoped objects the run's prefix where the
/// prefixed name is as valid as the original.
fn rewrite(value: &mut Value, namespaced: bool) {
    let is_namespace = value["kind"] == "Namespace";
    let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let prefixed = |v: &Value, valid: fn(&str) -> bool| {
        v.as_str()
            .filter(|s| valid(s) && valid(&format!("{PREFIX}{s}")))
            .map(|s| Value::String(format!("{PREFIX}{s}")))
    };
    if namespaced {
        if let Some(ns) = metadata
            .get("namespace")
            .and_then(|v| prefixed(v, dns_label))
        {
            metadata.insert("namespace".into(), ns);
        }
    } else {
        let valid: fn(&str) -> bool = if is_namespace {
            dns_label
        } else {
            dns_subdomain
        };
        if let Some(name) = metadata.get("name").and_then(|v| prefixed(v, valid)) {
            metadata.insert("name".into(), name);
        }
    }
}

enum Verdict {
    Admitted,
    Refused(String),
}

/// `kubectl apply --dry-run=server` of one document, or `None` when the server's answer
/// is no verdict on a create (an existing object, or no answer at all).
fn server_verdict(
    kubectl: &Kubectl,
    value: &Value,
    namespace: Option<&str>,
) -> Result<Verdict, String> {
    let file = std::env::temp_dir().join(format!("mailops-parity-{}.json", std::process::id()));
    std::fs::write(&file, serde_json::to_vec(value).unwrap()).unwrap();
    let path = file.display().to_string();
    let mut args = vec![
        "apply",
        "--dry-run=server",
        "--validate=strict",
        "-f",
        path.as_str(),
    ];
    if let Some(ns) = namespace {
        args.extend(["-n", ns]);
    }
    let out = kubectl.run(&args);
    let _ = std::fs::remove_file(&file);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        if stdout.contains("created") {
            return Ok(Verdict::Admitted);
        }
        return Err(format!("not a create: {}", stdout.trim()));
    }
    // The server's answers, and kubectl's own refusals of what it cannot apply.
    let known = [
        "Error from server",
        "is invalid",
        "strict decoding",
        "error when creating",
        "cannot use generate name",
        "unable to decode",
        "resource name may not be empty",
    ];
    if known.iter().any(|k| stderr.contains(k)) {
        let line = stderr
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default();
        return Ok(Verdict::Refused(line.chars().take(300).collect()));
    }
    Err(format!("no verdict: {}", stderr.trim()))
}

fn crd_generations(kubectl: &Kubectl) -> String {
    CRDS.iter()
        .map(|crd| kubectl.ok(&["get", "crd", crd, "-o", "jsonpath={.metadata.generation}"]))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
#[ignore = "needs a cluster: KUBECONFIG=... cargo test --test apiserver_parity -- --ignored"]
fn check_judges_every_manifest_as_the_api_server_does() {
    assert!(
        std::env::var_os("KUBECONFIG").is_some(),
        "set KUBECONFIG to the cluster to compare with"
    );
    let kubectl = Kubectl {
        binary: std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into()),
    };
    let hooks = webhooks_in_the_way(&kubectl);
    assert!(
        hooks.is_empty(),
        "admission webhooks on this cluster would judge the dry-run requests too, so the \
         comparison would not be with the API server alone; use a cluster without them: {hooks:?}"
    );
    let crds = root().join("crds/mailops.dev.yaml").display().to_string();
    kubectl.ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=mailops-parity",
        "-f",
        &crds,
    ]);
    for crd in CRDS {
        kubectl.ok(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            &format!("crd/{crd}"),
        ]);
    }
    let generations = crd_generations(&kubectl);
    let schemas = Schemas::new().unwrap();
    let documents = corpus(&schemas);
    let mut namespaces = Namespaces {
        kubectl: &kubectl,
        created: BTreeSet::new(),
    };
    let (mut disagreements, mut undecided) = (Vec::new(), Vec::new());
    // Kinds another project serves (a trust-manager Bundle in an example) that this
    // cluster has no CRD for: no API server here can judge them, and check does not.
    let mut not_served = Vec::new();
    let (mut admitted, mut refused) = (0, 0);
    for (file, index, doc, is_namespaced) in &documents {
        let namespace = is_namespaced.then(|| {
            doc.value["metadata"]["namespace"]
                .as_str()
                .filter(|s| !s.is_empty())
                .unwrap_or("default")
        });
        if let Some(ns) = namespace {
            namespaces.ensure(ns);
        }
        let check = admission_problems(&schemas, doc);
        let server = match server_verdict(&kubectl, &doc.value, namespace) {
            Ok(verdict) => verdict,
            Err(why) if why.contains("no matches for kind") => {
                not_served.push(format!("{file}: document {index}: {}", doc.value["kind"]));
                continue;
            }
            Err(why) => {
                undecided.push(format!("{file}: document {index}: {why}"));
                continue;
            }
        };
        let check_line = match check.first() {
            None => "admitted".to_string(),
            Some(p) => format!(
                "refused: {}",
                p.to_string()
                    .split(": ")
                    .skip(2)
                    .collect::<Vec<_>>()
                    .join(": ")
            ),
        };
        match &server {
            Verdict::Admitted => admitted += 1,
            Verdict::Refused(_) => refused += 1,
        }
        match (&server, check.is_empty()) {
            (Verdict::Admitted, true) | (Verdict::Refused(_), false) => {}
            (Verdict::Admitted, false) => disagreements.push(format!(
                "{file}: document {index}: API server admitted; check {check_line}"
            )),
            (Verdict::Refused(why), true) => disagreements.push(format!(
                "{file}: document {index}: API server refused ({why}); check admitted"
            )),
        }
    }
    drop(namespaces);
    let changed = crd_generations(&kubectl) != generations;
    let judged = documents.len() - undecided.len() - not_served.len();
    println!(
        "parity: {judged} documents judged by the API server ({admitted} admitted, {refused} refused), {} disagreements, {} without a verdict, {} of kinds this cluster does not serve",
        disagreements.len(),
        undecided.len(),
        not_served.len()
    );
    for line in disagreements.iter().chain(&undecided).chain(&not_served) {
        println!("  {line}");
    }
    assert!(
        !changed,
        "the CRDs on the cluster changed during the run (another user applied them): rerun"
    );
    assert!(
        undecided.is_empty(),
        "{} documents got no verdict from the API server",
        undecided.len()
    );
    assert!(
        disagreements.is_empty(),
        "{} disagreements",
        disagreements.len()
    );
}
