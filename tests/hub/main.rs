//! End-to-end tests of the hub over real websockets and HTTP on loopback.

mod access;
mod admin;
mod archive;
mod archive_once;
// files sent in a chat: upload, relay, archive, links
mod attachments;
mod auth;
// appointments
mod appointment_customer;
mod appointment_hours;
mod appointment_mail;
mod appointment_rooms;
mod appointments;
mod bad_input;
mod bot_webhooks;
mod bots;
mod bots_cluster;
mod buddy;
// the buddy list across the cluster
mod buddy_cluster;
// files in buddy chats, on one node and across nodes
mod buddy_files;
// canned replies: the desk's and an agent's own
mod canned;
mod chat;
mod clamd;
mod closing;
mod cluster_base;
mod cluster_conversations;
mod direct_path;
// a private Dovecot, the inbound mail tests' IMAP server
mod dovecot;
// the hub on the routing scripts
mod cluster_desk;
mod cluster_hub;
// One chat across nodes, the opening several cluster tests share.
mod cluster_fixture;
mod common;
mod contracts;
mod customer_panel;
mod desk;
mod durability;
// mail customers send back, polled over IMAP
mod edge;
mod erasure;
mod held_link;
mod inbound_mail;
mod mail_both_ways;
mod mail_bounces;
// the listening socket's backlog
mod leave_token;
mod listen_backlog;
mod logging;
// offline messages: left when nobody is online, answered by mail
mod continuing;
mod continuing_cluster;
mod continuing_identified;
mod continuing_waiting;
mod conversations;
mod conversations_desk;
mod conversations_outage;
// HTTP reads bounded while MongoDB is frozen
mod inbox_views;
mod notes;
mod offline;
mod offline_conversations;
mod reads_outage;
// offers with a timeout, on one node and across nodes
mod offers;
mod openapi;
mod redis_server;
mod routing;
// archive search and export
mod search;
// ---- rooms and 1-to-1 video ----
// customers rating a chat that ended
mod ratings;
mod read_your_writes;
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
// ---- follow-ups by mail to a customer who left ----
mod follow_up_mail;
// review of transfers: faults found, and what held
mod transfers_attack;
mod transport;
// the embeddable chat widget
mod widget;
// the embedded store's archive journal, replayed after a kill
mod journal;
mod labels;
mod mongod;
// a customer's resume on another node
mod cluster_resume;
// Redis killed and restarted, empty or with its data
mod cluster_redis_restart;
// a graceful leave on SIGTERM
mod cluster_leave;
// a node joining past a trimmed events stream
mod cluster_late_node;
// the cluster's full-size cross-process scenarios and their checker
mod cluster_checker;
mod cluster_scenario_clients;
mod cluster_scenarios;
// a node's own calls made while Redis is away
mod cluster_own_calls;
// a killed node's chat archived by the node that took its customer over
mod cluster_archive_handover;
// an agent back where their customer resumed
mod cluster_agent_return;
// Redis restarted empty, the nodes re-assert what their people hold
mod cluster_reassert;
// a node stopped (SIGSTOP) past its lease: archive, ended chats and early resumes
mod cluster_stall;
// an agent's message acknowledged right before they end the chat, archived
mod cluster_last_word;
// an agent's coming online (or back) whose answer was lost after Redis applied it
mod cluster_lost_answer;
// the router's read of an agent's endings while Redis does not answer
mod cluster_endings_outage;
// signed webhooks to a receiver the test starts
mod webhooks;
// the same across two nodes on MongoDB, one of them killed mid-send
mod webhooks_cluster;
// webhook events outlive a killed node and a store outage (the journal)
mod webhooks_durable;
// private addresses: the admins' choice unless WEBHOOK_ALLOW_PRIVATE decides
mod webhooks_private;
// API tokens: scopes, refusals, rate, revocation across nodes
mod api_tokens;
