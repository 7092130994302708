//! `search_experiments`, `search_registered_models` and `search_model_versions`: exact results
//! and order for filters, `order_by`, views and paging. Every test runs on SQLite and PostgreSQL.

#[macro_use]
mod store_support;

use std::collections::HashSet;
use std::time::Duration;

use refit_registry::Store;
use refit_registry::experiments::{Tag, ViewType};
use refit_registry::models::NewModelVersion;
use refit_registry::runs::NewRun;
use refit_registry::search::{ExperimentSearch, ModelSearch};
use refit_tests::{Db, on_both_databases};
use store_support::{alice, fresh};

fn tag(key: &str, value: &str) -> Tag {
    Tag {
        key: key.into(),
        value: value.into(),
    }
}

/// Creation and update times are in milliseconds; a pause keeps them distinct.
async fn tick() {
    tokio::time::sleep(Duration::from_millis(5)).await;
}

async fn experiment_names(store: &Store, search: ExperimentSearch) -> Vec<String> {
    let page = store
        .search_experiments(&search)
        .await
        .unwrap_or_else(|e| panic!("{search:?}: {e}"));
    assert_eq!(page.next_page_token, None, "{search:?}");
    page.items.into_iter().map(|e| e.name).collect()
}

fn experiments(filter: &str, order_by: &[&str]) -> ExperimentSearch {
    ExperimentSearch {
        filter: filter.into(),
        order_by: order_by.iter().map(|s| s.to_string()).collect(),
        max_results: 1000,
        ..ExperimentSearch::default()
    }
}

