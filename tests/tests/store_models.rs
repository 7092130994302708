//! The model registry in the store: registered models, numbered versions, tags, aliases and
//! stage transitions, with the audit entry each write leaves. Every test runs on SQLite and on
//! PostgreSQL.

#[macro_use]
mod store_support;

use refit_registry::Store;
use refit_registry::experiments::Tag;
use refit_registry::models::{ModelAlias, ModelVersionStatus, NewModelVersion};
use refit_registry::runs::NewRun;
use refit_registry::search::ModelSearch;
use refit_tests::{Db, on_both_databases};
use store_support::{TestStore, alice, fresh};

fn tag(key: &str, value: &str) -> Tag {
    Tag {
        key: key.into(),
        value: value.into(),
    }
}

fn alias(alias: &str, version: i64) -> ModelAlias {
    ModelAlias {
        alias: alias.into(),
        version,
    }
}

fn source(s: &str) -> NewModelVersion {
    NewModelVersion {
        source: s.into(),
        ..NewModelVersion::default()
    }
}

async fn run_id(store: &Store) -> String {
    store
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
        .run_id
}

async fn versions_of(store: &Store, name: &str) -> Vec<i64> {
    store
        .search_model_versions(&ModelSearch {
            model_name: Some(name.into()),
            max_results: 1000,
            ..ModelSearch::default()
        })
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|v| v.version)
        .collect()
}

async fn create_get_update_and_tags(db: Db) {
    let t = fresh(db).await;
    let s = &t.store;
    let mut audit = t.audit().await;
    let before = refit_registry::db::now_ms();
    let model = s
        .create_registered_model(
            &alice(),
            "churn",
            Some("predicts churn"),
            &[tag("team", "risk")],
        )
        .await
        .unwrap();
    audit.one("models.create", "model:churn").await;
    assert_eq!(model.name, "churn");
    assert_eq!(model.description.as_deref(), Some("predicts churn"));
    assert_eq!(model.tags, vec![tag("team", "risk")]);
    assert!(model.aliases.is_empty());
    assert_eq!(model.latest_version, None);
    assert!(model.creation_timestamp >= before);
    assert_eq!(model.creation_timestamp, model.last_updated_timestamp);
    assert_eq!(s.get_registered_model("churn").await.unwrap(), model);

    assert_err!(
        s.create_registered_model(&alice(), "churn", None, &[])
            .await,
        AlreadyExists,
        "Registered Model (name=churn) already exists"
    );
    assert_err!(
        s.create_registered_model(&alice(), "", None, &[]).await,
        InvalidParameter,
        "must not be empty"
    );
    assert_err!(
        s.create_registered_model(&alice(), "x", None, &[tag("a;b", "v")])
            .await,
        InvalidParameter,
        "a;b"
    );
    assert_err!(
        s.get_registered_model("nope").await,
        NotFound,
        "Registered Model with name=nope not found"
    );
    // Names are exact.
    assert_err!(s.get_registered_model("Churn").await, NotFound, "Churn");
    audit.none().await;

    let updated = s
        .update_registered_model(&alice(), "churn", Some("v2 of the text"))
        .await
        .unwrap();
    audit.one("models.update", "model:churn").await;
    assert_eq!(updated.description.as_deref(), Some("v2 of the text"));
    assert!(updated.last_updated_timestamp >= model.last_updated_timestamp);
    let cleared = s
        .update_registered_model(&alice(), "churn", None)
        .await
        .unwrap();
    audit.one("models.update", "model:churn").await;
    assert_eq!(cleared.description, None);
    assert_err!(
        s.update_registered_model(&alice(), "nope", Some("x")).await,
        NotFound,
        "nope"
    );
    audit.none().await;

    s.set_registered_model_tag(&alice(), "churn", "team", "growth")
        .await
        .unwrap();
    audit.one("models.set_tag", "model:churn").await;
    s.set_registered_model_tag(&alice(), "churn", "owner", "bob")
        .await
        .unwrap();
    audit.one("models.set_tag", "model:churn").await;
    assert_eq!(
        s.get_registered_model("churn").await.unwrap().tags,
        vec![tag("owner", "bob"), tag("team", "growth")]
    );
    s.delete_registered_model_tag(&alice(), "churn", "owner")
        .await
        .unwrap();
    audit.one("models.delete_tag", "model:churn").await;
    assert_eq!(
        s.get_registered_model("churn").await.unwrap().tags,
        vec![tag("team", "growth")]
    );
    assert_err!(
        s.delete_registered_model_tag(&alice(), "churn", "owner")
            .await,
        NotFound,
        "owner"
    );
    assert_err!(
        s.set_registered_model_tag(&alice(), "nope", "k", "v").await,
        NotFound,
        "nope"
    );
    audit.none().await;
}

