//! Deletes and what answers reveal, driven through `Records` on both databases:
//! `on_delete` (`restrict`, `cascade`, `set_null`) applied in the delete's transaction and
//! undone by a restore as docs/permissions.md says; a unique-value conflict that names the
//! existing record only when the user may read it; and `explain_access` refusing
//! non-admins by itself.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use keel_meta::Schema;
use keel_runtime::actor::Actor;
use keel_runtime::clock::{Clock, SystemClock};
use keel_runtime::records::{Input, ListRequest, RecordError, Records};
use serde_json::{Value as Json, json};

const ROLES: &str = "\
roles:
  admin: { admin: true }
  sales_rep: {}
permissions:
  sales_rep:
    account: { read: own, create: true, edit: own, delete: own }
    opportunity: { read: own, create: true, edit: own }
    contact: { read: own, create: true, edit: own, fields: { phone: read } }
    call: { read: own, create: true }
    quote: { read: own, create: true }
    task: { read: own, create: true, edit: own }
";

const OBJECTS: [(&str, &str); 6] = [
    (
        "account",
        "name: account\ntitle: name\nfields:\n  name: { type: text, required: true }\n  \
         code: { type: text, unique: true }\n",
    ),
    (
        "opportunity",
        "name: opportunity\ntitle: name\nfields:\n  name: { type: text, required: true }\n  \
         account: { type: lookup, object: account, on_delete: restrict }\n",
    ),
    (
        "contact",
        "name: contact\ntitle: name\nfields:\n  name: { type: text, required: true, mask: true }\n  \
         phone: { type: phone }\n  \
         account: { type: lookup, object: account, on_delete: cascade }\n",
    ),
    (
        "call",
        "name: call\ntitle: name\nfields:\n  name: { type: text, required: true }\n  \
         contact: { type: lookup, object: contact, on_delete: cascade }\n",
    ),
    (
        "quote",
        "name: quote\ntitle: name\nfields:\n  name: { type: text, required: true }\n  \
         contact: { type: lookup, object: contact, on_delete: restrict }\n",
    ),
    (
        "task",
        "name: task\ntitle: name\nfields:\n  name: { type: text, required: true }\n  \
         account: { type: lookup, object: account, on_delete: set_null }\n  \
         contact: { type: lookup, object: contact, on_delete: set_null }\n",
    ),
];

struct Fixture {
    records: Records,
    admin: Actor,
    rep: Actor,
    other_rep: Actor,
    _app: tempfile::TempDir,
}

async fn fixture(db_url: &str) -> Fixture {
    let app = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let path = app.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "metadata/app.yaml",
        "name: Access rules\ntimezone: Asia/Shanghai\n",
    );
    write("metadata/roles.yaml", ROLES);
    for (name, text) in OBJECTS {
        write(&format!("metadata/objects/{name}.yaml"), text);
    }
    let schema: Arc<Schema> = Arc::new(keel_meta::load_app(app.path()).unwrap());
    let db = keel_store::Db::connect(db_url).await.unwrap();
    keel_store::migrate::apply(&db, &schema, false)
        .await
        .unwrap();
    let mut actors = Vec::new();
    for (username, role, admin) in [
        ("u_admin", "admin", true),
        ("u_rep", "sales_rep", false),
        ("u_other", "sales_rep", false),
    ] {
        let user = keel_store::users::NewUser {
            username: username.to_owned(),
            display_name: None,
            password_hash: "not-a-real-hash".to_owned(),
            roles: vec![role.to_owned()],
            manager: None,
            department: None,
            language: None,
            email: None,
        };
        let id = keel_store::users::insert_at(&db, &user, SystemClock.now(), None)
            .await
            .unwrap();
        actors.push(Actor {
            id,
            username: username.to_owned(),
            display_name: None,
            roles: vec![role.to_owned()],
            admin,
            manager: None,
            department: None,
            language: None,
        });
    }
    let [admin, rep, other_rep] = <[Actor; 3]>::try_from(actors).unwrap();
    Fixture {
        records: Records::new(schema, db, Arc::new(SystemClock)),
        admin,
        rep,
        other_rep,
        _app: app,
    }
}

fn input(value: Json) -> Input {
    value.as_object().cloned().unwrap()
}

impl Fixture {
    /// Creates a record as `actor` → its id.
    async fn create(&self, actor: &Actor, object: &str, body: Json) -> String {
        let saved = self
            .records
            .create(actor, object, input(body))
            .await
            .unwrap_or_else(|error| panic!("creating {object}: {error:?}"));
        saved.record["id"].as_str().unwrap().to_owned()
    }

