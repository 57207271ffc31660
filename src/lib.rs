//! mailops: a Kubernetes operator that makes Exchange / Microsoft 365 mailbox
//! connectivity declarative.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod api;
pub mod cache;
pub mod check;
pub mod config;
pub mod controller;
pub mod endpoints;
pub mod error;
pub mod exchange;
pub mod health;
pub mod http;
pub mod kube_client;
pub mod kube_deadline;
pub mod metrics;
pub mod redact;
pub mod resolve;
pub mod serve_limits;
pub mod status;
pub mod telemetry;
pub mod webhook;

pub use error::{Error, Result};