async fn versions_are_numbered_from_one_and_never_reused(db: Db) {
    let t = fresh(db).await;
    let s = &t.store;
    let run = run_id(s).await;
    s.create_registered_model(&alice(), "churn", None, &[])
        .await
        .unwrap();
    let mut audit = t.audit().await;

    let v1 = s
        .create_model_version(
            &alice(),
            "churn",
            NewModelVersion {
                source: format!("runs:/{run}/model"),
                run_id: Some(run.clone()),
                run_link: Some("http://x/run".into()),
                description: Some("first".into()),
                tags: vec![tag("validated", "yes")],
            },
        )
        .await
        .unwrap();
    let e = audit.one("models.create_version", "model:churn/1").await;
    assert_eq!(e.detail, Some(format!("runs:/{run}/model")));
    assert_eq!(v1.name, "churn");
    assert_eq!(v1.version, 1);
    assert_eq!(v1.source, format!("runs:/{run}/model"));
    assert_eq!(v1.run_id.as_deref(), Some(run.as_str()));
    assert_eq!(v1.run_link.as_deref(), Some("http://x/run"));
    assert_eq!(v1.description.as_deref(), Some("first"));
    assert_eq!(v1.user_id.as_deref(), Some("alice"));
    assert_eq!(v1.current_stage, "None");
    assert_eq!(v1.status, ModelVersionStatus::Ready);
    assert_eq!(v1.tags, vec![tag("validated", "yes")]);
    assert!(v1.aliases.is_empty());
    assert_eq!(s.get_model_version("churn", 1).await.unwrap(), v1);

    for expected in [2, 3] {
        let v = s
            .create_model_version(&alice(), "churn", source("models:/m"))
            .await
            .unwrap();
        assert_eq!(v.version, expected);
        audit
            .one("models.create_version", &format!("model:churn/{expected}"))
            .await;
    }
    assert_eq!(
        s.get_registered_model("churn")
            .await
            .unwrap()
            .latest_version,
        Some(3)
    );

    // Deleting the newest version does not free its number.
    s.delete_model_version(&alice(), "churn", 3).await.unwrap();
    audit.one("models.delete_version", "model:churn/3").await;
    assert_eq!(
        s.get_registered_model("churn")
            .await
            .unwrap()
            .latest_version,
        Some(2)
    );
    assert_err!(
        s.get_model_version("churn", 3).await,
        NotFound,
        "Model Version (name=churn, version=3) not found"
    );
    let v4 = s
        .create_model_version(&alice(), "churn", source("models:/m"))
        .await
        .unwrap();
    assert_eq!(v4.version, 4);
    audit.one("models.create_version", "model:churn/4").await;
    assert_eq!(versions_of(s, "churn").await, vec![4, 2, 1]);

    // Not even when every version is gone.
    for v in [1, 2, 4] {
        s.delete_model_version(&alice(), "churn", v).await.unwrap();
    }
    assert_eq!(audit.take().await.len(), 3);
    assert_eq!(
        s.get_registered_model("churn")
            .await
            .unwrap()
            .latest_version,
        None
    );
    let v5 = s
        .create_model_version(&alice(), "churn", source("models:/m"))
        .await
        .unwrap();
    assert_eq!(v5.version, 5);
    audit.one("models.create_version", "model:churn/5").await;

    // Refusals consume no number and write nothing.
    assert_err!(
        s.create_model_version(
            &alice(),
            "churn",
            NewModelVersion {
                source: "models:/m".into(),
                run_id: Some("0123456789abcdef0123456789abcdef".into()),
                ..NewModelVersion::default()
            },
        )
        .await,
        NotFound,
        "Run with id=0123456789abcdef0123456789abcdef not found"
    );
    assert_err!(
        s.create_model_version(&alice(), "churn", source("  "))
            .await,
        InvalidParameter,
        "source"
    );
    assert_err!(
        s.create_model_version(&alice(), "nope", source("models:/m"))
            .await,
        NotFound,
        "Registered Model with name=nope not found"
    );
    assert_err!(
        s.delete_model_version(&alice(), "churn", 3).await,
        NotFound,
        "version=3"
    );
    audit.none().await;
    let v6 = s
        .create_model_version(&alice(), "churn", source("models:/m"))
        .await
        .unwrap();
    assert_eq!(v6.version, 6);

    // Versions are numbered per model.
    s.create_registered_model(&alice(), "fraud", None, &[])
        .await
        .unwrap();
    let f1 = s
        .create_model_version(&alice(), "fraud", source("models:/f"))
        .await
        .unwrap();
    assert_eq!(f1.version, 1);
}

