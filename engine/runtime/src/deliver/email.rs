//! One email through the app's `smtp:` server, with `lettre`'s async transport on tokio.
//!
//! A transport is built for each message: notifications are few, and a fresh connection
//! leaves no pooled session to go stale between them. The message is plain text in UTF-8
//! (lettre picks a transfer encoding that survives 7-bit servers), so Chinese text arrives
//! intact.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use keel_meta::{Smtp, SmtpTls};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::Failure;

/// What one email says and to whom.
pub(super) struct Letter<'a> {
    pub to: &'a str,
    pub subject: &'a str,
    pub body: &'a str,
}

pub(super) async fn send(
    smtp: &Smtp,
    password: Option<&str>,
    letter: Letter<'_>,
    timeout: Duration,
    now: DateTime<Utc>,
) -> Result<(), Failure> {
    let message = build_message(smtp, &letter, now)?;

    let builder = match smtp.tls {
        SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&smtp.host),
        SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&smtp.host),
        SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            &smtp.host,
        )),
    }
    .map_err(|error| Failure::give_up(format!("cannot set up TLS for `{}`: {error}", smtp.host)))?;
    let mut builder = builder.port(smtp.port).timeout(Some(timeout));
    if let Some(username) = &smtp.username {
        builder = builder.credentials(Credentials::new(
            username.clone(),
            password.unwrap_or_default().to_owned(),
        ));
    }
    let transport = builder.build();

    // lettre's timeout bounds each read and write; this bounds the whole conversation.
    match tokio::time::timeout(timeout, transport.send(message)).await {
        Err(_) => Err(Failure::retry(format!(
            "the SMTP server {}:{} did not finish within the timeout",
            smtp.host, smtp.port
        ))),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => {
            // A temporary (4xx) refusal, a timeout or a lost connection may pass later; a
            // permanent (5xx) refusal, such as a failed login or an unknown recipient, will
            // not, and neither will a message lettre itself refuses.
            let retryable = !(error.is_permanent() || error.is_client());
            Err(Failure {
                message: format!("SMTP {}:{}: {error}", smtp.host, smtp.port),
                retryable,
            })
        }
    }
}

/// The message itself. lettre encodes the headers (RFC 2047 for non-ASCII text), so a line
/// break in a subject cannot start a header of its own.
pub(super) fn build_message(
    smtp: &Smtp,
    letter: &Letter<'_>,
    now: DateTime<Utc>,
) -> Result<Message, Failure> {
    let from: Mailbox = smtp.from.parse().map_err(|error| {
        Failure::give_up(format!(
            "the sender `{}` is not an address: {error}",
            smtp.from
        ))
    })?;
    let to: Mailbox = letter.to.parse().map_err(|error| {
        Failure::give_up(format!(
            "the recipient `{}` is not an address: {error}",
            letter.to
        ))
    })?;
    Message::builder()
        .from(from)
        .to(to)
        .subject(letter.subject)
        .date(SystemTime::from(now))
        // A Message-ID (random, at this host's name): spam filters expect one.
        .message_id(None)
        .header(ContentType::TEXT_PLAIN)
        .body(letter.body.to_owned())
        .map_err(|error| Failure::give_up(format!("the email cannot be built: {error}")))
}
