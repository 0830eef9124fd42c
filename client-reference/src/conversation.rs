//! Conversations: a person or a group. The types live in the client core
//! (`starling-client-core`); they are re-exported here under the paths
//! this crate has always offered.

pub use starling_client_core::conversation::*;
