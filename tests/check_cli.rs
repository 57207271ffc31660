//! `mailops check` run as a process, the way CI pipelines and `helm template | mailops
//! check -` use it: exit codes, standard input, JSON output, and error lines.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn mailops(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mailops"))
        .args(args)
        .current_dir(root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mailops starts");
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.unwrap_or_default().as_bytes())
        .unwrap();
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A scratch file that is removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str, contents: &[u8]) -> Self {
        let dir = std::env::temp_dir().join(format!("mailops-check-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        Scratch(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        // The folder is shared by the process's tests: the last one out removes it.
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

const PROVIDER: &str = "apiVersion: mailops.dev/v1alpha1
kind: EmailProvider
metadata: {name: contoso}
spec:
  serviceType: Exchange
  serviceAddress: mail.contoso.com
  domains: [contoso.com]
  authentication: {method: Basic}
";

#[test]
fn the_examples_pass_with_one_row_per_binding() {
    let out = mailops(&["check", "examples/"], None);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.lines().next().unwrap().starts_with("BINDING"),
        "{stdout}"
    );
    for row in [
        "support/helpdesk",
        "sales/orders",
        "finance/billing",
        "operations/jsmith",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no row {row}: {stdout}"));
        assert!(line.ends_with("Resolved"), "{line}");
    }
    let jsmith = stdout
        .lines()
        .find(|l| l.starts_with("operations/jsmith"))
        .unwrap();
    assert!(
        jsmith.contains("northwind-legacy") && jsmith.contains(r"NORTHWIND\jsmith"),
        "{jsmith}"
    );
    assert!(stdout.contains(", 0 problems"), "{stdout}");
}

#[test]
fn json_output_is_machine_readable() {
    let out = mailops(&["check", "--output", "json", "examples"], None);
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(report["problems"], serde_json::json!([]));
    let bindings = report["bindings"].as_array().unwrap();
    assert_eq!(bindings.len(), 6);
    let orders = bindings.iter().find(|b| b["name"] == "orders").unwrap();
    assert_eq!(orders["provider"], "fabrikam-m365");
    assert_eq!(orders["via"], "ServiceAccount");
}

#[test]
fn standard_input_is_read_with_a_dash() {
    let binding = "apiVersion: mailops.dev/v1alpha1\nkind: MailboxBinding\nmetadata: {name: jane, namespace: sales}\nspec:\n  emailAddress: jane@contoso.com\n  authentication: {credentialsSecretRef: {name: jane}}\n";
    let out = mailops(&["check", "-"], Some(&format!("{PROVIDER}---\n{binding}")));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("sales/jane"));
}

#[test]
fn a_bad_manifest_exits_1_naming_file_document_and_field() {
    let path = root().join("tests/invalid/16-provider-m365-basic.yaml");
    let out = mailops(&["check", path.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    let all = text(&out.stdout) + &text(&out.stderr);
    let line = all
        .lines()
        .find(|l| l.contains("16-provider-m365-basic.yaml"))
        .unwrap_or_else(|| panic!("{all}"));
    assert!(
        line.contains("document 1 (EmailProvider m): spec.authentication.method:"),
        "{line}"
    );
    assert!(line.contains("must be OAuth2"), "{line}");
}

#[test]
fn an_unresolvable_binding_exits_1_with_its_reason() {
    let binding = "apiVersion: mailops.dev/v1alpha1\nkind: MailboxBinding\nmetadata: {name: bob, namespace: sales}\nspec:\n  emailAddress: bob@unknown.example\n  authentication: {credentialsSecretRef: {name: bob}}\n";
    let out = mailops(&["check", "-"], Some(&format!("{PROVIDER}---\n{binding}")));
    assert_eq!(out.status.code(), Some(1));
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(
        all.contains("<stdin>: document 2 (MailboxBinding sales/bob)"),
        "{all}"
    );
    assert!(all.contains("ProviderNotFound"), "{all}");
}

#[test]
fn non_yaml_input_is_an_error_not_a_panic() {
    let out = mailops(&["check", "-"], Some("kind: [unclosed\n  - {\n"));
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("error: <stdin>: not valid YAML"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    let binary = Scratch::new("binary.yaml", &[0xff, 0xfe, 0x00, 0x81]);
    let out = mailops(&["check", binary.path()], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("not UTF-8"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn an_unreadable_path_is_an_error_naming_it() {
    let out = mailops(&["check", "does/not/exist.yaml"], None);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("does/not/exist.yaml"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
}

#[test]
fn secret_values_are_never_printed() {
    const SENTINEL: &str = "SENTINEL-5f1c0d";
    let binding = "apiVersion: mailops.dev/v1alpha1\nkind: MailboxBinding\nmetadata: {name: jane, namespace: sales}\nspec:\n  emailAddress: jane@contoso.com\n  authentication: {credentialsSecretRef: {name: jane}}\n";
    // A Secret lacking the key the binding needs: the problem names the key, not values.
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: jane, namespace: sales}}\nstringData: {{token: {SENTINEL}}}\n"
    );
    let input = format!("{PROVIDER}---\n{binding}---\n{secret}");
    for format in ["text", "json"] {
        let out = mailops(&["check", "--output", format, "-"], Some(&input));
        assert_eq!(out.status.code(), Some(1));
        let all = text(&out.stdout) + &text(&out.stderr);
        assert!(all.contains("SecretKeyMissing"), "{all}");
        assert!(!all.contains(SENTINEL), "{all}");
    }
    // A syntax error right next to Secret data: the parser's snippet is not shown.
    let broken = format!(
        "apiVersion: v1\nkind: Secret\nstringData:\n  password: {SENTINEL}\n  other: [oops\n"
    );
    let out = mailops(&["check", "-"], Some(&broken));
    assert_eq!(out.status.code(), Some(2));
    let all = text(&out.stdout) + &text(&out.stderr);
    assert!(!all.contains(SENTINEL), "{all}");
}

#[test]
fn folders_are_walked_and_other_kinds_ignored() {
    let out = mailops(&["check", "tests/invalid"], None);
    assert_eq!(out.status.code(), Some(1));
    let all = text(&out.stdout) + &text(&out.stderr);
    // Each top-level file holds one mailops object; `core/` holds Secrets and Namespaces.
    let mut files = 0;
    for entry in walk(&root().join("tests/invalid")) {
        let name = entry.file_name().unwrap().to_str().unwrap().to_string();
        assert!(
            all.contains(&format!("{name}: document 1 (")),
            "no problem line for {name}"
        );
        files += usize::from(!entry.parent().unwrap().ends_with("core"));
    }
    assert!(all.contains(&format!("{files} mailops objects")), "{all}");

    let deployment =
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: nope}\n";
    let out = mailops(
        &["check", "-"],
        Some(&format!("{deployment}---\n{PROVIDER}")),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("1 mailops object, 0 bindings, 0 problems"),
        "{}",
        text(&out.stdout)
    );
}

/// The YAML files below `dir`, recursively.
fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else if path.extension().is_some_and(|e| e == "yaml") {
            files.push(path);
        }
    }
    files
}

/// Run `mailops` on `args`, killing it when it outlives `limit`: `None` means it hung.
fn mailops_within(args: &[&str], limit: std::time::Duration) -> Option<Output> {
    let child = Command::new(env!("CARGO_BIN_EXE_mailops"))
        .args(args)
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mailops starts");
    let started = std::time::Instant::now();
    let mut child = child;
    while started.elapsed() < limit {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

fn provider_named(name: &str) -> String {
    PROVIDER.replace("{name: contoso}", &format!("{{name: {name}}}"))
}

#[cfg(unix)]
#[test]
fn symlinked_folders_are_not_followed_so_loops_end_and_each_file_is_read_once() {
    use std::os::unix::fs::symlink;
    let tree = std::env::temp_dir().join(format!("mailops-check-loop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tree);
    for folder in ["a", "b", "c"] {
        let dir = tree.join("walked").join(folder);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("p.yaml"), provider_named(folder)).unwrap();
        symlink("..", dir.join("up")).unwrap();
    }
    // A symlinked file is read, once even when its target is also in the walk.
    std::fs::create_dir_all(tree.join("outside")).unwrap();
    std::fs::write(tree.join("outside/d.yaml"), provider_named("d")).unwrap();
    symlink(tree.join("outside/d.yaml"), tree.join("walked/a/d.yaml")).unwrap();
    symlink("../b/p.yaml", tree.join("walked/a/same-as-b.yaml")).unwrap();

    let walked = tree.join("walked");
    let out = mailops_within(
        &["check", walked.to_str().unwrap()],
        std::time::Duration::from_secs(20),
    );
    let _ = std::fs::remove_dir_all(&tree);
    let out = out.expect("check finishes on a symlink loop");
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("4 mailops objects"), "{stdout}");
}

#[test]
fn list_items_are_named_by_document_and_item() {
    let list = format!(
        "apiVersion: v1\nkind: List\nitems:\n- {}",
        PROVIDER.replace("Exchange", "Gmail").replace('\n', "\n  ")
    );
    let out = mailops(&["check", "-"], Some(&list));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let all = text(&out.stdout);
    assert!(
        all.contains("<stdin>: document 1 item 1 (EmailProvider contoso): spec.serviceType"),
        "{all}"
    );
    let out = mailops(&["check", "--output", "json", "-"], Some(&list));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(report["problems"][0]["document"], 1);
    assert_eq!(report["problems"][0]["item"], 1);
}
