//! The pool pages over real HTTP (docs/ui.md, "Pools"): the pools a user may use in the
//! navigation and on `/app/pools`; a pool's records with the `hide_until_claimed` fields
//! masked; claiming (the record page after, unmasked; a refusal explained in the user's
//! language); a manager's single and bulk assignment; releasing with a reason (a reason not
//! listed keeps the dialog open with the error) and the pool history on the record page.
//! The standard app's demo data puts six leads into `public_leads` and five accounts into
//! `customer_pool`.

use reqwest::StatusCode;
use serde_json::Value;

use crate::pages::{Page, Session, Site};
use crate::support::send_json;

const POOL: &str = "/app/pools/public_leads";

/// `GET /api/v1{path}` as `session`'s user → (status, JSON body).
async fn api(site: &Site, session: &Session, path: &str) -> (StatusCode, Value) {
    send_json(
        reqwest::Client::new()
            .get(format!("{}/api/v1{path}", site.base_url()))
            .bearer_auth(session.token().unwrap()),
    )
    .await
}

/// `text` percent-encoded for a query string.
fn encode(text: &str) -> String {
    text.bytes().map(|byte| format!("%{byte:02X}")).collect()
}

/// The ids of the records listed on a pool page.
fn listed(page: &Page) -> Vec<String> {
    page.attrs("table#pool-records tr[data-id]", "data-id")
}

/// The value of the `option` of a select named `name` whose text is `label`.
fn option_value(page: &Page, select: &str, label: &str) -> String {
    let selector = scraper::Selector::parse(&format!("{select} option")).unwrap();
    let document = page.document();
    document
        .select(&selector)
        .find(|option| option.text().collect::<String>().trim() == label)
        .and_then(|option| option.value().attr("value"))
        .unwrap_or_else(|| panic!("no option {label} in {select}:\n{}", page.html))
        .to_owned()
}

keel_testkit::db_test!(
    the_navigation_and_the_pools_page_list_the_pools_a_user_may_use,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut chen = site.login("chen").await;
        let home = chen.get("/").await;
        assert!(
            home.attrs("nav.sidenav a[href='/app/pools/public_leads']", "href")
                .len()
                == 1,
            "{}",
            home.html
        );
        let index = chen.get("/app/pools").await;
        assert_eq!(index.status, StatusCode::OK, "{}", index.html);
        index.assert_clean("/app/pools");
        let mut pools = index.attrs("#pools [data-pool]", "data-pool");
        pools.sort();
        assert_eq!(pools, vec!["customer_pool", "public_leads"]);
        assert!(
            index.texts("[data-pool=public_leads] .count")[0].contains('6'),
            "{}",
            index.html
        );

        // A service agent is in no pool: no entry, and the pool is the 404 page.
        let mut sun = site.login("sun").await;
        let home = sun.get("/").await;
        assert!(
            home.attrs("nav.sidenav a[href^='/app/pools']", "href")
                .is_empty()
        );
        let pool = sun.get(POOL).await;
        assert_eq!(pool.status, StatusCode::NOT_FOUND);
        pool.assert_clean("a pool for a user outside it");
        let unknown = chen.get("/app/pools/no_such_pool").await;
        assert_eq!(unknown.status, StatusCode::NOT_FOUND);

        // Filters and search narrow the pool as they narrow a list.
        let all = chen.get(POOL).await;
        assert_eq!(
            all.attrs("#filter-status option[value='eq.new']", "value")
                .len(),
            1,
            "{}",
            all.html
        );
        let new = chen.get(&format!("{POOL}?status=eq.new")).await;
        new.assert_clean("a filtered pool");
        assert_eq!(
            listed(&new),
            listed(&all),
            "the demo's pooled leads are new"
        );
        let none = chen.get(&format!("{POOL}?status=eq.converted")).await;
        assert!(listed(&none).is_empty());
        assert_eq!(none.attrs("#empty-state", "id").len(), 1, "{}", none.html);
        let first = listed(&all)[0].clone();
        let name = all.texts(&format!("tr[data-id='{first}'] td:nth-child(1)"))[0].clone();
        let found = chen.get(&format!("{POOL}?q={}", encode(&name))).await;
        assert!(listed(&found).contains(&first), "{name}: {}", found.html);
        assert!(listed(&found).len() < listed(&all).len());
        let bad = chen.get(&format!("{POOL}?no_such_field=eq.1")).await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
        bad.assert_clean("a bad filter");
    }
);

