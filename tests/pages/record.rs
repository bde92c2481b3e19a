//! The record page `/app/{object}/{id}`: sections and labels in both languages, lookups as
//! links, masking as the API masks, history, related lists, duplicates, delete to the
//! recycle bin and restore, recently viewed on the home page, and 404 pages for what a user
//! may not see.

use reqwest::StatusCode;
use serde_json::{Value as Json, json};

use crate::pages::{Session, Site};

/// The API as the session's user (the same session token, as a bearer).
struct Api<'a> {
    base_url: &'a str,
    token: String,
    client: reqwest::Client,
}

impl<'a> Api<'a> {
    fn of(site: &'a Site, session: &Session) -> Api<'a> {
        Api {
            base_url: site.base_url(),
            token: session.token().unwrap().to_owned(),
            client: reqwest::Client::new(),
        }
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Json>) -> Json {
        let mut request = self
            .client
            .request(method.clone(), format!("{}/api/v1{path}", self.base_url))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Json::Null)
    }

    async fn get(&self, path: &str) -> Json {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Json) -> Json {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn patch(&self, path: &str, body: Json) -> Json {
        self.send(reqwest::Method::PATCH, path, Some(body)).await
    }

    /// The id of the first record of `object` that `q` finds.
    async fn find(&self, object: &str, q: &str) -> String {
        let page = self
            .get(&format!("/records/{object}?q={}", urlencode(q)))
            .await;
        page["data"][0]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no {object} matching {q}: {page}"))
            .to_owned()
    }
}

/// Raw requests that carry the `keel_recent` cookie along with the session.
struct Browser<'a> {
    base_url: &'a str,
    token: String,
    client: reqwest::Client,
}

