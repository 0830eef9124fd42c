//! `starling-relay`: the media relay's binary. Not wired yet.

fn main() {}