keel_testkit::db_test!(
    a_rep_sees_the_pool_with_masked_phones_claims_a_lead_and_then_sees_it_unmasked,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut chen = site.login("chen").await;
        let admin = site.login("admin").await;
        let pool = chen.get(POOL).await;
        assert_eq!(pool.status, StatusCode::OK, "{}", pool.html);
        pool.assert_clean(POOL);
        let ids = listed(&pool);
        assert_eq!(ids.len(), 6, "{}", pool.html);
        assert!(
            pool.attrs("form#bulk-assign", "id").is_empty(),
            "no bulk assign for a rep"
        );
        assert!(
            pool.attrs("button.assign", "class").is_empty(),
            "no assign for a rep"
        );

        // Every lead in the pool with a mobile shows it masked; the admin sees it in clear.
        let mut masked = 0;
        for id in &ids {
            let (status, lead) = api(&site, &admin, &format!("/records/lead/{id}")).await;
            assert_eq!(status, StatusCode::OK, "{lead}");
            let Some(clear) = lead["mobile"].as_str() else {
                continue;
            };
            let cell = pool.texts(&format!("tr[data-id='{id}'] td.masked"));
            assert!(
                !cell.is_empty(),
                "the mobile of {id} is masked:\n{}",
                pool.html
            );
            assert!(!pool.html.contains(clear), "{clear} shows on the pool page");
            masked += 1;
        }
        assert!(masked > 0, "the demo pool has leads with a mobile");

        // Claim the first lead with a mobile: its record page, unmasked, with a notice.
        let id = ids
            .iter()
            .find(|id| {
                !pool
                    .texts(&format!("tr[data-id='{id}'] td.masked"))
                    .is_empty()
            })
            .unwrap()
            .clone();
        // The pool's view of it: the fields, the mobile masked, a claim button.
        let view = chen.get(&format!("{POOL}/{id}")).await;
        assert_eq!(view.status, StatusCode::OK, "{}", view.html);
        view.assert_clean("a record in the pool");
        assert_eq!(
            view.texts("[data-field=mobile] dd.masked").len(),
            1,
            "{}",
            view.html
        );
        assert_eq!(
            view.attrs("#pool-actions form.claim", "action"),
            vec![format!("{POOL}/{id}/claim")]
        );
        assert!(view.attrs("form#release", "id").is_empty());
        let mut admin_pages = site.login("admin").await;
        let opened = admin_pages.get(&format!("{POOL}/{id}")).await;
        assert_eq!(
            opened.status,
            StatusCode::SEE_OTHER,
            "the admin gets the record page"
        );
        let mut sun = site.login("sun").await;
        assert_eq!(
            sun.get(&format!("{POOL}/{id}")).await.status,
            StatusCode::NOT_FOUND
        );

        let claimed = chen.post(&format!("{POOL}/{id}/claim"), &[]).await;
        assert_eq!(claimed.status, StatusCode::SEE_OTHER, "{}", claimed.html);
        let location = claimed.location.clone().unwrap();
        assert!(
            location.starts_with(&format!("/app/lead/{id}")),
            "{location}"
        );
        let record = chen.get(&location).await;
        assert_eq!(record.status, StatusCode::OK, "{}", record.html);
        record.assert_clean("the claimed lead");
        assert_eq!(
            record.attrs("#record-notice", "id").len(),
            1,
            "{}",
            record.html
        );
        let (_, lead) = api(&site, &admin, &format!("/records/lead/{id}")).await;
        let clear = lead["mobile"].as_str().unwrap();
        assert!(
            record
                .texts("[data-field=mobile] dd")
                .iter()
                .any(|text| text == clear),
            "the mobile in clear after the claim:\n{}",
            record.html
        );
        assert!(
            record.attrs("form#release", "id").len() == 1,
            "{}",
            record.html
        );
        let history = record.attrs("#pool-history tr.pool-event", "data-action");
        assert_eq!(history, vec!["claim"], "{}", record.html);

        // It left the pool, and it is in chen's "held by me" tab with the time left.
        let pool = chen.get(POOL).await;
        assert!(!listed(&pool).contains(&id));
        let held = chen.get(&format!("{POOL}?held=true")).await;
        held.assert_clean("held by me");
        assert_eq!(listed(&held), vec![id.clone()], "{}", held.html);
        assert_eq!(held.texts(".time-left").len(), 1, "{}", held.html);
    }
);

