//! The sales-process pages over real HTTP (docs/ui.md, "Sales processes"): the kanban of a
//! process object (`/app/opportunity?view=kanban`), with a column per stage, its count and
//! amount, cards that link to their records and carry a move form, and the viewer's scope
//! (a rep sees their own deals, their manager the team's, another team's rep none).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::pages::{Page, Session, Site};
use crate::support::send_json;

const KANBAN: &str = "/app/opportunity?view=kanban";

/// `method /api/v1{path}` as `session`'s user → (status, JSON body).
async fn api(
    site: &Site,
    session: &Session,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}/api/v1{path}", site.base_url()))
        .bearer_auth(session.token().unwrap());
    if let Some(body) = body {
        request = request.json(&body);
    }
    send_json(request).await
}

/// Creates an opportunity of `session`'s user on one of the accounts they may read.
async fn deal(site: &Site, session: &Session, name: &str, amount: &str) -> String {
    let (status, accounts) = api(
        site,
        session,
        reqwest::Method::GET,
        "/records/account?limit=1",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{accounts}");
    let account = accounts["data"][0]["id"].as_str().unwrap().to_owned();
    let (status, created) = api(
        site,
        session,
        reqwest::Method::POST,
        "/records/opportunity",
        Some(json!({"name": name, "account": account, "amount": amount})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

/// The card ids in the column of `stage`.
fn cards(page: &Page, stage: &str) -> Vec<String> {
    page.attrs(
        &format!(".kanban-column[data-stage={stage}] .kanban-card"),
        "data-id",
    )
}

keel_testkit::db_test!(
    the_kanban_shows_a_column_per_stage_with_its_count_and_amount_and_cards_that_move,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut chen = site.login("chen").await;
        let first = deal(&site, &chen, "看板商机一", "1000").await;
        let second = deal(&site, &chen, "看板商机二", "2500.50").await;

        // The list of a process object offers its kanban; the kanban is a clean page.
        let list = chen.get("/app/opportunity").await;
        assert_eq!(list.status, StatusCode::OK, "{}", list.html);
        assert_eq!(list.attrs("a#view-kanban", "href"), vec![KANBAN]);
        let board = chen.get(KANBAN).await;
        assert_eq!(board.status, StatusCode::OK, "{}", board.html);
        board.assert_clean(KANBAN);
        assert_eq!(
            board.attrs(".kanban-column", "data-stage"),
            vec![
                "qualification",
                "needs_analysis",
                "proposal",
                "negotiation",
                "won",
                "lost"
            ]
        );
        assert_eq!(
            board.texts(".kanban-column h2"),
            vec![
                "初步接洽",
                "需求确认",
                "方案报价",
                "商务谈判",
                "赢单",
                "输单"
            ]
        );
        let mut shown = cards(&board, "qualification");
        shown.sort();
        let mut made = vec![first.clone(), second.clone()];
        made.sort();
        assert_eq!(shown, made);
        assert_eq!(
            board.texts(".kanban-column[data-stage=qualification] .count"),
            vec!["2"]
        );
        assert_eq!(
            board.texts(".kanban-column[data-stage=qualification] .sum"),
            vec!["¥ 3,500.50"]
        );
        assert_eq!(
            board.texts(".kanban-column[data-stage=won] .count"),
            vec!["0"]
        );
        assert!(cards(&board, "won").is_empty());
        assert!(
            board
                .texts(&format!(".kanban-card[data-id='{first}'] .amount"))
                .contains(&"¥ 1,000.00".to_owned()),
            "{}",
            board.html
        );
        assert!(
            board
                .texts(&format!(".kanban-card[data-id='{first}'] .owner"))
                .contains(&"陈晨".to_owned()),
            "{}",
            board.html
        );
        // Each card links to its record and moves through a form to its transition route,
        // offering every other stage.
        assert_eq!(
            board.attrs(
                &format!(".kanban-card[data-id='{first}'] a.card-title"),
                "href"
            ),
            vec![format!("/app/opportunity/{first}")]
        );
        assert_eq!(
            board.attrs(
                &format!(".kanban-card[data-id='{first}'] form.move"),
                "action"
            ),
            vec![format!("/app/opportunity/{first}/transition")]
        );
        assert_eq!(
            board.attrs(
                &format!(".kanban-card[data-id='{first}'] form.move option"),
                "value"
            ),
            vec!["needs_analysis", "proposal", "negotiation", "won", "lost"]
        );
        assert!(board.csrf().is_some());

        // A search narrows the board.
        let narrowed = chen
            .get("/app/opportunity?view=kanban&q=%E7%9C%8B%E6%9D%BF%E5%95%86%E6%9C%BA%E4%BA%8C")
            .await;
        assert_eq!(cards(&narrowed, "qualification"), vec![second.clone()]);

        // The manager sees the team's deals; a rep of another team sees none of them.
        let mut li = site.login("li").await;
        let team = li.get(KANBAN).await;
        assert!(cards(&team, "qualification").contains(&first));
        let mut huang = site.login("huang").await;
        let other = huang.get(KANBAN).await;
        assert_eq!(other.status, StatusCode::OK);
        assert!(!cards(&other, "qualification").contains(&first));

        // An object no process owns has no kanban: the view is its list.
        let leads = chen.get("/app/lead?view=kanban").await;
        assert_eq!(leads.status, StatusCode::OK, "{}", leads.html);
        assert!(leads.attrs(".kanban", "id").is_empty());
        assert!(!leads.attrs("table#records", "id").is_empty());
        assert!(leads.attrs("a#view-kanban", "href").is_empty());
    }
);

keel_testkit::db_test!(
    the_record_page_of_a_process_object_shows_the_stage_path_with_a_button_per_allowed_move,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut chen = site.login("chen").await;
        let id = deal(&site, &chen, "路径商机", "800").await;
        let path = format!("/app/opportunity/{id}");
        let page = chen.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.html);
        page.assert_clean(&path);
        assert_eq!(
            page.attrs("#stage-path .step", "data-stage"),
            vec![
                "qualification",
                "needs_analysis",
                "proposal",
                "negotiation",
                "won",
                "lost"
            ]
        );
        assert_eq!(
            page.attrs("#stage-path .step[aria-current=step]", "data-stage"),
            vec!["qualification"]
        );
        assert_eq!(
            page.attrs("#transition-form", "action"),
            vec![format!("/app/opportunity/{id}/transition")]
        );
        // The moves the process allows from the first stage: the next one, and lost.
        assert_eq!(
            page.attrs("#transition-form button[name=to]", "value"),
            vec!["needs_analysis", "lost"]
        );
        assert_eq!(
            page.attrs("#stage-path .step.outcome-won", "data-stage"),
            vec!["won"]
        );

        // An object no process owns has no path.
        let (_, leads) = api(
            &site,
            &chen,
            reqwest::Method::GET,
            "/records/lead?limit=1",
            None,
        )
        .await;
        let lead = leads["data"][0]["id"].as_str().unwrap().to_owned();
        let page = chen.get(&format!("/app/lead/{lead}")).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.attrs("#stage-path", "id").is_empty());
    }
);

