//! Deliveries against real receivers on loopback: a small HTTP sink that records each
//! request and answers as the test scripts it, and a real SMTP server (aiosmtpd) started as
//! a child process. Signatures are checked by recomputing them here from the documented
//! recipe, not by calling the code under test.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use chrono::{TimeZone as _, Utc};
use hmac::{Hmac, Mac};
use keel_meta::{ChannelKind, Smtp, SmtpTls};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::*;
use crate::clock::{Clock as _, ManualClock};

/// Long enough for any loopback answer on a loaded CI machine; only the test of a receiver
/// that never answers waits for it, and that one uses [`SHORT_TIMEOUT`].
const TIMEOUT: Duration = Duration::from_secs(10);
const SHORT_TIMEOUT: Duration = Duration::from_millis(300);

/// 2026-03-01 08:00:00 UTC: the time every signature in these tests is made at.
fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 3, 1, 8, 0, 0).single().unwrap(),
    ))
}

fn deliverer() -> Deliverer {
    Deliverer::new(TIMEOUT).with_clock(clock())
}

/// One request as the sink received it.
#[derive(Debug)]
struct Received {
    method: String,
    /// The path and query string, as sent.
    target: String,
    /// Header names in lowercase.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn query(&self, name: &str) -> Option<String> {
        let (_, query) = self.target.split_once('?')?;
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key == name).then(|| percent_decode(value))
        })
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' && index + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            index += 3;
        } else {
            out.push(if bytes[index] == b'+' {
                b' '
            } else {
                bytes[index]
            });
            index += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// What the sink answers to each request, in order (the last answer repeats). `None`
/// accepts the connection and never answers.
type Answer = Option<(u16, &'static str)>;

/// An HTTP receiver on 127.0.0.1 that records requests and answers as scripted.
struct Sink {
    url: String,
    received: mpsc::UnboundedReceiver<Received>,
}

impl Sink {
    async fn start(answers: Vec<Answer>) -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let (sender, received) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut index = 0;
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let answer = answers[index.min(answers.len() - 1)];
                index += 1;
                let sender = sender.clone();
                tokio::spawn(async move {
                    let Some(request) = read_request(&mut stream).await else {
                        return;
                    };
                    let _ = sender.send(request);
                    match answer {
                        Some((status, body)) => {
                            let response = format!(
                                "HTTP/1.1 {status} Scripted\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                                body.len()
                            );
                            let _ = stream.write_all(response.as_bytes()).await;
                            let _ = stream.shutdown().await;
                        }
                        // Holds the connection open without a word until the client gives up.
                        None => {
                            let mut rest = Vec::new();
                            let _ = stream.read_to_end(&mut rest).await;
                        }
                    }
                });
            }
        });
        Sink { url, received }
    }

    async fn next(&mut self) -> Received {
        tokio::time::timeout(TIMEOUT, self.received.recv())
            .await
            .expect("the sink received no request")
            .unwrap()
    }
}

async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Received> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break end;
        }
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let head = String::from_utf8(buffer[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let read = stream.read(&mut chunk).await.ok()?;
        if read == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..read]);
    }
    Some(Received {
        method,
        target,
        headers,
        body,
    })
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

const OK_CODE: &str = r#"{"errcode":0,"errmsg":"ok"}"#;