async fn version_description_and_tags(db: Db) {
    let t = fresh(db).await;
    let s = &t.store;
    s.create_registered_model(&alice(), "m", None, &[])
        .await
        .unwrap();
    s.create_model_version(&alice(), "m", source("models:/1"))
        .await
        .unwrap();
    let mut audit = t.audit().await;

    let v = s
        .update_model_version(&alice(), "m", 1, Some("tuned"))
        .await
        .unwrap();
    audit.one("models.update_version", "model:m/1").await;
    assert_eq!(v.description.as_deref(), Some("tuned"));
    s.set_model_version_tag(&alice(), "m", 1, "k", "v1")
        .await
        .unwrap();
    audit.one("models.set_version_tag", "model:m/1").await;
    s.set_model_version_tag(&alice(), "m", 1, "k", "v2")
        .await
        .unwrap();
    audit.one("models.set_version_tag", "model:m/1").await;
    assert_eq!(
        s.get_model_version("m", 1).await.unwrap().tags,
        vec![tag("k", "v2")]
    );
    s.delete_model_version_tag(&alice(), "m", 1, "k")
        .await
        .unwrap();
    audit.one("models.delete_version_tag", "model:m/1").await;
    assert!(s.get_model_version("m", 1).await.unwrap().tags.is_empty());
    assert_err!(
        s.delete_model_version_tag(&alice(), "m", 1, "k").await,
        NotFound,
        "No tag with key 'k'"
    );
    assert_err!(
        s.set_model_version_tag(&alice(), "m", 9, "k", "v").await,
        NotFound,
        "version=9"
    );
    assert_err!(
        s.update_model_version(&alice(), "m", 9, None).await,
        NotFound,
        "version=9"
    );
    audit.none().await;
}

