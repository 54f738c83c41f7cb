pub mod allocator;
pub mod appointments;
// files customers and agents send in a chat
pub mod archive;
pub mod attachments;
pub mod auth;
pub mod clock;
pub mod cluster;
pub mod config;
// conversations beyond the live chat, kept by compare-and-set
pub mod conversations;
pub mod core;
pub mod http;
pub mod hub;
pub mod local_log;
pub mod logging;
pub mod metrics;
pub mod niced;
pub mod poison;
pub mod protocol;
pub mod rating_scale;
pub mod ratings;
pub mod server;
pub mod single_flight;
pub mod starting;
pub mod store;
pub mod test_hooks;
pub mod ticks;
pub mod web;
pub mod ws;

pub use server::{bootstrap, run};
// ---- rooms and 1-to-1 video ----
pub mod demo_host;
// chat opening hours per category and the keeper applying them
pub mod desk_hours;
pub mod desk_name;
// the desk's secret that identity hashes are made with
pub mod identity_secret;
pub mod mail;
// mail customers send back, read over IMAP
pub mod inbound;
pub mod rooms;
pub mod routing_modes;
// agent bots: which bot a category's customers talk to first
pub mod bot_hooks;
pub mod category_bots;
// ---- offline messages: what customers leave when nobody is online ----
pub mod offline;
// ---- transcripts by mail: a customer's chat mailed to them ----
pub mod transcripts;
// signed webhooks to endpoints admins register
pub mod webhooks;
// API tokens for scripts and bots: look-up, cache, rate limits
pub mod api_tokens;
