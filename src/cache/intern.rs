//! Names that many cached objects repeat, held once: the provider and the service account
//! a binding names and its status records, and the endpoint, are the same for thousands
//! of bindings (100,000 bindings over ten providers carried 400,000 copies of ten names
//! and ten URLs).
//! Each cached copy shares the one `Arc<str>` of the table, which keeps only strings some
//! cached object still holds: it sweeps the others whenever it has doubled since its last
//! sweep, so what a writer puts in a status (any string) costs the table at most twice
//! what the cache holds anyway.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};

/// Below this many strings the table is not swept.
const MIN_SWEEP: usize = 1024;

#[derive(Default)]
struct Table {
    strings: HashSet<Arc<str>>,
    /// Sweep when the table reaches this size.
    sweep_at: usize,
}

impl Table {
    fn share(&mut self, s: &Arc<str>) -> Arc<str> {
        if let Some(held) = self.strings.get(s) {
            return held.clone();
        }
        if self.strings.len() >= self.sweep_at.max(MIN_SWEEP) {
            // Held by the table alone: no cached object has it any more.
            self.strings.retain(|held| Arc::strong_count(held) > 1);
            self.sweep_at = 2 * self.strings.len();
        }
        self.strings.insert(s.clone());
        s.clone()
    }
}

fn table() -> &'static Mutex<Table> {
    static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
    TABLE.get_or_init(Mutex::default)
}

/// Replace `s` by the table's copy of the same text (entering it if new).
pub fn share(s: &mut Arc<str>) {
    let mut table = table().lock().unwrap_or_else(|e| e.into_inner());
    *s = table.share(s);
}

/// [`share`] for an optional string.
pub fn share_opt(slot: &mut Option<Arc<str>>) {
    if let Some(s) = slot {
        share(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_share_one_allocation() {
        let mut a = Some(Arc::<str>::from("intern-test-provider"));
        let mut b = Some(Arc::<str>::from("intern-test-provider"));
        share_opt(&mut a);
        share_opt(&mut b);
        assert!(Arc::ptr_eq(a.as_ref().unwrap(), b.as_ref().unwrap()));
        let mut none = None;
        share_opt(&mut none);
        assert!(none.is_none());
    }

    #[test]
    fn strings_nothing_holds_are_swept() {
        let mut table = Table::default();
        let kept = Arc::<str>::from("kept");
        let kept = table.share(&kept);
        for i in 0..10 * MIN_SWEEP {
            drop(table.share(&Arc::from(format!("gone-{i}"))));
        }
        assert!(
            table.strings.len() <= MIN_SWEEP + 1,
            "{}",
            table.strings.len()
        );
        assert!(table.strings.contains("kept"));
        assert!(Arc::ptr_eq(&table.share(&Arc::from("kept")), &kept));
    }
}

#[cfg(test)]
mod cached {
    use std::sync::Arc;

    use crate::api::MailboxBinding;
    use crate::cache::Guarded;
    use crate::cache::watch::Cached;

    fn cached(name: &str) -> Guarded<MailboxBinding> {
        let mut b: Guarded<MailboxBinding> = serde_json::from_value(serde_json::json!({
            "apiVersion": "mailops.dev/v1alpha1", "kind": "MailboxBinding",
            "metadata": {"name": name, "namespace": "ns"},
            "spec": {"emailAddress": "a@contoso.com",
                "authentication": {"serviceAccountRef": {"name": "intern-cached-org"}}},
            "status": {"provider": "intern-cached-contoso", "serviceAccount": "intern-cached-org",
                "endpoint": "https://graph.microsoft.com/v1.0"}
        }))
        .unwrap();
        b.trim();
        b
    }

    #[test]
    fn two_cached_bindings_share_their_names_and_endpoint() {
        let (a, b) = (cached("a"), cached("b"));
        let (a, b) = (a.0.unwrap(), b.0.unwrap());
        let account = |x: &MailboxBinding| {
            x.spec
                .authentication
                .service_account_ref
                .clone()
                .unwrap()
                .name
        };
        assert!(Arc::ptr_eq(&account(&a), &account(&b)));
        let (sa, sb) = (a.status.clone().unwrap(), b.status.clone().unwrap());
        for (x, y) in [
            (&sa.provider, &sb.provider),
            (&sa.service_account, &sb.service_account),
            (&sa.endpoint, &sb.endpoint),
        ] {
            assert!(Arc::ptr_eq(x.as_ref().unwrap(), y.as_ref().unwrap()));
        }
        assert!(Arc::ptr_eq(
            &account(&a),
            sa.service_account.as_ref().unwrap()
        ));
    }
}
