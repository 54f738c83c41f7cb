//! Mail customers send back, read from a real IMAP server (a private Dovecot) by the hub's
//! poller: each mail decided once, flagged on the server, never deleted.

use crate::dovecot::Dovecot;

const PLAIN_MAIL: &str = "From: Jörg <joerg@example.org>\r\nTo: desk@example.com\r\nSubject: hello\r\nMessage-ID: <first@example.org>\r\n\r\nHello desk\r\n";

/// The harness's own server: it takes a mail by APPEND and keeps it over a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_imap_server_keeps_appended_mail_over_a_restart() {
    let mut imap = Dovecot::start().await;
    imap.append(PLAIN_MAIL).await;
    assert_eq!(imap.flags().await.len(), 1);
    imap.restart().await;
    let flags = imap.flags().await;
    assert_eq!(flags.len(), 1, "{flags:?}");
    assert!(!flags[0].1.iter().any(|f| f.contains("Seen")), "{flags:?}");
}
