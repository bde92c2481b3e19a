//! Deliveries that leave Keel: webhooks, chat group bots (企业微信, 钉钉, 飞书, Slack-compatible)
//! and email, plus the message templates their text comes from. docs/deliveries.md is the
//! user-facing description: the payloads, the signatures and how to verify them, and which
//! failures are retried.
//!
//! A [`Deliverer`] makes one attempt and says whether it worked; it keeps no state about
//! deliveries. Retries, backoff, dead letters and idempotency belong to the outbox that calls
//! it, which also reads secrets from the environment and passes them in: nothing here reads
//! the environment or the database. Every attempt is bounded by the deliverer's timeout.
//!
//! A [`Failure`]'s message is shown to admins (the outbox's dead letters), so it never holds
//! a URL or a secret: chat webhook URLs carry their access token.

mod email;
mod sign;
mod template;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use keel_meta::ChannelKind;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::clock::{Clock, SystemClock};

pub use sign::{dingtalk_sign, feishu_sign, webhook_signature};
pub use template::render_message;

/// How much of a receiver's answer is read: enough for any error code and message, and a
/// receiver that answers with an endless body cannot make Keel buffer it.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// How much of an answer a failure message quotes.
const QUOTED_ANSWER_CHARS: usize = 200;

/// The longest chat message sent, in bytes: 企业微信 refuses a text over 2,048 bytes, and a
/// notification longer than that is unreadable in a chat anyway. Longer text is cut at a
/// character boundary and ends with `…`.
const MAX_CHAT_BYTES: usize = 2048;

/// One failed attempt: what went wrong (for the admin) and whether trying again later may
/// work (for the outbox).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub message: String,
    pub retryable: bool,
}

impl Failure {
    fn retry(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            retryable: true,
        }
    }

    fn give_up(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            retryable: false,
        }
    }
}

/// Sends deliveries: one HTTP client (connection pool, rustls with bundled roots) shared by
/// every webhook and chat message, and the timeout every attempt gets.
#[derive(Debug, Clone)]
pub struct Deliverer {
    /// The client, or why it could not be built (the TLS backend failed to start): then
    /// every HTTP delivery fails with that reason instead of the process panicking.
    http: Result<reqwest::Client, String>,
    timeout: Duration,
    clock: Arc<dyn Clock>,
}

impl Deliverer {
    /// A deliverer whose every attempt (connecting, sending, reading the answer) gives up
    /// after `timeout`.
    pub fn new(timeout: Duration) -> Deliverer {
        // Redirects are not followed: a redirected POST turns into a GET on most servers, and
        // a webhook URL that moved is the admin's to fix. Proxies from the environment are
        // not used, so a delivery goes where the app says and nowhere else.
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("Keel/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| format!("the HTTP client cannot start: {error}"));
        Deliverer {
            http,
            timeout,
            clock: Arc::new(SystemClock),
        }
    }

    /// The same deliverer reading the time from `clock` (the signatures' timestamps and the
    /// email `Date:` header).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Deliverer {
        self.clock = clock;
        self
    }

