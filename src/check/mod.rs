//! The offline `mailops check` command: validate manifests the way the API server would,
//! then resolve every MailboxBinding the way the controller would, without a cluster.

mod admit;
mod cel;
mod cel_url;
mod core;
mod field_error;
mod formats;
mod gourl;
mod input;
mod kubectl;
mod list;
mod listtype;
mod metadata;
mod objectmeta;
mod openapi;
mod patterns;
mod report;
mod schema;
mod secrets;
mod structural;
mod text;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use kube::ResourceExt;

pub use input::{Document, parse_documents, read_paths};
pub use report::{BindingRow, OutputFormat, Problem, Report};
pub use schema::{FieldError, KindLookup, Schemas};

use crate::api::conditions::Reason;
use crate::api::{
    AuthMethod, EmailProvider, ExchangeServiceAccount, MailboxBinding, PASSWORD_KEY, USERNAME_KEY,
    binding_secret_key,
};
use crate::resolve::{Catalog, check_service_account_fits, resolve_binding};
use report::Origin;
use secrets::{SecretId, SecretKeys, missing_keys};

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

/// Everything found in the input.
#[derive(Default)]
struct Inventory {
    providers: Vec<(EmailProvider, Origin)>,
    accounts: Vec<(ExchangeServiceAccount, Origin)>,
    bindings: Vec<(MailboxBinding, Origin)>,
    namespace_labels: BTreeMap<String, BTreeMap<String, String>>,
    /// Which keys of each Secret hold a usable value. Values themselves are never kept.
    secret_keys: BTreeMap<SecretId, SecretKeys>,
    objects: usize,
}

/// The API server's verdict alone on one document, as `kubectl apply` would send it: its
/// admission problems, without resolution against the other objects of the input (what
/// the parity test compares with a real API server).
pub fn admission_problems(schemas: &Schemas, document: &Document) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut inventory = Inventory::default();
    for doc in list::expand(document, &mut problems).iter() {
        admit::admit_document(schemas, doc, &mut inventory, &mut problems);
    }
    problems
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
        for doc in list::expand(doc, &mut problems).iter() {
            admit::admit_document(&schemas, doc, &mut inventory, &mut problems);
        }
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
        problems.extend(check_provider(provider, origin, &catalog, &inventory));
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

/// Objects defined twice. Compared by kind, namespace and name, not by their description,
/// which shortens long names.
fn duplicates(inv: &Inventory) -> Vec<Problem> {
    let mut seen = BTreeSet::new();
    let identity = |kind: &'static str, meta: &kube::api::ObjectMeta| {
        (kind, meta.namespace.clone(), meta.name.clone())
    };
    let objects = inv
        .providers
        .iter()
        .map(|(p, o)| (identity("EmailProvider", &p.metadata), o))
        .chain(
            inv.accounts
                .iter()
                .map(|(a, o)| (identity("ExchangeServiceAccount", &a.metadata), o)),
        )
        .chain(
            inv.bindings
                .iter()
                .map(|(b, o)| (identity("MailboxBinding", &b.metadata), o)),
        );
    objects
        .filter(|(id, _)| !seen.insert(id.clone()))
        .map(|(_, o)| {
            o.problem(
                Some("metadata.name"),
                None,
                format!("{} is defined more than once", o.object),
            )
        })
        .collect()
}

fn check_provider(
    provider: &EmailProvider,
    origin: &Origin,
    catalog: &Catalog<'_>,
    inv: &Inventory,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    if let Err(e) =
        crate::endpoints::provider_endpoints(&provider.spec, catalog.allow_insecure_endpoints)
    {
        problems.push(origin.problem(Some("spec.endpoints"), e.reason(), message_of(&e)));
    }
    // CEL admits any text shaped like PEM; the controller would also refuse base64 that is
    // not a certificate. (A `caBundleFrom` names an object `check` does not read.)
    if let Some(tls) = provider.spec.tls.as_ref().filter(|t| t.ca_bundle.is_some())
        && let Err(e) = crate::exchange::trust::provider_trust(Some(tls), None)
    {
        problems.push(origin.problem(Some("spec.tls.caBundle"), e.reason(), message_of(&e)));
    }
    if let Some(oauth2) = &provider.spec.authentication.oauth2 {
        let r = &oauth2.client_secret_ref;
        problems.extend(missing_keys(
            &inv.secret_keys,
            &(r.namespace.clone(), r.name.clone()),
            &[r.key.as_str()],
            origin,
            "spec.authentication.oauth2.clientSecretRef",
        ));
    }
    problems
}

fn check_account(
    account: &ExchangeServiceAccount,
    origin: &Origin,
    catalog: &Catalog<'_>,
    inv: &Inventory,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let wanted = &account.spec.provider_ref.name;
    match catalog.providers.iter().find(|p| *p.name_any() == **wanted) {
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
            &inv.secret_keys,
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
            &inv.secret_keys,
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
                    &inv.secret_keys,
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