impl<'a> Browser<'a> {
    fn of(site: &'a Site, session: &Session) -> Browser<'a> {
        Browser {
            base_url: site.base_url(),
            token: session.token().unwrap().to_owned(),
            client: reqwest::Client::new(),
        }
    }

    async fn send(&self, path: &str, recent: &str) -> reqwest::Response {
        let mut cookie = format!("keel_session={}", self.token);
        if !recent.is_empty() {
            cookie.push_str(&format!("; keel_recent={recent}"));
        }
        self.client
            .get(format!("{}{path}", self.base_url))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap()
    }

    /// Opens a record page with the cookie `recent`: the `Set-Cookie` of `keel_recent`.
    async fn visit(&self, path: &str, recent: &str) -> String {
        let response = self.send(path, recent).await;
        assert_eq!(response.status(), StatusCode::OK);
        response
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .find(|value| value.starts_with("keel_recent="))
            .unwrap()
            .to_owned()
    }

    async fn home(&self, recent: &str) -> crate::pages::Page {
        let response = self.send("/", recent).await;
        crate::pages::Page {
            status: response.status(),
            location: None,
            html: response.text().await.unwrap(),
        }
    }
}

/// The value of a `Set-Cookie` header.
fn cookie_value(set_cookie: &str) -> &str {
    let pair = set_cookie.split(';').next().unwrap();
    pair.split_once('=').unwrap().1
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

keel_testkit::db_test!(
    a_rep_sees_their_lead_in_sections_with_links_history_duplicates_and_it_is_recent_on_home,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut chen = site.login("chen").await;
        let api = Api::of(&site, &chen);
        let lead = api.find("lead", "张伟").await;
        let account = api.find("account", "上海东方航运").await;
        api.patch(
            &format!("/records/lead/{lead}"),
            json!({ "account": account, "status": "qualified" }),
        )
        .await;

        let page = chen.get(&format!("/app/lead/{lead}")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.html);
        page.assert_clean("lead page (zh)");
        assert_eq!(page.texts("h1#record-title"), vec!["张伟"]);
        let sections = page.texts(".layout-section h2");
        assert_eq!(sections, vec!["基本信息", "资格", "跟进"]);
        assert_eq!(page.texts(".fields [data-field=name] dt"), vec!["姓名"]);
        assert_eq!(page.texts(".fields [data-field=name] .value"), vec!["张伟"]);
        assert_eq!(
            page.texts(".fields [data-field=status] .value"),
            vec!["合格"]
        );
        assert_eq!(
            page.attrs(".fields [data-field=account] .value a", "href"),
            vec![format!("/app/account/{account}")]
        );
        assert_eq!(
            page.texts(".fields [data-field=account] .value"),
            vec!["上海东方航运集团有限公司"]
        );
        // Their own lead: the phone is in clear, as the API gives it to them.
        let record = api.get(&format!("/records/lead/{lead}")).await;
        assert_eq!(
            page.texts(".fields [data-field=phone] .value"),
            vec![record["phone"].as_str().unwrap()]
        );
        assert!(
            page.attrs(".fields [data-field=phone] .value.masked", "class")
                .is_empty()
        );
        // Key fields in the header: owner and the first choice field of the layout.
        assert_eq!(
            page.texts(".key-fields [data-field=owner] .value"),
            vec!["陈晨"]
        );
        assert_eq!(
            page.texts(".key-fields [data-field=source] .value"),
            vec!["官网"]
        );
        // A rep may edit their lead but not delete it.
        assert_eq!(
            page.attrs("a#edit-record", "href"),
            vec![format!("/app/lead/{lead}/edit")]
        );
        assert!(page.attrs("form#delete-record", "action").is_empty());
        // History: old → new with the choice labels, who made it.
        let update = "#history tr.change[data-field=status][data-action=update]";
        assert_eq!(page.texts(&format!("{update} .old")), vec!["已联系"]);
        assert_eq!(page.texts(&format!("{update} .new")), vec!["合格"]);
        assert!(page.texts(update)[0].contains("陈晨"));
        // The creation is one row, not one per field it set.
        assert_eq!(
            page.attrs("#history tr.change[data-action=create]", "data-action")
                .len(),
            1
        );
        // A lookup change names the account and links to it.
        let account_change = "#history tr.change[data-field=account][data-action=update] .new a";
        assert_eq!(
            page.attrs(account_change, "href"),
            vec![format!("/app/account/{account}")]
        );
        assert_eq!(page.texts(account_change), vec!["上海东方航运集团有限公司"]);
        // No duplicates yet.
        assert!(page.texts("#duplicates").is_empty());

        // The same name and company (a `warn` duplicate key) by chen and by liu.
        let twin = api
            .post(
                "/records/lead",
                json!({ "name": "张伟", "company": "上海云帆信息科技有限公司" }),
            )
            .await;
        let twin_id = twin["id"].as_str().unwrap().to_owned();
        let mut liu = site.login("liu").await;
        let liu_twin = Api::of(&site, &liu)
            .post(
                "/records/lead",
                json!({ "name": "张伟", "company": "上海云帆信息科技有限公司" }),
            )
            .await;
        let liu_lead = liu_twin["id"].as_str().unwrap().to_owned();
        let page = chen.get(&format!("/app/lead/{lead}")).await;
        page.assert_clean("lead page with duplicates");
        assert!(page.texts("#duplicates strong")[0].contains("可能重复"));
        // chen's own twin is a link; liu's shows only what the API reveals (masked, owner).
        assert_eq!(
            page.attrs("#duplicates a", "href"),
            vec![format!("/app/lead/{twin_id}")]
        );
        let unlinked = page.texts("#duplicates li .masked");
        assert_eq!(unlinked.len(), 1, "{}", page.html);
        assert_ne!(unlinked[0], "张伟");
        assert!(
            page.texts("#duplicates li")
                .iter()
                .any(|li| li.contains("刘洋"))
        );

        // English, for a rep whose setting is English (zhou).
        let mut zhou = site.login("zhou").await;
        let zhou_api = Api::of(&site, &zhou);
        let theirs = zhou_api.find("lead", "朱琳").await;
        let page = zhou.get(&format!("/app/lead/{theirs}")).await;
        page.assert_clean("lead page (en)");
        assert_eq!(
            page.texts(".layout-section h2"),
            vec!["Basic", "Qualification", "Follow-up"]
        );
        assert_eq!(page.texts(".fields [data-field=name] dt"), vec!["Name"]);
        assert_eq!(page.texts("#history-title"), vec!["History"]);

        // The home page lists what this browser viewed, newest first, through the
        // `keel_recent` cookie (`Session` keeps only the session cookie, so it is carried
        // by hand here); a record the user can no longer see is left out.
        let browser = Browser::of(&site, &chen);
        let first = browser.visit(&format!("/app/lead/{twin_id}"), "").await;
        assert!(
            first.contains("HttpOnly") && first.contains("SameSite=Lax"),
            "{first}"
        );
        assert!(first.contains("Path=/;"), "{first}");
        let second = browser
            .visit(&format!("/app/lead/{lead}"), cookie_value(&first))
            .await;
        let recent = format!("{}|lead:{liu_lead}", cookie_value(&second));
        let home = browser.home(&recent).await;
        home.assert_clean("home with recent records");
        assert_eq!(
            home.attrs("#recent a", "href"),
            vec![format!("/app/lead/{lead}"), format!("/app/lead/{twin_id}")]
        );
        assert_eq!(home.texts("#recent a"), vec!["张伟", "张伟"]);
        // What chen changed lately: the twin he created, then the lead he edited.
        assert_eq!(
            home.attrs("#changed a", "href"),
            vec![format!("/app/lead/{twin_id}"), format!("/app/lead/{lead}")]
        );
        let other_home = liu.get("/").await;
        other_home.assert_clean("another user's home");
        assert!(other_home.attrs("#recent a", "href").is_empty());
        assert_eq!(other_home.attrs("#changed a", "href").len(), 1);
    }
);

keel_testkit::db_test!(
    what_a_user_may_not_see_is_a_404_page_and_masked_values_look_as_the_api_masks_them,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut admin = site.login("admin").await;
        let admin_api = Api::of(&site, &admin);
        let liu_lead = admin_api.find("lead", "王芳").await;
        let liu_account = admin_api.find("account", "杭州数智云").await;
        let mut chen = site.login("chen").await;
        for path in [
            format!("/app/lead/{liu_lead}"),
            "/app/lead/not-a-real-id".to_owned(),
            "/app/lead/%27%3B--".to_owned(),
            "/app/nosuchobject/123".to_owned(),
            "/app/nosuchobject/deleted".to_owned(),
        ] {
            let page = chen.get(&path).await;
            assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}: {}", page.html);
            page.assert_clean(&path);
            assert!(page.texts("h1#record-title").is_empty());
        }
        // liu's account is in chen's department: readable, with the phone masked for chen
        // exactly as the API masks it for him.
        let api = Api::of(&site, &chen);
        let record = api.get(&format!("/records/account/{liu_account}")).await;
        let masked_phone = record["phone"].as_str().unwrap().to_owned();
        assert!(masked_phone.contains('*'), "{masked_phone}");
        let page = chen.get(&format!("/app/account/{liu_account}")).await;
        assert_eq!(page.status, StatusCode::OK);
        page.assert_clean("a colleague's account");
        assert_eq!(
            page.texts(".fields [data-field=phone] .value.masked"),
            vec![masked_phone]
        );
        assert!(page.texts(".fields [data-field=phone] .mask-hint")[0].contains("号码已隐藏"));
        assert!(page.attrs("a#edit-record", "href").is_empty());
        // The admin sees it in clear.
        let clear = admin_api
            .get(&format!("/records/account/{liu_account}"))
            .await;
        let page = admin.get(&format!("/app/account/{liu_account}")).await;
        page.assert_clean("the account for the admin");
        assert_eq!(
            page.texts(".fields [data-field=phone] .value"),
            vec![clear["phone"].as_str().unwrap()]
        );
        assert!(
            page.texts(".fields [data-field=phone] .value.masked")
                .is_empty()
        );
    }
);

