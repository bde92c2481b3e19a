//! The signatures deliveries carry: Keel's own webhook signature, and the signatures
//! 钉钉 and 飞书 robots check when a secret is configured, each computed exactly as its
//! receiver documents it (docs/deliveries.md).

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length (longer ones are hashed first), so this cannot fail;
    // the fallback keeps the code free of `expect` all the same.
    match HmacSha256::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(message);
            mac.finalize().into_bytes().into()
        }
        Err(_) => [0; 32],
    }
}

/// The value of `X-Keel-Signature` for a webhook sent at `timestamp` (Unix seconds, the
/// value of `X-Keel-Timestamp`): `sha256=` and the lowercase hex HMAC-SHA256, keyed with
/// the secret, of the timestamp's decimal digits, a full stop, and the exact body bytes.
///
/// Signing the timestamp with the body lets a receiver refuse an old request replayed by
/// someone who recorded it.
pub fn webhook_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut message = Vec::with_capacity(body.len() + 21);
    message.extend_from_slice(timestamp.to_string().as_bytes());
    message.push(b'.');
    message.extend_from_slice(body);
    format!(
        "sha256={}",
        hex::encode(hmac_sha256(secret.as_bytes(), &message))
    )
}

/// 钉钉's `sign` query parameter: Base64 of HMAC-SHA256 keyed with the secret over
/// `"{timestamp}\n{secret}"`, the timestamp in milliseconds. (The caller URL-encodes it.)
pub fn dingtalk_sign(secret: &str, timestamp_millis: i64) -> String {
    let message = format!("{timestamp_millis}\n{secret}");
    base64::engine::general_purpose::STANDARD
        .encode(hmac_sha256(secret.as_bytes(), message.as_bytes()))
}

/// 飞书's `sign` body field: Base64 of HMAC-SHA256 keyed with `"{timestamp}\n{secret}"`
/// over an empty message, the timestamp in seconds. (飞书 uses the string as the key, not as
/// the message: the opposite of 钉钉.)
pub fn feishu_sign(secret: &str, timestamp_secs: i64) -> String {
    let key = format!("{timestamp_secs}\n{secret}");
    base64::engine::general_purpose::STANDARD.encode(hmac_sha256(key.as_bytes(), b""))
}
