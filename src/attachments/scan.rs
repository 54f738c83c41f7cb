//! The virus scan a file goes through before it is offered to the other side, when a
//! scanner is configured (`CLAMD_URL`): its bytes streamed to clamd (`INSTREAM`), whose
//! answer decides. Fail closed: a file is offered only on clamd's `stream: OK`. A scanner
//! that cannot be reached or does not answer within [`SCAN_TIMEOUT`] is
//! [`ScanFailed::Unavailable`] (try again later); one that answers it cannot scan this
//! file (over its `StreamMaxLength`) is [`ScanFailed::Unscannable`] (refused for good).

use std::path::Path;
use std::time::Duration;

use clamav_client::tokio::TransportProtocol;
use tokio::net::{TcpStream, UnixStream};
use tokio_util::either::Either;

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

/// Why a file has no verdict (the cause, for the log: never shown to a caller).
#[derive(Debug)]
pub enum ScanFailed {
    /// clamd could not be reached or did not answer in time: the same file may pass later.
    Unavailable(String),
    /// clamd answered that it cannot scan this file (larger than its `StreamMaxLength`):
    /// it never will.
    Unscannable(String),
}

/// Scans at once, at most: clamd serves 10 at a time by default (`MaxThreads`); more
/// would queue there, past our timeout, while holding its threads.
const SCANS_AT_ONCE: usize = 8;

/// clamd at its address. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Scanner {
    clamd: Clamd,
    scans: std::sync::Arc<tokio::sync::Semaphore>,
}

/// clamd's address as the client connects to it, whichever kind it is.
struct At<'a>(&'a Clamd);

impl TransportProtocol for At<'_> {
    type Stream = Either<UnixStream, TcpStream>;

    async fn connect(&self) -> std::io::Result<Self::Stream> {
        match self.0 {
            Clamd::Unix(socket) => UnixStream::connect(socket).await.map(Either::Left),
            Clamd::Tcp(address) => TcpStream::connect(address.as_str()).await.map(Either::Right),
        }
    }
}

impl Scanner {
    pub fn new(clamd: Clamd) -> Self {
        Self {
            clamd,
            scans: std::sync::Arc::new(tokio::sync::Semaphore::new(SCANS_AT_ONCE)),
        }
    }

    /// Whether clamd answers `PING` now: told at start-up, so an operator learns of a wrong
    /// `CLAMD_URL` before the first upload is refused.
    pub async fn answers(&self) -> bool {
        let pong = timed(clamav_client::tokio::ping(At(&self.clamd))).await;
        pong.is_ok_and(|pong| pong == clamav_client::PONG)
    }

    /// Scans the file at `path`.
    pub async fn file(&self, path: &Path) -> Result<Verdict, ScanFailed> {
        let _turn = self.scans.acquire().await;
        verdict(&timed(clamav_client::tokio::scan_file(path, At(&self.clamd), None)).await?)
    }

    /// Scans `bytes` (a mail's file, whole in memory already).
    pub async fn bytes(&self, bytes: &[u8]) -> Result<Verdict, ScanFailed> {
        let _turn = self.scans.acquire().await;
        verdict(&timed(clamav_client::tokio::scan_buffer(bytes, At(&self.clamd), None)).await?)
    }
}

async fn timed(scan: impl Future<Output = std::io::Result<Vec<u8>>>) -> Result<Vec<u8>, ScanFailed> {
    match tokio::time::timeout(SCAN_TIMEOUT, scan).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(ScanFailed::Unavailable(format!("clamd: {e}"))),
        Err(_) => Err(ScanFailed::Unavailable(format!(
            "clamd did not answer within {SCAN_TIMEOUT:?}"
        ))),
    }
}

/// clamd's answer to `INSTREAM`: `stream: OK`, `stream: <signature> FOUND`, or an error
/// (`INSTREAM size limit exceeded. ERROR`, when the file is over clamd's
/// `StreamMaxLength`). Anything else (a service that is not clamd) is no verdict.
fn verdict(answer: &[u8]) -> Result<Verdict, ScanFailed> {
    let text = String::from_utf8_lossy(answer);
    let text = text.trim_end_matches(['\0', '\n']).trim();
    if let Some(said) = text.strip_prefix("stream:").map(str::trim) {
        if said == "OK" {
            return Ok(Verdict::Clean);
        }
        if let Some(signature) = said.strip_suffix(" FOUND") {
            return Ok(Verdict::Infected(signature.trim().to_string()));
        }
    }
    if text.contains("size limit exceeded") {
        return Err(ScanFailed::Unscannable(format!("clamd answered: {text}")));
    }
    Err(ScanFailed::Unavailable(format!("clamd answered: {text}")))
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
        assert!(matches!(
            verdict(b"INSTREAM size limit exceeded. ERROR\0"),
            Err(ScanFailed::Unscannable(_))
        ));
        // Only clamd's own words pass a file: not a bare OK from whatever listens there.
        for failed in [&b""[..], b"stream: what", b"OK", b"OK\0"] {
            assert!(matches!(verdict(failed), Err(ScanFailed::Unavailable(_))), "{failed:?}");
        }
    }
}
