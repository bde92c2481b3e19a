//! `on_delete` over HTTP on the standard app (the repository root), as the probe tried it:
//! an account that opportunities refer to (`restrict`) cannot be deleted, and the 409 names
//! only the opportunities the caller may read; once they are gone, deleting the account
//! takes its contacts (`cascade`) to the recycle bin and restoring it brings them back.
//! SQLite and PostgreSQL.

use std::sync::Arc;

use keel_runtime::clock::SystemClock;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::repository_root;

const PASSWORD: &str = "on-delete-password";

struct Api {
    base_url: String,
    client: reqwest::Client,
    tokens: std::collections::HashMap<&'static str, String>,
}

impl Api {
    async fn call(
        &self,
        user: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, format!("{}/api/v1{path}", self.base_url))
            .bearer_auth(&self.tokens[user]);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn create(&self, user: &str, object: &str, body: Value) -> String {
        let (status, created) = self
            .call(
                user,
                Method::POST,
                &format!("/records/{object}"),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{object}: {created}");
        created["id"].as_str().unwrap().to_owned()
    }
}

async fn spawn(db_url: &str) -> Api {
    let schema = Arc::new(
        keel_meta::load_app(&repository_root())
            .unwrap_or_else(|errors| panic!("standard app:\n{errors}")),
    );
    let db = keel_store::Db::connect(db_url).await.unwrap();
    keel_store::migrate::apply(&db, &schema, false)
        .await
        .unwrap();
    let users = [
        ("admin", PASSWORD, "admin"),
        ("manager", PASSWORD, "sales_manager"),
        ("other", PASSWORD, "sales_manager"),
    ];
    crate::support::add_users(&db, &schema, &users).await;
    let state = keel_web::AppState::with_clock(schema, db, Arc::new(SystemClock));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(keel_web::serve_until(
        listener,
        state,
        std::future::pending(),
    ));
    let client = reqwest::Client::new();
    let base_url = format!("http://{address}");
    let mut tokens = std::collections::HashMap::new();
    for (username, _, _) in users {
        let response = client
            .post(format!("{base_url}/api/v1/auth/login"))
            .json(&json!({ "username": username, "password": PASSWORD }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "login as {username}");
        let body: Value = response.json().await.unwrap();
        tokens.insert(username, body["token"].as_str().unwrap().to_owned());
    }
    Api {
        base_url,
        client,
        tokens,
    }
}

keel_testkit::db_test!(
    deleting_an_account_restricts_on_opportunities_and_cascades_to_contacts,
    |db| async move {
        let api = spawn(&db.url).await;
        // Two sales managers without a department: each reads only their own accounts and
        // opportunities.
        let account = api
            .create(
                "manager",
                "account",
                json!({ "name": "上海云帆科技有限公司" }),
            )
            .await;
        let mine = api
            .create(
                "manager",
                "opportunity",
                json!({ "name": "私有云", "account": account }),
            )
            .await;
        let (_, users) = api.call("admin", Method::GET, "/admin/users", None).await;
        let other_id = users["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|user| user["username"] == "other")
            .map(|user| user["id"].clone())
            .unwrap();
        let theirs = api
            .create(
                "admin",
                "opportunity",
                json!({ "name": "不该看到的商机", "account": account, "owner": other_id }),
            )
            .await;
        let contact = api
            .create(
                "manager",
                "contact",
                json!({ "name": "陈经理", "account": account }),
            )
            .await;

        let path = format!("/records/account/{account}");
        let (status, body) = api.call("manager", Method::DELETE, &path, None).await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(body["type"], "referenced", "{body}");
        let references = body["references"].as_array().unwrap();
        assert_eq!(references.len(), 1, "{body}");
        assert_eq!(references[0]["object"], "opportunity");
        assert_eq!(references[0]["field"], "account");
        assert_eq!(references[0]["count"], 2);
        assert_eq!(
            references[0]["records"],
            json!([{ "id": mine, "title": "私有云" }]),
            "only the opportunity the manager may read is named"
        );
        assert!(
            !body.to_string().contains(&theirs) && !body.to_string().contains("不该看到"),
            "{body}"
        );
        let (status, _) = api.call("manager", Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "a refused delete changes nothing");

        for opportunity in [&mine, &theirs] {
            let (status, body) = api
                .call(
                    "admin",
                    Method::DELETE,
                    &format!("/records/opportunity/{opportunity}"),
                    None,
                )
                .await;
            assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        }
        let (status, body) = api.call("manager", Method::DELETE, &path, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        let contact_path = format!("/records/contact/{contact}");
        let (status, _) = api.call("admin", Method::GET, &contact_path, None).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "the contact went with its account"
        );

        let (status, body) = api
            .call("manager", Method::POST, &format!("{path}/restore"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = api.call("admin", Method::GET, &contact_path, None).await;
        assert_eq!(status, StatusCode::OK, "and came back with it: {body}");
    }
);

keel_testkit::db_test!(
    a_delete_racing_saves_that_refer_to_it_never_leaves_a_live_reference_to_a_deleted_record,
    |db| async move {
        // Each round deletes an account while six saves of opportunities that refer to it run
        // at the same time. Whichever goes first, the other must see it: either the delete
        // went first and every save is refused (no such account), or a save went first and
        // the delete is refused (`restrict`). On PostgreSQL the saves read the account
        // `FOR SHARE`; before that, a delete could check for references, find none, and
        // commit next to a save that had already found the account.
        let api = spawn(&db.url).await;
        for round in 0..15 {
            let account = api
                .create(
                    "admin",
                    "account",
                    json!({ "name": format!("竞态 {round}") }),
                )
                .await;
            let path = format!("/records/account/{account}");
            let delete = api.call("admin", Method::DELETE, &path, None);
            let saves = (0..6).map(|n| {
                api.call(
                    "admin",
                    Method::POST,
                    "/records/opportunity",
                    Some(json!({ "name": format!("商机 {round}-{n}"), "account": account })),
                )
            });
            let (deleted, saved) =
                futures::future::join(delete, futures::future::join_all(saves)).await;
            let created = saved
                .iter()
                .filter(|(status, _)| *status == StatusCode::CREATED)
                .count();
            match deleted.0 {
                StatusCode::NO_CONTENT => assert_eq!(
                    created, 0,
                    "round {round}: the account was deleted and {created} saves referring to it were stored"
                ),
                StatusCode::CONFLICT => assert!(
                    created > 0,
                    "round {round}: the delete was refused though no save was stored: {}",
                    deleted.1
                ),
                other => panic!("round {round}: the delete answered {other}: {}", deleted.1),
            }
        }
    }
);
