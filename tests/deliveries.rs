//! Deliveries that leave Keel, end to end: a real `keel serve` whose rules POST webhooks and
//! whose notifications go to chat bots and email, against receivers started by the test on
//! loopback — an HTTP sink that answers as the test scripts it, and a real SMTP server
//! (aiosmtpd). Signatures are recomputed here from the documented recipe.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::support::{AppDir, send_json};

/// One request the sink received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HashMap<String, String>,
    body: String,
}

/// Per path, the (status, body) answers still to give; the last one repeats.
type Answers = HashMap<String, Vec<(u16, String)>>;

/// An HTTP receiver on loopback: answers each path with the statuses the test lists (the
/// last one repeats), and keeps every request.
#[derive(Clone)]
struct Sink {
    port: u16,
    received: Arc<Mutex<Vec<Received>>>,
    answers: Arc<Mutex<Answers>>,
}

impl Sink {
    async fn start() -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sink = Sink {
            port: listener.local_addr().unwrap().port(),
            received: Arc::default(),
            answers: Arc::default(),
        };
        let serving = sink.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let sink = serving.clone();
                tokio::spawn(async move {
                    let _ = sink.serve(stream).await;
                });
            }
        });
        sink
    }

    fn answer(&self, path: &str, answers: &[(u16, &str)]) {
        self.answers.lock().unwrap().insert(
            path.to_owned(),
            answers.iter().map(|(s, b)| (*s, (*b).to_owned())).collect(),
        );
    }

    fn requests(&self, path: &str) -> Vec<Received> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path.split('?').next() == Some(path))
            .cloned()
            .collect()
    }

    async fn serve(&self, stream: tokio::net::TcpStream) -> std::io::Result<()> {
        let mut reader = BufReader::new(stream);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let mut headers = HashMap::new();
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).await?;
                let header = header.trim_end();
                if header.is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':') {
                    headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
                }
            }
            let length: usize = headers
                .get("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body).await?;
            let key = path.split('?').next().unwrap_or("/").to_owned();
            let (status, answer) = {
                let mut answers = self.answers.lock().unwrap();
                match answers.get_mut(&key) {
                    Some(list) if list.len() > 1 => list.remove(0),
                    Some(list) if !list.is_empty() => list[0].clone(),
                    _ => (200, String::new()),
                }
            };
            self.received.lock().unwrap().push(Received {
                path,
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            let response = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                answer.len()
            );
            reader.get_mut().write_all(response.as_bytes()).await?;
        }
    }
}

/// aiosmtpd on a free port, printing the port and then one JSON line per message.
const SMTP_SINK: &str = r#"
import asyncio, email, email.policy, json
from aiosmtpd.smtp import SMTP

class Handler:
    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        print(json.dumps({"rcpt_tos": envelope.rcpt_tos, "subject": str(message["Subject"]),
                          "body": message.get_content()}), flush=True)
        return "250 OK"

