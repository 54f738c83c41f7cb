//! End-to-end tests of the hub over real websockets and HTTP on loopback.

mod access;
mod admin;
mod archive;
mod auth;
mod bad_input;
mod buddy;
mod chat;
mod closing;
mod common;
mod contracts;
mod durability;
mod edge;
mod openapi;
mod redis_server;
mod routing;
mod starting;
mod storeops;
mod transport;
// issue 14 (perf)
mod journal;
