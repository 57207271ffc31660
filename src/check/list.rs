//! `kind: List` documents, which `kubectl get -o yaml` prints, opened into their items so
//! each is checked as kubectl would apply it.

use std::borrow::Cow;

use serde_json::Value;

use super::Document;
use super::report::Problem;

/// The documents `doc` stands for: its items when it is a list, else itself. kubectl
/// treats any `*List` kind with `items` as a list (`v1 List`, `EmailProviderList`, ...);
/// items that are themselves lists are not opened further, as kubectl does not. A list
/// whose `items` is not a sequence, which kubectl refuses, is a problem and stands for
/// nothing.
pub fn expand<'a>(doc: &'a Document, problems: &mut Vec<Problem>) -> Cow<'a, [Document]> {
    let is_list = doc
        .value
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"));
    if !is_list || doc.item.is_some() {
        return Cow::Borrowed(std::slice::from_ref(doc));
    }
    match doc.value.get("items") {
        None | Some(Value::Null) => Cow::Owned(Vec::new()),
        Some(Value::Array(items)) => Cow::Owned(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| Document {
                    source: doc.source.clone(),
                    index: doc.index,
                    item: Some(i + 1),
                    value: item.clone(),
                })
                .collect(),
        ),
        Some(_) => {
            problems.push(Problem {
                source: doc.source.clone(),
                document: doc.index,
                item: None,
                object: doc
                    .value
                    .get("kind")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                field: Some("items".into()),
                reason: None,
                message: "must be a list of objects".into(),
            });
            Cow::Owned(Vec::new())
        }
    }
}
