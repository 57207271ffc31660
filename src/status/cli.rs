//! The `mailops status` command: read the three kinds with the current kubeconfig (list
//! calls only), build the tree, print it.

use std::io::{IsTerminal, Write};

use kube::api::{Api, ListParams};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

use super::model::Snapshot;
use super::{render, tree};
use crate::api::{EmailProvider, ExchangeServiceAccount, MailboxBinding};
use crate::config::ClusterArgs;
use crate::{Error, Result};

/// How `status` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// A tree for people (colours only on a terminal).
    Text,
    /// The same tree as JSON, for scripts.
    Json,
}

/// Arguments of `mailops status`: kubectl's names for kubectl's flags, so it runs as
/// `kubectl mailops status -A --context prod` too.
#[derive(Clone, Debug, clap::Args)]
pub struct StatusArgs {
    /// The namespace whose MailboxBindings to show (default: the context's).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Show MailboxBindings of every namespace.
    #[arg(short = 'A', long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// The cluster.
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// Which bindings to read: one namespace or all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One namespace.
    Namespace(String),
    /// Every namespace.
    All,
}

impl StatusArgs {
    /// The scope these arguments ask for; `default` is the kubeconfig's namespace.
    pub fn scope(&self, default: &str) -> Scope {
        match (&self.namespace, self.all_namespaces) {
            (_, true) => Scope::All,
            (Some(ns), false) => Scope::Namespace(ns.clone()),
            (None, false) => Scope::Namespace(default.to_string()),
        }
    }
}

/// Run the command; `Ok(true)` when every object is Ready. Errors (no cluster, no
/// CRDs, no permission) are the caller's exit code 2.
pub fn run(args: &StatusArgs) -> Result<bool> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Config(format!("cannot start the async runtime: {e}")))?;
    let snapshot = runtime.block_on(async {
        let config = crate::kube_client::config(&args.cluster).await?;
        let client = Client::try_from(config)
            .map_err(|e| Error::Config(format!("cannot reach the cluster: {e}")))?;
        let scope = args.scope(client.default_namespace());
        collect(&client, &scope).await
    })?;
    let tree = tree::build(&snapshot);
    let out = match args.output {
        OutputFormat::Json => render::json(&tree)?,
        OutputFormat::Text => {
            let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            render::text(&tree, color)
        }
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|source| Error::Io {
            path: "standard output".into(),
            source,
        })?;
    Ok(tree.all_ready())
}

/// Read the objects: providers, service accounts, then the bindings of `scope` (three
/// list calls, in that order). Credentials that may not list the cluster-scoped kinds
/// (403) still see their namespace's bindings; the snapshot says what is missing.
pub async fn collect(client: &Client, scope: &Scope) -> Result<Snapshot> {
    let bindings: Api<MailboxBinding> = match scope {
        Scope::All => Api::all(client.clone()),
        Scope::Namespace(ns) => Api::namespaced(client.clone(), ns),
    };
    let providers = list(Api::<EmailProvider>::all(client.clone())).await;
    let accounts = list(Api::<ExchangeServiceAccount>::all(client.clone())).await;
    let (providers, accounts, cluster_scoped_forbidden) = match (providers, accounts) {
        (Ok(p), Ok(a)) => (p, a, false),
        (p, a) if forbidden(&p) || forbidden(&a) => (Vec::new(), Vec::new(), true),
        (p, a) => (p?, a?, false),
    };
    Ok(Snapshot {
        providers,
        accounts,
        bindings: list(bindings).await?,
        cluster_scoped_forbidden,
    })
}

fn forbidden<T>(listed: &Result<T>) -> bool {
    matches!(listed, Err(Error::Kube(kube::Error::Api(status))) if status.code == 403)
}

async fn list<K>(api: Api<K>) -> Result<Vec<K>>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    api.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .map_err(Error::Kube)
}
