//! The offline `mailops check` command: validate manifests the way the API server would,
//! then resolve every MailboxBinding the way the controller would, without a cluster.

mod input;
mod report;
mod schema;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use kube::ResourceExt;
use serde_json::Value;

pub use input::{Document, parse_documents, read_paths};
pub use report::{BindingRow, OutputFormat, Problem, Report};
pub use schema::{FieldError, Schemas};

use crate::api::conditions::Reason;
use crate::api::{
    AuthMethod, EmailProvider, ExchangeServiceAccount, MailboxBinding, PASSWORD_KEY, USERNAME_KEY,
    binding_secret_key,
};
use crate::resolve::{Catalog, check_service_account_fits, resolve_binding};

/// Flags of `mailops check`.
#[derive(Clone, Debug, clap::Args)]
pub struct CheckArgs {
    /// Files or folders of YAML manifests, or `-` for standard input.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, short, value_enum, default_value = "text")]
    pub output: OutputFormat,
    /// Accept plain `http://` endpoint overrides, as the operator does with the same flag.
    #[arg(long)]
    pub allow_insecure_endpoints: bool,
}

/// Run the check and print the report; `Ok(true)` when nothing is wrong. Unreadable or
/// non-YAML input is an `Err`.
pub fn run(args: &CheckArgs) -> crate::Result<bool> {
    let mut documents = Vec::new();
    for (source, text) in read_paths(&args.paths)? {
        documents.extend(parse_documents(&source, &text)?);
    }
    let report = check_documents(&documents, args.allow_insecure_endpoints)?;
    print!("{}", report.render(args.output)?);
    Ok(report.problems.is_empty())
}

/// Where an object came from.
#[derive(Clone, Debug)]
struct Origin {
    source: String,
    index: usize,
    object: String,
}

impl Origin {
    fn problem(
        &self,
        field: Option<&str>,
        reason: Option<Reason>,
        message: impl Into<String>,
    ) -> Problem {
        Problem {
            source: self.source.clone(),
            document: self.index,
            object: self.object.clone(),
            field: field.map(str::to_string),
            reason: reason.map(|r| r.as_str().to_string()),
            message: message.into(),
        }
    }
}

/// Everything found in the input.
#[derive(Default)]
struct Inventory {
    providers: Vec<(EmailProvider, Origin)>,
    accounts: Vec<(ExchangeServiceAccount, Origin)>,
    bindings: Vec<(MailboxBinding, Origin)>,
    namespace_labels: BTreeMap<String, BTreeMap<String, String>>,
    /// Secret (namespace, name) -> the keys it holds. Values are never read.
    secret_keys: BTreeMap<(String, String), BTreeSet<String>>,
    objects: usize,
}

/// Validate and resolve parsed documents.
pub fn check_documents(
    documents: &[Document],
    allow_insecure_endpoints: bool,
) -> crate::Result<Report> {
    let schemas = Schemas::new()?;
    let mut problems = Vec::new();
    let mut inventory = Inventory::default();
    for doc in documents {
        admit_document(&schemas, doc, &mut inventory, &mut problems);
    }
    problems.extend(duplicates(&inventory));
    let providers: Vec<&EmailProvider> = inventory.providers.iter().map(|(p, _)| p).collect();
    let accounts: Vec<&ExchangeServiceAccount> =
        inventory.accounts.iter().map(|(a, _)| a).collect();
    let catalog = Catalog {
        providers: &providers,
        service_accounts: &accounts,
        allow_insecure_endpoints,
    };
    for (provider, origin) in &inventory.providers {
        if let Err(e) =
            crate::endpoints::provider_endpoints(&provider.spec, allow_insecure_endpoints)
        {
            problems.push(origin.problem(Some("spec.endpoints"), e.reason(), message_of(&e)));
        }
        if let Some(oauth2) = &provider.spec.authentication.oauth2 {
            let secret = (
                oauth2.client_secret_ref.namespace.clone(),
                oauth2.client_secret_ref.name.clone(),
            );
            problems.extend(missing_keys(
                &inventory,
                &secret,
                &[oauth2.client_secret_ref.key.as_str()],
                origin,
                "spec.authentication.oauth2.clientSecretRef",
            ));
        }
    }
    for (account, origin) in &inventory.accounts {
        problems.extend(check_account(account, origin, &catalog, &inventory));
    }
    let mut rows = Vec::new();
    for (binding, origin) in &inventory.bindings {
        let labels = inventory
            .namespace_labels
            .get(&binding.namespace().unwrap_or_default());
        let (row, problem) = check_binding(binding, origin, catalog, labels, &inventory);
        rows.push(row);
        problems.extend(problem);
    }
    Ok(Report {
        objects: inventory.objects,
        bindings: rows,
        problems,
    })
}

