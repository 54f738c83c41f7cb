//! End-to-end tests of the hub over real websockets and HTTP on loopback.

mod access;
mod admin;
mod archive;
mod auth;
// appointments (issue 17)
mod appointment_hours;
mod appointment_mail;
mod appointment_rooms;
mod appointments;
mod bad_input;
mod buddy;
mod chat;
mod closing;
mod cluster_base;
// issue 15: the hub on the routing scripts
mod cluster_hub;
mod common;
mod contracts;
mod durability;
mod edge;
mod openapi;
mod redis_server;
mod routing;
// ---- rooms and 1-to-1 video (issue 16) ----
mod rooms;
mod rooms_cluster;
mod rooms_invites;
mod starting;
mod storeops;
mod transport;
// issue 14 (perf)
mod journal;
// issue 15: a customer's resume on another node
mod cluster_resume;
// issue 15: the full-size cross-process scenarios and their checker
mod cluster_checker;
mod cluster_scenario_clients;
mod cluster_scenarios;
