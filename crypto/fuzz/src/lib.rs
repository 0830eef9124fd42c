//! Support code for the `starling-crypto` fuzz targets: the deterministic
//! fixtures they share with the seed generator and the corpus replay test.

pub mod fixture;
