//! The virus scanner uploads go through before they are offered (`CLAMD_URL`): clamd, over
//! its Unix socket or TCP. Off while unset.

use std::path::PathBuf;

use super::{ConfigError, Reader};

/// clamd's default TCP port.
const CLAMD_PORT: u16 = 3310;

/// Where clamd listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clamd {
    /// `unix:/run/clamav/clamd.ctl` (or `unix:///run/…`).
    Unix(PathBuf),
    /// `tcp://host:port` (port 3310 when left out).
    Tcp(String),
}

impl Clamd {
    /// `None` while `CLAMD_URL` is unset.
    pub(super) fn read(r: &Reader<'_>) -> Result<Option<Self>, ConfigError> {
        let Some(url) = r.optional("CLAMD_URL") else {
            return Ok(None);
        };
        parse(&url)
            .map(Some)
            .map_err(|why| Reader::error("CLAMD_URL", &url, why))
    }
}

fn parse(url: &str) -> Result<Clamd, &'static str> {
    if let Some(path) = url.strip_prefix("unix:") {
        let path = path.trim_start_matches("//");
        if !path.starts_with('/') {
            return Err("a Unix socket needs an absolute path, e.g. unix:/run/clamav/clamd.ctl");
        }
        return Ok(Clamd::Unix(PathBuf::from(path)));
    }
    if let Some(rest) = url.strip_prefix("tcp://") {
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') || rest.contains('@') {
            return Err("expected tcp://host:port, e.g. tcp://127.0.0.1:3310");
        }
        let with_port = match rest.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && !host.ends_with(':') => {
                port.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or("the port must be a number from 1 to 65535")?;
                rest.to_string()
            }
            // A bare IPv6 address in brackets, or a host alone.
            _ => format!("{rest}:{CLAMD_PORT}"),
        };
        return Ok(Clamd::Tcp(with_port));
    }
    Err("expected unix:/path/to/clamd.socket or tcp://host:port")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_or_an_address_and_nothing_else() {
        assert_eq!(
            parse("unix:/run/clamav/clamd.ctl"),
            Ok(Clamd::Unix("/run/clamav/clamd.ctl".into()))
        );
        assert_eq!(parse("unix:///tmp/c.sock"), Ok(Clamd::Unix("/tmp/c.sock".into())));
        assert_eq!(parse("tcp://127.0.0.1:3310"), Ok(Clamd::Tcp("127.0.0.1:3310".into())));
        assert_eq!(parse("tcp://scanner"), Ok(Clamd::Tcp("scanner:3310".into())));
        for bad in [
            "unix:relative.sock",
            "tcp://",
            "tcp://h:0",
            "tcp://h:99999",
            "http://h:3310",
            "tcp://u@h:1",
            "/run/c.sock",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
