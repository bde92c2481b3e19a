//! A user's own account through `Auth`, on both databases: their language setting, and a
//! password change that checks the current password, ends every other session and starts a
//! fresh one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use keel_meta::Schema;
use keel_runtime::accounts::{NewUser, add_user};
use keel_runtime::auth::{Auth, AuthError};
use keel_runtime::clock::SystemClock;

const APP: &str = "name: Account test\n";
const ROLES: &str = "roles:\n  admin: { admin: true }\n  rep: {}\n";

async fn auth(db_url: &str) -> (Auth, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in [("metadata/app.yaml", APP), ("metadata/roles.yaml", ROLES)] {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let schema: Arc<Schema> = Arc::new(keel_meta::load_app(dir.path()).unwrap());
    let db = keel_store::Db::connect(db_url).await.unwrap();
    keel_store::migrate::apply(&db, &schema, false)
        .await
        .unwrap();
    add_user(
        &db,
        &schema,
        NewUser {
            username: "ann".to_owned(),
            display_name: None,
            password: "ann-password-1".to_owned(),
            roles: vec!["rep".to_owned()],
            manager: None,
            department: None,
            language: None,
            email: None,
        },
    )
    .await
    .unwrap();
    (Auth::new(schema, db, Arc::new(SystemClock)), dir)
}

keel_testkit::db_test!(
    a_user_sets_their_own_language_and_clears_it_again,
    |db| async move {
        let (auth, _dir) = auth(&db.url).await;
        let signed_in = auth.login("ann", "ann-password-1", None).await.unwrap();
        let own = auth
            .update_own(&signed_in.user, Some("en".to_owned()))
            .await
            .unwrap();
        assert_eq!(own.actor.language.as_deref(), Some("en"));
        let actor = auth.authenticate(&signed_in.token).await.unwrap();
        assert_eq!(
            actor.language.as_deref(),
            Some("en"),
            "the session sees it at once"
        );
        let bad = auth
            .update_own(&actor, Some("en; drop".to_owned()))
            .await
            .unwrap_err();
        assert!(
            matches!(&bad, AuthError::Invalid { field: Some(field), .. } if field == "language"),
            "{bad:?}"
        );
        let cleared = auth.update_own(&actor, None).await.unwrap();
        assert_eq!(cleared.actor.language, None);
    }
);

keel_testkit::db_test!(
    a_password_change_checks_the_current_one_and_ends_every_other_session,
    |db| async move {
        let (auth, _dir) = auth(&db.url).await;
        let here = auth.login("ann", "ann-password-1", None).await.unwrap();
        let elsewhere = auth.login("ann", "ann-password-1", None).await.unwrap();
        let wrong = auth
            .change_own_password(&here.user, "not-it", "ann-password-2")
            .await
            .unwrap_err();
        assert!(
            matches!(&wrong, AuthError::Invalid { field: Some(field), .. } if field == "current"),
            "{wrong:?}"
        );
        let short = auth
            .change_own_password(&here.user, "ann-password-1", "short")
            .await
            .unwrap_err();
        assert!(
            matches!(&short, AuthError::Invalid { field: Some(field), .. } if field == "password"),
            "{short:?}"
        );
        // Nothing changed so far: both sessions and the old password still work.
        auth.authenticate(&elsewhere.token).await.unwrap();

        let fresh = auth
            .change_own_password(&here.user, "ann-password-1", "ann-password-2")
            .await
            .unwrap();
        assert!(matches!(
            auth.authenticate(&elsewhere.token).await,
            Err(AuthError::NotAuthenticated)
        ));
        assert!(matches!(
            auth.authenticate(&here.token).await,
            Err(AuthError::NotAuthenticated)
        ));
        assert_eq!(
            auth.authenticate(&fresh.token).await.unwrap().username,
            "ann"
        );
        assert!(matches!(
            auth.login("ann", "ann-password-1", None).await,
            Err(AuthError::BadCredentials)
        ));
        auth.login("ann", "ann-password-2", None).await.unwrap();
    }
);
