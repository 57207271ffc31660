//! The admission decision, pure: (AdmissionRequest, SubjectAccessReview answer, caches) →
//! AdmissionResponse. Refusals only for the `use` verb and in-use deletions; everything
//! that depends on other objects is a warning, since GitOps applies in any order.

use k8s_openapi::api::authentication::v1::UserInfo;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use serde_json::Value;

use super::{users, warnings};
use crate::api::{EmailProvider, ExchangeServiceAccount, MailboxBinding, kind_label};
use crate::cache::Stores;

/// An AdmissionRequest for any object.
pub type Request = AdmissionRequest<DynamicObject>;

/// The API group of the three kinds.
pub use crate::api::GROUP;
/// The verb a user needs on an ExchangeServiceAccount to link mailboxes through it.
pub const USE_VERB: &str = "use";
/// The resource the `use` verb is checked on.
pub const ACCOUNTS_RESOURCE: &str = "exchangeserviceaccounts";
/// Where a refused user is sent to learn how the verb is granted.
pub const GRANT_DOC: &str = "a cluster admin grants it as the mailops README shows under \"Granting use of a service account\"";

/// The binding fields whose change needs `use` again when the binding uses a service
/// account; the switches (`enableSending`, `enableSyncing`, `connectCalendar`) do not.
const USE_RELEVANT: [&str; 4] = [
    "/spec/emailAddress",
    "/spec/login",
    "/spec/providerRef",
    "/spec/authentication/serviceAccountRef",
];

/// A question for the API server before the request can be decided: may this user
/// `use` this ExchangeServiceAccount?
#[derive(Clone, Debug, PartialEq)]
pub struct UseCheck {
    /// The requesting user, as the AdmissionReview names them.
    pub user: UserInfo,
    /// The ExchangeServiceAccount's name.
    pub account: String,
}

/// The SubjectAccessReview's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// The user has `use`.
    Allowed,
    /// The user lacks `use`; the authoriser's reason, if it gave one.
    Denied {
        /// The SubjectAccessReview's `status.reason`.
        reason: String,
    },
    /// The review could not be made (timeout, API error): refused, so a failing API
    /// server cannot be used to bypass the check.
    Unavailable {
        /// What went wrong.
        error: String,
    },
}

/// What the decision depends on besides the request.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Refuse a DELETE of a provider or service account that is still used.
    pub refuse_in_use_deletion: bool,
    /// Whether `http://` endpoint overrides are accepted (as the controllers do).
    pub allow_insecure_endpoints: bool,
}

/// The mailops kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// EmailProvider.
    Provider,
    /// ExchangeServiceAccount.
    Account,
    /// MailboxBinding.
    Binding,
}

impl Kind {
    fn of(request: &Request) -> Option<Kind> {
        if request.kind.group != GROUP {
            return None;
        }
        [Kind::Provider, Kind::Account, Kind::Binding]
            .into_iter()
            .find(|k| k.name() == request.kind.kind)
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Provider => kind_label::<EmailProvider>(),
            Kind::Account => kind_label::<ExchangeServiceAccount>(),
            Kind::Binding => kind_label::<MailboxBinding>(),
        }
    }
}

/// Read an AdmissionReview v1 body; the error says what is wrong with it.
pub fn parse_review(body: &[u8]) -> Result<Request, String> {
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_slice(body).map_err(|e| format!("not an AdmissionReview: {e}"))?;
    if review.types.api_version != "admission.k8s.io/v1" || review.types.kind != "AdmissionReview" {
        return Err(format!(
            "expected an admission.k8s.io/v1 AdmissionReview, got {:?} {:?}",
            review.types.api_version, review.types.kind
        ));
    }
    review
        .try_into()
        .map_err(|_| "the AdmissionReview carries no request".to_string())
}

/// The answer to a body that is not a readable AdmissionReview: refused as invalid, with
/// the request's uid when it can be found, so the API server can match the answer.
pub fn malformed(body: &[u8], problem: &str) -> AdmissionReview<DynamicObject> {
    let mut response = AdmissionResponse::invalid(problem);
    if let Some(uid) = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        v.pointer("/request/uid")
            .and_then(Value::as_str)
            .map(String::from)
    }) {
        response.uid = uid;
    }
    response.into_review()
}

/// Whether the request needs a SubjectAccessReview: CREATE of a MailboxBinding that names
/// a service account, or an UPDATE of one that changes what it links or through which
/// account. `Err` when the binding cannot be read for it.
pub fn use_check(request: &Request) -> Result<Option<UseCheck>, String> {
    let relevant = Kind::of(request) == Some(Kind::Binding)
        && request.sub_resource.is_none()
        && matches!(request.operation, Operation::Create | Operation::Update);
    if !relevant {
        return Ok(None);
    }
    let object = request
        .object
        .as_ref()
        .ok_or("the request carries no object")?;
    let Some(reference) = object
        .data
        .pointer("/spec/authentication/serviceAccountRef")
    else {
        return Ok(None);
    };
    let account = reference
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or("spec.authentication.serviceAccountRef.name is missing")?;
    if let (Operation::Update, Some(old)) = (&request.operation, &request.old_object)
        && USE_RELEVANT
            .iter()
            .all(|field| old.data.pointer(field) == object.data.pointer(field))
    {
        return Ok(None);
    }
    Ok(Some(UseCheck {
        user: request.user_info.clone(),
        account: account.to_string(),
    }))
}