async fn aliases(db: Db) {
    let t = fresh(db).await;
    let s = &t.store;
    s.create_registered_model(&alice(), "churn", None, &[])
        .await
        .unwrap();
    for _ in 0..3 {
        s.create_model_version(&alice(), "churn", source("models:/m"))
            .await
            .unwrap();
    }
    let mut audit = t.audit().await;

    s.set_model_alias(&alice(), "churn", "champion", 1)
        .await
        .unwrap();
    let e = audit.one("models.set_alias", "model:churn/1").await;
    assert_eq!(e.detail.as_deref(), Some("champion"));
    assert_eq!(
        s.get_model_version_by_alias("churn", "champion")
            .await
            .unwrap(),
        s.get_model_version("churn", 1).await.unwrap()
    );
    assert_eq!(
        s.get_model_version("churn", 1).await.unwrap().aliases,
        vec!["champion"]
    );

    // Moving an alias: one version per alias.
    s.set_model_alias(&alice(), "churn", "champion", 2)
        .await
        .unwrap();
    audit.one("models.set_alias", "model:churn/2").await;
    s.set_model_alias(&alice(), "churn", "challenger", 3)
        .await
        .unwrap();
    audit.one("models.set_alias", "model:churn/3").await;
    assert_eq!(
        s.get_model_version_by_alias("churn", "champion")
            .await
            .unwrap()
            .version,
        2
    );
    assert!(
        s.get_model_version("churn", 1)
            .await
            .unwrap()
            .aliases
            .is_empty()
    );
    assert_eq!(
        s.get_model_version("churn", 2).await.unwrap().aliases,
        vec!["champion"]
    );
    assert_eq!(
        s.get_registered_model("churn").await.unwrap().aliases,
        vec![alias("challenger", 3), alias("champion", 2)]
    );
    assert_eq!(
        t.count("SELECT COUNT(*) AS n FROM registered_model_aliases WHERE alias = 'champion'")
            .await,
        1
    );
    // Several aliases may point at one version.
    s.set_model_alias(&alice(), "churn", "stable", 2)
        .await
        .unwrap();
    audit.one("models.set_alias", "model:churn/2").await;
    assert_eq!(
        s.get_model_version("churn", 2).await.unwrap().aliases,
        vec!["champion", "stable"]
    );

    // Reserved and malformed names, missing versions and models.
    for bad in ["latest", "LATEST", "v3", "V12", "", "has space", "a/b"] {
        assert_err!(
            s.set_model_alias(&alice(), "churn", bad, 1).await,
            InvalidParameter,
            "Invalid alias name"
        );
    }
    assert_err!(
        s.set_model_alias(&alice(), "churn", "latest", 1).await,
        InvalidParameter,
        "reserved"
    );
    assert_err!(
        s.set_model_alias(&alice(), "churn", "champion", 7).await,
        NotFound,
        "version=7"
    );
    assert_err!(
        s.set_model_alias(&alice(), "nope", "champion", 1).await,
        NotFound,
        "nope"
    );
    assert_err!(
        s.get_model_version_by_alias("churn", "nope").await,
        NotFound,
        "alias nope not found"
    );
    audit.none().await;
    assert_eq!(
        s.get_model_version_by_alias("churn", "champion")
            .await
            .unwrap()
            .version,
        2
    );

    // Deleting an alias.
    s.delete_model_alias(&alice(), "churn", "stable")
        .await
        .unwrap();
    let e = audit.one("models.delete_alias", "model:churn").await;
    assert_eq!(e.detail.as_deref(), Some("stable"));
    assert_err!(
        s.get_model_version_by_alias("churn", "stable").await,
        NotFound,
        "stable"
    );
    assert_err!(
        s.delete_model_alias(&alice(), "churn", "stable").await,
        NotFound,
        "stable"
    );
    assert_err!(
        s.delete_model_alias(&alice(), "nope", "champion").await,
        NotFound,
        "nope"
    );
    audit.none().await;

    // Deleting a version removes the aliases pointing at it, and only those.
    s.delete_model_version(&alice(), "churn", 2).await.unwrap();
    audit.one("models.delete_version", "model:churn/2").await;
    assert_err!(
        s.get_model_version_by_alias("churn", "champion").await,
        NotFound,
        "champion"
    );
    assert_eq!(
        s.get_registered_model("churn").await.unwrap().aliases,
        vec![alias("challenger", 3)]
    );
    assert_eq!(
        t.count("SELECT COUNT(*) AS n FROM registered_model_aliases")
            .await,
        1
    );
}