keel_testkit::db_test!(
    the_funnel_page_draws_the_funnel_beside_its_table_under_the_viewers_scope,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut chen = site.login("chen").await;
        deal(&site, &chen, "漏斗商机一", "1000").await;
        deal(&site, &chen, "漏斗商机二", "500").await;
        let home = chen.get("/").await;
        assert_eq!(
            home.attrs("nav.sidenav a[href='/app/reports/funnel']", "href")
                .len(),
            1,
            "{}",
            home.html
        );
        let page = chen.get("/app/reports/funnel").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.html);
        page.assert_clean("/app/reports/funnel");
        assert_eq!(
            page.attrs("#funnel-stages tbody tr", "data-stage"),
            vec![
                "qualification",
                "needs_analysis",
                "proposal",
                "negotiation",
                "won",
                "lost"
            ]
        );
        assert_eq!(
            page.texts("#funnel-stages tr[data-stage=qualification] .reached"),
            vec!["2"]
        );
        assert_eq!(
            page.texts("#funnel-stages tr[data-stage=qualification] .amount"),
            vec!["¥ 1,500.00"]
        );
        assert_eq!(
            page.attrs("#funnel-chart svg g.funnel-bar", "data-value")
                .len(),
            6
        );
        assert_eq!(
            page.attrs("#funnel-chart svg g.funnel-bar", "data-value")[0],
            "2"
        );
        // A rep picks no owner; their manager may pick anyone of the team, and sees the
        // team's deals.
        assert!(page.attrs("#funnel-owner", "id").is_empty());
        let mut li = site.login("li").await;
        let team = li.get("/app/reports/funnel").await;
        assert_eq!(team.status, StatusCode::OK, "{}", team.html);
        let owners = team.texts("#funnel-owner option");
        assert!(owners.contains(&"陈晨".to_owned()), "{owners:?}");
        assert!(!owners.contains(&"黄婷".to_owned()), "{owners:?}");
        let reached: u64 = team.texts("#funnel-stages tr[data-stage=qualification] .reached")[0]
            .parse()
            .unwrap();
        assert!(reached >= 2);
        // A bad date is the page again, saying what is wrong.
        let bad = chen.get("/app/reports/funnel?from=2026-13-40").await;
        assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.html);
        bad.assert_clean("bad funnel");
        assert_eq!(bad.attrs("#funnel-error", "id").len(), 1);
    }
);