async fn search_experiments(db: Db) {
    let t = fresh(db).await;
    let s = &t.store;
    tick().await;
    let mut created = Vec::new();
    for (name, tags) in [
        ("exp-apple", vec![tag("color", "red")]),
        ("exp-banana", vec![tag("color", "yellow")]),
        ("exp-cherry", vec![tag("color", "red"), tag("size", "s")]),
        ("exp-Fig", vec![]),
        ("zeta", vec![tag("color", "Red")]),
    ] {
        created.push(
            s.create_experiment(&alice(), name, None, &tags)
                .await
                .unwrap(),
        );
        tick().await;
    }
    s.delete_experiment(&alice(), &created[1].experiment_id)
        .await
        .unwrap();

    let names =
        |filter: &str, order_by: &[&str]| experiment_names(s, experiments(filter, order_by));
    // Default order: newest first. The deleted banana is not listed.
    assert_eq!(
        names("", &[]).await,
        ["zeta", "exp-Fig", "exp-cherry", "exp-apple", "Default"]
    );
    for (filter, want) in [
        (
            "name LIKE 'exp-%'",
            vec!["exp-Fig", "exp-cherry", "exp-apple"],
        ),
        ("name LIKE 'exp-f%'", vec![]),
        ("name ILIKE 'exp-f%'", vec!["exp-Fig"]),
        ("attribute.name = 'zeta'", vec!["zeta"]),
        (
            "name != 'zeta'",
            vec!["exp-Fig", "exp-cherry", "exp-apple", "Default"],
        ),
        ("tags.color = 'red'", vec!["exp-cherry", "exp-apple"]),
        (
            "tags.color ILIKE 'RED'",
            vec!["zeta", "exp-cherry", "exp-apple"],
        ),
        ("tags.color LIKE 'R%'", vec!["zeta"]),
        ("tags.color != 'red'", vec!["zeta"]),
        ("tags.color IS NULL", vec!["exp-Fig", "Default"]),
        ("tags.size IS NOT NULL", vec!["exp-cherry"]),
        ("tags.color = 'red' AND tags.size = 's'", vec!["exp-cherry"]),
        (
            "name LIKE 'exp%' AND tags.color IS NOT NULL",
            vec!["exp-cherry", "exp-apple"],
        ),
    ] {
        assert_eq!(names(filter, &[]).await, want, "{filter}");
    }
    let apple = created[0].creation_time;
    assert_eq!(
        names(&format!("creation_time > {apple}"), &[]).await,
        ["zeta", "exp-Fig", "exp-cherry"]
    );
    assert_eq!(
        names(&format!("creation_time <= {apple}"), &[]).await,
        ["exp-apple", "Default"]
    );

    for (order_by, want) in [
        (
            vec!["name ASC"],
            vec!["Default", "exp-Fig", "exp-apple", "exp-cherry", "zeta"],
        ),
        (
            vec!["name DESC"],
            vec!["zeta", "exp-cherry", "exp-apple", "exp-Fig", "Default"],
        ),
        (
            vec!["creation_time ASC"],
            vec!["Default", "exp-apple", "exp-cherry", "exp-Fig", "zeta"],
        ),
        (
            vec!["creation_time DESC"],
            vec!["zeta", "exp-Fig", "exp-cherry", "exp-apple", "Default"],
        ),
        (
            vec!["experiment_id DESC"],
            vec!["zeta", "exp-Fig", "exp-cherry", "exp-apple", "Default"],
        ),
        (
            vec!["attribute.name"],
            vec!["Default", "exp-Fig", "exp-apple", "exp-cherry", "zeta"],
        ),
    ] {
        assert_eq!(names("", &order_by).await, want, "{order_by:?}");
    }
    assert_eq!(
        names("tags.color ILIKE 'red'", &["name DESC"]).await,
        ["zeta", "exp-cherry", "exp-apple"]
    );

    // Views.
    let mut deleted = experiments("", &[]);
    deleted.view = ViewType::DeletedOnly;
    assert_eq!(experiment_names(s, deleted).await, ["exp-banana"]);
    let mut all = experiments("name LIKE 'exp-%'", &["name ASC"]);
    all.view = ViewType::All;
    assert_eq!(
        experiment_names(s, all).await,
        ["exp-Fig", "exp-apple", "exp-banana", "exp-cherry"]
    );

    // The items carry their tags.
    let page = s
        .search_experiments(&experiments("name = 'exp-cherry'", &[]))
        .await
        .unwrap();
    assert_eq!(
        page.items,
        vec![s.get_experiment(&created[2].experiment_id).await.unwrap()]
    );
    assert_eq!(
        page.items[0].tags,
        vec![tag("color", "red"), tag("size", "s")]
    );

    // Paging: the pages add up to the unpaged result.
    let mut whole_search = experiments("", &["name ASC"]);
    whole_search.view = ViewType::All;
    let whole = experiment_names(s, whole_search.clone()).await;
    assert_eq!(whole.len(), 6);
    for size in [1, 2, 4, 6] {
        let mut search = whole_search.clone();
        search.max_results = size;
        let mut got = Vec::new();
        loop {
            let page = s.search_experiments(&search).await.unwrap();
            got.extend(page.items.into_iter().map(|e| e.name));
            match page.next_page_token {
                Some(token) => search.page_token = Some(token),
                None => break,
            }
        }
        assert_eq!(got, whole, "page size {size}");
    }
    let mut first = whole_search.clone();
    first.max_results = 2;
    let token = s.search_experiments(&first).await.unwrap().next_page_token;
    let mut other = experiments("", &["name DESC"]);
    other.page_token = token;
    assert_err!(
        s.search_experiments(&other).await,
        InvalidParameter,
        "Invalid page token"
    );
    let mut garbage = experiments("", &[]);
    garbage.page_token = Some("not-a-token".into());
    assert_err!(
        s.search_experiments(&garbage).await,
        InvalidParameter,
        "Invalid page token"
    );

    // Bad filters and orders.
    for (filter, fragment) in [
        ("name = 'a' OR name = 'b'", "(at position 11)"),
        ("metrics.x > 1", "(at position 0)"),
        ("name IS NULL", "(at position 5)"),
        ("tags.color > 'a'", "(at position 11)"),
    ] {
        assert_err!(
            s.search_experiments(&experiments(filter, &[])).await,
            InvalidParameter,
            fragment
        );
    }
    for order in ["tags.color ASC", "bogus", "name UP"] {
        assert_err!(
            s.search_experiments(&experiments("", &[order])).await,
            InvalidParameter,
            "(at position"
        );
    }
}

fn models(filter: &str, order_by: &[&str]) -> ModelSearch {
    ModelSearch {
        model_name: None,
        filter: filter.into(),
        order_by: order_by.iter().map(|s| s.to_string()).collect(),
        max_results: 1000,
        page_token: None,
    }
}

