//! Which page of a listing a query asks for: `offset` and `limit`, checked into the store's
//! [`Page`]. A listing that pages so takes [`PageQuery`] as a query of its own, beside its
//! filters (`params(Filters, PageQuery)`, two `ApiQuery` arguments).

use serde::Deserialize;
use utoipa::IntoParams;

use super::ApiError;
use crate::store::Page;

/// The most items one page holds.
const MAX_PAGE: u64 = 200;
/// The items one page holds when `limit` is not given.
const DEFAULT_PAGE: u64 = 50;

/// Which page of the listing.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    #[serde(default)]
    pub offset: u64,
    /// 1 to 200, default 50.
    pub limit: Option<u64>,
}

impl PageQuery {
    /// The page asked for; a `limit` outside 1 to 200 is 400 `bad_query`.
    pub fn page(&self) -> Result<Page, ApiError> {
        Ok(Page {
            offset: self.offset,
            limit: page_limit(self.limit, DEFAULT_PAGE, MAX_PAGE)?,
        })
    }
}

/// The `limit` a listing's query asked for, `default` when none; outside 1 to `max` it is
/// 400 `bad_query`.
pub fn page_limit(asked: Option<u64>, default: u64, max: u64) -> Result<u64, ApiError> {
    let limit = asked.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        return Err(ApiError::invalid("bad_query", format!("limit must be from 1 to {max}")));
    }
    Ok(limit)
}