keel_testkit::db_test!(
    the_calendar_shows_a_reps_entries_in_agenda_week_and_month_and_a_managers_team,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut chen = site.login("chen").await;
        // Today in the app's timezone, as the server sees it (its "today" link).
        let first = chen.get("/app/calendar").await;
        let today = first.attrs("#calendar-today", "href")[0]
            .split("date=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .to_owned();
        let due = format!("{today}T10:30:00+08:00");
        let (status, task) = api(
            &site,
            &chen,
            reqwest::Method::POST,
            "/records/task",
            Some(json!({"subject": "日历回访", "due_at": due})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{task}");
        let id = task["id"].as_str().unwrap().to_owned();
        let url = format!("/app/task/{id}");

        let home = chen.get("/").await;
        assert_eq!(
            home.attrs("nav.sidenav a[href='/app/calendar']", "href")
                .len(),
            1
        );
        // The agenda is the default view.
        let agenda = chen.get("/app/calendar").await;
        assert_eq!(agenda.status, StatusCode::OK, "{}", agenda.html);
        agenda.assert_clean("/app/calendar");
        assert_eq!(agenda.attrs("#calendar", "data-view"), vec!["agenda"]);
        assert!(
            agenda
                .attrs(&format!(".agenda-day[data-date='{today}'] a.entry"), "href")
                .contains(&url),
            "{}",
            agenda.html
        );
        assert!(
            agenda
                .texts(&format!(".agenda-day[data-date='{today}'] a.entry"))
                .iter()
                .any(|text| text.contains("10:30") && text.contains("日历回访"))
        );
        for view in ["week", "month"] {
            let path = format!("/app/calendar?view={view}&date={today}&scope=mine");
            let page = chen.get(&path).await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.html);
            page.assert_clean(&path);
            assert!(
                page.attrs(&format!("td[data-date='{today}'] a.entry"), "href")
                    .contains(&url),
                "{view}: {}",
                page.html
            );
            assert_eq!(page.texts("table.month-grid thead th").len(), 7);
        }
        // A rep has no team switch; the manager sees the team's entry, another team's
        // manager does not.
        assert!(agenda.attrs("#calendar-scope", "id").is_empty());
        let mut li = site.login("li").await;
        let mine = li.get("/app/calendar").await;
        assert!(!mine.attrs("a.entry", "href").contains(&url));
        let team = li
            .get(&format!(
                "/app/calendar?view=agenda&date={today}&scope=team"
            ))
            .await;
        assert_eq!(team.status, StatusCode::OK, "{}", team.html);
        assert!(
            team.attrs("a.entry", "href").contains(&url),
            "{}",
            team.html
        );
        let mut zhao = site.login("zhao").await;
        let other = zhao
            .get(&format!(
                "/app/calendar?view=agenda&date={today}&scope=team"
            ))
            .await;
        assert!(!other.attrs("a.entry", "href").contains(&url));
    }
);

keel_testkit::db_test!(
    the_home_page_shows_the_briefing_with_change_arrows_for_the_chosen_period,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut chen = site.login("chen").await;
        deal(&site, &chen, "简报商机一", "1200").await;
        deal(&site, &chen, "简报商机二", "300").await;
        let home = chen.get("/").await;
        assert_eq!(home.status, StatusCode::OK, "{}", home.html);
        home.assert_clean("/");
        assert_eq!(home.attrs("#briefing", "data-period"), vec!["week"]);
        let figure = |page: &Page, key: &str, part: &str| {
            page.texts(&format!("#briefing [data-figure={key}] .{part}"))
                .join("")
        };
        assert_eq!(figure(&home, "new_opportunities", "figure-value"), "2");
        assert_eq!(
            figure(&home, "new_opportunity_amount", "figure-value"),
            "¥ 1,500.00"
        );
        // Nothing last week: up, with the arrow, in the success colour.
        assert_eq!(
            home.attrs(
                "#briefing [data-figure=new_opportunities] .figure-change",
                "class"
            ),
            vec!["figure-change up"]
        );
        assert!(figure(&home, "new_opportunities", "figure-change").contains("▲"));
        assert!(figure(&home, "new_opportunities", "figure-change").contains("+2"));
        assert_eq!(
            home.attrs("#briefing-periods a", "data-period"),
            vec!["day", "week", "month"]
        );
        for period in ["day", "month"] {
            let page = chen.get(&format!("/?period={period}")).await;
            assert_eq!(page.status, StatusCode::OK);
            page.assert_clean(period);
            assert_eq!(page.attrs("#briefing", "data-period"), vec![period]);
            assert_eq!(figure(&page, "new_opportunities", "figure-value"), "2");
        }
        // Another team's rep counts none of chen's deals.
        let mut huang = site.login("huang").await;
        let theirs = huang.get("/").await;
        assert_eq!(figure(&theirs, "new_opportunities", "figure-value"), "0");
        assert_eq!(
            theirs.attrs(
                "#briefing [data-figure=new_opportunities] .figure-change",
                "class"
            ),
            vec!["figure-change flat"]
        );
    }
);

