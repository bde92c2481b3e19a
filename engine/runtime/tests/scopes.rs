//! The record scopes exist twice: as SQL ([`Scopes::condition`], what every query carries)
//! and as Rust ([`Scopes::decides`], which answers without a query when the owner alone
//! tells). This property test builds random orgs (users, managers, nested departments) and
//! records on both databases and checks, for every user and every set of scopes, that the
//! database's answer is the one docs/permissions.md describes and that `decides`, whenever
//! it answers, agrees with the database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use keel_meta::{Schema, Value};
use keel_runtime::actor::Actor;
use keel_runtime::clock::{Clock, SystemClock};
use keel_runtime::records::access::Scopes;
use keel_store::Db;
use keel_store::records::{Condition, Deleted, Row, SelectQuery};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Random orgs per database: enough to meet deep chains, users without a department and
/// records without an owner, quick enough to run on every `cargo test`.
const CASES: u32 = 24;

/// A random org: departments (each with an optional parent among the earlier ones), users
/// (each with an optional manager among the earlier users and an optional department) and
/// the owners of records (`None`: no owner, as in a pool).
#[derive(Debug, Clone)]
struct Org {
    departments: Vec<Option<usize>>,
    users: Vec<(Option<usize>, Option<usize>)>,
    owners: Vec<Option<usize>>,
}

fn org() -> impl Strategy<Value = Org> {
    (0usize..4, 1usize..7).prop_flat_map(|(departments, users)| {
        let parents: Vec<_> = (0..departments)
            .map(|index| {
                proptest::option::of(0..index.max(1)).prop_map(move |p| p.filter(|_| index > 0))
            })
            .collect();
        let people: Vec<_> = (0..users)
            .map(|index| {
                (
                    proptest::option::of(0..index.max(1))
                        .prop_map(move |m| m.filter(|_| index > 0)),
                    proptest::option::of(0..departments.max(1))
                        .prop_map(move |d| d.filter(|_| departments > 0)),
                )
            })
            .collect();
        let owners = proptest::collection::vec(proptest::option::of(0..users), 0..10);
        (parents, people, owners).prop_map(|(departments, users, owners)| Org {
            departments,
            users,
            owners,
        })
    })
}

/// Every set of scopes: own, subordinates, department, all.
fn all_scope_sets() -> Vec<Scopes> {
    (0..16u8)
        .map(|bits| Scopes {
            own: bits & 1 != 0,
            subordinates: bits & 2 != 0,
            department: bits & 4 != 0,
            all: bits & 8 != 0,
        })
        .collect()
}

/// Whether the record owned by `owner` is in `scopes` for user `me`, read straight from
/// docs/permissions.md over the org as generated (no database, no closure tables).
fn expected(org: &Org, me: usize, scopes: Scopes, owner: Option<usize>) -> bool {
    if scopes.all {
        return true;
    }
    let Some(owner) = owner else {
        return false;
    };
    let own = owner == me;
    // `owner` reports to `me`, however deep (managers always come earlier, so no loops).
    let below_me = {
        let mut at = Some(owner);
        let mut found = false;
        while let Some(user) = at {
            if user == me {
                found = true;
                break;
            }
            at = org.users[user].0;
        }
        found
    };
    // `owner`'s department is `me`'s or nested below it.
    let in_my_department = match (org.users[me].1, org.users[owner].1) {
        (Some(mine), Some(theirs)) => {
            let mut at = Some(theirs);
            let mut found = false;
            while let Some(department) = at {
                if department == mine {
                    found = true;
                    break;
                }
                at = org.departments[department];
            }
            found
        }
        _ => false,
    };
    (scopes.own && own)
        || (scopes.subordinates && (own || below_me))
        || (scopes.department && (own || in_my_department))
}

