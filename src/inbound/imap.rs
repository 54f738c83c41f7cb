//! The IMAP side of inbound mail, on the `async-imap` crate: connect (`imap://` plain,
//! `imaps://` TLS with rustls, ring and the system's CA certificates), log in, select the
//! mailbox; list the mails not flagged done yet, read one's size, fetch one without
//! marking it read, flag one done; wait in `IDLE` (RFC 2177) for the mailbox to change,
//! where the server offers it. Never deletes or expunges.

use std::sync::Arc;
use std::time::Duration;

use async_imap::Session;
use futures_util::TryStreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::config::imap::ImapSettings;

/// The keyword that marks a mail handled, besides `\Seen` (which a person reading the
/// mailbox may also set, so it does not decide).
pub const DONE: &str = "$SwitchboardDone";
/// How long connecting (TCP, TLS, greeting, login, select) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one command may take (a fetch of a mail of up to `IMAP_MAX_MB` included).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// A plain or TLS stream behind one type.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + std::fmt::Debug> Io for T {}

/// A logged-in session with the mailbox selected.
pub struct Mailbox {
    session: Session<Box<dyn Io>>,
    /// The server listed `IDLE` among its capabilities.
    idle: bool,
}

/// Bounds `work` by `limit`, naming `what` on a timeout.
async fn bounded<T>(
    what: &str,
    limit: Duration,
    work: impl Future<Output = Result<T, async_imap::error::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, work).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {limit:?}")),
    }
}

impl Mailbox {
    pub async fn open(settings: &ImapSettings) -> Result<Self, String> {
        match tokio::time::timeout(CONNECT_TIMEOUT, Self::connect(settings)).await {
            Ok(opened) => opened,
            Err(_) => Err(format!("connecting: no answer within {CONNECT_TIMEOUT:?}")),
        }
    }

    async fn connect(settings: &ImapSettings) -> Result<Self, String> {
        let server = &settings.server;
        let tcp = TcpStream::connect((server.host.as_str(), server.port))
            .await
            .map_err(|e| format!("connecting to {}:{}: {e}", server.host, server.port))?;
        let stream: Box<dyn Io> = if server.tls {
            Box::new(tls(&server.host, tcp).await?)
        } else {
            Box::new(tcp)
        };
        let mut client = async_imap::Client::new(stream);
        client
            .read_response()
            .await
            .map_err(|e| format!("reading the greeting: {e}"))?
            .ok_or("the server closed before its greeting")?;
        let password = String::from_utf8_lossy(&settings.password.0).into_owned();
        // The error names the server's answer, never the password.
        let mut session = client
            .login(&settings.user, password)
            .await
            .map_err(|(e, _)| format!("logging in as {}: {e}", settings.user))?;
        session
            .select(&settings.mailbox)
            .await
            .map_err(|e| format!("selecting {}: {e}", settings.mailbox))?;
        // A server that does not say is taken not to offer it: it is polled.
        let idle = session.capabilities().await.is_ok_and(|c| c.has_str("IDLE"));
        Ok(Self { session, idle })
    }

    /// Whether the server offers `IDLE`.
    pub fn offers_idle(&self) -> bool {
        self.idle
    }

    /// Whether the server told of new mail (`EXISTS`, `RECENT`) in an answer to one of our
    /// commands since this was last asked: such news is not repeated when `IDLE` starts,
    /// so a mail that came between a search and `IDLE` would wait for the next look.
    pub fn told_of_new_mail(&mut self) -> bool {
        use async_imap::types::UnsolicitedResponse;
        let mut news = false;
        while let Ok(response) = self.session.unsolicited_responses.try_recv() {
            news |= matches!(
                response,
                UnsolicitedResponse::Exists(_) | UnsolicitedResponse::Recent(_)
            );
        }
        news
    }

    /// Waits in `IDLE` until the server tells of a change in the mailbox (true) or `limit`
    /// passed (false), then ends it; the session, to go on with. Only where the server
    /// [offers](Self::offers_idle) it. `limit` is the whole wait: the server's keep-alives
    /// do not stretch it, so a caller keeping it under 29 minutes renews `IDLE` in time.
    pub async fn idle(self, limit: Duration) -> Result<(Self, bool), String> {
        let mut handle = self.session.idle();
        bounded("starting IDLE", COMMAND_TIMEOUT, handle.init()).await?;
        let changed = {
            let (wait, _stop) = handle.wait_with_timeout(limit);
            match tokio::time::timeout(limit, wait).await {
                Ok(Ok(async_imap::extensions::idle::IdleResponse::NewData(_))) => true,
                Ok(Ok(_)) | Err(_) => false,
                Ok(Err(e)) => return Err(format!("waiting in IDLE: {e}")),
            }
        };
        let session = bounded("ending IDLE", COMMAND_TIMEOUT, handle.done()).await?;
        Ok((Self { session, idle: true }, changed))
    }

    /// The UIDs of mails not flagged [`DONE`], oldest first, at most `limit`.
    pub async fn pending(&mut self, limit: usize) -> Result<Vec<u32>, String> {
        let query = format!("UNKEYWORD {DONE} UNDELETED");
        let found = bounded("searching", COMMAND_TIMEOUT, self.session.uid_search(&query)).await?;
        let mut uids: Vec<u32> = found.into_iter().collect();
        uids.sort_unstable();
        uids.truncate(limit);
        Ok(uids)
    }

    /// The size in bytes of mail `uid` (`None`: it is gone).
    pub async fn size(&mut self, uid: u32) -> Result<Option<usize>, String> {
        let fetched = self.fetch_one("reading a size", uid, "(UID RFC822.SIZE)").await?;
        Ok(fetched.and_then(|f| f.size).map(|s| s as usize))
    }

    /// Mail `uid` as raw bytes, without setting `\Seen` (`None`: it is gone).
    pub async fn fetch(&mut self, uid: u32) -> Result<Option<Vec<u8>>, String> {
        let fetched = self.fetch_one("fetching a mail", uid, "(UID BODY.PEEK[])").await?;
        Ok(fetched.and_then(|f| f.body().map(<[u8]>::to_vec)))
    }

    /// `UID FETCH uid query`, bounded; the answer about `uid` (`None`: it is gone).
    async fn fetch_one(
        &mut self,
        what: &str,
        uid: u32,
        query: &str,
    ) -> Result<Option<async_imap::types::Fetch>, String> {
        let fetched = bounded(what, COMMAND_TIMEOUT, async {
            self.session
                .uid_fetch(uid.to_string(), query)
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await?;
        Ok(fetched.into_iter().find(|f| f.uid == Some(uid)))
    }

    /// Flags mail `uid` `\Seen` and [`DONE`].
    pub async fn mark_done(&mut self, uid: u32) -> Result<(), String> {
        let query = format!("+FLAGS.SILENT (\\Seen {DONE})");
        bounded("flagging a mail", COMMAND_TIMEOUT, async {
            self.session
                .uid_store(uid.to_string(), &query)
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await?;
        Ok(())
    }

    /// Logs out politely; a server that does not answer is left to close the connection.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.session.logout()).await;
    }
}

/// TLS to `host` over `tcp`, checked against the system's CA certificates.
async fn tls(host: &str, tcp: TcpStream) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err("no CA certificates found on this system for imaps://".into());
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name =
        rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| format!("TLS name {host}: {e}"))?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS with {host}: {e}"))
}
