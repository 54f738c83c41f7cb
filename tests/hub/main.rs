//! End-to-end tests of the hub over real websockets and HTTP on loopback.

mod access;
mod admin;
mod archive;
mod archive_once;
mod auth;
// appointments (issue 17)
mod appointment_customer;
mod appointment_hours;
mod appointment_mail;
mod appointment_rooms;
mod appointments;
mod bad_input;
mod buddy;
// issue 15: the buddy list across the cluster
mod buddy_cluster;
// canned replies: the desk's and an agent's own
mod canned;
mod chat;
mod closing;
mod cluster_base;
mod direct_path;
// issue 15: the hub on the routing scripts
mod cluster_desk;
mod cluster_hub;
// One chat across nodes, the opening several cluster tests share.
mod cluster_fixture;
mod common;
mod contracts;
mod customer_panel;
mod desk;
mod durability;
mod edge;
mod erasure;
// the listening socket's backlog
mod listen_backlog;
mod logging;
// offline messages: left when nobody is online, answered by mail
mod notes;
mod offline;
// offers with a timeout, on one node and across nodes
mod offers;
mod openapi;
mod redis_server;
mod routing;
// archive search and export
mod search;
// ---- rooms and 1-to-1 video (issue 16) ----
// customers rating a chat that ended
mod ratings;
// the manager's reports
mod reports;
mod rooms;
mod rooms_cluster;
mod rooms_invites;
mod rooms_leave;
// the members' microphone and camera state, relayed
mod rooms_media;
mod rooms_seats;
mod starting;
mod storeops;
mod transfers;
// ---- transcripts by mail ----
mod transcript_mail;
// review of transfers: faults found, and what held
mod transfers_attack;
mod transport;
// the embeddable chat widget
mod widget;
// issue 14 (perf)
mod journal;
mod mongod;
// issue 15: a customer's resume on another node
mod cluster_resume;
// issue 15: Redis killed and restarted, empty or with its data
mod cluster_redis_restart;
// issue 15: a graceful leave on SIGTERM
mod cluster_leave;
// issue 15: a node joining past a trimmed events stream
mod cluster_late_node;
// issue 15: the full-size cross-process scenarios and their checker
mod cluster_checker;
mod cluster_scenario_clients;
mod cluster_scenarios;
// issue 15's gaps: a node's own calls made while Redis is away
mod cluster_own_calls;
// issue 15's gaps: a killed node's chat archived by the node that took its customer over
mod cluster_archive_handover;
// issue 15's gaps: an agent back where their customer resumed
mod cluster_agent_return;
// issue 15: Redis restarted empty, the nodes re-assert what their people hold
mod cluster_reassert;
// a node stopped (SIGSTOP) past its lease: archive, ended chats and early resumes
mod cluster_stall;
// an agent's message acknowledged right before they end the chat, archived
mod cluster_last_word;