keel_testkit::db_test!(
    a_claim_someone_else_won_is_refused_in_the_users_language,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut chen = site.login("chen").await;
        let mut zhou = site.login("zhou").await;
        let pool = chen.get(POOL).await;
        let id = listed(&pool)[0].clone();
        zhou.get(POOL).await;
        let won = chen.post(&format!("{POOL}/{id}/claim"), &[]).await;
        assert_eq!(won.status, StatusCode::SEE_OTHER, "{}", won.html);
        // zhou's page still offers it; his claim comes second.
        let lost = zhou.post(&format!("{POOL}/{id}/claim"), &[]).await;
        assert_eq!(lost.status, StatusCode::CONFLICT, "{}", lost.html);
        lost.assert_clean("a refused claim");
        assert_eq!(
            lost.attrs("#pool-refused", "data-code"),
            vec!["taken"],
            "{}",
            lost.html
        );
        // zhou speaks English (seed/users.csv).
        assert!(
            lost.texts("#pool-refused p")[0].contains("Someone else claimed"),
            "{}",
            lost.html
        );
    }
);

keel_testkit::db_test!(
    a_manager_assigns_one_record_and_then_two_at_once_to_reps,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut li = site.login("li").await;
        let mut chen = site.login("chen").await;
        let pool = li.get(POOL).await;
        assert_eq!(pool.status, StatusCode::OK, "{}", pool.html);
        pool.assert_clean("the pool for a manager");
        assert_eq!(pool.attrs("form#bulk-assign", "id").len(), 1);
        let ids = listed(&pool);
        assert_eq!(pool.attrs("input[name=ids]", "value"), ids);
        let chen_id = option_value(&pool, "#bulk-user", "陈晨");
        let liu_id = option_value(&pool, "#bulk-user", "刘洋");

        let assigned = li
            .post(&format!("{POOL}/{}/assign", ids[0]), &[("user", &chen_id)])
            .await;
        assert_eq!(assigned.status, StatusCode::SEE_OTHER, "{}", assigned.html);
        let back = li.get(assigned.location.as_deref().unwrap()).await;
        back.assert_clean("after an assignment");
        assert_eq!(back.attrs("#pool-notice", "id").len(), 1, "{}", back.html);
        assert!(!listed(&back).contains(&ids[0]));
        let held = chen.get(&format!("{POOL}?held=true")).await;
        assert_eq!(listed(&held), vec![ids[0].clone()], "{}", held.html);

        let bulk = li
            .post(
                &format!("{POOL}/assign"),
                &[("ids", &ids[1]), ("ids", &ids[2]), ("user", &liu_id)],
            )
            .await;
        assert_eq!(bulk.status, StatusCode::SEE_OTHER, "{}", bulk.html);
        let back = li.get(bulk.location.as_deref().unwrap()).await;
        let left = listed(&back);
        assert!(
            !left.contains(&ids[1]) && !left.contains(&ids[2]),
            "{left:?}"
        );
        assert_eq!(left.len(), ids.len() - 3);
        // The team tab of the manager shows all three with their holders.
        let team = li.get(&format!("{POOL}?held=true")).await;
        team.assert_clean("held by my team");
        let mut held = listed(&team);
        held.sort();
        let mut expected = ids[..3].to_vec();
        expected.sort();
        assert_eq!(held, expected, "{}", team.html);

        // Nothing ticked: the pool page again, saying so; nothing assigned.
        let none = li
            .post(&format!("{POOL}/assign"), &[("user", &liu_id)])
            .await;
        assert_eq!(
            none.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            none.html
        );
        none.assert_clean("a bulk assignment of nothing");
        assert_eq!(none.attrs("#pool-refused", "id").len(), 1);

        // A rep may not assign.
        chen.get(POOL).await;
        let refused = chen
            .post(&format!("{POOL}/{}/assign", ids[3]), &[("user", &chen_id)])
            .await;
        assert!(
            refused.status == StatusCode::FORBIDDEN || refused.status == StatusCode::NOT_FOUND,
            "{}: {}",
            refused.status,
            refused.html
        );
        let pool = li.get(POOL).await;
        assert!(listed(&pool).contains(&ids[3]));
    }
);