fn message_of(e: &crate::Error) -> String {
    match e {
        crate::Error::Spec { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

fn describe(kind: &str, value: &Value) -> String {
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>");
    match value.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) if kind == "MailboxBinding" => format!("{kind} {ns}/{name}"),
        None if kind == "MailboxBinding" => format!("{kind} default/{name}"),
        _ => format!("{kind} {name}"),
    }
}

fn admit_document(
    schemas: &Schemas,
    doc: &Document,
    inv: &mut Inventory,
    problems: &mut Vec<Problem>,
) {
    let kind = doc
        .value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let api_version = doc
        .value
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let origin = Origin {
        source: doc.source.clone(),
        index: doc.index,
        object: describe(&kind, &doc.value),
    };
    match (api_version, kind.as_str()) {
        ("v1", "Namespace") => {
            let name = doc
                .value
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let labels = doc
                .value
                .pointer("/metadata/labels")
                .cloned()
                .unwrap_or_default();
            inv.namespace_labels.insert(
                name.to_string(),
                serde_json::from_value(labels).unwrap_or_default(),
            );
        }
        ("v1", "Secret") => {
            // Only key names are kept; the values never leave this document.
            let meta = |f: &str| {
                doc.value
                    .pointer(&format!("/metadata/{f}"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            };
            let keys = ["data", "stringData"]
                .iter()
                .filter_map(|f| doc.value.get(*f).and_then(Value::as_object))
                .flat_map(|m| m.keys().cloned())
                .collect();
            let id = (
                meta("namespace").unwrap_or_else(|| "default".into()),
                meta("name").unwrap_or_default(),
            );
            inv.secret_keys.insert(id, keys);
        }
        (_, k) if schemas.knows(k) => {
            admit_mailops_object(schemas, doc, &kind, api_version, origin, inv, problems)
        }
        _ => {}
    }
}

fn admit_mailops_object(
    schemas: &Schemas,
    doc: &Document,
    kind: &str,
    api_version: &str,
    origin: Origin,
    inv: &mut Inventory,
    problems: &mut Vec<Problem>,
) {
    inv.objects += 1;
    if api_version != "mailops.dev/v1alpha1" {
        problems.push(origin.problem(
            Some("apiVersion"),
            None,
            format!("must be mailops.dev/v1alpha1, not {api_version:?}"),
        ));
        return;
    }
    if doc
        .value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        problems.push(origin.problem(
            Some("metadata.name"),
            None,
            "Required value: every object needs a name",
        ));
        return;
    }
    let mut value = match schemas.admit(kind, &doc.value) {
        Ok(value) => value,
        Err(errors) => {
            problems.extend(
                errors
                    .into_iter()
                    .map(|e| origin.problem(Some(&e.field), None, e.message)),
            );
            return;
        }
    };
    if kind == "MailboxBinding" && value.pointer("/metadata/namespace").is_none() {
        // kubectl would use the context's namespace; offline, that is `default`.
        value["metadata"]["namespace"] = Value::String("default".into());
    }
    let result = match kind {
        "EmailProvider" => typed(value).map(|p| inv.providers.push((p, origin.clone()))),
        "ExchangeServiceAccount" => typed(value).map(|a| inv.accounts.push((a, origin.clone()))),
        _ => typed(value).map(|b| inv.bindings.push((b, origin.clone()))),
    };
    if let Err(e) = result {
        problems.push(origin.problem(None, None, format!("does not match the {kind} type: {e}")));
    }
}

fn typed<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_json::from_value(value).map_err(|e| e.to_string())
}

fn duplicates(inv: &Inventory) -> Vec<Problem> {
    let mut seen = BTreeSet::new();
    let origins = inv
        .providers
        .iter()
        .map(|(_, o)| o)
        .chain(inv.accounts.iter().map(|(_, o)| o))
        .chain(inv.bindings.iter().map(|(_, o)| o));
    origins
        .filter(|o| !seen.insert(o.object.clone()))
        .map(|o| {
            o.problem(
                Some("metadata.name"),
                None,
                format!("{} is defined more than once", o.object),
            )
        })
        .collect()
}

/// Keys a Secret in the input lacks. A Secret absent from the input may exist in the
/// cluster, so it is not a problem here.
fn missing_keys(
    inv: &Inventory,
    secret: &(String, String),
    keys: &[&str],
    origin: &Origin,
    field: &str,
) -> Vec<Problem> {
    let Some(present) = inv.secret_keys.get(secret) else {
        return Vec::new();
    };
    keys.iter()
        .filter(|k| !present.contains(**k))
        .map(|k| {
            origin.problem(
                Some(field),
                Some(Reason::SecretKeyMissing),
                format!("Secret {}/{} has no key {k:?}", secret.0, secret.1),
            )
        })
        .collect()
}

fn check_account(
    account: &ExchangeServiceAccount,
    origin: &Origin,
    catalog: &Catalog<'_>,
    inv: &Inventory,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let wanted = &account.spec.provider_ref.name;
    match catalog.providers.iter().find(|p| &p.name_any() == wanted) {
        None => problems.push(origin.problem(
            Some("spec.providerRef.name"),
            Some(Reason::ProviderNotFound),
            format!("EmailProvider {wanted:?} is not in the input"),
        )),
        Some(provider) => {
            if let Err(e) = check_service_account_fits(&account.spec, &provider.spec) {
                problems.push(origin.problem(Some("spec.credentials"), e.reason(), message_of(&e)));
            }
        }
    }
    if let Some(basic) = account
        .spec
        .credentials
        .as_ref()
        .and_then(|c| c.basic.as_ref())
    {
        let secret = (
            basic.secret_ref.namespace.clone(),
            basic.secret_ref.name.clone(),
        );
        problems.extend(missing_keys(
            inv,
            &secret,
            &[USERNAME_KEY, PASSWORD_KEY],
            origin,
            "spec.credentials.basic.secretRef",
        ));
    }
    if let Some(oauth2) = account
        .spec
        .credentials
        .as_ref()
        .and_then(|c| c.oauth2.as_ref())
    {
        let r = &oauth2.client_secret_ref;
        problems.extend(missing_keys(
            inv,
            &(r.namespace.clone(), r.name.clone()),
            &[r.key.as_str()],
            origin,
            "spec.credentials.oauth2.clientSecretRef",
        ));
    }
    problems
}

fn check_binding(
    binding: &MailboxBinding,
    origin: &Origin,
    catalog: Catalog<'_>,
    labels: Option<&BTreeMap<String, String>>,
    inv: &Inventory,
) -> (BindingRow, Vec<Problem>) {
    let namespace = binding.namespace().unwrap_or_default();
    let mut row = BindingRow::new(&namespace, &binding.name_any(), &binding.spec.email_address);
    match resolve_binding(binding, catalog, labels) {
        Ok(resolution) => {
            let mut problems = Vec::new();
            if let Some(secret) = &binding.spec.authentication.credentials_secret_ref {
                let method = catalog
                    .providers
                    .iter()
                    .find(|p| p.name_any() == resolution.provider)
                    .map(|p| p.spec.authentication.method);
                let key = binding_secret_key(method.unwrap_or(AuthMethod::Basic));
                let id = (namespace.clone(), secret.name.clone());
                problems = missing_keys(
                    inv,
                    &id,
                    &[key],
                    origin,
                    "spec.authentication.credentialsSecretRef",
                );
            }
            row.resolved(&resolution, problems.first().map(|p| p.message.clone()));
            (row, problems)
        }
        Err(e) => {
            let hint = match (e.reason(), labels) {
                (Some(Reason::NamespaceNotAllowed), None) => {
                    " (the Namespace object is not in the input, so its labels are unknown: include it to check label selectors)"
                }
                _ => "",
            };
            let message = format!("{}{hint}", message_of(&e));
            row.failed(e.reason(), &message);
            (row, vec![origin.problem(Some("spec"), e.reason(), message)])
        }
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