async fn model_names(store: &Store, search: ModelSearch) -> Vec<String> {
    let page = store
        .search_registered_models(&search)
        .await
        .unwrap_or_else(|e| panic!("{search:?}: {e}"));
    assert_eq!(page.next_page_token, None, "{search:?}");
    page.items.into_iter().map(|m| m.name).collect()
}

async fn search_registered_models(db: Db) {
    let t = fresh(db).await;
    let s = &t.store;
    for (name, tags) in [
        ("churn", vec![tag("team", "risk")]),
        ("churn-v2", vec![tag("team", "risk"), tag("tier", "gold")]),
        ("fraud", vec![tag("team", "payments")]),
        ("Fraud-legacy", vec![]),
        ("pricing", vec![tag("team", "Risk")]),
    ] {
        s.create_registered_model(&alice(), name, None, &tags)
            .await
            .unwrap();
        tick().await;
    }
    s.create_model_version(
        &alice(),
        "churn",
        NewModelVersion {
            source: "models:/a".into(),
            ..NewModelVersion::default()
        },
    )
    .await
    .unwrap();

    let names = |filter: &str, order_by: &[&str]| model_names(s, models(filter, order_by));
    // Default order: by name, byte-wise on both databases.
    assert_eq!(
        names("", &[]).await,
        ["Fraud-legacy", "churn", "churn-v2", "fraud", "pricing"]
    );
    for (filter, want) in [
        ("name LIKE 'churn%'", vec!["churn", "churn-v2"]),
        ("name LIKE 'fraud%'", vec!["fraud"]),
        ("name ILIKE 'fraud%'", vec!["Fraud-legacy", "fraud"]),
        ("name LIKE '%-%'", vec!["Fraud-legacy", "churn-v2"]),
        ("name LIKE 'churn_v2'", vec!["churn-v2"]),
        ("name = 'pricing'", vec!["pricing"]),
        (
            "name != 'pricing'",
            vec!["Fraud-legacy", "churn", "churn-v2", "fraud"],
        ),
        ("tags.team = 'risk'", vec!["churn", "churn-v2"]),
        (
            "tags.team ILIKE 'risk'",
            vec!["churn", "churn-v2", "pricing"],
        ),
        ("tags.team != 'risk'", vec!["fraud", "pricing"]),
        (
            "tags.team = 'risk' AND tags.tier = 'gold'",
            vec!["churn-v2"],
        ),
        ("name LIKE 'c%' AND tags.tier LIKE 'g%'", vec!["churn-v2"]),
    ] {
        assert_eq!(names(filter, &[]).await, want, "{filter}");
    }
    for (order_by, want) in [
        (
            vec!["name DESC"],
            vec!["pricing", "fraud", "churn-v2", "churn", "Fraud-legacy"],
        ),
        // `churn` was updated last, by its new version.
        (
            vec!["timestamp DESC"],
            vec!["churn", "pricing", "Fraud-legacy", "fraud", "churn-v2"],
        ),
        (
            vec!["last_updated_timestamp ASC"],
            vec!["churn-v2", "fraud", "Fraud-legacy", "pricing", "churn"],
        ),
    ] {
        assert_eq!(names("", &order_by).await, want, "{order_by:?}");
    }

    let page = s
        .search_registered_models(&models("name = 'churn'", &[]))
        .await
        .unwrap();
    assert_eq!(
        page.items,
        vec![s.get_registered_model("churn").await.unwrap()]
    );
    assert_eq!(page.items[0].latest_version, Some(1));
    assert_eq!(page.items[0].tags, vec![tag("team", "risk")]);

    let whole = names("", &["name DESC"]).await;
    for size in [1, 2, 3, 5] {
        let mut search = models("", &["name DESC"]);
        search.max_results = size;
        let mut got = Vec::new();
        loop {
            let page = s.search_registered_models(&search).await.unwrap();
            got.extend(page.items.into_iter().map(|m| m.name));
            match page.next_page_token {
                Some(token) => search.page_token = Some(token),
                None => break,
            }
        }
        assert_eq!(got, whole, "page size {size}");
        assert_eq!(got.iter().collect::<HashSet<_>>().len(), got.len());
    }
    let mut first = models("", &["name DESC"]);
    first.max_results = 2;
    let mut other = models("", &[]);
    other.page_token = s
        .search_registered_models(&first)
        .await
        .unwrap()
        .next_page_token;
    assert!(other.page_token.is_some());
    assert_err!(
        s.search_registered_models(&other).await,
        InvalidParameter,
        "Invalid page token"
    );
    for (filter, fragment) in [
        ("description = 'x'", "(at position 0)"),
        ("name = 'a' OR name = 'b'", "(at position 11)"),
        ("tags.team IS NULL", "(at position 10)"),
    ] {
        assert_err!(
            s.search_registered_models(&models(filter, &[])).await,
            InvalidParameter,
            fragment
        );
    }
    assert_err!(
        s.search_registered_models(&models("", &["creation_timestamp"]))
            .await,
        InvalidParameter,
        "(at position 0)"
    );
}