async def main():
    server = await asyncio.get_running_loop().create_server(lambda: SMTP(Handler()), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
"#;

/// A running SMTP sink; killed when dropped.
struct SmtpSink {
    child: tokio::process::Child,
    port: u16,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl SmtpSink {
    /// `None` (after failing in CI, or skipping locally) when aiosmtpd is not installed.
    async fn start() -> Option<SmtpSink> {
        let has_aiosmtpd = std::process::Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !has_aiosmtpd {
            keel_testkit::skip_tool_locally_or_fail_in_ci(
                "python3 with aiosmtpd (an SMTP receiver)",
                "pip install aiosmtpd",
            );
            return None;
        }
        let mut child = tokio::process::Command::new("python3")
            .args(["-c", SMTP_SINK])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let port = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .parse()
            .unwrap();
        Some(SmtpSink { child, port, lines })
    }

    async fn next_message(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(30), self.lines.next_line())
            .await
            .expect("an email within 30 s")
            .unwrap()
            .unwrap();
        serde_json::from_str(&line).unwrap()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

const SECRET: &str = "webhook-secret-0";
const CHAT_SECRET: &str = "chat-secret-0";
const ADMIN_PASSWORD: &str = "admin-password";

fn app(http: u16, smtp: u16) -> AppDir {
    let base = format!("http://127.0.0.1:{http}");
    AppDir::new(&[
        (
            "metadata/app.yaml",
            &format!(
                "name: {{ en: Delivery test, zh: 投递测试 }}\nlanguage: zh\n\
                 smtp: {{ host: 127.0.0.1, port: {smtp}, tls: none, from: keel@example.com }}\n\
                 channels:\n\
                 \x20 - {{ name: wecom, kind: wecom, url: {base}/wecom }}\n\
                 \x20 - {{ name: dingtalk, kind: dingtalk, url: '{base}/dingtalk?access_token=t', secret_env: KEEL_TEST_CHAT_SECRET }}\n\
                 \x20 - {{ name: feishu, kind: feishu, url: {base}/feishu, secret_env: KEEL_TEST_CHAT_SECRET }}\n\
                 \x20 - {{ name: slack, kind: slack, url: {base}/slack }}\n"
            ),
        ),
        (
            "metadata/roles.yaml",
            "roles:\n  admin: { admin: true }\n  rep: {}\npermissions:\n  rep:\n    deal: { read: own, create: true, edit: own }\n",
        ),
        (
            "metadata/objects/deal.yaml",
            "name: deal\ntitle: name\nfields:\n  name: { type: text, required: true }\n",
        ),
        (
            "workflows/rules/flaky.yaml",
            &format!(
                "name: flaky\nobject: deal\non: [create]\nwhen: 'record.name == \"flaky\"'\n\
                 action: {{ webhook: {{ url: {base}/flaky, secret_env: KEEL_TEST_HOOK_SECRET }} }}\n"
            ),
        ),
        (
            "workflows/rules/down.yaml",
            &format!(
                "name: down\nobject: deal\non: [create]\nwhen: 'record.name == \"down\"'\n\
                 action: {{ webhook: {{ url: {base}/down }} }}\n"
            ),
        ),
        (
            "workflows/rules/tell.yaml",
            "name: tell\nobject: deal\non: [create]\nwhen: 'record.name == \"tell\"'\n\
             action: { notify: owner, message: { zh: '新商机：{{ record.name }}', en: 'New deal: {{ record.name }}' } }\n",
        ),
    ])
}

fn hmac_hex(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

fn hmac_base64(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Waits (at most 30 s) until `done` holds.
async fn until(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

keel_testkit::db_test!(
    webhooks_chat_bots_and_email_are_delivered_retried_and_dead_lettered,
    |db| async move {
        let sink = Sink::start().await;
        sink.answer("/flaky", &[(500, ""), (500, ""), (200, "")]);
        sink.answer("/down", &[(503, "")]);
        sink.answer("/wecom", &[(200, r#"{"errcode":0,"errmsg":"ok"}"#)]);
        sink.answer("/dingtalk", &[(200, r#"{"errcode":0,"errmsg":"ok"}"#)]);
        sink.answer("/feishu", &[(200, r#"{"code":0,"msg":"success"}"#)]);
        sink.answer("/slack", &[(200, "ok")]);
        let Some(mut smtp) = SmtpSink::start().await else {
            return;
        };
        let app = app(sink.port, smtp.port);
        let mut command = crate::serve::serve_command(&app, &db.url);
        command
            .env("KEEL_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("KEEL_OUTBOX_RETRY_BASE_MS", "20")
            .env("KEEL_TEST_HOOK_SECRET", SECRET)
            .env("KEEL_TEST_CHAT_SECRET", CHAT_SECRET);
        let server = crate::serve::start_server(command);
        let base = server.base_url.clone();
        let client = reqwest::Client::new();
        let login = |username: &'static str, password: &'static str| {
            let (client, base) = (client.clone(), base.clone());
            async move {
                let (status, body) = send_json(
                    client
                        .post(format!("{base}/api/v1/auth/login"))
                        .json(&json!({ "username": username, "password": password })),
                )
                .await;
                assert_eq!(status, StatusCode::OK, "{body}");
                body["token"].as_str().unwrap().to_owned()
            }
        };
        let admin = login("admin", ADMIN_PASSWORD).await;
        let (status, body) = send_json(
            client
                .post(format!("{base}/api/v1/admin/users"))
                .bearer_auth(&admin)
                .json(&json!({ "username": "rep", "password": "rep-password-1",
                               "roles": ["rep"], "email": "rep@example.com" })),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let rep = login("rep", "rep-password-1").await;
        for name in ["flaky", "down", "tell"] {
            let (status, body) = send_json(
                client
                    .post(format!("{base}/api/v1/records/deal"))
                    .bearer_auth(&rep)
                    .json(&json!({ "name": name })),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }

        // Fails twice, then succeeds: three attempts of one delivery, the last one signed.
        until(|| sink.requests("/flaky").len() >= 3).await;
        let flaky = sink.requests("/flaky");
        assert_eq!(flaky.len(), 3, "{flaky:?}");
        let ids: Vec<&String> = flaky
            .iter()
            .map(|r| &r.headers["x-keel-delivery"])
            .collect();
        assert!(
            ids.iter().all(|id| *id == ids[0]),
            "one delivery id: {ids:?}"
        );
        let last = &flaky[2];
        let signed = format!("{}.{}", last.headers["x-keel-timestamp"], last.body);
        assert_eq!(
            last.headers["x-keel-signature"],
            format!("sha256={}", hmac_hex(SECRET.as_bytes(), signed.as_bytes()))
        );
        let body: Value = serde_json::from_str(&last.body).unwrap();
        assert_eq!(body["rule"], "flaky");
        assert_eq!(body["record"]["name"], "flaky");

        // Always failing: dead after the retry budget, visible to admins, retried on request.
        let outbox = |state: &'static str| {
            let (client, base, admin) = (client.clone(), base.clone(), admin.clone());
            async move {
                send_json(
                    client
                        .get(format!("{base}/api/v1/admin/outbox?state={state}"))
                        .bearer_auth(&admin),
                )
                .await
                .1
            }
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut dead = outbox("dead").await;
        while dead["data"].as_array().is_none_or(Vec::is_empty) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            dead = outbox("dead").await;
        }
        assert_eq!(dead["data"][0]["kind"], "webhook", "{dead}");
        assert_eq!(dead["data"][0]["attempts"], 8, "{dead}");
        assert!(
            dead["data"][0]["last_error"]
                .as_str()
                .unwrap()
                .contains("503"),
            "{dead}"
        );
        assert_eq!(sink.requests("/down").len(), 8);
        let (status, _) = send_json(
            client
                .get(format!("{base}/api/v1/admin/outbox?state=dead"))
                .bearer_auth(&rep),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "admins only");
        sink.answer("/down", &[(200, "")]);
        let id = dead["data"][0]["id"].as_str().unwrap();
        let (status, retried) = send_json(
            client
                .post(format!("{base}/api/v1/admin/outbox/{id}/retry"))
                .bearer_auth(&admin),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{retried}");
        until(|| sink.requests("/down").len() >= 9).await;
        assert_eq!(sink.requests("/down").len(), 9);

        // The notification reached every chat bot in its own shape, and the owner's mailbox.
        for path in ["/wecom", "/dingtalk", "/feishu", "/slack"] {
            until(|| !sink.requests(path).is_empty()).await;
        }
        let wecom: Value = serde_json::from_str(&sink.requests("/wecom")[0].body).unwrap();
        assert_eq!(
            wecom,
            json!({ "msgtype": "text", "text": { "content": "新商机：tell" } })
        );
        let dingtalk = &sink.requests("/dingtalk")[0];
        let dingtalk_body: Value = serde_json::from_str(&dingtalk.body).unwrap();
        assert_eq!(
            dingtalk_body,
            json!({ "msgtype": "text", "text": { "content": "新商机：tell" } })
        );
        assert!(
            dingtalk.path.contains("access_token=t"),
            "{}",
            dingtalk.path
        );
        assert!(dingtalk.path.contains("&timestamp="), "{}", dingtalk.path);
        assert!(dingtalk.path.contains("&sign="), "{}", dingtalk.path);
        let feishu: Value = serde_json::from_str(&sink.requests("/feishu")[0].body).unwrap();
        assert_eq!(feishu["msg_type"], "text");
        assert_eq!(feishu["content"]["text"], "新商机：tell");
        let timestamp = feishu["timestamp"].as_str().unwrap();
        let string_to_sign = format!("{timestamp}\n{CHAT_SECRET}");
        assert_eq!(
            feishu["sign"],
            hmac_base64(string_to_sign.as_bytes(), b""),
            "飞书's signature"
        );
        let slack: Value = serde_json::from_str(&sink.requests("/slack")[0].body).unwrap();
        assert_eq!(slack, json!({ "text": "新商机：tell" }));
        let email = smtp.next_message().await;
        assert_eq!(email["rcpt_tos"], json!(["rep@example.com"]));
        assert_eq!(email["subject"], "投递测试");
        assert!(
            email["body"].as_str().unwrap().contains("新商机：tell"),
            "{email}"
        );
        drop(server);
    }
);