keel_testkit::db_test!(
    a_release_without_a_listed_reason_keeps_the_dialog_open_and_a_good_one_returns_the_lead,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut chen = site.login("chen").await;
        let pool = chen.get(POOL).await;
        let id = listed(&pool)[0].clone();
        let claimed = chen.post(&format!("{POOL}/{id}/claim"), &[]).await;
        assert_eq!(claimed.status, StatusCode::SEE_OTHER, "{}", claimed.html);
        let record_url = format!("/app/lead/{id}");
        let record = chen.get(&record_url).await;
        let reasons = record.attrs("form#release select[name=reason] option", "value");
        assert_eq!(
            reasons,
            vec!["", "no_need", "unreachable", "duplicate", "other"],
            "{}",
            record.html
        );
        assert!(
            record
                .texts("form#release select[name=reason] option")
                .contains(&"联系不上".to_owned()),
            "the reasons are translated"
        );

        let bad = chen
            .post(
                &format!("{record_url}/release"),
                &[("reason", "bored"), ("note", "不想跟了")],
            )
            .await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.html);
        bad.assert_clean("a release with a bad reason");
        assert_eq!(
            bad.attrs("details#release-dialog[open]", "id").len(),
            1,
            "{}",
            bad.html
        );
        assert_eq!(bad.texts("#error-reason").len(), 1);
        assert_eq!(
            bad.texts("#release-note"),
            vec!["不想跟了"],
            "the note is kept"
        );
        // Nothing changed: still chen's.
        let pool = chen.get(POOL).await;
        assert!(!listed(&pool).contains(&id));

        let good = chen
            .post(
                &format!("{record_url}/release"),
                &[("reason", "unreachable"), ("note", "电话一直没人接")],
            )
            .await;
        assert_eq!(good.status, StatusCode::SEE_OTHER, "{}", good.html);
        let pool = chen.get(POOL).await;
        assert!(listed(&pool).contains(&id), "back in the pool");

        // The admin reads the whole pool history on the record page.
        let mut admin = site.login("admin").await;
        let record = admin.get(&record_url).await;
        record.assert_clean("the record page of a lead back in the pool");
        assert_eq!(
            record.attrs("#pool-history tr.pool-event", "data-action"),
            vec!["release", "claim"],
            "{}",
            record.html
        );
        let release = record.texts("#pool-history tr.pool-event[data-action=release]");
        assert!(
            release[0].contains("陈晨") && release[0].contains("电话一直没人接"),
            "{release:?}"
        );
        assert_eq!(record.attrs("#pool-actions form.claim", "action").len(), 1);
    }
);

keel_testkit::db_test!(
    a_manager_moves_a_held_account_into_the_customer_pool,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut li = site.login("li").await;
        let token = li.token().unwrap().to_owned();
        // An account of chen's (li's report) that sits in no pool.
        let (status, accounts) = send_json(
            reqwest::Client::new()
                .get(format!(
                    "{}/api/v1/records/account?limit=100",
                    site.base_url()
                ))
                .bearer_auth(&token),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{accounts}");
        let account = accounts["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|account| {
                account["_refs"]["owner"]["title"] == "陈晨" && account["pool"].is_null()
            })
            .expect("an account of chen's")
            .clone();
        let id = account["id"].as_str().unwrap();
        let record = li.get(&format!("/app/account/{id}")).await;
        assert_eq!(record.status, StatusCode::OK, "{}", record.html);
        record.assert_clean("an account for its owner's manager");
        assert_eq!(
            record.attrs("form#move-to-pool select[name=pool] option", "value"),
            vec!["customer_pool"]
        );
        let moved = li
            .post(
                &format!("/app/account/{id}/pool"),
                &[("pool", "customer_pool")],
            )
            .await;
        assert_eq!(moved.status, StatusCode::SEE_OTHER, "{}", moved.html);
        let pool = li.get("/app/pools/customer_pool").await;
        assert!(listed(&pool).contains(&id.to_owned()), "{}", pool.html);
    }
);
