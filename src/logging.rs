//! Where the hub's log goes and in what shape: `LOG_FORMAT` (`text`, the default, or
//! `json`, one object a line for log shippers) and `RUST_LOG` (the filter).
//!
//! Terminal colours only when the log goes to a terminal: a log file or `docker logs`
//! would otherwise be full of `\x1b[2m…`. `NO_COLOR` (any value) turns them off on a
//! terminal too (<https://no-color.org>).

use std::io::IsTerminal;

/// The log's shape, from `LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (coloured on a terminal).
    Text,
    /// One JSON object a line: `timestamp`, `level`, `target`, `fields` (with `message`).
    Json,
}

impl LogFormat {
    /// Reads `LOG_FORMAT`; unset or empty means text. The error names the variable.
    pub fn from_env() -> Result<Self, String> {
        Self::parse(std::env::var("LOG_FORMAT").ok().as_deref())
    }

    fn parse(value: Option<&str>) -> Result<Self, String> {
        match value.map(str::trim) {
            None | Some("") => Ok(Self::Text),
            Some(v) if v.eq_ignore_ascii_case("text") => Ok(Self::Text),
            Some(v) if v.eq_ignore_ascii_case("json") => Ok(Self::Json),
            Some(other) => Err(format!("LOG_FORMAT={other:?} is not one of text, json")),
        }
    }
}

/// Installs the global subscriber. Logs go to standard output, as they always have.
pub fn init(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,tower_http=warn".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.with_ansi(colours_wanted()).init(),
        LogFormat::Json => builder.json().with_current_span(false).init(),
    }
}

fn colours_wanted() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::LogFormat;

    #[test]
    fn log_format_is_text_unless_json_is_asked_for() {
        assert_eq!(LogFormat::parse(None), Ok(LogFormat::Text));
        assert_eq!(LogFormat::parse(Some("")), Ok(LogFormat::Text));
        assert_eq!(LogFormat::parse(Some("JSON")), Ok(LogFormat::Json));
        assert_eq!(LogFormat::parse(Some(" text ")), Ok(LogFormat::Text));
        let refused = LogFormat::parse(Some("logfmt")).unwrap_err();
        assert!(refused.contains("LOG_FORMAT"), "{refused}");
    }
}