    /// POSTs `body` as JSON to `url`, with `X-Keel-Delivery: <delivery_id>` (the idempotency
    /// key: the same for every attempt of one delivery, so a receiver drops repeats),
    /// `X-Keel-Event: <event>`, `X-Keel-Timestamp` (Unix seconds) and, when `secret` is
    /// given, `X-Keel-Signature` (see [`webhook_signature`]). Any 2xx answer is success.
    ///
    /// # Errors
    /// A [`Failure`], retryable for a network error, a timeout, 408, 429 and 5xx.
    pub async fn webhook(
        &self,
        url: &str,
        secret: Option<&str>,
        delivery_id: &str,
        event: &str,
        body: &Value,
    ) -> Result<(), Failure> {
        let bytes = serde_json::to_vec(body)
            .map_err(|error| Failure::give_up(format!("the body is not JSON: {error}")))?;
        let delivery_header = header_value("delivery id", delivery_id)?;
        let event_header = header_value("event", event)?;
        let timestamp = self.clock.now().timestamp();
        let mut request = self
            .client()?
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Keel-Delivery", delivery_header)
            .header("X-Keel-Event", event_header)
            .header("X-Keel-Timestamp", timestamp.to_string());
        if let Some(secret) = secret {
            request = request.header(
                "X-Keel-Signature",
                webhook_signature(secret, timestamp, &bytes),
            );
        }
        let (status, answer) = self.send(request.body(bytes)).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(status_failure(status, &answer))
        }
    }

    /// Sends `text` to a chat group bot at `url`, in the JSON shape its service documents
    /// (docs/deliveries.md). `secret` signs the message for 钉钉 and 飞书 and is ignored by
    /// the other kinds, which do not sign. Text over 2,048 bytes is shortened.
    ///
    /// # Errors
    /// A [`Failure`]: as for [`Deliverer::webhook`], and also when the service answers with
    /// an error code in its body (retryable only for its rate-limit and busy codes).
    pub async fn chat(
        &self,
        kind: ChannelKind,
        url: &str,
        secret: Option<&str>,
        text: &str,
    ) -> Result<(), Failure> {
        let text = shorten(text, MAX_CHAT_BYTES);
        let now = self.clock.now();
        let mut request = self.client()?.post(url);
        let body = match kind {
            ChannelKind::Wecom => json!({"msgtype": "text", "text": {"content": text}}),
            ChannelKind::Dingtalk => {
                if let Some(secret) = secret {
                    let millis = now.timestamp_millis();
                    request = request.query(&[
                        ("timestamp", millis.to_string()),
                        ("sign", dingtalk_sign(secret, millis)),
                    ]);
                }
                json!({"msgtype": "text", "text": {"content": text}})
            }
            ChannelKind::Feishu => {
                let mut body = json!({"msg_type": "text", "content": {"text": text}});
                if let (Some(secret), Some(map)) = (secret, body.as_object_mut()) {
                    let secs = now.timestamp();
                    map.insert("timestamp".to_owned(), json!(secs.to_string()));
                    map.insert("sign".to_owned(), json!(feishu_sign(secret, secs)));
                }
                body
            }
            ChannelKind::Slack => json!({"text": text}),
        };
        let (status, answer) = self.send(request.json(&body)).await?;
        let code = service_code(kind, &answer);
        if let Some(code) = code
            && code != 0
        {
            let message = format!(
                "{} answered with error code {code}: {}",
                service_name(kind),
                quote(&answer)
            );
            return Err(Failure {
                message,
                retryable: status.is_server_error() || is_busy_code(kind, code),
            });
        }
        if !status.is_success() {
            return Err(status_failure(status, &answer));
        }
        if code.is_none() && kind != ChannelKind::Slack {
            // These services always answer JSON with a code; anything else means the URL does
            // not lead to the service (a captive portal, a wrong host).
            return Err(Failure::give_up(format!(
                "the answer is not {}'s: {}",
                service_name(kind),
                quote(&answer)
            )));
        }
        Ok(())
    }

    /// Sends one plain-text email through the app's SMTP server (see `email`).
    ///
    /// # Errors
    /// A [`Failure`]: retryable for network errors, timeouts and the server's temporary
    /// (4xx) refusals; not for an invalid address, a permanent (5xx) refusal or a failed
    /// login.
    pub async fn email(
        &self,
        smtp: &keel_meta::Smtp,
        password: Option<&str>,
        to: &str,
        subject: &str,
        body: &str,
    ) -> Result<(), Failure> {
        email::send(
            smtp,
            password,
            email::Letter { to, subject, body },
            self.timeout,
            self.clock.now(),
        )
        .await
    }

    fn client(&self) -> Result<&reqwest::Client, Failure> {
        self.http
            .as_ref()
            .map_err(|message| Failure::give_up(message.clone()))
    }

    /// Sends a request and reads its answer (at most [`MAX_ANSWER_BYTES`]), all within the
    /// timeout.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Vec<u8>), Failure> {
        let mut response = request.send().await.map_err(|error| http_failure(&error))?;
        let status = response.status();
        let mut answer = Vec::new();
        while answer.len() < MAX_ANSWER_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => answer.extend_from_slice(&chunk),
                Ok(None) => break,
                // The status is what counts; an answer cut short by a timeout or a reset
                // still tells success from failure.
                Err(_) => break,
            }
        }
        answer.truncate(MAX_ANSWER_BYTES);
        Ok((status, answer))
    }
}

