//! The mailbox customers write back to, as admins see it: whether it is read, by which
//! node, and how the last looks went, so a mailbox that cannot be read is seen on the
//! dashboard rather than found out from customers whose answers never came.

use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use super::error::JsonResult;
use super::responses::AdminsOnly;
use super::session::Admin;
use crate::inbound::poller::InboundReport;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(status))
}

/// The reading of the desk's mailbox.
#[derive(Debug, Serialize, ToSchema)]
pub struct InboundMailView {
    /// `IMAP_URL` is set on this node.
    pub configured: bool,
    /// On several nodes, the node reading the mailbox now (absent: none, or one node).
    pub reader: Option<String>,
    /// How the reader's looks went (absent: not configured, or no report yet; on several
    /// nodes, the last reader's report, up to a day old).
    pub report: Option<InboundReport>,
    /// On several nodes, Redis could not be asked: `reader` and `report` are unknown.
    pub cluster_unavailable: bool,
}

/// Whether and how the desk's mailbox (`IMAP_URL`) is read.
#[utoipa::path(get, path = "/api/admin/inbound-mail", tag = "admin",
    responses((status = 200, body = InboundMailView), AdminsOnly))]
async fn status(Admin(state): Admin) -> JsonResult<InboundMailView> {
    let Some(local) = state.inbound.as_ref() else {
        return Ok(Json(InboundMailView {
            configured: false,
            reader: None,
            report: None,
            cluster_unavailable: false,
        }));
    };
    let Some(cluster) = state.cluster.as_ref() else {
        return Ok(Json(InboundMailView {
            configured: true,
            reader: None,
            report: Some(local.report()),
            cluster_unavailable: false,
        }));
    };
    Ok(Json(match crate::cluster::duty::read(cluster, "imap").await {
        Ok((reader, report)) => {
            let report = match reader.as_deref() == Some(cluster.node_id()) {
                true => Some(local.report()),
                false => report.and_then(|r| serde_json::from_str(&r).ok()),
            };
            InboundMailView {
                configured: true,
                reader,
                report,
                cluster_unavailable: false,
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "the mailbox's reader could not be asked of Redis");
            InboundMailView {
                configured: true,
                reader: None,
                report: None,
                cluster_unavailable: true,
            }
        }
    }))
}
