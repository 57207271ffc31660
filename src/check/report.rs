//! What `mailops check` prints: a row per binding and a line per problem, as text or JSON.

use serde::Serialize;

use super::text::printable;
use crate::api::AuthenticatedVia;
use crate::api::conditions::Reason;
use crate::resolve::Resolution;

use super::input::Document;

/// Where an object came from: what its problems name.
#[derive(Clone, Debug)]
pub struct Origin {
    source: String,
    index: usize,
    item: Option<usize>,
    /// The object, as `Kind namespace/name`.
    pub object: String,
}

impl Origin {
    pub fn of(doc: &Document, object: String) -> Self {
        Origin {
            source: doc.source.clone(),
            index: doc.index,
            item: doc.item,
            object,
        }
    }

    pub fn problem(
        &self,
        field: Option<&str>,
        reason: Option<Reason>,
        message: impl Into<String>,
    ) -> Problem {
        Problem {
            source: self.source.clone(),
            document: self.index,
            item: self.item,
            object: self.object.clone(),
            field: field.map(str::to_string),
            reason: reason.map(|r| r.as_str().to_string()),
            message: message.into(),
        }
    }
}

/// Output format of `mailops check`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// A table of bindings, then one line per problem.
    #[default]
    Text,
    /// One JSON document: `{"objects": n, "bindings": [...], "problems": [...]}`.
    Json,
}

/// One resolved (or unresolvable) MailboxBinding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BindingRow {
    /// Namespace of the binding.
    pub namespace: String,
    /// Name of the binding.
    pub name: String,
    /// Its email address.
    pub email: String,
    /// Resolved provider.
    pub provider: Option<String>,
    /// Effective login.
    pub login: Option<String>,
    /// `ServiceAccount` or `Credentials`.
    pub via: Option<String>,
    /// `Resolved`, or the condition reason that stops it.
    pub verdict: String,
    /// Detail for a failed verdict, or notes (e.g. switches the provider turns off).
    pub message: Option<String>,
}

impl BindingRow {
    pub(crate) fn new(namespace: &str, name: &str, email: &str) -> Self {
        BindingRow {
            namespace: namespace.into(),
            name: name.into(),
            email: email.into(),
            provider: None,
            login: None,
            via: None,
            verdict: String::new(),
            message: None,
        }
    }

    pub(crate) fn resolved(&mut self, r: &Resolution, problem: Option<String>) {
        self.provider = Some(r.provider.clone());
        self.login = Some(r.login.clone());
        self.via = Some(
            match r.via {
                AuthenticatedVia::ServiceAccount => "ServiceAccount",
                AuthenticatedVia::Credentials => "Credentials",
            }
            .into(),
        );
        match problem {
            Some(message) => {
                self.verdict = Reason::SecretKeyMissing.as_str().into();
                self.message = Some(message);
            }
            None => {
                self.verdict = "Resolved".into();
                self.message = (!r.settings.notes.is_empty()).then(|| r.settings.notes.join("; "));
            }
        }
    }

    pub(crate) fn failed(&mut self, reason: Option<Reason>, message: &str) {
        self.verdict = reason.map_or("Invalid", Reason::as_str).into();
        self.message = Some(message.into());
    }
}

/// One problem, naming file, document, object and field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// File name or `<stdin>`.
    pub source: String,
    /// 1-based document index within the file.
    pub document: usize,
    /// 1-based item index within a `kind: List` document.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
    /// `Kind name` or `Kind namespace/name`.
    pub object: String,
    /// The offending field, when there is one.
    pub field: Option<String>,
    /// The condition reason the controller would report, when there is one.
    pub reason: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    /// Every part may hold text from the manifest (a field name, a quoted value): control
    /// characters are escaped so that none reaches the terminal.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: document {}", printable(&self.source), self.document)?;
        if let Some(item) = self.item {
            write!(f, " item {item}")?;
        }
        write!(f, " ({})", printable(&self.object))?;
        if let Some(field) = &self.field {
            write!(f, ": {}", printable(field))?;
        }
        if let Some(reason) = &self.reason {
            write!(f, ": {reason}")?;
        }
        write!(f, ": {}", printable(&self.message))
    }
}

/// The outcome of a check.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// How many mailops objects were read.
    pub objects: usize,
    /// One row per MailboxBinding.
    pub bindings: Vec<BindingRow>,
    /// Everything wrong; empty when the input is good.
    pub problems: Vec<Problem>,
}

impl Report {
    /// Render as text or JSON.
    pub fn render(&self, format: OutputFormat) -> crate::Result<String> {
        match format {
            OutputFormat::Json => serde_json::to_string_pretty(self)
                .map(|s| s + "\n")
                .map_err(|e| crate::Error::Serialize(e.to_string())),
            OutputFormat::Text => Ok(self.render_text()),
        }
    }

    fn render_text(&self) -> String {
        let header = ["BINDING", "EMAIL", "PROVIDER", "LOGIN", "VIA", "VERDICT"].map(String::from);
        let rows: Vec<[String; 6]> = self
            .bindings
            .iter()
            .map(|b| {
                let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
                [
                    format!("{}/{}", b.namespace, b.name),
                    b.email.clone(),
                    dash(&b.provider),
                    dash(&b.login),
                    dash(&b.via),
                    b.verdict.clone(),
                ]
                .map(|cell| printable(&cell).into_owned())
            })
            .collect();
        let mut widths = header.clone().map(|h| h.len());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        let mut out = String::new();
        if !rows.is_empty() {
            for row in std::iter::once(&header).chain(&rows) {
                let cells: Vec<String> = row
                    .iter()
                    .zip(widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                out.push_str(cells.join("  ").trim_end());
                out.push('\n');
            }
        }
        for problem in &self.problems {
            out.push_str(&format!("error: {problem}\n"));
        }
        out.push_str(&format!(
            "{}, {}, {}\n",
            counted(self.objects, "mailops object"),
            counted(self.bindings.len(), "binding"),
            counted(self.problems.len(), "problem")
        ));
        out
    }
}

fn counted(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}