/// Writes the org under names starting with `prefix` → (user ids, record ids).
async fn build(db: &Db, schema: &Schema, prefix: &str, org: &Org) -> (Vec<String>, Vec<String>) {
    for (index, parent) in org.departments.iter().enumerate() {
        let parent = parent.map(|p| format!("{prefix}d{p}"));
        keel_store::users::ensure_department_at(
            db,
            &format!("{prefix}d{index}"),
            None,
            parent.as_deref(),
            SystemClock.now(),
        )
        .await
        .unwrap();
    }
    let mut user_ids = Vec::new();
    for (index, (manager, department)) in org.users.iter().enumerate() {
        let user = keel_store::users::NewUser {
            username: format!("{prefix}u{index}"),
            display_name: None,
            password_hash: "not-a-real-hash".to_owned(),
            roles: Vec::new(),
            manager: manager.map(|m| format!("{prefix}u{m}")),
            department: department.map(|d| format!("{prefix}d{d}")),
            language: None,
            email: None,
        };
        user_ids.push(
            keel_store::users::insert_at(db, &user, SystemClock.now(), None)
                .await
                .unwrap(),
        );
    }
    let object = schema.object("note").unwrap();
    let now = SystemClock.now();
    let mut write = db.begin_records_write().await.unwrap();
    let mut record_ids = Vec::new();
    for (index, owner) in org.owners.iter().enumerate() {
        let id = format!("{prefix}r{index}");
        let mut row = Row::new();
        row.insert("id".into(), Value::Text(id.clone()));
        row.insert(
            "owner".into(),
            owner.map_or(Value::Null, |o| Value::Text(user_ids[o].clone())),
        );
        row.insert("created_at".into(), Value::Datetime(now));
        row.insert("updated_at".into(), Value::Datetime(now));
        row.insert("name".into(), Value::Text(id.clone()));
        write.insert(object, &row).await.unwrap();
        record_ids.push(id);
    }
    write.commit().await.unwrap();
    (user_ids, record_ids)
}

fn actor(id: &str) -> Actor {
    Actor {
        id: id.to_owned(),
        username: id.to_owned(),
        display_name: None,
        roles: Vec::new(),
        admin: false,
        manager: None,
        department: None,
        language: None,
    }
}

/// One case: the database agrees with the documented rule, and `decides` with the database.
async fn check(db: &Db, schema: &Schema, prefix: &str, org: &Org) -> Result<(), TestCaseError> {
    let (user_ids, record_ids) = build(db, schema, prefix, org).await;
    let object = schema.object("note").unwrap();
    for (me, my_id) in user_ids.iter().enumerate() {
        let me_actor = actor(my_id);
        for scopes in all_scope_sets() {
            let query = SelectQuery {
                condition: Condition::All(vec![
                    Condition::In {
                        column: "id".to_owned(),
                        values: record_ids.iter().cloned().map(Value::Text).collect(),
                    },
                    scopes.condition(&me_actor),
                ]),
                deleted: Deleted::Exclude,
                columns: Some(vec!["id".to_owned()]),
                ..SelectQuery::new(object)
            };
            let matched: BTreeSet<String> = keel_store::records::select(db, &query)
                .await
                .unwrap()
                .into_iter()
                .filter_map(|row| match row.get("id") {
                    Some(Value::Text(id)) => Some(id.clone()),
                    _ => None,
                })
                .collect();
            for (index, owner) in org.owners.iter().enumerate() {
                let in_database = matched.contains(&record_ids[index]);
                prop_assert_eq!(
                    in_database,
                    expected(org, me, scopes, *owner),
                    "user u{} with {:?}, record r{} owned by {:?}: the database says {}",
                    me,
                    scopes,
                    index,
                    owner,
                    in_database
                );
                let owner_id = owner.map(|o| user_ids[o].as_str());
                if let Some(decided) = scopes.decides(&me_actor, owner_id) {
                    prop_assert_eq!(
                        decided,
                        in_database,
                        "user u{} with {:?}, record r{} owned by {:?}: decides says {}",
                        me,
                        scopes,
                        index,
                        owner,
                        decided
                    );
                }
            }
        }
    }
    Ok(())
}

keel_testkit::db_test!(
    scope_decisions_agree_with_the_scope_conditions_on_random_orgs,
    |db| async move {
        let app = tempfile::tempdir().unwrap();
        let write = |path: &str, text: &str| {
            let path = app.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        write(
            "metadata/app.yaml",
            "name: Scopes\ntimezone: Asia/Shanghai\n",
        );
        write("metadata/roles.yaml", "roles:\n  admin: { admin: true }\n");
        write(
            "metadata/objects/note.yaml",
            "name: note\ntitle: name\nfields:\n  name: { type: text }\n",
        );
        let schema: Arc<Schema> = Arc::new(keel_meta::load_app(app.path()).unwrap());
        let database = Db::connect(&db.url).await.unwrap();
        keel_store::migrate::apply(&database, &schema, false)
            .await
            .unwrap();
        let handle = tokio::runtime::Handle::current();
        let case = AtomicUsize::new(0);
        let mut runner = TestRunner::new(Config {
            cases: CASES,
            failure_persistence: None,
            ..Config::default()
        });
        let result = tokio::task::block_in_place(|| {
            runner.run(&org(), |org| {
                // Every case (shrinking included) gets names of its own in the one database.
                let prefix = format!("c{}_", case.fetch_add(1, Ordering::Relaxed));
                handle.block_on(check(&database, &schema, &prefix, &org))
            })
        });
        if let Err(failure) = result {
            panic!("{failure}");
        }
    }
);
