//! The three controllers in one process, on the caches of [`crate::cache`]. One module per
//! concern, each step of a reconcile its own: the shared handles ([`context`]); the
//! driver ([`driver`]) over what each kind gives it ([`reconciled`]); the kinds
//! ([`provider`], [`service_account`], [`binding`] with [`binding_status`]); the in-use
//! finalizer and the blocked deletion; the status write; Events and the retry policy;
//! a provider's trust with its CA bundle read by reference ([`bundle`]);
//! the per-object memories (probe results, back-off, rotated tokens and their write-back);
//! the triggers and their ways in (settled, gated, due again); running it all.

pub mod backoff;
pub mod binding;
pub mod binding_probe;
pub mod binding_status;
pub mod bundle;
pub mod clock;
pub mod context;
pub mod credentials;
pub mod deletion;
pub mod driver;
pub mod events;
pub mod fanout;
pub mod finalizer;
pub mod gate;
pub mod kinds;
pub mod leader;
pub mod policy;
pub mod probe_cache;
pub mod provider;
pub mod reconciled;
pub mod refusals;
pub mod restart;
pub mod rotation;
pub mod runner;
pub mod service_account;
pub mod settle;
pub mod status_writer;
pub mod timetable;
pub mod write_back;

pub use context::Context;
pub use kinds::{reconcile_binding, reconcile_provider, reconcile_service_account};
pub use policy::error_policy;
pub use runner::{check_crds, run_controllers, run_operator, shutdown_signal};
