//! The audit log: one entry per successful write, none for a refused one, and the reading API
//! (newest first, `before`, `target`, limits). Every test runs on SQLite and on PostgreSQL.
//! The other `store_*` files check the entry of each individual write as they go.

#[macro_use]
mod store_support;

use refit_registry::Actor;
use refit_registry::models::NewModelVersion;
use refit_registry::runs::{Metric, NewRun, Param};
use refit_registry::tokens::Role;
use refit_tests::{Db, on_both_databases};
use store_support::{alice, fresh};

fn param(key: &str, value: &str) -> Param {
    Param {
        key: key.into(),
        value: value.into(),
    }
}

async fn refused_writes_leave_no_entry(db: Db) {
    let t = fresh(db).await;
    let s = &t.store;
    let exp = s
        .create_experiment(&alice(), "e", None, &[])
        .await
        .unwrap()
        .experiment_id;
    let run = s
        .create_run(
            &alice(),
            NewRun {
                experiment_id: exp.clone(),
                ..NewRun::default()
            },
        )
        .await
        .unwrap()
        .info
        .run_id;
    let deleted_run = s
        .create_run(
            &alice(),
            NewRun {
                experiment_id: exp.clone(),
                ..NewRun::default()
            },
        )
        .await
        .unwrap()
        .info
        .run_id;
    s.delete_run(&alice(), &deleted_run).await.unwrap();
    s.log_batch(&alice(), &run, &[], &[param("lr", "0.1")], &[])
        .await
        .unwrap();
    s.create_registered_model(&alice(), "m", None, &[])
        .await
        .unwrap();
    s.create_model_version(
        &alice(),
        "m",
        NewModelVersion {
            source: "models:/x".into(),
            ..NewModelVersion::default()
        },
    )
    .await
    .unwrap();
    s.create_token(&alice(), "tok", Role::Consumer)
        .await
        .unwrap();
    s.revoke_token(&alice(), "tok").await.unwrap();
    let entries_before = t.count("SELECT COUNT(*) AS n FROM audit_log").await;
    let mut audit = t.audit().await;

    let metric = Metric {
        key: "loss".into(),
        value: 1.0,
        timestamp: 1,
        step: 0,
    };
    assert_err!(
        s.log_batch(
            &alice(),
            &run,
            std::slice::from_ref(&metric),
            &[param("lr", "0.2")],
            &[]
        )
        .await,
        InvalidParameter,
        "Changing param values is not allowed"
    );
    assert_err!(
        s.log_batch(
            &alice(),
            &deleted_run,
            std::slice::from_ref(&metric),
            &[],
            &[]
        )
        .await,
        InvalidParameter,
        "active"
    );
    assert_err!(
        s.create_experiment(&alice(), "e", None, &[]).await,
        AlreadyExists,
        "e"
    );
    assert_err!(
        s.delete_experiment(&alice(), "0").await,
        InvalidParameter,
        "default experiment"
    );
    assert_err!(
        s.create_registered_model(&alice(), "m", None, &[]).await,
        AlreadyExists,
        "m"
    );
    assert_err!(
        s.create_model_version(
            &alice(),
            "m",
            NewModelVersion {
                source: "models:/x".into(),
                run_id: Some("f".repeat(32)),
                ..NewModelVersion::default()
            },
        )
        .await,
        NotFound,
        "not found"
    );
    assert_err!(
        s.set_model_alias(&alice(), "m", "latest", 1).await,
        InvalidParameter,
        "reserved"
    );
    assert_err!(
        s.put_artifact(&alice(), "1/r/artifacts/x", &b"abc"[..], &"0".repeat(64))
            .await,
        InvalidParameter,
        "not the declared"
    );
    assert_err!(
        s.revoke_token(&alice(), "tok").await,
        InvalidState,
        "already revoked"
    );
    assert_err!(
        s.create_token(&alice(), "tok", Role::Admin).await,
        AlreadyExists,
        "tok"
    );
    audit.none().await;
    assert_eq!(
        t.count("SELECT COUNT(*) AS n FROM audit_log").await,
        entries_before
    );
    // And the refused writes really changed nothing.
    assert!(s.metric_history(&run, "loss").await.unwrap().is_empty());
    assert!(
        s.metric_history(&deleted_run, "loss")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.get_registered_model("m").await.unwrap().latest_version,
        Some(1)
    );
}

async fn reading_the_log(db: Db) {
    let t = fresh(db).await;
    let s = &t.store;
    let bob = Actor::new("bob");
    let before = refit_registry::db::now_ms();
    for i in 0..5 {
        s.create_experiment(&bob, &format!("e{i}"), None, &[])
            .await
            .unwrap();
    }
    let id = s.get_experiment_by_name("e2").await.unwrap().experiment_id;
    s.set_experiment_tag(&alice(), &id, "k", "v").await.unwrap();

    let log = s.audit_log(100, None, None).await.unwrap();
    assert_eq!(log.len(), 6);
    assert!(log.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    assert!(log.iter().all(|e| e.at >= before));
    assert_eq!(
        (
            log[0].actor.as_str(),
            log[0].action.as_str(),
            log[0].target.as_str()
        ),
        (
            "alice",
            "experiments.set_tag",
            format!("experiment:{id}").as_str()
        )
    );
    let creates: Vec<Option<&str>> = log[1..].iter().map(|e| e.detail.as_deref()).collect();
    assert_eq!(
        creates,
        [Some("e4"), Some("e3"), Some("e2"), Some("e1"), Some("e0")]
    );
    assert!(
        log[1..]
            .iter()
            .all(|e| e.actor == "bob" && e.action == "experiments.create")
    );

    // Paging backwards with `before`, and filtering by target.
    let older = s.audit_log(2, Some(log[1].id), None).await.unwrap();
    assert_eq!(
        older.iter().map(|e| e.id).collect::<Vec<_>>(),
        [log[2].id, log[3].id]
    );
    let about = s
        .audit_log(100, None, Some(&format!("experiment:{id}")))
        .await
        .unwrap();
    assert_eq!(
        about.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        ["experiments.set_tag", "experiments.create"]
    );
    assert!(
        s.audit_log(100, None, Some("experiment:999"))
            .await
            .unwrap()
            .is_empty()
    );
    // Limits are clamped to 1..=1000.
    assert_eq!(s.audit_log(0, None, None).await.unwrap().len(), 1);
    assert_eq!(s.audit_log(-5, None, None).await.unwrap().len(), 1);
}

on_both_databases!(refused_writes_leave_no_entry, reading_the_log);
