//! The desk's name as its customers see it: the title an admin gave the widget on the
//! admin page (a desk setting in the shared store, so every node agrees), else
//! `WIDGET_TITLE`. Mails sign with it, so a transcript comes from "Acme help", not from
//! the software's name.

use crate::config::Settings;
use crate::store::Store;

/// The store key of the admin's widget look (`http::widget_settings` writes it).
pub const WIDGET_LOOK_KEY: &str = "widget";

/// The name in force; the settings' when the store cannot be read (a mail is not held
/// back for want of its signature).
pub async fn desk_name(store: &dyn Store, settings: &Settings) -> String {
    #[derive(serde::Deserialize)]
    struct Look {
        title: String,
    }
    match store.desk_setting(WIDGET_LOOK_KEY).await {
        Ok(Some(raw)) => match serde_json::from_str::<Look>(&raw) {
            Ok(look) => return look.title,
            Err(e) => tracing::warn!(error = %e, "the stored widget look is unreadable; mails sign with WIDGET_TITLE"),
        },
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "the desk's name could not be read; mails sign with WIDGET_TITLE"),
    }
    settings.widget.title.clone()
}
