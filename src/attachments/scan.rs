//! The virus scan a file goes through before it is offered to the other side, when a
//! scanner is configured (`CLAMD_URL`): its bytes streamed to clamd (`INSTREAM`), whose
//! answer decides. A scanner that cannot be reached, does not answer within
//! [`SCAN_TIMEOUT`] or answers an error refuses the file for now (fail closed): an
//! unscanned file is never offered while scanning is on.

use std::path::Path;
use std::time::Duration;

use clamav_client::tokio::{Socket, Tcp};

use crate::config::clamd::Clamd;

/// The longest a scan may take: clamd reads a 10 MB file in well under a second, so this
/// is a scanner in trouble, not a big file.
const SCAN_TIMEOUT: Duration = Duration::from_secs(30);

/// What the scanner said of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Clean,
    /// Its signature's name, as clamd reports it.
    Infected(String),
}

/// The scanner is unavailable (the cause, for the log: never shown to a caller).
#[derive(Debug)]
pub struct ScanFailed(pub String);

/// clamd at its address. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Scanner {
    clamd: Clamd,
}

impl Scanner {
    pub fn new(clamd: Clamd) -> Self {
        Self { clamd }
    }

    /// Whether clamd answers `PING` now: told at start-up, so an operator learns of a wrong
    /// `CLAMD_URL` before the first upload is refused.
    pub async fn answers(&self) -> bool {
        let pong = match &self.clamd {
            Clamd::Unix(socket) => timed(clamav_client::tokio::ping(Socket { socket_path: socket })).await,
            Clamd::Tcp(address) => {
                timed(clamav_client::tokio::ping(Tcp {
                    host_address: address.as_str(),
                }))
                .await
            }
        };
        pong.is_ok_and(|pong| pong == clamav_client::PONG)
    }

    /// Scans the file at `path`.
    pub async fn file(&self, path: &Path) -> Result<Verdict, ScanFailed> {
        let answer = match &self.clamd {
            Clamd::Unix(socket) => {
                let at = Socket { socket_path: socket };
                timed(clamav_client::tokio::scan_file(path, at, None)).await
            }
            Clamd::Tcp(address) => {
                let at = Tcp {
                    host_address: address.as_str(),
                };
                timed(clamav_client::tokio::scan_file(path, at, None)).await
            }
        };
        verdict(&answer?)
    }

    /// Scans `bytes` (a mail's file, whole in memory already).
    pub async fn bytes(&self, bytes: &[u8]) -> Result<Verdict, ScanFailed> {
        let answer = match &self.clamd {
            Clamd::Unix(socket) => {
                let at = Socket { socket_path: socket };
                timed(clamav_client::tokio::scan_buffer(bytes, at, None)).await
            }
            Clamd::Tcp(address) => {
                let at = Tcp {
                    host_address: address.as_str(),
                };
                timed(clamav_client::tokio::scan_buffer(bytes, at, None)).await
            }
        };
        verdict(&answer?)
    }
}

async fn timed(scan: impl Future<Output = std::io::Result<Vec<u8>>>) -> Result<Vec<u8>, ScanFailed> {
    match tokio::time::timeout(SCAN_TIMEOUT, scan).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(ScanFailed(format!("clamd: {e}"))),
        Err(_) => Err(ScanFailed(format!("clamd did not answer within {SCAN_TIMEOUT:?}"))),
    }
}

/// clamd's answer to `INSTREAM`: `stream: OK`, `stream: <signature> FOUND`, or an error
/// (`INSTREAM size limit exceeded. ERROR`, when the file is over clamd's
/// `StreamMaxLength`).
fn verdict(answer: &[u8]) -> Result<Verdict, ScanFailed> {
    let text = String::from_utf8_lossy(answer);
    let text = text.trim_end_matches(['\0', '\n']).trim();
    let said = text.strip_prefix("stream:").map(str::trim).unwrap_or(text);
    if said == "OK" {
        return Ok(Verdict::Clean);
    }
    if let Some(signature) = said.strip_suffix(" FOUND") {
        return Ok(Verdict::Infected(signature.trim().to_string()));
    }
    Err(ScanFailed(format!("clamd answered: {said}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamds_answers_read_as_verdicts() {
        assert_eq!(verdict(b"stream: OK\0").unwrap(), Verdict::Clean);
        assert_eq!(
            verdict(b"stream: Switchboard.Test.Marker.UNOFFICIAL FOUND\0").unwrap(),
            Verdict::Infected("Switchboard.Test.Marker.UNOFFICIAL".into())
        );
        for failed in [&b"INSTREAM size limit exceeded. ERROR\0"[..], b"", b"stream: what"] {
            assert!(verdict(failed).is_err(), "{failed:?}");
        }
    }
}
