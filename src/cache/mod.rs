//! The one layer of caches below the controllers and the webhook: the watched stores
//! (read, never LISTed), the index kept from the same watch events, and the queries on
//! them (who uses a provider or an account). The watch pumps feed it; what a change
//! triggers is the controllers' business, handed to the pumps as [`watch::Sinks`].

pub mod guard;
pub mod index;
pub mod intern;
pub mod keys;
pub mod secrets;
pub mod stores;
pub mod usage;
pub mod watch;

pub use guard::Guarded;
pub use index::{BindingKey, ConfigMapKey, Index, SecretKey};
pub use keys::{object_at, object_key, object_ref};
pub use secrets::{ConfigMapData, ConfigMapMeta, SecretData, SecretMeta};
pub use stores::{
    ConfigMapLookup, SecretLookup, Stores, Writers, stores, typed_objects, well_formed,
};
