//! The three controllers in one process. One module per concern: the shared context and
//! caches, running and shutdown, the triggers' ways in (settled, gated, due again), the
//! one driver every kind goes through, who uses what, status, Events, the outcome and
//! retry policy, and one reconciler per kind.

pub mod backoff;
pub mod binding;
pub mod context;
pub mod credentials;
pub mod driver;
pub mod events;
pub mod fanout;
pub mod finalizer;
pub mod gate;
pub mod index;
pub mod leader;
pub mod policy;
pub mod probe_cache;
pub mod provider;
pub mod rotation;
pub mod runner;
pub mod service_account;
pub mod settle;
pub mod status;
pub mod timetable;
pub mod usage;

pub use context::{Context, Guarded, Stores, Writers, object_key, stores};
pub use policy::error_policy;
pub use runner::{check_crds, run, run_controllers, run_with, shutdown_signal};

/// Metric and log label of each kind.
pub const PROVIDER_KIND: &str = "EmailProvider";
/// Metric and log label of each kind.
pub const SERVICE_ACCOUNT_KIND: &str = "ExchangeServiceAccount";
/// Metric and log label of each kind.
pub const BINDING_KIND: &str = "MailboxBinding";
