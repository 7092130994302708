//! API tokens in the store: secrets shown once, authentication, revocation, names and roles.
//! Every test runs on SQLite and on PostgreSQL.

#[macro_use]
mod store_support;

use refit_registry::Actor;
use refit_registry::tokens::{Principal, Role};
use refit_tests::{Db, on_both_databases};
use store_support::fresh;

async fn create_and_authenticate(db: Db) {
    let t = fresh(db).await;
    let s = &t.store;
    let admin = Actor::new("root-admin");
    assert!(!s.has_tokens().await.unwrap());
    let mut audit = t.audit().await;

    let before = refit_registry::db::now_ms();
    let created = s
        .create_token(&admin, "ci-bot", Role::Scientist)
        .await
        .unwrap();
    let e = audit
        .one_by("root-admin", "tokens.create", "token:ci-bot")
        .await;
    assert_eq!(e.detail.as_deref(), Some("scientist"));
    assert!(created.secret.starts_with("refit_"), "{}", created.secret);
    assert_eq!(created.secret.len(), "refit_".len() + 43);
    assert!(
        created.secret["refit_".len()..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    );
    assert_eq!(created.token.name, "ci-bot");
    assert_eq!(created.token.role, Role::Scientist);
    assert_eq!(created.token.created_by, "root-admin");
    assert_eq!(created.token.revoked_at, None);
    assert!(created.token.created_at >= before);
    assert!(s.has_tokens().await.unwrap());

    // The secret is shown once: only its hash is stored, and listings never carry it.
    assert_eq!(
        t.count(&format!(
            "SELECT COUNT(*) AS n FROM api_tokens WHERE token_hash = '{}' OR name = '{}'",
            created.secret, created.secret
        ))
        .await,
        0
    );
    let listed = s.list_tokens().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, created.token.id);
    assert!(!format!("{listed:?}").contains(&created.secret));

    assert_eq!(
        s.authenticate(&created.secret).await.unwrap(),
        Some(Principal {
            token_id: created.token.id,
            name: "ci-bot".into(),
            role: Role::Scientist,
        })
    );
    let principal = s.authenticate(&created.secret).await.unwrap().unwrap();
    assert_eq!(principal.actor(), Actor::new("ci-bot"));

    // Wrong secrets: another random one, a near miss, no prefix, empty.
    let other = s
        .create_token(&admin, "other", Role::Consumer)
        .await
        .unwrap();
    audit
        .one_by("root-admin", "tokens.create", "token:other")
        .await;
    assert_ne!(other.secret, created.secret);
    let mut near = created.secret.clone();
    let last = near.pop().unwrap();
    near.push(if last == 'A' { 'B' } else { 'A' });
    for wrong in [
        near.as_str(),
        &created.secret["refit_".len()..],
        "refit_",
        "",
        "Bearer x",
    ] {
        assert_eq!(s.authenticate(wrong).await.unwrap(), None, "{wrong:?}");
    }
    assert_eq!(
        s.authenticate(&other.secret).await.unwrap().map(|p| p.role),
        Some(Role::Consumer)
    );
    audit.none().await;
}

async fn revoke(db: Db) {
    let t = fresh(db).await;
    let s = &t.store;
    let admin = Actor::new("root-admin");
    let a = s
        .create_token(&admin, "alpha", Role::Operator)
        .await
        .unwrap();
    let b = s.create_token(&admin, "beta", Role::Ingest).await.unwrap();
    let mut audit = t.audit().await;

    let revoked = s.revoke_token(&admin, "alpha").await.unwrap();
    audit
        .one_by("root-admin", "tokens.revoke", "token:alpha")
        .await;
    assert_eq!(revoked.id, a.token.id);
    assert!(revoked.revoked_at.is_some());
    assert_eq!(s.authenticate(&a.secret).await.unwrap(), None);
    assert!(s.authenticate(&b.secret).await.unwrap().is_some());
    let listed = s.list_tokens().await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|t| (t.name.as_str(), t.revoked_at.is_some()))
            .collect::<Vec<_>>(),
        [("alpha", true), ("beta", false)]
    );
    assert_eq!(listed[0].revoked_at, revoked.revoked_at);

    // Twice is an error naming the token, by name or by id.
    assert_err!(
        s.revoke_token(&admin, "alpha").await,
        InvalidState,
        "token 'alpha' is already revoked"
    );
    assert_err!(
        s.revoke_token(&admin, &a.token.id.to_string()).await,
        InvalidState,
        "already revoked"
    );
    assert_err!(
        s.revoke_token(&admin, "nobody").await,
        NotFound,
        "no token with id or name 'nobody'"
    );
    audit.none().await;

    // By id.
    s.revoke_token(&admin, &b.token.id.to_string())
        .await
        .unwrap();
    audit
        .one_by("root-admin", "tokens.revoke", "token:beta")
        .await;
    assert_eq!(s.authenticate(&b.secret).await.unwrap(), None);
    // Revoked tokens still count: a restart must not mint a new admin token.
    assert!(s.has_tokens().await.unwrap());
}

