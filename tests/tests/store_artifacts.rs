//! Artifacts in the store: byte-exact round trips across chunk boundaries, deduplication, digest
//! checks on write, listings, and integrity checks on read. Every test runs on SQLite and on
//! PostgreSQL.

#[macro_use]
mod store_support;

use futures_util::StreamExt;
use refit_registry::Error;
use refit_registry::artifacts::{ArtifactEntry, ArtifactStream, CHUNK_SIZE};
use refit_tests::{Db, on_both_databases};
use sha2::{Digest, Sha256};
use store_support::{TestStore, alice, fresh};

/// Deterministic bytes that differ from chunk to chunk (and are not all one value).
fn content(len: usize, seed: u8) -> Vec<u8> {
    let mut state = u32::from(seed).wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect()
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Every item of the stream, errors included.
async fn drain(mut stream: ArtifactStream) -> Vec<Result<Vec<u8>, Error>> {
    let mut items = Vec::new();
    while let Some(item) = stream.next().await {
        items.push(item.map(|chunk| chunk.to_vec()));
    }
    items
}

async fn read_all(t: &TestStore, path: &str) -> Vec<u8> {
    let (_, stream) = t.store.open_artifact(path).await.unwrap();
    let mut out = Vec::new();
    for item in drain(stream).await {
        let chunk = item.unwrap_or_else(|e| panic!("reading {path}: {e}"));
        assert!(chunk.len() <= CHUNK_SIZE);
        out.extend_from_slice(&chunk);
    }
    out
}

async fn round_trips_across_chunk_boundaries(db: Db) {
    let t = fresh(db).await;
    let mut audit = t.audit().await;
    for (i, (len, chunks)) in [
        (0, 0),
        (1, 1),
        (CHUNK_SIZE - 1, 1),
        (CHUNK_SIZE, 1),
        (CHUNK_SIZE + 1, 2),
        (CHUNK_SIZE * 5 / 2 + 1, 3),
    ]
    .into_iter()
    .enumerate()
    {
        let bytes = content(len, i as u8);
        let digest = sha(&bytes);
        let path = format!("1/run/artifacts/file-{len}.bin");
        // Upper-case digests are accepted and stored in lower case.
        let stored = t
            .store
            .put_artifact(&alice(), &path, bytes.as_slice(), &digest.to_uppercase())
            .await
            .unwrap();
        assert_eq!(stored.path, path);
        assert_eq!(stored.sha256, digest);
        assert_eq!(stored.size, len as i64);
        let e = audit
            .one("artifacts.put", &format!("artifact:{path}"))
            .await;
        assert_eq!(e.detail.as_deref(), Some(digest.as_str()));

        let (info, stream) = t.store.open_artifact(&path).await.unwrap();
        assert_eq!(info, stored);
        assert_eq!(t.store.artifact_info(&path).await.unwrap(), Some(stored));
        let items = drain(stream).await;
        assert_eq!(items.len(), chunks, "chunks of a {len}-byte file");
        let mut back = Vec::new();
        for item in items {
            back.extend_from_slice(&item.unwrap());
        }
        assert_eq!(back.len(), len);
        assert!(back == bytes, "the {len}-byte file reads back differently");
        assert_eq!(sha(&back), digest);
        assert_eq!(
            t.count(&format!(
                "SELECT chunk_count AS n FROM blobs WHERE sha256 = '{digest}'"
            ))
            .await,
            chunks as i64
        );
        assert_eq!(
            t.count(&format!(
                "SELECT size AS n FROM blobs WHERE sha256 = '{digest}'"
            ))
            .await,
            len as i64
        );
    }
    assert_eq!(
        t.store.artifact_info("1/run/artifacts/none").await.unwrap(),
        None
    );
    assert_err!(
        t.store
            .open_artifact("1/run/artifacts/none")
            .await
            .map(|(info, _)| info),
        NotFound,
        "No artifact at '1/run/artifacts/none'"
    );

    // put_artifact_bytes computes the digest itself.
    let bytes = content(3 * CHUNK_SIZE, 99);
    let stored = t
        .store
        .put_artifact_bytes(&alice(), "1/run/artifacts/model.onnx", &bytes)
        .await
        .unwrap();
    assert_eq!(stored.sha256, sha(&bytes));
    assert!(read_all(&t, "1/run/artifacts/model.onnx").await == bytes);
}

async fn identical_content_is_stored_once(db: Db) {
    let t = fresh(db).await;
    let bytes = content(CHUNK_SIZE * 5 / 2 + 1, 7);
    let a = t
        .store
        .put_artifact_bytes(&alice(), "1/a/artifacts/model.bin", &bytes)
        .await
        .unwrap();
    let b = t
        .store
        .put_artifact_bytes(&alice(), "2/b/artifacts/copy/model.bin", &bytes)
        .await
        .unwrap();
    assert_eq!(a.sha256, b.sha256);
    assert_eq!(t.count("SELECT COUNT(*) AS n FROM blobs").await, 1);
    assert_eq!(t.count("SELECT COUNT(*) AS n FROM blob_chunks").await, 3);
    assert_eq!(t.count("SELECT COUNT(*) AS n FROM artifacts").await, 2);
    assert!(read_all(&t, "1/a/artifacts/model.bin").await == bytes);
    assert!(read_all(&t, "2/b/artifacts/copy/model.bin").await == bytes);

    // Replacing a path points it at the new content; the old blob stays for the other path.
    let other = content(10, 8);
    let replaced = t
        .store
        .put_artifact_bytes(&alice(), "1/a/artifacts/model.bin", &other)
        .await
        .unwrap();
    assert_eq!(replaced.size, 10);
    assert_eq!(t.count("SELECT COUNT(*) AS n FROM blobs").await, 2);
    assert_eq!(t.count("SELECT COUNT(*) AS n FROM artifacts").await, 2);
    assert_eq!(read_all(&t, "1/a/artifacts/model.bin").await, other);
    assert!(read_all(&t, "2/b/artifacts/copy/model.bin").await == bytes);
}

async fn a_wrong_digest_stores_nothing(db: Db) {
    let t = fresh(db).await;
    let mut audit = t.audit().await;
    let bytes = content(CHUNK_SIZE + 10, 1);
    let wrong = sha(b"something else");
    let message = assert_err!(
        t.store
            .put_artifact(&alice(), "1/r/artifacts/x.bin", bytes.as_slice(), &wrong)
            .await,
        InvalidParameter,
        "not the declared"
    );
    assert!(
        message.contains(&sha(&bytes)) && message.contains(&wrong),
        "{message}"
    );
    audit.none().await;
    for table in ["artifacts", "blobs", "blob_chunks"] {
        assert_eq!(
            t.count(&format!("SELECT COUNT(*) AS n FROM {table}")).await,
            0,
            "{table}"
        );
    }
    assert_eq!(
        t.store.artifact_info("1/r/artifacts/x.bin").await.unwrap(),
        None
    );

    // Declaring the digest of content that is already stored does not let other bytes through:
    // the content is still checked, and the path is not bound to the existing blob.
    let first = content(100, 2);
    t.store
        .put_artifact_bytes(&alice(), "1/r/artifacts/first.bin", &first)
        .await
        .unwrap();
    audit.take().await;
    let impostor = content(100, 3);
    assert_err!(
        t.store
            .put_artifact(
                &alice(),
                "1/r/artifacts/second.bin",
                impostor.as_slice(),
                &sha(&first)
            )
            .await,
        InvalidParameter,
        "not the declared"
    );
    audit.none().await;
    assert_eq!(
        t.store
            .artifact_info("1/r/artifacts/second.bin")
            .await
            .unwrap(),
        None
    );
    assert_eq!(t.count("SELECT COUNT(*) AS n FROM artifacts").await, 1);
    assert_eq!(t.count("SELECT COUNT(*) AS n FROM blobs").await, 1);
    assert_eq!(read_all(&t, "1/r/artifacts/first.bin").await, first);

    // The genuine bytes under the known digest are accepted and stored once.
    t.store
        .put_artifact(
            &alice(),
            "1/r/artifacts/second.bin",
            first.as_slice(),
            &sha(&first),
        )
        .await
        .unwrap();
    assert_eq!(t.count("SELECT COUNT(*) AS n FROM blobs").await, 1);
    assert_eq!(read_all(&t, "1/r/artifacts/second.bin").await, first);
}

fn file(path: &str, size: i64) -> ArtifactEntry {
    ArtifactEntry {
        path: path.into(),
        is_dir: false,
        file_size: Some(size),
    }
}

fn dir(path: &str) -> ArtifactEntry {
    ArtifactEntry {
        path: path.into(),
        is_dir: true,
        file_size: None,
    }
}

async fn listing_direct_children(db: Db) {
    let t = fresh(db).await;
    let root = "1/run/artifacts";
    for (path, size) in [
        ("model/model.pkl", 5),
        ("model/MLmodel", 3),
        ("model/sub/deep/x.bin", 1),
        ("metrics.csv", 7),
        ("plots/a%b/x.png", 2),
        ("plots/a_b/y.png", 4),
        ("plots/aXb/z.png", 6),
        ("plots/a%b.txt", 8),
        ("plots/a_c.txt", 9),
        ("model2/other.bin", 10),
    ] {
        t.store
            .put_artifact_bytes(
                &alice(),
                &format!("{root}/{path}"),
                &content(size, size as u8),
            )
            .await
            .unwrap();
    }
    // Neighbours whose paths share a prefix with the root must not leak into its listing.
    for path in [
        "1/run/artifacts-old/z.bin",
        "1/run/artifacts0/z.bin",
        "1/run/artifact",
    ] {
        t.store
            .put_artifact_bytes(&alice(), path, b"n")
            .await
            .unwrap();
    }

    assert_eq!(
        t.store.list_artifacts(root, root).await.unwrap(),
        vec![
            file("metrics.csv", 7),
            dir("model"),
            dir("model2"),
            dir("plots")
        ]
    );
    assert_eq!(
        t.store
            .list_artifacts(root, &format!("{root}/"))
            .await
            .unwrap(),
        t.store.list_artifacts(root, root).await.unwrap()
    );
    assert_eq!(
        t.store
            .list_artifacts(root, &format!("{root}/model"))
            .await
            .unwrap(),
        vec![
            file("model/MLmodel", 3),
            file("model/model.pkl", 5),
            dir("model/sub")
        ]
    );
    assert_eq!(
        t.store
            .list_artifacts(root, &format!("{root}/plots"))
            .await
            .unwrap(),
        vec![
            dir("plots/a%b"),
            file("plots/a%b.txt", 8),
            dir("plots/aXb"),
            dir("plots/a_b"),
            file("plots/a_c.txt", 9),
        ]
    );
    // '%' and '_' are plain characters in a listed directory's name, not patterns.
    assert_eq!(
        t.store
            .list_artifacts(root, &format!("{root}/plots/a%b"))
            .await
            .unwrap(),
        vec![file("plots/a%b/x.png", 2)]
    );
    assert_eq!(
        t.store
            .list_artifacts(root, &format!("{root}/plots/a_b"))
            .await
            .unwrap(),
        vec![file("plots/a_b/y.png", 4)]
    );
    assert_eq!(
        t.store
            .list_artifacts(root, &format!("{root}/model/sub"))
            .await
            .unwrap(),
        vec![dir("model/sub/deep")]
    );
    assert!(
        t.store
            .list_artifacts(root, &format!("{root}/nothing"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        t.store
            .list_artifacts("2/none/artifacts", "2/none/artifacts")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn corrupt_chunks_end_the_stream_with_an_integrity_error(db: Db) {
    let t = fresh(db).await;
    let bytes = content(CHUNK_SIZE * 5 / 2 + 1, 5);
    let digest = sha(&bytes);
    t.store
        .put_artifact_bytes(&alice(), "1/r/artifacts/big.bin", &bytes)
        .await
        .unwrap();

    // Flip bytes of the middle chunk, keeping its length.
    let mut corrupt = bytes[CHUNK_SIZE..2 * CHUNK_SIZE].to_vec();
    corrupt[12_345] ^= 0xff;
    let n = sqlx::query("UPDATE blob_chunks SET data = $1 WHERE sha256 = $2 AND seq = 1")
        .bind(corrupt.clone())
        .bind(&digest)
        .execute(&t.raw)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(n, 1);

    let (info, stream) = t
        .store
        .open_artifact("1/r/artifacts/big.bin")
        .await
        .unwrap();
    assert_eq!(info.sha256, digest);
    let items = drain(stream).await;
    assert_eq!(items.len(), 2, "the stream ends at the corrupt chunk");
    assert!(items[0].as_ref().unwrap()[..] == bytes[..CHUNK_SIZE]);
    match &items[1] {
        Err(Error::Integrity(m)) => assert!(m.contains("chunk 1 is corrupt"), "{m}"),
        other => panic!("expected an integrity error, got {other:?}"),
    }

    // Corrupt data with a matching chunk digest is caught by the whole-file digest, before the
    // last chunk is delivered.
    sqlx::query("UPDATE blob_chunks SET chunk_sha256 = $1 WHERE sha256 = $2 AND seq = 1")
        .bind(sha(&corrupt))
        .bind(&digest)
        .execute(&t.raw)
        .await
        .unwrap();
    let (_, stream) = t
        .store
        .open_artifact("1/r/artifacts/big.bin")
        .await
        .unwrap();
    let items = drain(stream).await;
    assert_eq!(items.len(), 3);
    assert!(items[0].is_ok() && items[1].is_ok());
    match &items[2] {
        Err(Error::Integrity(m)) => assert!(m.contains("reads back as"), "{m}"),
        other => panic!("expected an integrity error, got {other:?}"),
    }

    // A missing chunk, and a single-chunk file that is corrupt from its first byte.
    sqlx::query("DELETE FROM blob_chunks WHERE sha256 = $1 AND seq = 2")
        .bind(&digest)
        .execute(&t.raw)
        .await
        .unwrap();
    let (_, stream) = t
        .store
        .open_artifact("1/r/artifacts/big.bin")
        .await
        .unwrap();
    match drain(stream).await.pop() {
        Some(Err(Error::Integrity(m))) => assert!(m.contains("missing chunk 2"), "{m}"),
        other => panic!("expected an integrity error, got {other:?}"),
    }

    let small = content(1000, 6);
    t.store
        .put_artifact_bytes(&alice(), "1/r/artifacts/small.bin", &small)
        .await
        .unwrap();
    sqlx::query("UPDATE blob_chunks SET data = $1 WHERE sha256 = $2")
        .bind(vec![0u8; 1000])
        .bind(sha(&small))
        .execute(&t.raw)
        .await
        .unwrap();
    let (_, stream) = t
        .store
        .open_artifact("1/r/artifacts/small.bin")
        .await
        .unwrap();
    let items = drain(stream).await;
    assert_eq!(items.len(), 1);
    assert!(matches!(&items[0], Err(Error::Integrity(_))), "{items:?}");
}

on_both_databases!(
    round_trips_across_chunk_boundaries,
    identical_content_is_stored_once,
    a_wrong_digest_stores_nothing,
    listing_direct_children,
    corrupt_chunks_end_the_stream_with_an_integrity_error,
);
