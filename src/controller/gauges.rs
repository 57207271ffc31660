//! The `mailops_objects` gauge: objects by kind and `Ready` status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Resource;
use kube::runtime::reflector::Store;

use super::context::{Context, Guarded};
use super::{BINDING_KIND, PROVIDER_KIND, SERVICE_ACCOUNT_KIND};
use crate::api::conditions;
use crate::api::{EmailProvider, ExchangeServiceAccount, MailboxBinding};
use crate::metrics::Metrics;

/// Count objects by kind and `Ready` status for the `mailops_objects` gauge.
pub fn update_object_gauges(ctx: &Context) {
    fn count<K: Clone>(
        metrics: &Metrics,
        kind: &'static str,
        store: &Store<Guarded<K>>,
        conds: fn(&K) -> Option<&[Condition]>,
    ) where
        Guarded<K>: Resource<DynamicType = ()> + Clone,
    {
        let (mut t, mut f, mut u) = (0, 0, 0);
        for g in store.state() {
            let ready =
                g.0.as_ref()
                    .ok()
                    .and_then(conds)
                    .and_then(|c| conditions::find(c, conditions::READY))
                    .map(|c| c.status.as_str());
            match ready {
                Some("True") => t += 1,
                Some("False") => f += 1,
                _ => u += 1,
            }
        }
        metrics.set_objects(kind, "True", t);
        metrics.set_objects(kind, "False", f);
        metrics.set_objects(kind, "Unknown", u);
    }
    count::<EmailProvider>(&ctx.metrics, PROVIDER_KIND, &ctx.stores.providers, |p| {
        p.status.as_ref().map(|s| s.conditions.as_slice())
    });
    count::<ExchangeServiceAccount>(
        &ctx.metrics,
        SERVICE_ACCOUNT_KIND,
        &ctx.stores.service_accounts,
        |a| a.status.as_ref().map(|s| s.conditions.as_slice()),
    );
    count::<MailboxBinding>(&ctx.metrics, BINDING_KIND, &ctx.stores.bindings, |b| {
        b.status.as_ref().map(|s| s.conditions.as_slice())
    });
}