keel_testkit::db_test!(
    an_account_lists_its_contacts_and_opportunities_with_see_all_and_new_links,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut chen = site.login("chen").await;
        let api = Api::of(&site, &chen);
        let account = api.find("account", "上海东方航运").await;
        let contact = api
            .post(
                "/records/contact",
                json!({ "name": "林海", "account": account }),
            )
            .await;
        let contact_id = contact["id"].as_str().unwrap().to_owned();
        let opportunity = api
            .post(
                "/records/opportunity",
                json!({ "name": "续约 2027", "account": account }),
            )
            .await;
        let opportunity_id = opportunity["id"].as_str().unwrap().to_owned();

        let page = chen.get(&format!("/app/account/{account}")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.html);
        page.assert_clean("account with related lists");
        let contacts = "section.related[data-object=contact][data-field=account]";
        assert_eq!(
            page.attrs(&format!("{contacts} tr[data-id] td a"), "href")[0],
            format!("/app/contact/{contact_id}")
        );
        assert!(
            page.texts(&format!("{contacts} tbody"))
                .join(" ")
                .contains("林海")
        );
        assert_eq!(
            page.attrs(&format!("{contacts} a.see-all"), "href"),
            vec![format!("/app/contact?account=eq.{account}")]
        );
        assert_eq!(
            page.attrs(&format!("{contacts} a.button"), "href"),
            vec![format!("/app/contact/new?account={account}")]
        );
        let opportunities = "section.related[data-object=opportunity][data-field=account]";
        assert_eq!(
            page.attrs(&format!("{opportunities} tr[data-id]"), "data-id"),
            vec![opportunity_id]
        );
        // Leads look up to accounts too (the converted-to account).
        assert_eq!(
            page.attrs("section.related[data-object=lead]", "data-field"),
            vec!["account"]
        );
    }
);

