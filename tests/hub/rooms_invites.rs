//! Rooms' invitations through real senders: a real SMTP sink (aiosmtpd)
//! whose mail the tests read for the code and link, a real HTTP webhook, and a real
//! HTTPS gateway behind a throw-away CA.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::archive::free_port;
use crate::common::*;
use crate::rooms::{PHONE, agent_with_room, customer_room, guest_room, join, member};

/// An invitation's body that sends it by mail to `email`.
fn mailed_to(email: &str) -> Value {
    json!({ "email": email })
}

/// The 5-digit code and the link of an invitation.
pub(crate) fn code_and_link(text: &str) -> (String, String) {
    let code = text.split("access code: ").nth(1).expect("the invitation has a code")[..5].to_string();
    let link = text
        .split_whitespace()
        .find(|w| w.starts_with("http://") && w.contains("/room.html?room="))
        .expect("the invitation has a link")
        .to_string();
    (code, link)
}

#[tokio::test]
async fn a_new_invitation_replaces_the_code_and_the_mail_carries_both() {
    let smtp = SmtpSink::start(free_port()).await;
    let hub = TestHub::with(|s| s.mail.smtp_url = Some(format!("smtp://127.0.0.1:{}", smtp.port))).await;
    let (ann, room) = agent_with_room(&hub, "ann", guest_room("Open house")).await;
    let invite = json!({"email": "gus@example.org"});
    let (status, first) = ann.post(&format!("/api/rooms/{room}/invite"), invite.clone()).await;
    assert_eq!(
        (status, first["sent"].clone(), first["code_version"].clone()),
        (200, json!(["mail"]), json!(1))
    );
    let (status, second) = ann.post(&format!("/api/rooms/{room}/invite"), invite).await;
    assert_eq!((status, second["code_version"].clone()), (200, json!(2)));
    let mails = smtp.unquoted_mails();
    assert_eq!(mails.len(), 2, "two mails reached the SMTP server");
    assert!(mails[0].contains("To: gus@example.org"), "{}", mails[0]);
    let (old_code, link) = code_and_link(&mails[0]);
    let (new_code, _) = code_and_link(&mails[1]);
    // The link leads to this room on this hub.
    assert_eq!(link, format!("http://{}/room.html?room={room}", hub.addr));
    let room_id = link.split("room=").nth(1).unwrap();
    let page = reqwest::get(&link).await.unwrap();
    assert_eq!(page.status(), 200);
    let gus = |code: &str| json!({"code": code, "name": "Gus", "email": "gus@example.org"});
    if old_code != new_code {
        let (status, answer) = join(&hub, room_id, gus(&old_code)).await;
        assert_eq!(
            (status, error_code(&answer)),
            (403, "wrong_code"),
            "the old code stopped working"
        );
    }
    let (status, answer) = join(&hub, room_id, gus(&new_code)).await;
    assert_eq!(status, 200, "{answer}");
    let (_gus, welcome) = member(&hub, room_id, answer["token"].as_str().unwrap()).await;
    assert_eq!(
        (welcome["name"].as_str(), welcome["kind"].as_str()),
        (Some("Gus"), Some("guest"))
    );
    hub.stop().await;
}

#[tokio::test]
async fn an_invitation_with_umlauts_is_utf8_mime_from_the_desks_domain() {
    let smtp = SmtpSink::start(free_port()).await;
    let hub = TestHub::with(|s| {
        s.mail.smtp_url = Some(format!("smtp://127.0.0.1:{}", smtp.port));
        s.mail.from = "Kundendienst Köln <desk@example.org>".into();
    })
    .await;
    let (ann, room) = agent_with_room(&hub, "ann", guest_room("Sprechstunde für Jörg Müller")).await;
    let (status, sent) = ann
        .post(&format!("/api/rooms/{room}/invite"), mailed_to("joerg@example.com"))
        .await;
    assert_eq!(status, 200, "{sent}");
    let (_, mail) = koeln_mail_to_joerg(&smtp).await;
    assert_eq!(mail.subject, "Invitation: Sprechstunde für Jörg Müller");
    assert!(
        mail.text
            .starts_with("ANN invites you to a video meeting: Sprechstunde für Jörg Müller"),
        "{}",
        mail.text
    );
    hub.stop().await;
}

#[tokio::test]
async fn a_failing_sender_is_a_clear_error_for_the_agent() {
    // Nothing listens on this port: the mail server cannot be reached.
    let dead = free_port();
    let hub = TestHub::with(|s| s.mail.smtp_url = Some(format!("smtp://127.0.0.1:{dead}"))).await;
    let (ann, room) = agent_with_room(&hub, "ann", customer_room("A")).await;
    let (status, answer) = ann
        .post(&format!("/api/rooms/{room}/invite"), mailed_to("carla@example.org"))
        .await;
    assert_eq!((status, error_code(&answer)), (502, "send_failed"), "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not sent by mail"),
        "{answer}"
    );
    hub.stop().await;
}

