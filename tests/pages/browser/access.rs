//! What a rep may not see: another rep's lead is the 404 page, and masked values look
//! masked exactly where the API masks them.

use reqwest::Method;

use crate::pages::Site;
use crate::pages::browser::{Chrome, api, api_token};

keel_testkit::db_test!(
    a_rep_gets_the_404_page_for_another_reps_lead_and_sees_phones_masked_where_the_api_masks_them,
    |db| async move {
        let Some(chrome) = Chrome::start(db.backend).await else {
            return;
        };
        let site = Site::standard(&db.url);
        // A lead of liu's (a rep in chen's department; reps read their own leads only).
        let liu = api_token(&site, "liu").await;
        let (status, leads) = api(&site, &liu, Method::GET, "/records/lead?limit=1", None).await;
        assert_eq!(status, 200, "{leads}");
        let lead = leads["data"][0]["id"].as_str().unwrap().to_owned();
        let lead_name = leads["data"][0]["name"].as_str().unwrap().to_owned();

        let chen = chrome.browser(site.base_url(), "zh-CN").await;
        chen.sign_in_home("chen").await;
        chen.open(&format!("/app/lead/{lead}")).await;
        assert_eq!(chen.text("h1").await, "页面不存在");
        assert!(
            !chen.has("h1#record-title").await,
            "nothing of the lead shows"
        );
        assert!(
            !chen.source().await.contains(&lead_name),
            "not even its name"
        );

        // An account of liu's: chen reads his department's accounts, but may not unmask
        // their phones.
        let chen_token = api_token(&site, "chen").await;
        let (status, accounts) = api(
            &site,
            &chen_token,
            Method::GET,
            "/records/account?limit=100",
            None,
        )
        .await;
        assert_eq!(status, 200, "{accounts}");
        let masked = accounts["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|account| account["phone"].as_str().is_some_and(|p| p.contains('*')))
            .unwrap_or_else(|| panic!("an account chen sees masked: {accounts}"));
        let own = accounts["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|account| account["phone"].as_str().is_some_and(|p| !p.contains('*')))
            .unwrap_or_else(|| panic!("an account of chen's own: {accounts}"));

        chen.open(&format!("/app/account/{}", masked["id"].as_str().unwrap()))
            .await;
        chen.wait_for("h1#record-title").await;
        assert_eq!(
            chen.text("[data-field=phone] .value.masked").await,
            masked["phone"].as_str().unwrap(),
            "the page masks the phone as the API does"
        );
        // The real number (as the admin reads it) is nowhere in the page.
        let admin = api_token(&site, "admin").await;
        let path = format!("/records/account/{}", masked["id"].as_str().unwrap());
        let (status, real) = api(&site, &admin, Method::GET, &path, None).await;
        assert_eq!(status, 200, "{real}");
        let real_phone = real["phone"].as_str().unwrap();
        assert!(!real_phone.contains('*'), "{real}");
        assert!(
            !chen.source().await.contains(real_phone),
            "the hidden digits are nowhere in the page"
        );

        chen.open(&format!("/app/account/{}", own["id"].as_str().unwrap()))
            .await;
        chen.wait_for("h1#record-title").await;
        assert_eq!(
            chen.text("[data-field=phone] .value").await,
            own["phone"].as_str().unwrap()
        );
        assert!(!chen.has("[data-field=phone] .value.masked").await);
    }
);