keel_testkit::db_test!(
    a_deleted_record_leaves_the_list_is_a_404_and_comes_back_from_the_recycle_bin,
    |db| async move {
        let site = Site::standard(&db.url);
        // Sales managers may delete their own leads.
        let mut li = site.login("li").await;
        let api = Api::of(&site, &li);
        let lead = api.find("lead", "李强").await;
        let page = li.get(&format!("/app/lead/{lead}")).await;
        page.assert_clean("li's lead");
        assert_eq!(
            page.attrs("form#delete-record", "action"),
            vec![format!("/app/lead/{lead}/delete")]
        );
        assert!(!page.attrs("form#delete-record", "data-confirm")[0].is_empty());
        let deleted = li.post(&format!("/app/lead/{lead}/delete"), &[]).await;
        assert_eq!(deleted.status, StatusCode::SEE_OTHER, "{}", deleted.html);
        assert_eq!(deleted.location.as_deref(), Some("/app/lead"));
        // The list it lands on offers to undo the delete.
        let list_page = li.get("/app/lead").await;
        list_page.assert_clean("the list after a delete");
        assert_eq!(
            list_page.attrs("#undo-delete form", "action"),
            vec![format!("/app/lead/{lead}/restore")]
        );
        let gone = li.get(&format!("/app/lead/{lead}")).await;
        assert_eq!(gone.status, StatusCode::NOT_FOUND);
        gone.assert_clean("a deleted record");
        let list = api.get("/records/lead?limit=500").await;
        assert!(
            list["data"]
                .as_array()
                .unwrap()
                .iter()
                .all(|record| record["id"] != lead.as_str())
        );
        // The admin cannot open it either: the recycle bin is where it is.
        let mut admin = site.login("admin").await;
        assert_eq!(
            admin.get(&format!("/app/lead/{lead}")).await.status,
            StatusCode::NOT_FOUND
        );

        let bin = li.get("/app/lead/deleted").await;
        assert_eq!(bin.status, StatusCode::OK);
        bin.assert_clean("recycle bin");
        assert_eq!(
            bin.attrs("#deleted-records tr[data-id]", "data-id"),
            vec![lead.clone()]
        );
        assert!(bin.texts("#deleted-records tr[data-id]")[0].contains("李强"));
        // Another rep's recycle bin does not show it.
        let mut chen = site.login("chen").await;
        let other_bin = chen.get("/app/lead/deleted").await;
        other_bin.assert_clean("another recycle bin");
        assert!(other_bin.attrs("tr[data-id]", "data-id").is_empty());

        let restored = li.post(&format!("/app/lead/{lead}/restore"), &[]).await;
        assert_eq!(restored.status, StatusCode::SEE_OTHER, "{}", restored.html);
        let back = li.get(restored.location.as_deref().unwrap()).await;
        assert_eq!(back.status, StatusCode::OK);
        back.assert_clean("restored record");
        assert_eq!(back.texts("h1#record-title"), vec!["李强"]);
        assert_eq!(back.texts("#record-notice").len(), 1);
        assert!(
            back.attrs("#history tr.change", "data-action")
                .iter()
                .any(|action| action == "restore")
        );
        api.get(&format!("/records/lead/{lead}")).await;
        // Posting a delete without the form's token changes nothing.
        let forged = li
            .post_plain(&format!("/app/lead/{lead}/delete"), &[])
            .await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN);
        api.get(&format!("/records/lead/{lead}")).await;
        // A rep may not delete a lead: refused, and the lead stays.
        let chen_lead = Api::of(&site, &chen).find("lead", "张伟").await;
        chen.get(&format!("/app/lead/{chen_lead}")).await;
        let refused = chen
            .post(&format!("/app/lead/{chen_lead}/delete"), &[])
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.html);
        refused.assert_clean("refused delete");
        assert_eq!(
            chen.get(&format!("/app/lead/{chen_lead}")).await.status,
            StatusCode::OK
        );
    }
);

