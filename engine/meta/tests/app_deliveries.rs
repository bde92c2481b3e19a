//! The `smtp:`, `channels:` and `navigation:` settings of `app.yaml`: the SMTP port and TLS
//! mode resolve as docs/app-format.md says, a channel's signing secret is read, navigation
//! groups name real objects, and the mistakes an admin can make are reported at their line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use keel_meta::{ChannelKind, Schema, Smtp, SmtpTls};

fn load(app_yaml: &str) -> Result<Schema, keel_meta::LoadErrors> {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        ("metadata/app.yaml", app_yaml),
        ("metadata/roles.yaml", "roles:\n  admin: { admin: true }\n"),
        (
            "metadata/objects/lead.yaml",
            "name: lead\ntitle: name\nfields:\n  name: { type: text }\n",
        ),
    ];
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    keel_meta::load_app(dir.path())
}

fn smtp(settings: &str) -> Smtp {
    let yaml =
        format!("name: Test\nsmtp:\n  host: mail.example.com\n  from: crm@example.com\n{settings}");
    load(&yaml)
        .unwrap_or_else(|errors| panic!("{errors}"))
        .app
        .smtp
        .unwrap()
}

#[test]
fn the_smtp_port_and_tls_mode_follow_each_other_when_one_is_left_out() {
    let cases = [
        ("", 587, SmtpTls::Starttls),
        ("  port: 465\n", 465, SmtpTls::Tls),
        ("  port: 2525\n", 2525, SmtpTls::Starttls),
        ("  tls: tls\n", 465, SmtpTls::Tls),
        ("  tls: starttls\n", 587, SmtpTls::Starttls),
        ("  tls: none\n", 25, SmtpTls::None),
        ("  tls: none\n  port: 1025\n", 1025, SmtpTls::None),
        ("  tls: starttls\n  port: 465\n", 465, SmtpTls::Starttls),
    ];
    for (settings, port, tls) in cases {
        let smtp = smtp(settings);
        assert_eq!((smtp.port, smtp.tls), (port, tls), "{settings:?}");
    }
    let full =
        smtp("  port: 587\n  username: crm@example.com\n  password_env: KEEL_SMTP_PASSWORD\n");
    assert_eq!(full.host, "mail.example.com");
    assert_eq!(full.username.as_deref(), Some("crm@example.com"));
    assert_eq!(full.password_env.as_deref(), Some("KEEL_SMTP_PASSWORD"));
    assert_eq!(full.from, "crm@example.com");
}

#[test]
fn an_unknown_smtp_tls_mode_is_reported_at_its_line() {
    let errors = load("name: Test\nsmtp:\n  host: h\n  from: a@b.c\n  tls: ssl\n").unwrap_err();
    let text = errors.to_string();
    assert!(text.starts_with("metadata/app.yaml:5:"), "{text}");
    assert_eq!(errors.diagnostics.len(), 1, "{text}");
}

#[test]
fn dingtalk_and_feishu_channels_read_their_signing_secret_variable() {
    let schema = load(
        "name: Test\nchannels:\n  - { name: ding, kind: dingtalk, url_env: KEEL_DING, secret_env: KEEL_DING_SECRET }\n  - { name: fei, kind: feishu, url: 'https://open.feishu.cn/x', secret_env: KEEL_FEI_SECRET }\n  - { name: wx, kind: wecom, url_env: KEEL_WX }\n",
    )
    .unwrap_or_else(|errors| panic!("{errors}"));
    let channels = &schema.app.channels;
    assert_eq!(channels.len(), 3);
    assert_eq!(channels[0].kind, ChannelKind::Dingtalk);
    assert_eq!(channels[0].secret_env.as_deref(), Some("KEEL_DING_SECRET"));
    assert_eq!(channels[1].kind, ChannelKind::Feishu);
    assert_eq!(channels[1].secret_env.as_deref(), Some("KEEL_FEI_SECRET"));
    assert_eq!(channels[2].secret_env, None);
}

#[test]
fn a_signing_secret_on_a_kind_that_does_not_sign_is_reported_at_its_line() {
    let errors = load(
        "name: Test\nchannels:\n  - name: wx\n    kind: wecom\n    url_env: KEEL_WX\n    secret_env: KEEL_WX_SECRET\n  - name: team\n    kind: slack\n    url_env: KEEL_SLACK\n    secret_env: lower_case\n",
    )
    .unwrap_err();
    let text = errors.to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("metadata/app.yaml:6:"), "{text}");
    assert!(lines[0].contains("only `dingtalk` and `feishu`"), "{text}");
    // A malformed variable name is the schema's error, reported before the kind is looked at.
    assert!(lines[1].starts_with("metadata/app.yaml:10:"), "{text}");
}

#[test]
fn navigation_groups_name_existing_objects_once_and_mistakes_point_at_their_line() {
    let schema =
        load("name: Test\nnavigation:\n  - label: { en: Sales, zh: 销售 }\n    objects: [lead]\n")
            .unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(schema.app.navigation.len(), 1);
    assert_eq!(schema.app.navigation[0].objects, vec!["lead".to_owned()]);
    assert_eq!(schema.app.navigation[0].label.text("zh", "en"), "销售");

    let errors = load(
        "name: Test\nnavigation:\n  - label: Sales\n    objects:\n      - lead\n      - leed\n  - { label: Again, objects: [lead] }\n",
    )
    .unwrap_err();
    let text = errors.to_string();
    assert_eq!(errors.diagnostics.len(), 2, "{text}");
    assert!(
        text.contains("metadata/app.yaml:6:9: there is no object `leed`"),
        "{text}"
    );
    assert!(
        text.contains("metadata/app.yaml:7:") && text.contains("more than once"),
        "{text}"
    );
}
