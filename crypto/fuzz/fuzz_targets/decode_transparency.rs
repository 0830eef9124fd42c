//! The key-transparency decoders (`crypto/SPEC.md` §16) on arbitrary bytes:
//! device lists, signed roots and akd's lookup, history and append-only
//! proofs decode without
//! panicking; a device list or signed root that decodes re-encodes to the
//! same bytes (their encodings are canonical; protobuf proofs are not);
//! and no arbitrary signed root verifies under a fixed key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use starling_transparency::audit::decode_step;
use starling_transparency::history::decode_history;
use starling_transparency::verify::decode_lookup;
use starling_transparency::{DeviceList, LogSigningKey, SignedRoot};

fuzz_target!(|data: &[u8]| {
    if let Ok(list) = DeviceList::from_bytes(data) {
        assert_eq!(list.to_bytes(), data, "a device list is canonical");
        let _ = list.value();
    }
    if let Ok(root) = SignedRoot::from_bytes(data) {
        assert_eq!(root.to_bytes(), data, "a signed root is canonical");
        let key = LogSigningKey::from_bytes(&[0x11; 32]).public();
        assert!(root.verify(&key).is_err(), "an arbitrary root verified");
    }
    let _ = decode_lookup(data);
    let _ = decode_history(data);
    let _ = decode_step(data);
});
