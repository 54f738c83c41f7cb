//! The chat widget's settings: what the launcher and its chat window show, and which
//! sites may frame the widget page.

use super::{ConfigError, Reader};

/// `WIDGET_*` settings and `DEMO_HOST_PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WidgetSettings {
    /// `WIDGET_TITLE`: the desk's name in the chat window's header.
    pub title: String,
    /// `WIDGET_COLOR`: the launcher's and the header's colour, `#rgb` or `#rrggbb`.
    pub color: String,
    /// `WIDGET_GREETING`: the first words the chat window shows.
    pub greeting: String,
    /// `WIDGET_ALLOWED_ORIGINS`: the sites that may frame the widget page
    /// (`frame-ancestors`), besides the hub's own pages.
    pub allowed_origins: Vec<String>,
    /// `DEMO_HOST_PORT`: serve a demo shop page with the widget on this port (same
    /// address as `BIND_ADDR`); its origins are allowed to frame the widget.
    pub demo_host_port: Option<u16>,
}

pub const DEFAULT_TITLE: &str = "Switchboard";
pub const DEFAULT_COLOR: &str = "#2563eb";
pub const DEFAULT_GREETING: &str = "Hi there! Ask us anything — we usually reply within a few minutes.";

impl WidgetSettings {
    pub(super) fn read(r: &Reader<'_>) -> Result<Self, ConfigError> {
        let raw = r.text("WIDGET_TITLE", DEFAULT_TITLE);
        let title = valid_title(&raw).map_err(|why| Reader::error("WIDGET_TITLE", &raw, why))?;
        let raw = r.text("WIDGET_GREETING", DEFAULT_GREETING);
        let greeting = valid_greeting(&raw).map_err(|why| Reader::error("WIDGET_GREETING", &raw, why))?;
        let raw = r.text("WIDGET_COLOR", DEFAULT_COLOR);
        let color = valid_color(&raw).map_err(|why| Reader::error("WIDGET_COLOR", &raw, why))?;
        let allowed_origins = frame_origins(r)?;
        let demo_host_port = match r.optional("DEMO_HOST_PORT") {
            None => None,
            Some(v) => match v.trim().parse::<u16>() {
                Ok(port) if port > 0 => Some(port),
                _ => return Err(Reader::error("DEMO_HOST_PORT", &v, "must be a port number, 1 to 65535")),
            },
        };
        Ok(Self {
            title,
            color,
            greeting,
            allowed_origins,
            demo_host_port,
        })
    }

    /// The origins allowed to frame the widget: the setting's, and the demo host's own
    /// while it is served.
    pub fn frame_origins(&self) -> Vec<String> {
        let mut all = self.allowed_origins.clone();
        if let Some(port) = self.demo_host_port {
            for host in ["localhost", "127.0.0.1"] {
                let origin = format!("http://{host}:{port}");
                if !all.contains(&origin) {
                    all.push(origin);
                }
            }
        }
        all
    }

    /// The `frame-ancestors` source list of the widget page.
    pub fn frame_ancestors(&self) -> String {
        let mut list = vec!["'self'".to_string()];
        list.extend(self.frame_origins());
        list.join(" ")
    }
}

/// The desk's name as the widget shows it: trimmed, one line, 1 to 60 characters.
/// The same rule holds for the setting and for an admin's edit.
pub fn valid_title(raw: &str) -> Result<String, String> {
    plain_text(raw, 60)
}

/// The widget's greeting: trimmed, one line, 1 to 300 characters.
pub fn valid_greeting(raw: &str) -> Result<String, String> {
    plain_text(raw, 300)
}

/// The widget's colour, `#rgb` or `#rrggbb`, lower case.
pub fn valid_color(raw: &str) -> Result<String, String> {
    let color = raw.trim().to_ascii_lowercase();
    let hex = color.strip_prefix('#').unwrap_or("");
    if matches!(hex.len(), 3 | 6) && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(color)
    } else {
        Err("must be a colour like #2563eb or #26e".to_string())
    }
}

fn plain_text(raw: &str, max: usize) -> Result<String, String> {
    let value = raw.trim();
    let chars = value.chars().count();
    if chars == 0 || chars > max {
        return Err(format!("must be 1 to {max} characters"));
    }
    if value.chars().any(char::is_control) {
        return Err("must be one line of text".to_string());
    }
    Ok(value.to_string())
}

/// `WIDGET_ALLOWED_ORIGINS`: comma-separated `http(s)://host[:port]`, no path, no `*`
/// (each goes into a `Content-Security-Policy` header as it is).
fn frame_origins(r: &Reader<'_>) -> Result<Vec<String>, ConfigError> {
    let origins = r.list("WIDGET_ALLOWED_ORIGINS", "", |item| {
        let rest = item
            .strip_prefix("https://")
            .or_else(|| item.strip_prefix("http://"))
            .unwrap_or("");
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => (h, Some(p)),
            _ => (rest, None),
        };
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'));
        let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
        if !(host_ok && port_ok) {
            return Err(format!(
                "{item:?} is not an origin like https://shop.example.com (scheme, host and port only; no * or path)"
            ));
        }
        Ok(item.to_ascii_lowercase())
    })?;
    let mut out = Vec::new();
    for origin in origins {
        if !out.contains(&origin) {
            out.push(origin);
        }
    }
    Ok(out)
}
