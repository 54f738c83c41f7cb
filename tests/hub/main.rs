//! End-to-end tests of the hub over real websockets and HTTP on loopback.

mod access;
mod admin;
mod archive;
mod bad_input;
mod buddy;
mod chat;
mod common;
mod edge;
mod routing;
mod transport;