keel_testkit::db_test!(
    the_first_record_of_every_object_renders_clean_for_the_admin_and_a_rep,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut admin = site.login("admin").await;
        let admin_api = Api::of(&site, &admin);
        let mut chen = site.login("chen").await;
        let objects = admin_api.get("/meta/objects").await;
        let names: Vec<String> = objects["data"]
            .as_array()
            .or_else(|| objects.as_array())
            .into_iter()
            .flatten()
            .filter_map(|object| object["name"].as_str().map(str::to_owned))
            .collect();
        assert!(names.len() >= 10, "{objects}");
        let mut opened = 0;
        for name in &names {
            let page = admin_api.get(&format!("/records/{name}?limit=1")).await;
            let Some(id) = page["data"][0]["id"].as_str() else {
                continue;
            };
            opened += 1;
            let path = format!("/app/{name}/{id}");
            let page = admin.get(&path).await;
            assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.html);
            page.assert_clean(&path);
            assert_eq!(page.texts("h1#record-title").len(), 1);
            let page = chen.get(&path).await;
            assert!(
                page.status == StatusCode::OK || page.status == StatusCode::NOT_FOUND,
                "{path} for a rep: {}",
                page.status
            );
            page.assert_clean(&path);
            let bin = admin.get(&format!("/app/{name}/deleted")).await;
            assert_eq!(bin.status, StatusCode::OK);
            bin.assert_clean("recycle bin");
        }
        assert!(
            opened >= 3,
            "the demo data has leads, accounts and products"
        );
    }
);

keel_testkit::db_test!(
    a_delete_refused_by_referring_records_shows_the_record_again_naming_them,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut li = site.login("li").await;
        let api = Api::of(&site, &li);
        let account = api.find("account", "苏州华星电子").await;
        let deal = api
            .post(
                "/records/opportunity",
                json!({ "name": "扩容项目", "account": account }),
            )
            .await;
        let deal_id = deal["id"].as_str().unwrap().to_owned();
        let page = li.get(&format!("/app/account/{account}")).await;
        assert_eq!(page.attrs("form#delete-record", "id").len(), 1);
        let refused = li
            .post(&format!("/app/account/{account}/delete"), &[])
            .await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.html);
        refused.assert_clean("refused delete");
        assert_eq!(
            refused.texts("h1#record-title"),
            vec!["苏州华星电子股份有限公司"]
        );
        assert!(refused.texts("#delete-refused strong")[0].contains("无法删除"));
        assert_eq!(
            refused.attrs("#delete-refused a", "href"),
            vec![format!("/app/opportunity/{deal_id}")]
        );
        api.get(&format!("/records/account/{account}")).await;
    }
);
