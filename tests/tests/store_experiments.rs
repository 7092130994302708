//! The store's experiments: the default experiment, create/get/rename/delete/restore, tags, and
//! the audit entry each write leaves. Every test runs on SQLite and on PostgreSQL.

#[macro_use]
mod store_support;

use refit_registry::experiments::{LifecycleStage, Tag, ViewType};
use refit_registry::runs::NewRun;
use refit_registry::search::RunSearch;
use refit_tests::{Db, on_both_databases};
use store_support::{alice, fresh};

fn tag(key: &str, value: &str) -> Tag {
    Tag {
        key: key.into(),
        value: value.into(),
    }
}

async fn default_experiment_always_exists(db: Db) {
    let t = fresh(db).await;
    let exp = t.store.get_experiment("0").await.unwrap();
    assert_eq!(exp.experiment_id, "0");
    assert_eq!(exp.name, "Default");
    assert_eq!(exp.lifecycle_stage, LifecycleStage::Active);
    assert_eq!(exp.artifact_location, "mlflow-artifacts:/0");
    assert!(exp.tags.is_empty());
    assert!(exp.creation_time > 1_600_000_000_000, "{exp:?}");
    let by_name = t.store.get_experiment_by_name("Default").await.unwrap();
    assert_eq!(by_name, exp);

    // Runs can be created in it straight away.
    let run = t
        .store
        .create_run(
            &alice(),
            NewRun {
                experiment_id: "0".into(),
                ..NewRun::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(run.info.experiment_id, "0");
}

async fn create_get_and_get_by_name(db: Db) {
    let t = fresh(db).await;
    let mut audit = t.audit().await;
    let before = refit_registry::db::now_ms();
    let exp = t
        .store
        .create_experiment(&alice(), "churn", None, &[tag("team", "ml"), tag("a", "1")])
        .await
        .unwrap();
    assert_eq!(exp.name, "churn");
    assert_eq!(exp.lifecycle_stage, LifecycleStage::Active);
    assert_eq!(
        exp.artifact_location,
        format!("mlflow-artifacts:/{}", exp.experiment_id)
    );
    assert_eq!(exp.tags, vec![tag("a", "1"), tag("team", "ml")]);
    assert!(exp.creation_time >= before);
    assert_eq!(exp.creation_time, exp.last_update_time);
    assert_ne!(exp.experiment_id, "0");
    let entry = audit
        .one(
            "experiments.create",
            &format!("experiment:{}", exp.experiment_id),
        )
        .await;
    assert_eq!(entry.detail.as_deref(), Some("churn"));

    assert_eq!(
        t.store.get_experiment(&exp.experiment_id).await.unwrap(),
        exp
    );
    assert_eq!(t.store.get_experiment_by_name("churn").await.unwrap(), exp);

    let located = t
        .store
        .create_experiment(&alice(), "located", Some("s3://bucket/refit"), &[])
        .await
        .unwrap();
    assert_eq!(located.artifact_location, "s3://bucket/refit");
    assert_ne!(located.experiment_id, exp.experiment_id);
    audit
        .one(
            "experiments.create",
            &format!("experiment:{}", located.experiment_id),
        )
        .await;
}

async fn duplicate_names_and_bad_input_are_refused(db: Db) {
    let t = fresh(db).await;
    let exp = t
        .store
        .create_experiment(&alice(), "churn", None, &[])
        .await
        .unwrap();
    let mut audit = t.audit().await;
    assert_err!(
        t.store
            .create_experiment(&alice(), "churn", None, &[])
            .await,
        AlreadyExists,
        "Experiment(name=churn) already exists"
    );
    assert_err!(
        t.store
            .create_experiment(&alice(), "Default", None, &[])
            .await,
        AlreadyExists,
        "Default"
    );
    // Names stay taken while the experiment is deleted.
    t.store
        .delete_experiment(&alice(), &exp.experiment_id)
        .await
        .unwrap();
    audit.take().await;
    assert_err!(
        t.store
            .create_experiment(&alice(), "churn", None, &[])
            .await,
        AlreadyExists,
        "churn"
    );
    assert_err!(
        t.store.create_experiment(&alice(), "  ", None, &[]).await,
        InvalidParameter,
        "must not be empty"
    );
    assert_err!(
        t.store
            .create_experiment(&alice(), "x", None, &[tag("bad;key", "v")])
            .await,
        InvalidParameter,
        "bad;key"
    );
    audit.none().await;
    assert_eq!(
        t.count("SELECT COUNT(*) AS n FROM experiments").await,
        2,
        "only Default and churn"
    );
}

async fn unknown_ids_and_names_are_not_found(db: Db) {
    let t = fresh(db).await;
    for id in ["1", "999", "abc", "", "-1", "1.0", "0x1"] {
        assert_err!(
            t.store.get_experiment(id).await,
            NotFound,
            &format!("No Experiment with id={id} exists")
        );
    }
    assert_err!(
        t.store.get_experiment_by_name("nope").await,
        NotFound,
        "Could not find experiment with name 'nope'"
    );
    // Lookups by name are exact.
    assert_err!(
        t.store.get_experiment_by_name("default").await,
        NotFound,
        "default"
    );
    let mut audit = t.audit().await;
    assert_err!(
        t.store.rename_experiment(&alice(), "42", "x").await,
        NotFound,
        "id=42"
    );
    assert_err!(
        t.store.delete_experiment(&alice(), "42").await,
        NotFound,
        "id=42"
    );
    assert_err!(
        t.store.restore_experiment(&alice(), "abc").await,
        NotFound,
        "id=abc"
    );
    assert_err!(
        t.store.set_experiment_tag(&alice(), "42", "k", "v").await,
        NotFound,
        "id=42"
    );
    audit.none().await;
}

async fn rename(db: Db) {
    let t = fresh(db).await;
    let exp = t
        .store
        .create_experiment(&alice(), "old-name", None, &[tag("k", "v")])
        .await
        .unwrap();
    let id = exp.experiment_id.clone();
    t.store
        .create_experiment(&alice(), "taken", None, &[])
        .await
        .unwrap();
    let mut audit = t.audit().await;

    let renamed = t
        .store
        .rename_experiment(&alice(), &id, "new-name")
        .await
        .unwrap();
    assert_eq!(renamed.experiment_id, id);
    assert_eq!(renamed.name, "new-name");
    assert_eq!(renamed.tags, vec![tag("k", "v")]);
    assert_eq!(renamed.creation_time, exp.creation_time);
    assert!(renamed.last_update_time >= exp.last_update_time);
    let entry = audit
        .one("experiments.rename", &format!("experiment:{id}"))
        .await;
    assert_eq!(entry.detail.as_deref(), Some("old-name -> new-name"));

    assert_eq!(
        t.store.get_experiment_by_name("new-name").await.unwrap(),
        renamed
    );
    assert_err!(
        t.store.get_experiment_by_name("old-name").await,
        NotFound,
        "old-name"
    );

    assert_err!(
        t.store.rename_experiment(&alice(), &id, "taken").await,
        AlreadyExists,
        "Experiment(name=taken) already exists"
    );
    assert_err!(
        t.store.rename_experiment(&alice(), &id, "").await,
        InvalidParameter,
        "must not be empty"
    );
    audit.none().await;
    assert_eq!(t.store.get_experiment(&id).await.unwrap().name, "new-name");

    // A deleted experiment cannot be renamed.
    t.store.delete_experiment(&alice(), &id).await.unwrap();
    audit.take().await;
    assert_err!(
        t.store.rename_experiment(&alice(), &id, "newer").await,
        InvalidParameter,
        "must be in the 'active' state"
    );
    audit.none().await;
}

async fn run_ids(t: &store_support::TestStore, experiment_id: &str, view: ViewType) -> Vec<String> {
    let mut ids: Vec<String> = t
        .store
        .search_runs(&RunSearch {
            experiment_ids: vec![experiment_id.into()],
            max_results: 1000,
            view,
            ..RunSearch::default()
        })
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|r| r.info.run_id)
        .collect();
    ids.sort();
    ids
}

async fn delete_and_restore_cascade_to_runs(db: Db) {
    let t = fresh(db).await;
    let exp = t
        .store
        .create_experiment(&alice(), "doomed", None, &[])
        .await
        .unwrap();
    let id = exp.experiment_id.clone();
    let mut runs = Vec::new();
    for _ in 0..2 {
        let run = t
            .store
            .create_run(
                &alice(),
                NewRun {
                    experiment_id: id.clone(),
                    ..NewRun::default()
                },
            )
            .await
            .unwrap();
        runs.push(run.info.run_id);
    }
    runs.sort();
    // A run in another experiment is not touched.
    let bystander = t
        .store
        .create_run(
            &alice(),
            NewRun {
                experiment_id: "0".into(),
                ..NewRun::default()
            },
        )
        .await
        .unwrap()
        .info
        .run_id;
    let mut audit = t.audit().await;

    t.store.delete_experiment(&alice(), &id).await.unwrap();
    audit
        .one("experiments.delete", &format!("experiment:{id}"))
        .await;
    let deleted = t.store.get_experiment(&id).await.unwrap();
    assert_eq!(deleted.lifecycle_stage, LifecycleStage::Deleted);
    assert_eq!(deleted.name, "doomed");
    for run_id in &runs {
        let run = t.store.get_run(run_id).await.unwrap();
        assert_eq!(run.info.lifecycle_stage, LifecycleStage::Deleted);
    }
    assert_eq!(
        t.store
            .get_run(&bystander)
            .await
            .unwrap()
            .info
            .lifecycle_stage,
        LifecycleStage::Active
    );
    assert!(run_ids(&t, &id, ViewType::ActiveOnly).await.is_empty());
    assert_eq!(run_ids(&t, &id, ViewType::DeletedOnly).await, runs);

    // Nothing new goes into a deleted experiment, and it cannot be deleted twice.
    assert_err!(
        t.store
            .create_run(
                &alice(),
                NewRun {
                    experiment_id: id.clone(),
                    ..NewRun::default()
                },
            )
            .await,
        InvalidParameter,
        "must be in the 'active' state"
    );
    assert_err!(
        t.store.delete_experiment(&alice(), &id).await,
        InvalidParameter,
        "must be in the 'active' state"
    );
    audit.none().await;

    let restored = t.store.restore_experiment(&alice(), &id).await.unwrap();
    audit
        .one("experiments.restore", &format!("experiment:{id}"))
        .await;
    assert_eq!(restored.lifecycle_stage, LifecycleStage::Active);
    for run_id in &runs {
        let run = t.store.get_run(run_id).await.unwrap();
        assert_eq!(run.info.lifecycle_stage, LifecycleStage::Active);
    }
    assert_eq!(run_ids(&t, &id, ViewType::ActiveOnly).await, runs);
    assert_eq!(
        t.count("SELECT COUNT(*) AS n FROM runs WHERE deleted_time IS NOT NULL")
            .await,
        0
    );
    assert_err!(
        t.store.restore_experiment(&alice(), &id).await,
        InvalidParameter,
        "Cannot restore an active experiment"
    );
    audit.none().await;
}

async fn the_default_experiment_cannot_be_deleted(db: Db) {
    let t = fresh(db).await;
    let mut audit = t.audit().await;
    // Every spelling of id 0 is refused, not just the canonical one.
    for id in ["0", "00", "+0"] {
        assert_err!(
            t.store.delete_experiment(&alice(), id).await,
            InvalidParameter,
            "Cannot delete the default experiment"
        );
    }
    audit.none().await;
    let exp = t.store.get_experiment("0").await.unwrap();
    assert_eq!(exp.lifecycle_stage, LifecycleStage::Active);
}

async fn tags_set_replace_delete(db: Db) {
    let t = fresh(db).await;
    let id = t
        .store
        .create_experiment(&alice(), "tagged", None, &[])
        .await
        .unwrap()
        .experiment_id;
    let target = format!("experiment:{id}");
    let mut audit = t.audit().await;

    t.store
        .set_experiment_tag(&alice(), &id, "team", "ml")
        .await
        .unwrap();
    let e = audit.one("experiments.set_tag", &target).await;
    assert_eq!(e.detail.as_deref(), Some("team"));
    t.store
        .set_experiment_tag(&alice(), &id, "owner", "bob")
        .await
        .unwrap();
    audit.one("experiments.set_tag", &target).await;
    assert_eq!(
        t.store.get_experiment(&id).await.unwrap().tags,
        vec![tag("owner", "bob"), tag("team", "ml")]
    );

    t.store
        .set_experiment_tag(&alice(), &id, "team", "platform")
        .await
        .unwrap();
    audit.one("experiments.set_tag", &target).await;
    assert_eq!(
        t.store.get_experiment(&id).await.unwrap().tags,
        vec![tag("owner", "bob"), tag("team", "platform")]
    );

    t.store
        .delete_experiment_tag(&alice(), &id, "owner")
        .await
        .unwrap();
    let e = audit.one("experiments.delete_tag", &target).await;
    assert_eq!(e.detail.as_deref(), Some("owner"));
    assert_eq!(
        t.store.get_experiment(&id).await.unwrap().tags,
        vec![tag("team", "platform")]
    );

    assert_err!(
        t.store.delete_experiment_tag(&alice(), &id, "owner").await,
        NotFound,
        "No tag with name: owner"
    );
    assert_err!(
        t.store.set_experiment_tag(&alice(), &id, "a;b", "v").await,
        InvalidParameter,
        "Invalid tag name"
    );
    assert_err!(
        t.store
            .set_experiment_tag(&alice(), &id, "long", &"v".repeat(20_001))
            .await,
        InvalidParameter,
        "20001"
    );
    audit.none().await;

    // Tags of a deleted experiment are frozen.
    t.store.delete_experiment(&alice(), &id).await.unwrap();
    audit.take().await;
    assert_err!(
        t.store.set_experiment_tag(&alice(), &id, "k", "v").await,
        InvalidParameter,
        "must be in the 'active' state"
    );
    assert_err!(
        t.store.delete_experiment_tag(&alice(), &id, "team").await,
        InvalidParameter,
        "must be in the 'active' state"
    );
    audit.none().await;
    assert_eq!(
        t.store.get_experiment(&id).await.unwrap().tags,
        vec![tag("team", "platform")]
    );
}

on_both_databases!(
    default_experiment_always_exists,
    create_get_and_get_by_name,
    duplicate_names_and_bad_input_are_refused,
    unknown_ids_and_names_are_not_found,
    rename,
    delete_and_restore_cascade_to_runs,
    the_default_experiment_cannot_be_deleted,
    tags_set_replace_delete,
);