/// Decide a request. `access` is the SubjectAccessReview's answer when [`use_check`]
/// asked for one.
pub fn decide(
    request: &Request,
    access: Option<&Access>,
    stores: &Stores,
    options: &Options,
) -> AdmissionResponse {
    let allowed = AdmissionResponse::from(request);
    let Some(kind) = Kind::of(request) else {
        return allowed;
    };
    if request.sub_resource.is_some() {
        return allowed;
    }
    match request.operation {
        Operation::Delete => deletion(allowed, request, kind, stores, options),
        Operation::Create | Operation::Update => {
            if let Err(refusal) = use_verdict(request, access) {
                return allowed.deny(refusal);
            }
            let found = warnings_for(request, kind, stores, options);
            let mut response = allowed;
            if !found.is_empty() {
                response.warnings = Some(found);
            }
            response
        }
        Operation::Connect => allowed,
    }
}

fn use_verdict(request: &Request, access: Option<&Access>) -> Result<(), String> {
    let check = match use_check(request) {
        Ok(None) => return Ok(()),
        Ok(Some(check)) => check,
        Err(problem) => {
            return Err(format!(
                "mailops cannot read this MailboxBinding: {problem}"
            ));
        }
    };
    let user = check.user.username.as_deref().unwrap_or("(unknown user)");
    let account = &check.account;
    let needs = format!(
        "the verb \"{USE_VERB}\" on {ACCOUNTS_RESOURCE}.{GROUP} \"{account}\" is needed to link mailboxes through it; {GRANT_DOC}"
    );
    match access {
        Some(Access::Allowed) => Ok(()),
        Some(Access::Denied { reason }) if !reason.is_empty() => Err(format!(
            "user \"{user}\" may not use ExchangeServiceAccount \"{account}\" ({reason}): {needs}"
        )),
        Some(Access::Denied { .. }) => Err(format!(
            "user \"{user}\" may not use ExchangeServiceAccount \"{account}\": {needs}"
        )),
        Some(Access::Unavailable { error }) => Err(format!(
            "cannot check whether user \"{user}\" may use ExchangeServiceAccount \"{account}\" ({error}); try again"
        )),
        None => Err(format!(
            "whether user \"{user}\" may use ExchangeServiceAccount \"{account}\" was not checked; try again"
        )),
    }
}

fn deletion(
    allowed: AdmissionResponse,
    request: &Request,
    kind: Kind,
    stores: &Stores,
    options: &Options,
) -> AdmissionResponse {
    if !options.refuse_in_use_deletion {
        return allowed;
    }
    let (users, held) = match kind {
        Kind::Provider => (
            crate::cache::usage::of_provider(stores, &request.name),
            users::Held::Provider,
        ),
        Kind::Account => (
            crate::cache::usage::of_account(stores, &request.name),
            users::Held::Account,
        ),
        Kind::Binding => return allowed,
    };
    if users.is_empty() {
        return allowed;
    }
    allowed.deny(users::deletion_refusal(
        kind.name(),
        &request.name,
        &users,
        held,
    ))
}

/// Warnings for a create or a change of spec; none for a change of metadata or status
/// alone (finalizers, labels), nor for an object being deleted.
fn warnings_for(request: &Request, kind: Kind, stores: &Stores, options: &Options) -> Vec<String> {
    let Some(object) = &request.object else {
        return Vec::new();
    };
    let spec_unchanged = request
        .old_object
        .as_ref()
        .is_some_and(|old| old.data.get("spec") == object.data.get("spec"));
    if spec_unchanged || object.metadata.deletion_timestamp.is_some() {
        return Vec::new();
    }
    let mut object = object.clone();
    if object.metadata.namespace.is_none() {
        object.metadata.namespace = request.namespace.clone();
    }
    let insecure = options.allow_insecure_endpoints;
    let unreadable = |e: kube::core::dynamic::ParseDynamicObjectError| {
        vec![format!("mailops cannot read this {}: {e}", kind.name())]
    };
    match kind {
        Kind::Binding => object
            .try_parse::<MailboxBinding>()
            .map_or_else(unreadable, |b| warnings::for_binding(&b, stores, insecure)),
        Kind::Account => object
            .try_parse::<ExchangeServiceAccount>()
            .map_or_else(unreadable, |a| warnings::for_account(&a, stores)),
        Kind::Provider => object
            .try_parse::<EmailProvider>()
            .map_or_else(unreadable, |p| warnings::for_provider(&p, stores, insecure)),
    }
}