async fn rename_carries_versions_tags_and_aliases(db: Db) {
    let t = fresh(db).await;
    let s = &t.store;
    s.create_registered_model(&alice(), "old", Some("desc"), &[tag("team", "risk")])
        .await
        .unwrap();
    for _ in 0..2 {
        s.create_model_version(&alice(), "old", source("models:/m"))
            .await
            .unwrap();
    }
    s.set_model_version_tag(&alice(), "old", 2, "validated", "yes")
        .await
        .unwrap();
    s.set_model_alias(&alice(), "old", "champion", 2)
        .await
        .unwrap();
    s.transition_model_version_stage(&alice(), "old", 1, "Production", false)
        .await
        .unwrap();
    s.create_registered_model(&alice(), "taken", None, &[])
        .await
        .unwrap();
    let mut audit = t.audit().await;

    let renamed = s
        .rename_registered_model(&alice(), "old", "new")
        .await
        .unwrap();
    let e = audit.one("models.rename", "model:old").await;
    assert_eq!(e.detail.as_deref(), Some("new"));
    assert_eq!(renamed.name, "new");
    assert_eq!(renamed.description.as_deref(), Some("desc"));
    assert_eq!(renamed.tags, vec![tag("team", "risk")]);
    assert_eq!(renamed.aliases, vec![alias("champion", 2)]);
    assert_eq!(renamed.latest_version, Some(2));
    assert_eq!(s.get_registered_model("new").await.unwrap(), renamed);
    assert_err!(s.get_registered_model("old").await, NotFound, "old");
    assert_err!(s.get_model_version("old", 1).await, NotFound, "old");

    let v2 = s.get_model_version("new", 2).await.unwrap();
    assert_eq!(v2.name, "new");
    assert_eq!(v2.tags, vec![tag("validated", "yes")]);
    assert_eq!(v2.aliases, vec!["champion"]);
    assert_eq!(
        s.get_model_version("new", 1).await.unwrap().current_stage,
        "Production"
    );
    assert_eq!(
        s.get_model_version_by_alias("new", "champion")
            .await
            .unwrap()
            .version,
        2
    );
    assert_eq!(versions_of(s, "new").await, vec![2, 1]);
    assert!(versions_of(s, "old").await.is_empty());
    for table in [
        "registered_model_tags",
        "model_versions",
        "model_version_tags",
        "registered_model_aliases",
    ] {
        assert_eq!(
            t.count(&format!(
                "SELECT COUNT(*) AS n FROM {table} WHERE name = 'old'"
            ))
            .await,
            0,
            "{table}"
        );
    }
    // Numbering continues.
    let v3 = s
        .create_model_version(&alice(), "new", source("models:/m"))
        .await
        .unwrap();
    assert_eq!(v3.version, 3);
    audit.take().await;

    assert_err!(
        s.rename_registered_model(&alice(), "new", "taken").await,
        AlreadyExists,
        "Registered Model (name=taken) already exists"
    );
    assert_err!(
        s.rename_registered_model(&alice(), "nope", "other").await,
        NotFound,
        "nope"
    );
    assert_err!(
        s.rename_registered_model(&alice(), "new", "").await,
        InvalidParameter,
        "must not be empty"
    );
    audit.none().await;
    assert_eq!(
        s.get_registered_model("new").await.unwrap().latest_version,
        Some(3)
    );
}

async fn delete_cascades(db: Db) {
    let t: TestStore = fresh(db).await;
    let s = &t.store;
    for name in ["doomed", "bystander"] {
        s.create_registered_model(&alice(), name, None, &[tag("k", "v")])
            .await
            .unwrap();
        for _ in 0..2 {
            s.create_model_version(
                &alice(),
                name,
                NewModelVersion {
                    source: "models:/m".into(),
                    tags: vec![tag("vk", "vv")],
                    ..NewModelVersion::default()
                },
            )
            .await
            .unwrap();
        }
        s.set_model_alias(&alice(), name, "champion", 1)
            .await
            .unwrap();
    }
    let mut audit = t.audit().await;

    s.delete_registered_model(&alice(), "doomed").await.unwrap();
    audit.one("models.delete", "model:doomed").await;
    assert_err!(s.get_registered_model("doomed").await, NotFound, "doomed");
    assert_err!(s.get_model_version("doomed", 1).await, NotFound, "doomed");
    assert_err!(
        s.get_model_version_by_alias("doomed", "champion").await,
        NotFound,
        "champion"
    );
    for (table, left) in [
        ("registered_models", 1),
        ("registered_model_tags", 1),
        ("model_versions", 2),
        ("model_version_tags", 2),
        ("registered_model_aliases", 1),
    ] {
        assert_eq!(
            t.count(&format!("SELECT COUNT(*) AS n FROM {table}")).await,
            left,
            "{table}: only the bystander's rows remain"
        );
    }
    assert_err!(
        s.delete_registered_model(&alice(), "doomed").await,
        NotFound,
        "doomed"
    );
    audit.none().await;

    // The name can be registered again, from version 1.
    s.create_registered_model(&alice(), "doomed", None, &[])
        .await
        .unwrap();
    let v = s
        .create_model_version(&alice(), "doomed", source("models:/m"))
        .await
        .unwrap();
    assert_eq!(v.version, 1);
    assert!(v.tags.is_empty() && v.aliases.is_empty());
}

