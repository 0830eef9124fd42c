//! The network shell: the only part of the relay that does I/O (sockets,
//! HTTP, the clock). Not written yet.
