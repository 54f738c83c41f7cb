pub mod archive;
pub mod config;
pub mod core;
pub mod hub;
pub mod protocol;
pub mod store;