#[tokio::test]
async fn a_webhook_arrives_with_its_headers_and_a_signature_the_receiver_can_verify() {
    let mut sink = Sink::start(vec![Some((204, ""))]).await;
    let body = json!({"event": "lead.created", "record": {"name": "张三", "amount": "12.50"}});
    deliverer()
        .webhook(
            &sink.url,
            Some("s3cret"),
            "0193-delivery",
            "lead.created",
            &body,
        )
        .await
        .unwrap();
    let request = sink.next().await;
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/hook");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("x-keel-delivery"), Some("0193-delivery"));
    assert_eq!(request.header("x-keel-event"), Some("lead.created"));
    assert_eq!(request.json(), body);

    // The receiver's side, as docs/deliveries.md tells it: HMAC-SHA256 over
    // "<X-Keel-Timestamp>.<raw body>" with the shared secret.
    let timestamp = request.header("x-keel-timestamp").unwrap();
    assert_eq!(timestamp, "1772352000");
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(&request.body);
    let expected = format!("sha256={}", hex::encode(hmac_sha256(b"s3cret", &signed)));
    assert_eq!(request.header("x-keel-signature"), Some(expected.as_str()));
    assert_eq!(
        webhook_signature("s3cret", 1_772_352_000, &request.body),
        expected
    );
    // The value docs/deliveries.md's Python and openssl examples give for this input.
    assert_eq!(
        webhook_signature("s3cret", 1_772_352_000, br#"{"a":1}"#),
        "sha256=6c1b718a1a96c24954a5cd8f8b05696e7eae6d937f542412f9cc14054d61df6a"
    );
}

#[tokio::test]
async fn a_webhook_without_a_secret_carries_no_signature() {
    let mut sink = Sink::start(vec![Some((200, "{}"))]).await;
    deliverer()
        .webhook(&sink.url, None, "d1", "lead.updated", &json!({"a": 1}))
        .await
        .unwrap();
    let request = sink.next().await;
    assert_eq!(request.header("x-keel-signature"), None);
    assert_eq!(request.header("x-keel-delivery"), Some("d1"));
}

#[tokio::test]
async fn server_errors_and_throttling_are_retryable_and_other_refusals_are_not() {
    let cases = [
        (500, true),
        (503, true),
        (408, true),
        (429, true),
        (400, false),
        (401, false),
        (404, false),
        (410, false),
        (302, false),
    ];
    for (status, retryable) in cases {
        let mut sink = Sink::start(vec![Some((status, r#"{"error":"nope"}"#))]).await;
        let failure = deliverer()
            .webhook(&sink.url, Some("k"), "d", "e", &json!({}))
            .await
            .unwrap_err();
        assert_eq!(failure.retryable, retryable, "{status}: {failure:?}");
        assert!(failure.message.contains(&status.to_string()), "{failure:?}");
        assert!(failure.message.contains("nope"), "{failure:?}");
        assert!(
            !failure.message.contains("/hook"),
            "the URL leaks: {failure:?}"
        );
        sink.next().await;
    }
}

#[tokio::test]
async fn a_receiver_that_never_answers_times_out_and_is_retryable() {
    let mut sink = Sink::start(vec![None]).await;
    let deliverer = Deliverer::new(SHORT_TIMEOUT).with_clock(clock());
    let failure = tokio::time::timeout(
        TIMEOUT,
        deliverer.webhook(&sink.url, None, "d", "e", &json!({})),
    )
    .await
    .expect("the timeout did not end the attempt")
    .unwrap_err();
    assert!(failure.retryable, "{failure:?}");
    assert!(failure.message.contains("timeout"), "{failure:?}");
    sink.next().await;
}

#[tokio::test]
async fn a_receiver_that_is_not_listening_is_retryable_and_a_bad_url_is_not() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    drop(listener);
    let failure = deliverer()
        .webhook(&url, None, "d", "e", &json!({}))
        .await
        .unwrap_err();
    assert!(failure.retryable, "{failure:?}");
    assert!(failure.message.starts_with("cannot connect"), "{failure:?}");

    let failure = deliverer()
        .webhook("not a url", None, "d", "e", &json!({}))
        .await
        .unwrap_err();
    assert!(!failure.retryable, "{failure:?}");
    assert!(failure.message.contains("URL"), "{failure:?}");

    // A line break in a header value would start a header of its own: refused, named.
    let failure = deliverer()
        .webhook(&url, None, "d", "lead.created\r\nX-Evil: 1", &json!({}))
        .await
        .unwrap_err();
    assert!(!failure.retryable, "{failure:?}");
    assert!(
        failure
            .message
            .starts_with("the event `lead.created\\r\\nX-Evil: 1`"),
        "{failure:?}"
    );
}

#[tokio::test]
async fn a_wecom_message_has_the_group_bot_shape() {
    let mut sink = Sink::start(vec![Some((200, OK_CODE))]).await;
    let url = format!("{}?key=abc", sink.url);
    // 企业微信 bots do not sign: a secret, if one were passed, changes nothing.
    deliverer()
        .chat(ChannelKind::Wecom, &url, Some("ignored"), "新线索：张三")
        .await
        .unwrap();
    let request = sink.next().await;
    assert_eq!(request.target, "/hook?key=abc");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.json(),
        json!({"msgtype": "text", "text": {"content": "新线索：张三"}})
    );
}

#[tokio::test]
async fn a_dingtalk_message_is_signed_in_its_query_string_when_a_secret_is_set() {
    let mut sink = Sink::start(vec![Some((200, OK_CODE))]).await;
    let url = format!("{}?access_token=tok", sink.url);
    deliverer()
        .chat(ChannelKind::Dingtalk, &url, Some("SEC123"), "赢单 ¥1,000")
        .await
        .unwrap();
    let request = sink.next().await;
    assert_eq!(
        request.json(),
        json!({"msgtype": "text", "text": {"content": "赢单 ¥1,000"}})
    );
    assert_eq!(request.query("access_token").as_deref(), Some("tok"));
    let timestamp = request.query("timestamp").unwrap();
    assert_eq!(timestamp, "1772352000000");
    // 钉钉's recipe: Base64(HMAC-SHA256(key = secret, message = "<timestamp>\n<secret>")).
    let expected = base64::engine::general_purpose::STANDARD.encode(hmac_sha256(
        b"SEC123",
        format!("{timestamp}\nSEC123").as_bytes(),
    ));
    assert_eq!(request.query("sign"), Some(expected));

    // Without a secret the URL is sent as configured.
    let mut sink = Sink::start(vec![Some((200, OK_CODE))]).await;
    deliverer()
        .chat(ChannelKind::Dingtalk, &sink.url, None, "hi")
        .await
        .unwrap();
    assert_eq!(sink.next().await.target, "/hook");
}

#[tokio::test]
async fn a_feishu_message_carries_its_signature_in_the_body_when_a_secret_is_set() {
    let mut sink = Sink::start(vec![Some((200, r#"{"code":0,"msg":"success","data":{}}"#))]).await;
    deliverer()
        .chat(
            ChannelKind::Feishu,
            &sink.url,
            Some("fs-secret"),
            "跟进提醒",
        )
        .await
        .unwrap();
    let request = sink.next().await;
    let body = request.json();
    assert_eq!(body["msg_type"], "text");
    assert_eq!(body["content"], json!({"text": "跟进提醒"}));
    assert_eq!(body["timestamp"], "1772352000");
    // 飞书's recipe: Base64(HMAC-SHA256(key = "<timestamp>\n<secret>", message = "")).
    let expected = base64::engine::general_purpose::STANDARD
        .encode(hmac_sha256(b"1772352000\nfs-secret", b""));
    assert_eq!(body["sign"], expected);

    let mut sink = Sink::start(vec![Some((200, r#"{"code":0}"#))]).await;
    deliverer()
        .chat(ChannelKind::Feishu, &sink.url, None, "hi")
        .await
        .unwrap();
    assert_eq!(
        sink.next().await.json(),
        json!({"msg_type": "text", "content": {"text": "hi"}})
    );
}

#[tokio::test]
async fn a_slack_message_is_a_text_object_and_ok_is_success() {
    let mut sink = Sink::start(vec![Some((200, "ok"))]).await;
    deliverer()
        .chat(ChannelKind::Slack, &sink.url, None, "Deal won: *ACME*")
        .await
        .unwrap();
    assert_eq!(
        sink.next().await.json(),
        json!({"text": "Deal won: *ACME*"})
    );

    let mut sink = Sink::start(vec![Some((404, "no_service"))]).await;
    let failure = deliverer()
        .chat(ChannelKind::Slack, &sink.url, None, "x")
        .await
        .unwrap_err();
    assert!(!failure.retryable, "{failure:?}");
    assert!(failure.message.contains("no_service"), "{failure:?}");
    sink.next().await;
}

#[tokio::test]
async fn a_200_answer_carrying_an_error_code_is_a_failure() {
    let cases = [
        (
            ChannelKind::Wecom,
            r#"{"errcode":93000,"errmsg":"invalid webhook url"}"#,
            false,
        ),
        (
            ChannelKind::Wecom,
            r#"{"errcode":45009,"errmsg":"api freq out of limit"}"#,
            true,
        ),
        (
            ChannelKind::Dingtalk,
            r#"{"errcode":310000,"errmsg":"sign not match"}"#,
            false,
        ),
        (
            ChannelKind::Dingtalk,
            r#"{"errcode":130101,"errmsg":"send too fast"}"#,
            true,
        ),
        (
            ChannelKind::Feishu,
            r#"{"code":19021,"msg":"sign match fail"}"#,
            false,
        ),
        (
            ChannelKind::Feishu,
            r#"{"code":9499,"msg":"too many request"}"#,
            true,
        ),
        // An answer that is not the service's JSON at all: the URL leads somewhere else.
        (ChannelKind::Wecom, "<html>portal</html>", false),
    ];
    for (kind, answer, retryable) in cases {
        let mut sink = Sink::start(vec![Some((200, answer))]).await;
        let failure = deliverer()
            .chat(kind, &sink.url, Some("k"), "x")
            .await
            .unwrap_err();
        assert_eq!(
            failure.retryable, retryable,
            "{kind:?} {answer}: {failure:?}"
        );
        sink.next().await;
    }
    // 飞书 answers its rate limit with a 400 and the code: still retryable.
    let mut sink = Sink::start(vec![Some((
        400,
        r#"{"code":11232,"msg":"frequency limited"}"#,
    ))])
    .await;
    let failure = deliverer()
        .chat(ChannelKind::Feishu, &sink.url, None, "x")
        .await
        .unwrap_err();
    assert!(failure.retryable, "{failure:?}");
    assert!(failure.message.contains("11232"), "{failure:?}");
    sink.next().await;
}

#[tokio::test]
async fn a_chat_message_over_the_size_limit_is_shortened_at_a_character() {
    let mut sink = Sink::start(vec![Some((200, OK_CODE))]).await;
    let long = "线".repeat(1000); // 3,000 bytes
    deliverer()
        .chat(ChannelKind::Wecom, &sink.url, None, &long)
        .await
        .unwrap();
    let body = sink.next().await.json();
    let content = body["text"]["content"].as_str().unwrap();
    assert!(content.len() <= 2048, "{}", content.len());
    assert!(content.ends_with('…'));
    assert!(content.trim_end_matches('…').chars().all(|c| c == '线'));
}

#[test]
fn a_template_renders_the_record_fields_without_escaping() {
    let context = json!({"record": {"name": "张三 & <Co>", "amount": "1200.00", "phone": null}});
    let text = render_message(
        "新线索 {{ record.name }}，金额 {{ record.amount }}，电话[{{ record.phone }}]",
        &context,
    )
    .unwrap();
    assert_eq!(text, "新线索 张三 & <Co>，金额 1200.00，电话[]");
    let text = render_message(
        "{% for tag in record.tags %}{{ tag | upper }}{% if not loop.last %}, {% endif %}{% endfor %}",
        &json!({"record": {"tags": ["vip", "hot"]}}),
    )
    .unwrap();
    assert_eq!(text, "VIP, HOT");
    // A template may guard a field that is not there.
    let text = render_message(
        "{{ record.phone | default('-') }}{% if record.email is defined %}{{ record.email }}{% endif %}",
        &json!({"record": {}}),
    )
    .unwrap();
    assert_eq!(text, "-");
}

#[test]
fn a_template_naming_an_unknown_variable_is_an_error_that_names_it() {
    let context = json!({"record": {"name": "x"}});
    let error = render_message("Hello {{ record.nmae }}", &context).unwrap_err();
    assert!(error.contains("`record.nmae`"), "{error}");
    assert!(error.contains("line 1"), "{error}");
    let error = render_message("Hello {{ customer }}", &context).unwrap_err();
    assert!(error.contains("`customer`"), "{error}");
    assert!(!error.contains("`record"), "{error}");
    // A name only known at render time (inside a loop) still fails, with its line.
    let error = render_message(
        "{% for item in record.items %}\n{{ item.missing }}{% endfor %}",
        &json!({"record": {"items": [{"a": 1}]}}),
    )
    .unwrap_err();
    assert!(error.contains("line 2"), "{error}");
    let error = render_message("{{ record.name ", &context).unwrap_err();
    assert!(error.contains("line 1"), "{error}");
}

#[test]
fn a_template_that_loops_forever_runs_out_of_fuel_quickly() {
    let started = std::time::Instant::now();
    let error = render_message(
        "{% for a in range(100000) %}{% for b in range(100000) %}{{ a }}{% endfor %}{% endfor %}",
        &json!({}),
    )
    .unwrap_err();
    assert!(error.contains("too much work"), "{error}");
    // Not a timing assertion on the machine's speed: a render that were not stopped by fuel
    // would run for hours, so any bound in seconds tells the two apart.
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// The SMTP receiver: aiosmtpd on a port the OS picks, printing the port once it listens
/// and then one JSON line per message it receives, decoded with Python's own email parser.
const SMTP_SINK: &str = r#"
import asyncio, email, email.policy, json, sys
from aiosmtpd.smtp import SMTP

class Handler:
    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        print(json.dumps({
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "from": str(message["From"]),
            "to": str(message["To"]),
            "subject": str(message["Subject"]),
            "date": str(message["Date"]),
            "message_id": str(message["Message-ID"]),
            "body": message.get_content(),
        }), flush=True)
        return "250 OK"

async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Handler()), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
"#;

#[tokio::test]
async fn an_email_reaches_a_real_smtp_server_with_its_chinese_text_intact() {
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
        return;
    }
    let mut child = tokio::process::Command::new("python3")
        .args(["-c", SMTP_SINK])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port: u16 = tokio::time::timeout(TIMEOUT, lines.next_line())
        .await
        .expect("the SMTP sink did not start")
        .unwrap()
        .unwrap()
        .parse()
        .unwrap();

    let smtp = Smtp {
        host: "127.0.0.1".to_owned(),
        port,
        tls: SmtpTls::None,
        username: None,
        password_env: None,
        from: "CRM 通知 <crm@example.com>".to_owned(),
    };
    // A line holding only a full stop ends an SMTP message unless escaped: it must arrive.
    let body = "您好，\n线索「张三」已分配给您，请在 24 小时内跟进。\n.\n谢谢\n";
    deliverer()
        .email(&smtp, None, "销售 <rep@example.com>", "新线索：张三", body)
        .await
        .unwrap();
    let line = tokio::time::timeout(TIMEOUT, lines.next_line())
        .await
        .expect("the SMTP sink received nothing")
        .unwrap()
        .unwrap();
    child.kill().await.unwrap();
    let received: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(received["mail_from"], "crm@example.com");
    assert_eq!(received["rcpt_tos"], json!(["rep@example.com"]));
    assert_eq!(received["from"], "CRM 通知 <crm@example.com>");
    assert_eq!(received["to"], "销售 <rep@example.com>");
    assert_eq!(received["subject"], "新线索：张三");
    // Mail travels with CRLF line ends (RFC 5322); the text is the same.
    assert_eq!(
        received["body"].as_str().unwrap().replace("\r\n", "\n"),
        body
    );
    assert_eq!(received["date"], "Sun, 01 Mar 2026 08:00:00 +0000");
    assert!(
        received["message_id"].as_str().unwrap().starts_with('<'),
        "{received}"
    );
}

#[tokio::test]
async fn an_email_to_something_that_is_not_an_address_fails_without_retry() {
    let smtp = Smtp {
        host: "127.0.0.1".to_owned(),
        port: 1,
        tls: SmtpTls::None,
        username: None,
        password_env: None,
        from: "crm@example.com".to_owned(),
    };
    let failure = deliverer()
        .email(&smtp, None, "not an address", "s", "b")
        .await
        .unwrap_err();
    assert!(!failure.retryable, "{failure:?}");
    assert!(failure.message.contains("not an address"), "{failure:?}");
}

#[test]
fn a_line_break_in_an_email_subject_cannot_add_a_header() {
    let smtp = Smtp {
        host: "127.0.0.1".to_owned(),
        port: 25,
        tls: SmtpTls::None,
        username: None,
        password_env: None,
        from: "crm@example.com".to_owned(),
    };
    let letter = email::Letter {
        to: "rep@example.com",
        subject: "Hello\r\nBcc: attacker@example.com",
        body: "text",
    };
    let message = email::build_message(&smtp, &letter, clock().now()).unwrap();
    let formatted = String::from_utf8(message.formatted()).unwrap();
    let (head, _) = formatted.split_once("\r\n\r\n").unwrap();
    assert!(
        !head
            .lines()
            .any(|line| line.to_ascii_lowercase().starts_with("bcc:")),
        "{formatted}"
    );
    assert_eq!(message.envelope().to().len(), 1);
}