async fn version_ids(store: &Store, search: ModelSearch) -> Vec<(String, i64)> {
    let page = store
        .search_model_versions(&search)
        .await
        .unwrap_or_else(|e| panic!("{search:?}: {e}"));
    assert_eq!(page.next_page_token, None, "{search:?}");
    page.items
        .into_iter()
        .map(|v| (v.name, v.version))
        .collect()
}

fn v(name: &str, version: i64) -> (String, i64) {
    (name.to_string(), version)
}

async fn search_model_versions(db: Db) {
    let t = fresh(db).await;
    let s = &t.store;
    let mut run_ids = Vec::new();
    for _ in 0..2 {
        run_ids.push(
            s.create_run(
                &alice(),
                NewRun {
                    experiment_id: "0".into(),
                    ..NewRun::default()
                },
            )
            .await
            .unwrap()
            .info
            .run_id,
        );
    }
    let (r1, r2) = (run_ids[0].clone(), run_ids[1].clone());
    for name in ["churn", "fraud"] {
        s.create_registered_model(&alice(), name, None, &[])
            .await
            .unwrap();
    }
    for (name, run, tags) in [
        ("churn", Some(&r1), vec![]),
        ("churn", Some(&r2), vec![tag("validated", "yes")]),
        ("churn", Some(&r1), vec![tag("validated", "no")]),
        ("fraud", Some(&r2), vec![tag("validated", "Yes")]),
        ("fraud", None, vec![]),
    ] {
        let version = s
            .create_model_version(
                &alice(),
                name,
                NewModelVersion {
                    source: format!("models:/{name}-{}", run.map_or("none", |r| &r[..6])),
                    run_id: run.cloned(),
                    tags,
                    ..NewModelVersion::default()
                },
            )
            .await
            .unwrap();
        assert!(version.version >= 1);
        tick().await;
    }

    let search = |filter: &str, order_by: &[&str]| version_ids(s, models(filter, order_by));
    // Default order: model name, then newest version first.
    assert_eq!(
        search("", &[]).await,
        [
            v("churn", 3),
            v("churn", 2),
            v("churn", 1),
            v("fraud", 2),
            v("fraud", 1)
        ]
    );
    for (filter, want) in [
        (
            "name = 'churn'".to_string(),
            vec![v("churn", 3), v("churn", 2), v("churn", 1)],
        ),
        ("name != 'churn'".into(), vec![v("fraud", 2), v("fraud", 1)]),
        ("name LIKE 'fr%'".into(), vec![v("fraud", 2), v("fraud", 1)]),
        (
            "name ILIKE 'CHURN'".into(),
            vec![v("churn", 3), v("churn", 2), v("churn", 1)],
        ),
        (
            format!("run_id = '{r1}'"),
            vec![v("churn", 3), v("churn", 1)],
        ),
        (
            format!("run_id != '{r1}'"),
            vec![v("churn", 2), v("fraud", 1)],
        ),
        (
            format!("run_id IN ('{r1}', '{r2}')"),
            vec![v("churn", 3), v("churn", 2), v("churn", 1), v("fraud", 1)],
        ),
        (
            format!("name = 'churn' AND run_id = '{r2}'"),
            vec![v("churn", 2)],
        ),
        ("tags.validated = 'yes'".into(), vec![v("churn", 2)]),
        (
            "tags.validated ILIKE 'yes'".into(),
            vec![v("churn", 2), v("fraud", 1)],
        ),
        (
            "tags.validated != 'yes'".into(),
            vec![v("churn", 3), v("fraud", 1)],
        ),
        (
            "version_number = 2".into(),
            vec![v("churn", 2), v("fraud", 2)],
        ),
        (
            "version_number = '1'".into(),
            vec![v("churn", 1), v("fraud", 1)],
        ),
        (
            "version_number > 1".into(),
            vec![v("churn", 3), v("churn", 2), v("fraud", 2)],
        ),
        (
            "version_number <= 2 AND name = 'churn'".into(),
            vec![v("churn", 2), v("churn", 1)],
        ),
        (
            "source_path = 'models:/fraud-none'".into(),
            vec![v("fraud", 2)],
        ),
        (
            "source_path LIKE 'models:/churn-%'".into(),
            vec![v("churn", 3), v("churn", 2), v("churn", 1)],
        ),
    ] {
        assert_eq!(search(&filter, &[]).await, want, "{filter}");
    }
    for (order_by, want) in [
        (
            vec!["version_number ASC"],
            vec![
                v("churn", 1),
                v("fraud", 1),
                v("churn", 2),
                v("fraud", 2),
                v("churn", 3),
            ],
        ),
        (
            vec!["name DESC"],
            vec![
                v("fraud", 2),
                v("fraud", 1),
                v("churn", 3),
                v("churn", 2),
                v("churn", 1),
            ],
        ),
        (
            vec!["creation_timestamp ASC"],
            vec![
                v("churn", 1),
                v("churn", 2),
                v("churn", 3),
                v("fraud", 1),
                v("fraud", 2),
            ],
        ),
    ] {
        assert_eq!(search("", &order_by).await, want, "{order_by:?}");
    }

    // Scoped to one model.
    let mut fraud = models("", &[]);
    fraud.model_name = Some("fraud".into());
    assert_eq!(
        version_ids(s, fraud.clone()).await,
        [v("fraud", 2), v("fraud", 1)]
    );
    fraud.filter = "version_number = 1".into();
    assert_eq!(version_ids(s, fraud.clone()).await, [v("fraud", 1)]);

    // Items carry their tags; paging adds up.
    let page = s
        .search_model_versions(&models("tags.validated = 'yes'", &[]))
        .await
        .unwrap();
    assert_eq!(
        page.items,
        vec![s.get_model_version("churn", 2).await.unwrap()]
    );
    assert_eq!(page.items[0].run_id.as_deref(), Some(r2.as_str()));
    let whole = search("", &[]).await;
    for size in [1, 2, 5] {
        let mut q = models("", &[]);
        q.max_results = size;
        let mut got = Vec::new();
        loop {
            let page = s.search_model_versions(&q).await.unwrap();
            got.extend(page.items.into_iter().map(|v| (v.name, v.version)));
            match page.next_page_token {
                Some(token) => q.page_token = Some(token),
                None => break,
            }
        }
        assert_eq!(got, whole, "page size {size}");
    }
    let mut first = models("", &[]);
    first.max_results = 1;
    let token = s
        .search_model_versions(&first)
        .await
        .unwrap()
        .next_page_token;
    let mut scoped = models("", &[]);
    scoped.model_name = Some("churn".into());
    scoped.page_token = token;
    assert_err!(
        s.search_model_versions(&scoped).await,
        InvalidParameter,
        "Invalid page token"
    );

    for (filter, fragment) in [
        ("version_number = 'two'", "version_number must be a number"),
        ("run_id NOT IN ('a')", "(at position 7)"),
        ("tags.validated IS NULL", "(at position 15)"),
        ("stage = 'x'", "(at position 0)"),
    ] {
        assert_err!(
            s.search_model_versions(&models(filter, &[])).await,
            InvalidParameter,
            fragment
        );
    }
}

on_both_databases!(
    search_experiments,
    search_registered_models,
    search_model_versions,
);