async fn names_and_roles(db: Db) {
    let t = fresh(db).await;
    let s = &t.store;
    let admin = Actor::new("root-admin");
    s.create_token(&admin, "dup", Role::Admin).await.unwrap();
    let mut audit = t.audit().await;
    assert_err!(
        s.create_token(&admin, "dup", Role::Consumer).await,
        AlreadyExists,
        "a token named 'dup' already exists"
    );
    // A revoked token's name stays taken.
    s.revoke_token(&admin, "dup").await.unwrap();
    audit.take().await;
    assert_err!(
        s.create_token(&admin, "dup", Role::Consumer).await,
        AlreadyExists,
        "dup"
    );
    for bad in ["", "has space", "semi;colon", &"x".repeat(65)] {
        assert_err!(
            s.create_token(&admin, bad, Role::Consumer).await,
            InvalidParameter,
            "invalid token name"
        );
    }
    audit.none().await;
    assert_eq!(s.list_tokens().await.unwrap().len(), 1);

    let ok = s
        .create_token(&admin, "alice@example.com", Role::Admin)
        .await
        .unwrap();
    assert_eq!(ok.token.name, "alice@example.com");

    for role in Role::ALL {
        assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        assert_eq!(role.to_string(), role.as_str());
        let created = s
            .create_token(&admin, &format!("as-{role}"), role)
            .await
            .unwrap();
        assert_eq!(
            s.authenticate(&created.secret).await.unwrap().unwrap().role,
            role
        );
    }
    for unknown in ["root", "Admin", "", "admin "] {
        assert_err!(
            unknown.parse::<Role>(),
            InvalidParameter,
            &format!("unknown role '{unknown}'")
        );
    }
}

async fn a_name_that_looks_like_an_id_revokes_that_token(db: Db) {
    let t = fresh(db).await;
    let s = &t.store;
    let admin = Actor::new("root-admin");
    let first = s.create_token(&admin, "first", Role::Admin).await.unwrap();
    let second = s
        .create_token(&admin, "second", Role::Consumer)
        .await
        .unwrap();
    // A token whose name is another token's id.
    let named = s
        .create_token(&admin, &first.token.id.to_string(), Role::Ingest)
        .await
        .unwrap();
    let mut audit = t.audit().await;

    let revoked = s
        .revoke_token(&admin, &first.token.id.to_string())
        .await
        .unwrap();
    assert_eq!(revoked.id, named.token.id, "the exact name wins over an id");
    audit
        .one_by(
            "root-admin",
            "tokens.revoke",
            &format!("token:{}", first.token.id),
        )
        .await;
    assert_eq!(s.authenticate(&named.secret).await.unwrap(), None);
    assert!(s.authenticate(&first.secret).await.unwrap().is_some());
    // Ids still work where no name is in the way.
    let revoked = s
        .revoke_token(&admin, &second.token.id.to_string())
        .await
        .unwrap();
    assert_eq!(revoked.name, "second");
}

on_both_databases!(
    create_and_authenticate,
    revoke,
    names_and_roles,
    a_name_that_looks_like_an_id_revokes_that_token,
);