async fn stage_transitions(db: Db) {
    let t = fresh(db).await;
    let s = &t.store;
    s.create_registered_model(&alice(), "m", None, &[])
        .await
        .unwrap();
    for _ in 0..4 {
        s.create_model_version(&alice(), "m", source("models:/m"))
            .await
            .unwrap();
    }
    let mut audit = t.audit().await;
    let stages = || async {
        let mut out = Vec::new();
        for v in 1..=4 {
            out.push(s.get_model_version("m", v).await.unwrap().current_stage);
        }
        out
    };

    let v = s
        .transition_model_version_stage(&alice(), "m", 1, "Production", false)
        .await
        .unwrap();
    assert_eq!(v.current_stage, "Production");
    let e = audit.one("models.transition_stage", "model:m/1").await;
    assert_eq!(e.detail.as_deref(), Some("Production"));
    // Without archive_existing, two versions may share a stage.
    s.transition_model_version_stage(&alice(), "m", 2, "production", false)
        .await
        .unwrap();
    audit.one("models.transition_stage", "model:m/2").await;
    assert_eq!(stages().await, ["Production", "Production", "None", "None"]);

    // With it, the others in the target stage are archived; other stages are untouched.
    s.transition_model_version_stage(&alice(), "m", 4, "STAGING", false)
        .await
        .unwrap();
    audit.one("models.transition_stage", "model:m/4").await;
    s.transition_model_version_stage(&alice(), "m", 3, "Production", true)
        .await
        .unwrap();
    // One entry for the transition, not one per archived version.
    audit.one("models.transition_stage", "model:m/3").await;
    assert_eq!(
        stages().await,
        ["Archived", "Archived", "Production", "Staging"]
    );

    s.transition_model_version_stage(&alice(), "m", 1, "Staging", true)
        .await
        .unwrap();
    audit.one("models.transition_stage", "model:m/1").await;
    assert_eq!(
        stages().await,
        ["Staging", "Archived", "Production", "Archived"]
    );

    // Moving to None or Archived never archives others.
    s.transition_model_version_stage(&alice(), "m", 3, "Archived", true)
        .await
        .unwrap();
    s.transition_model_version_stage(&alice(), "m", 1, "None", true)
        .await
        .unwrap();
    assert_eq!(audit.take().await.len(), 2);
    assert_eq!(stages().await, ["None", "Archived", "Archived", "Archived"]);

    assert_err!(
        s.transition_model_version_stage(&alice(), "m", 1, "Prod", false)
            .await,
        InvalidParameter,
        "Invalid Model Version stage: Prod"
    );
    assert_err!(
        s.transition_model_version_stage(&alice(), "m", 9, "Staging", false)
            .await,
        NotFound,
        "version=9"
    );
    audit.none().await;
}

on_both_databases!(
    create_get_update_and_tags,
    versions_are_numbered_from_one_and_never_reused,
    version_description_and_tags,
    aliases,
    rename_carries_versions_tags_and_aliases,
    delete_cascades,
    stage_transitions,
);
