//! How a desk asks customers to rate a chat (`RATING_SCALE`): a setting (`config`) that
//! every rating also records (`store`), below both.

/// How a desk asks customers to rate (`RATING_SCALE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RatingScale {
    /// 1 to 5 stars.
    #[default]
    Stars,
    /// Thumbs down (0) or up (1).
    Thumbs,
}

impl RatingScale {
    /// Is `score` a score of this scale?
    pub fn accepts(self, score: u8) -> bool {
        match self {
            RatingScale::Stars => (1..=5).contains(&score),
            RatingScale::Thumbs => score <= 1,
        }
    }
}