/// `value` as an HTTP header value: visible ASCII and spaces only, so a line break cannot
/// add a header of its own.
fn header_value(what: &str, value: &str) -> Result<reqwest::header::HeaderValue, Failure> {
    let printable = value
        .bytes()
        .all(|byte| byte == b' ' || byte.is_ascii_graphic());
    match reqwest::header::HeaderValue::from_str(value) {
        Ok(header) if printable => Ok(header),
        _ => Err(Failure::give_up(format!(
            "the {what} `{}` cannot be sent in a header: it must be printable ASCII",
            value.escape_debug()
        ))),
    }
}

/// A failure to get an answer at all. The URL is left out of the message: chat URLs hold
/// their access token.
fn http_failure(error: &reqwest::Error) -> Failure {
    if error.is_builder() {
        // The headers are checked before; what is left to refuse is the URL.
        return Failure::give_up("the URL is not a valid http(s) URL");
    }
    let what = if error.is_timeout() {
        "no answer within the timeout"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "the request failed"
    };
    // The error's own text names the URL; its causes do not, and they say what happened
    // (refused, unknown host, a TLS failure).
    let mut message = what.to_owned();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    Failure::retry(message)
}

/// The failure for a non-2xx answer: retryable for 408, 429 and 5xx, when waiting may help;
/// any other status means the receiver refused this request and will refuse it again until
/// someone changes something, so it goes straight to the admin.
fn status_failure(status: StatusCode, answer: &[u8]) -> Failure {
    let retryable = status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS;
    Failure {
        message: format!("the receiver answered {status}: {}", quote(answer)),
        retryable,
    }
}

/// The error code in a chat service's JSON answer (`errcode` for 企业微信 and 钉钉, `code` or
/// the older `StatusCode` for 飞书), if there is one.
fn service_code(kind: ChannelKind, answer: &[u8]) -> Option<i64> {
    let value: Value = serde_json::from_slice(answer).ok()?;
    let code = match kind {
        ChannelKind::Wecom | ChannelKind::Dingtalk => value.get("errcode"),
        ChannelKind::Feishu => value.get("code").or_else(|| value.get("StatusCode")),
        ChannelKind::Slack => None,
    }?;
    code.as_i64()
}

/// The codes with which a service says "too many messages" or "busy, try later".
fn is_busy_code(kind: ChannelKind, code: i64) -> bool {
    match kind {
        // -1: system busy; 45009: API frequency limit.
        ChannelKind::Wecom => matches!(code, -1 | 45009),
        // -1: system busy; 130101: more than 20 messages a minute.
        ChannelKind::Dingtalk => matches!(code, -1 | 130101),
        // 9499: too many requests; 11232 and 230020: message frequency limits.
        ChannelKind::Feishu => matches!(code, 9499 | 11232 | 230020),
        ChannelKind::Slack => false,
    }
}

fn service_name(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Wecom => "企业微信",
        ChannelKind::Dingtalk => "钉钉",
        ChannelKind::Feishu => "飞书",
        ChannelKind::Slack => "the Slack webhook",
    }
}

/// The start of an answer, as text, for a failure message.
fn quote(answer: &[u8]) -> String {
    let text = String::from_utf8_lossy(answer);
    let text = text.trim();
    if text.is_empty() {
        return "(empty answer)".to_owned();
    }
    let mut quoted: String = text.chars().take(QUOTED_ANSWER_CHARS).collect();
    if quoted.len() < text.len() {
        quoted.push('…');
    }
    quoted
}

/// `text` cut to at most `max` bytes at a character boundary, ending with `…` when cut.
fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let ellipsis = '…';
    let mut end = max - ellipsis.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut shortened = text[..end].to_owned();
    shortened.push(ellipsis);
    shortened
}
