//! The `use` question put to the API server: a SubjectAccessReview for the requesting user
//! (name, uid, groups, extra) on one ExchangeServiceAccount, with its own timeout.

use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec, SubjectAccessReviewStatus,
};
use kube::api::PostParams;
use kube::{Api, Client};

use super::decision::{ACCOUNTS_RESOURCE, Access, GROUP, USE_VERB, UseCheck};

/// Answers "may this user `use` this account?"; the real one asks the API server, tests
/// answer themselves.
pub trait AccessReviewer: Send + Sync {
    /// The answer; never fails, an unreachable authoriser is [`Access::Unavailable`].
    fn review(&self, check: &UseCheck) -> BoxFuture<'static, Access>;
}

/// Asks the API server with a SubjectAccessReview.
pub struct KubeAccessReviewer {
    client: Client,
    timeout: Duration,
}

impl KubeAccessReviewer {
    /// A reviewer using `client` (which must be allowed to `create subjectaccessreviews`).
    pub fn new(client: Client, timeout: Duration) -> Self {
        KubeAccessReviewer { client, timeout }
    }
}

impl AccessReviewer for KubeAccessReviewer {
    fn review(&self, check: &UseCheck) -> BoxFuture<'static, Access> {
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let review = review_for(check);
        let timeout = self.timeout;
        Box::pin(async move {
            let params = PostParams::default();
            match tokio::time::timeout(timeout, api.create(&params, &review)).await {
                Err(_) => Access::Unavailable {
                    error: format!("the SubjectAccessReview took over {}s", timeout.as_secs()),
                },
                Ok(Err(e)) => Access::Unavailable {
                    error: format!("the SubjectAccessReview failed: {e}"),
                },
                Ok(Ok(answer)) => access_of(answer.status.as_ref()),
            }
        })
    }
}

/// The review to create: the user exactly as the AdmissionReview names them, and the
/// `use` verb on the named account (cluster-scoped, so no namespace).
pub fn review_for(check: &UseCheck) -> SubjectAccessReview {
    let user = &check.user;
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: user.username.clone(),
            uid: user.uid.clone(),
            groups: user.groups.clone(),
            extra: user.extra.clone(),
            resource_attributes: Some(ResourceAttributes {
                group: Some(GROUP.into()),
                resource: Some(ACCOUNTS_RESOURCE.into()),
                verb: Some(USE_VERB.into()),
                name: Some(check.account.clone()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    }
}

/// The answer in a review's status; no status, or an evaluation error without a
/// decision, is no permission.
pub fn access_of(status: Option<&SubjectAccessReviewStatus>) -> Access {
    match status {
        Some(s) if s.allowed => Access::Allowed,
        Some(s) => Access::Denied {
            reason: s.reason.clone().unwrap_or_default(),
        },
        None => Access::Denied {
            reason: "the SubjectAccessReview returned no status".into(),
        },
    }
}