    /// The ids of the live records of `object`, as the admin sees them.
    async fn live(&self, object: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .records
            .list(&self.admin, object, ListRequest::default())
            .await
            .unwrap()
            .data
            .iter()
            .map(|record| record["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    }

    async fn record(&self, object: &str, id: &str) -> Json {
        self.records.get(&self.admin, object, id).await.unwrap()
    }
}

fn sorted(mut ids: Vec<&String>) -> Vec<String> {
    ids.sort();
    ids.into_iter().cloned().collect()
}

keel_testkit::db_test!(
    restrict_refuses_a_delete_and_names_only_the_referring_records_the_user_may_read,
    |db| async move {
        let f = fixture(&db.url).await;
        let account = f.create(&f.rep, "account", json!({ "name": "华为" })).await;
        let mine = f
            .create(
                &f.rep,
                "opportunity",
                json!({ "name": "云项目", "account": account }),
            )
            .await;
        let theirs = f
            .create(
                &f.admin,
                "opportunity",
                json!({ "name": "秘密项目", "account": account, "owner": f.other_rep.id }),
            )
            .await;
        let error = f
            .records
            .delete(&f.rep, "account", &account)
            .await
            .unwrap_err();
        let RecordError::Referenced {
            message,
            references,
        } = error
        else {
            panic!("expected a restrict refusal, got {error:?}");
        };
        assert_eq!(references.len(), 1, "{references:?}");
        assert_eq!(references[0].object, "opportunity");
        assert_eq!(references[0].field, "account");
        assert_eq!(references[0].count, 2, "every referring record is counted");
        assert_eq!(
            references[0].records.len(),
            1,
            "only readable ones are named"
        );
        assert_eq!(references[0].records[0].id, mine);
        assert_eq!(references[0].records[0].title.as_deref(), Some("云项目"));
        assert!(
            !message.contains(&theirs) && !message.contains("秘密"),
            "{message}"
        );
        assert_eq!(f.live("account").await, vec![account.clone()]);

        // Once nothing refers to it, the account may go.
        f.records
            .delete(&f.admin, "opportunity", &mine)
            .await
            .unwrap();
        f.records
            .delete(&f.admin, "opportunity", &theirs)
            .await
            .unwrap();
        f.records.delete(&f.rep, "account", &account).await.unwrap();
        assert!(f.live("account").await.is_empty());
    }
);

keel_testkit::db_test!(
    cascade_moves_children_to_the_bin_and_a_restore_brings_back_only_those_it_moved,
    |db| async move {
        let f = fixture(&db.url).await;
        let account = f.create(&f.rep, "account", json!({ "name": "腾讯" })).await;
        let mine = f
            .create(
                &f.rep,
                "contact",
                json!({ "name": "张三", "account": account }),
            )
            .await;
        // A child the deleting user cannot see goes too: the cascade is the system's
        // consequence of a delete the user was allowed to make.
        let unseen = f
            .create(
                &f.admin,
                "contact",
                json!({ "name": "李四", "account": account, "owner": f.other_rep.id }),
            )
            .await;
        let earlier = f
            .create(
                &f.admin,
                "contact",
                json!({ "name": "王五", "account": account }),
            )
            .await;
        f.records
            .delete(&f.admin, "contact", &earlier)
            .await
            .unwrap();
        let call = f
            .create(
                &f.rep,
                "call",
                json!({ "name": "首次拜访", "contact": mine }),
            )
            .await;
        let task = f
            .create(
                &f.rep,
                "task",
                json!({ "name": "回访", "account": account, "contact": mine }),
            )
            .await;

        f.records.delete(&f.rep, "account", &account).await.unwrap();
        assert!(f.live("account").await.is_empty());
        assert!(
            f.live("contact").await.is_empty(),
            "cascade reaches every child"
        );
        assert!(f.live("call").await.is_empty(), "and their children");
        let cleared = f.record("task", &task).await;
        assert_eq!(cleared["account"], Json::Null, "set_null clears the lookup");
        assert_eq!(cleared["contact"], Json::Null);
        let history = f.records.history(&f.admin, "task", &task).await.unwrap();
        assert!(
            history.iter().any(|entry| entry["field"] == "account"
                && entry["old"] == json!(account)
                && entry["new"] == Json::Null),
            "a cleared lookup leaves an audit row: {history:?}"
        );

        let restored = f
            .records
            .restore(&f.rep, "account", &account)
            .await
            .unwrap();
        assert_eq!(restored["id"], json!(account));
        assert_eq!(f.live("account").await, vec![account.clone()]);
        assert_eq!(
            f.live("contact").await,
            sorted(vec![&mine, &unseen]),
            "the contact deleted before the account stays in the bin"
        );
        assert_eq!(f.live("call").await, vec![call.clone()]);
        let task_after = f.record("task", &task).await;
        assert_eq!(
            task_after["account"],
            Json::Null,
            "a restore does not put cleared lookups back"
        );
    }
);

keel_testkit::db_test!(
    a_restrict_anywhere_in_a_cascade_refuses_the_whole_delete,
    |db| async move {
        let f = fixture(&db.url).await;
        let account = f.create(&f.rep, "account", json!({ "name": "阿里" })).await;
        let contact = f
            .create(
                &f.rep,
                "contact",
                json!({ "name": "赵六", "account": account }),
            )
            .await;
        let task = f
            .create(
                &f.rep,
                "task",
                json!({ "name": "报价", "account": account }),
            )
            .await;
        f.create(&f.rep, "quote", json!({ "name": "Q1", "contact": contact }))
            .await;
        let error = f
            .records
            .delete(&f.rep, "account", &account)
            .await
            .unwrap_err();
        match &error {
            RecordError::Referenced { references, .. } => {
                assert_eq!(references[0].object, "quote");
                assert_eq!(references[0].field, "contact");
            }
            other => panic!("expected a restrict refusal, got {other:?}"),
        }
        assert_eq!(f.live("account").await, vec![account.clone()]);
        assert_eq!(f.live("contact").await, vec![contact], "nothing moved");
        assert_eq!(f.record("task", &task).await["account"], json!(account));
    }
);

keel_testkit::db_test!(
    a_unique_conflict_names_the_existing_record_only_when_the_user_may_read_it,
    |db| async move {
        let f = fixture(&db.url).await;
        let conflict = |error: RecordError| match error {
            RecordError::Conflict { message, field, .. } => {
                assert_eq!(field.as_deref(), Some("code"));
                message
            }
            other => panic!("expected a conflict, got {other:?}"),
        };
        // Another user's record, live and then in the recycle bin: never named.
        let theirs = f
            .create(
                &f.other_rep,
                "account",
                json!({ "name": "甲", "code": "A-1" }),
            )
            .await;
        let binned = f
            .create(
                &f.other_rep,
                "account",
                json!({ "name": "乙", "code": "A-2" }),
            )
            .await;
        f.records
            .delete(&f.other_rep, "account", &binned)
            .await
            .unwrap();
        for (code, hidden) in [("A-1", &theirs), ("A-2", &binned)] {
            let message = conflict(
                f.records
                    .create(
                        &f.rep,
                        "account",
                        input(json!({ "name": "丙", "code": code })),
                    )
                    .await
                    .unwrap_err(),
            );
            assert!(!message.contains(hidden.as_str()), "{message}");
            assert!(!message.contains("recycle bin"), "{message}");
        }
        // The user's own record is named, also from the recycle bin.
        let own = f
            .create(&f.rep, "account", json!({ "name": "丁", "code": "B-1" }))
            .await;
        f.records.delete(&f.rep, "account", &own).await.unwrap();
        let message = conflict(
            f.records
                .create(
                    &f.rep,
                    "account",
                    input(json!({ "name": "戊", "code": "B-1" })),
                )
                .await
                .unwrap_err(),
        );
        assert!(message.contains(own.as_str()), "{message}");
        assert!(message.contains("recycle bin"), "{message}");
        // An admin reads every record, so the admin is told which one.
        let message = conflict(
            f.records
                .create(
                    &f.admin,
                    "account",
                    input(json!({ "name": "己", "code": "A-1" })),
                )
                .await
                .unwrap_err(),
        );
        assert!(message.contains(theirs.as_str()), "{message}");
    }
);

keel_testkit::db_test!(
    explaining_access_is_refused_to_anyone_but_an_admin,
    |db| async move {
        let f = fixture(&db.url).await;
        let account = f
            .create(&f.other_rep, "account", json!({ "name": "庚" }))
            .await;
        let error = f
            .records
            .explain_access(&f.rep, &f.other_rep, "account", Some(&account))
            .await
            .unwrap_err();
        assert!(matches!(error, RecordError::Forbidden { .. }), "{error:?}");
        let answer = f
            .records
            .explain_access(&f.admin, &f.other_rep, "account", Some(&account))
            .await
            .unwrap();
        assert_eq!(answer["actions"]["read"]["allowed"], true);
    }
);
