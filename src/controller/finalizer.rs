//! The in-use finalizer, held and released by server-side apply under a field manager of
//! its own. `metadata.finalizers` is a set: applying our one entry cannot conflict with
//! anyone's, whatever our cache holds, so there is no stale-cache `422` and no back-off
//! after it (kube's helper used a JSON patch whose `test` met caches older than the
//! object). An entry added the old way is removed by a merge patch of the fresh object
//! the apply returns, guarded by its resourceVersion.

use std::fmt::Debug;

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::Result;
use crate::api::IN_USE_FINALIZER;

/// The field manager that owns our finalizer entry (apart from the status manager, so a
/// status apply never touches metadata).
pub const FINALIZER_MANAGER: &str = "mailops-finalizer";

fn apply_body<K: Resource<DynamicType = ()>>(name: &str, finalizers: &[&str]) -> serde_json::Value {
    json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {"name": name, "finalizers": finalizers},
    })
}

/// Hold the in-use finalizer.
pub async fn hold<K>(api: &Api<K>, name: &str) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let params = PatchParams::apply(FINALIZER_MANAGER).force();
    let body = apply_body::<K>(name, &[IN_USE_FINALIZER]);
    api.patch(name, &params, &Patch::Apply(&body)).await?;
    Ok(())
}

/// Release the in-use finalizer. Gone already is released.
pub async fn release<K>(api: &Api<K>, name: &str) -> Result<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let params = PatchParams::apply(FINALIZER_MANAGER).force();
    let body = apply_body::<K>(name, &[]);
    let after = match api.patch(name, &params, &Patch::Apply(&body)).await {
        Ok(after) => after,
        Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if !after.finalizers().iter().any(|f| f == IN_USE_FINALIZER) {
        return Ok(());
    }
    // Added by another manager (an older mailops): drop it from the object just read.
    drop_entry(api, &after).await
}

/// Drop the in-use entry from `obj` as read, by a merge patch guarded by its
/// resourceVersion, so a concurrent change fails rather than being overwritten. Needs no
/// typed object (a malformed one is released this way too).
pub async fn drop_entry<K, O>(api: &Api<K>, obj: &O) -> Result<()>
where
    K: Resource + Clone + DeserializeOwned + Debug,
    O: ResourceExt,
{
    let remaining: Vec<&String> = obj
        .finalizers()
        .iter()
        .filter(|f| *f != IN_USE_FINALIZER)
        .collect();
    let patch = json!({
        "metadata": {"finalizers": remaining, "resourceVersion": obj.resource_version()}
    });
    match api
        .patch(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