keel_testkit::db_test!(
    a_rep_moves_a_deal_through_the_kanban_fills_the_missing_fields_and_the_managers_approve_it_from_the_inbox,
    |db| async move {
        let site = Site::standard(&db.url);
        let mut chen = site.login("chen").await;
        let id = deal(&site, &chen, "推进商机", "5000").await;
        let record = format!("/app/opportunity/{id}");
        let transition = format!("{record}/transition");
        chen.get(KANBAN).await;

        // Needs analysis requires a budget and a decision maker: the move asks for both.
        let asked = chen
            .post(&transition, &[("to", "needs_analysis"), ("back", KANBAN)])
            .await;
        assert_eq!(asked.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", asked.html);
        asked.assert_clean("missing fields");
        assert_eq!(
            asked.attrs("#missing-form [data-field]", "data-field"),
            vec!["budget", "decision_maker"]
        );
        assert_eq!(asked.attrs("#missing-form input[name=to]", "value"), vec!["needs_analysis"]);
        let moved = chen
            .post(
                &transition,
                &[
                    ("to", "needs_analysis"),
                    ("back", KANBAN),
                    ("budget", "6000"),
                    ("decision_maker", "王总"),
                ],
            )
            .await;
        assert_eq!(moved.status, StatusCode::SEE_OTHER, "{}", moved.html);
        assert_eq!(
            moved.location.as_deref(),
            Some("/app/opportunity?view=kanban&moved=needs_analysis")
        );
        let board = chen.get(moved.location.as_deref().unwrap()).await;
        assert_eq!(board.status, StatusCode::OK, "{}", board.html);
        board.assert_clean("moved on the board");
        assert_eq!(board.attrs("#process-notice", "id").len(), 1);
        assert!(cards(&board, "needs_analysis").contains(&id), "{}", board.html);

        // Proposal needs a close date (the amount is there): only that is asked for.
        let asked = chen.post(&transition, &[("to", "proposal")]).await;
        assert_eq!(asked.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", asked.html);
        assert_eq!(
            asked.attrs("#missing-form [data-field]", "data-field"),
            vec!["close_date"]
        );
        let moved = chen
            .post(&transition, &[("to", "proposal"), ("close_date", "2027-03-31")])
            .await;
        assert_eq!(moved.status, StatusCode::SEE_OTHER, "{}", moved.html);
        assert_eq!(moved.location.as_deref(), Some(&*format!("{record}?moved=proposal")));

        // A discount above 15 % (set by the manager) makes negotiation wait for approval.
        let li = site.login("li").await;
        let (status, body) = api(
            &site,
            &li,
            reqwest::Method::PATCH,
            &format!("/records/opportunity/{id}"),
            Some(json!({"discount": 20})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let page = chen.get(&record).await;
        assert_eq!(
            page.attrs("#transition-form button[data-approval=true]", "value"),
            vec!["negotiation"]
        );
        let pending = chen
            .post(&transition, &[("to", "negotiation"), ("comment", "客户要求折扣")])
            .await;
        assert_eq!(pending.status, StatusCode::SEE_OTHER, "{}", pending.html);
        assert_eq!(
            pending.location.as_deref(),
            Some(&*format!("{record}?approval=pending"))
        );
        let page = chen.get(&format!("{record}?approval=pending")).await;
        page.assert_clean("pending record");
        assert_eq!(page.attrs("#approval-pending", "id").len(), 1, "{}", page.html);
        assert_eq!(page.attrs("#approval-pending form.recall", "action").len(), 1);
        assert!(page.attrs("#approval-pending form.approve", "action").is_empty());
        assert!(page.attrs("#transition-form button[name=to]", "value").is_empty());
        assert_eq!(
            page.attrs("#stage-path .step[aria-current=step]", "data-stage"),
            vec!["proposal"]
        );
        // The rep's own requests.
        let mine = chen.get("/app/approvals?tab=mine").await;
        mine.assert_clean("mine");
        assert_eq!(mine.attrs("#approval-list .approval", "data-state"), vec!["pending"]);

        // Step one: the owner's manager approves from the inbox; step two: the director.
        for (approver, comment) in [("li", "同意"), ("wang", "可以")] {
            let mut session = site.login(approver).await;
            let home = session.get("/").await;
            assert_eq!(
                home.attrs("nav.sidenav a[href='/app/approvals']", "href").len(),
                1
            );
            let inbox = session.get("/app/approvals").await;
            assert_eq!(inbox.status, StatusCode::OK, "{}", inbox.html);
            inbox.assert_clean(approver);
            let forms = inbox.attrs("#approval-list form.approve", "action");
            assert_eq!(forms.len(), 1, "{approver}: {}", inbox.html);
            let done = session
                .post(&forms[0], &[("comment", comment), ("back", "/app/approvals")])
                .await;
            assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.html);
            let after = session.get(done.location.as_deref().unwrap()).await;
            assert_eq!(after.attrs("#approvals-notice", "id").len(), 1);
            assert!(after.attrs("#approval-list form.approve", "action").is_empty());
        }
        let page = chen.get(&record).await;
        assert_eq!(
            page.attrs("#stage-path .step[aria-current=step]", "data-stage"),
            vec!["negotiation"]
        );
        assert!(page.attrs("#approval-pending", "id").is_empty());
        assert_eq!(
            page.attrs("#approvals .approval", "data-state"),
            vec!["approved"]
        );
        assert!(page.texts("#approvals .trail td").iter().any(|text| text == "同意"));

        // Won, from the kanban's form; the record page shows it, the funnel counts it.
        chen.get(KANBAN).await;
        let won = chen
            .post(&transition, &[("to", "won"), ("back", KANBAN)])
            .await;
        assert_eq!(won.status, StatusCode::SEE_OTHER, "{}", won.html);
        let page = chen.get(&record).await;
        assert_eq!(
            page.attrs("#stage-path .step[aria-current=step]", "data-stage"),
            vec!["won"]
        );
        assert_eq!(
            page.attrs("#stage-path .step.done", "data-stage"),
            vec!["qualification", "needs_analysis", "proposal", "negotiation"]
        );
        assert!(page.texts("#stage-history .stage-change").len() >= 5, "{}", page.html);
        let funnel = chen.get("/app/reports/funnel").await;
        assert_eq!(
            funnel.texts("#funnel-stages tr[data-stage=won] .reached"),
            vec!["1"]
        );

        // A move the process does not allow is the record page with the reason (409).
        let refused = chen.post(&transition, &[("to", "qualification")]).await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.html);
        refused.assert_clean("refused");
        assert_eq!(refused.attrs("#transition-refused", "id").len(), 1);
    }
);
