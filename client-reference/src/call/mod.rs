//! Calls, the parts that need no server: SFrame media keys ([`keys`]),
//! the check of key ids against the relay's streams ([`streams`]),
//! synthetic frames and their reassembly ([`frames`]), the WebRTC media
//! engine that talks to the relay ([`media`]) and the call's statistics.
//! The signalling over end-to-end encrypted messages lives with the client
//! (`Client::place_call`, `Client::answer_call`).

pub mod frames;
pub mod keys;
pub mod media;
pub(crate) mod run;
pub mod stats;
pub mod streams;
