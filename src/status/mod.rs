//! `mailops status`: what the cluster's mailops objects say about themselves, as a tree
//! provider → service accounts → bindings. Reading the cluster is [`cli`]; turning
//! objects into the tree ([`tree`]) and the tree into text or JSON ([`render`]) is pure.

pub mod cli;
pub mod escape;
pub mod model;
pub mod render;
pub mod tree;

pub use cli::{OutputFormat, StatusArgs, run};
pub use model::{Entry, NO_STATUS, OUTDATED, Ready, Snapshot};
pub use tree::{AccountNode, BlockedDeletion, ProviderNode, StatusTree, build};