#[tokio::test]
async fn an_sms_invitation_goes_to_the_webhook_as_json() {
    // A real HTTP endpoint standing in for an SMS gateway's adapter.
    let (got, mut received) = tokio::sync::mpsc::channel::<Value>(4);
    let app = axum::Router::new().route(
        "/sms",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let got = got.clone();
            async move {
                got.send(body).await.unwrap();
                "queued"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gateway = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let hub = TestHub::with(|s| s.sms_webhook_url = Some(format!("http://{gateway}/sms"))).await;
    let (ann, room) = agent_with_room(&hub, "ann", customer_room("A")).await;
    let (status, answer) = ann
        .post(&format!("/api/rooms/{room}/invite"), json!({"phone": PHONE}))
        .await;
    assert_eq!((status, answer["sent"].clone()), (200, json!(["sms"])), "{answer}");
    let sms = tokio::time::timeout(Duration::from_secs(5), received.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sms["to"], PHONE);
    let (code, _) = code_and_link(sms["text"].as_str().unwrap());
    assert_eq!(join(&hub, &room, json!({"code": code})).await.0, 200);
    server.abort();
    hub.stop().await;
}

/// An HTTPS SMS gateway (a real TLS server: Python's `http.server` behind `ssl`, with a
/// certificate from a throw-away CA made by `openssl`), answering 200, or 503 for
/// numbers ending in 0000. Its requests' bodies land in `bodies`, one a line.
struct HttpsGateway {
    child: Child,
    port: u16,
    ca: PathBuf,
    bodies: PathBuf,
    _dir: crate::archive::TempDir,
}

const GATEWAY: &str = r#"
import http.server, json, ssl, sys
port, cert, key, out = sys.argv[1:5]
class Gateway(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers['Content-Length']))
        with open(out, 'ab') as f:
            f.write(body + b'\n')
        status = 503 if json.loads(body)['to'].endswith('0000') else 200
        self.send_response(status)
        self.send_header('Content-Length', '2')
        self.end_headers()
        self.wfile.write(b'ok')
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(('127.0.0.1', int(port)), Gateway)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()
"#;

impl HttpsGateway {
    async fn start() -> Self {
        let dir = crate::archive::TempDir::new("https-gateway");
        let openssl = |args: &[&str]| {
            let status = Command::new("openssl")
                .args(args)
                .current_dir(&dir.0)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("openssl runs (scripts/ensure-test-deps.sh installs it)");
            assert!(status.success(), "openssl {args:?}");
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=Test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
        ]);
        std::fs::write(
            dir.0.join("leaf.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "leaf.ext",
            "-out",
            "leaf.pem",
        ]);
        let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
        let port = free_port();
        let bodies = dir.0.join("bodies.jsonl");
        let child = Command::new(python)
            .args(["-c", GATEWAY, &port.to_string()])
            .arg(dir.0.join("leaf.pem"))
            .arg(dir.0.join("leaf.key"))
            .arg(&bodies)
            .stdout(Stdio::null())
            .spawn()
            .expect("the gateway starts");
        let gateway = Self {
            child,
            port,
            ca: dir.0.join("ca.pem"),
            bodies,
            _dir: dir,
        };
        crate::archive::wait_for_port(port).await;
        gateway
    }

    fn received(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.bodies)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for HttpsGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An `https://` SMS webhook works (rustls, trusting the system's CA certificates; here a
/// test CA through `SSL_CERT_FILE`), and a gateway's non-2xx answer is a clear error to
/// the agent. A process, so that its CA store is its own.
#[tokio::test]
async fn an_https_sms_webhook_sends_and_its_refusal_is_a_clear_error() {
    let gateway = HttpsGateway::start().await;
    let scratch = crate::archive::TempDir::new("https-sms");
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let webhook = format!("https://127.0.0.1:{}/sms", gateway.port);
    let ca = gateway.ca.display().to_string();
    let envs = [
        ("BIND_ADDR", bind.as_str()),
        ("STORE", "memory"),
        ("SMS_WEBHOOK_URL", webhook.as_str()),
        ("SSL_CERT_FILE", ca.as_str()),
    ];
    let mut command = crate::storeops::hub_command(&scratch.0, &envs, &["serve"]);
    command.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = command.spawn().expect("the hub binary starts");
    crate::archive::wait_for_port(port).await;
    let hub = Endpoint::at(&bind);
    let ann = hub.named_agent("ann", "Ann", &["general"]).await;
    let room = ann.post_answering(201, "/api/rooms", customer_room("A")).await;
    let invite = format!("/api/rooms/{}/invite", room["id"].as_str().unwrap());
    let (status, answer) = ann.post(&invite, json!({"phone": PHONE})).await;
    assert_eq!((status, answer["sent"].clone()), (200, json!(["sms"])), "{answer}");
    let got = gateway.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["to"], PHONE);
    // The gateway answers 503: the agent hears it, with the status.
    let (status, answer) = ann.post(&invite, json!({"phone": "+4915100000000"})).await;
    assert_eq!((status, error_code(&answer)), (502, "send_failed"), "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("SMS") && message.contains("503"), "{answer}");
    let _ = child.kill();
    let _ = child.wait();
}
