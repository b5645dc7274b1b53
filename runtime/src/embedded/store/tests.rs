use redb::TableDefinition;

use super::*;

fn open_temp() -> (tempfile::TempDir, ConfigStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ConfigStore::open(&dir.path().join("config.redb")).unwrap();
    (dir, store)
}

fn read(store: &ConfigStore) -> Snapshot {
    store.snapshot().unwrap()
}

#[test]
fn put_get_list_and_version() {
    let (_dir, store) = open_temp();
    assert_eq!(read(&store).version().unwrap(), 0);
    let version = store.put_many("w", [("prompt", "b", "2"), ("prompt", "a", "1"), ("schema", "s", "x")]).unwrap();
    assert_eq!(version, 1);
    assert_eq!(read(&store).version().unwrap(), 1);
    assert_eq!(read(&store).get("w", "prompt", "a").unwrap().as_deref(), Some("1"));
    assert_eq!(read(&store).get("w", "prompt", "zz").unwrap(), None);
    assert_eq!(read(&store).get("other", "prompt", "a").unwrap(), None);
    assert_eq!(read(&store).keys("w", "prompt").unwrap(), ["a", "b"]);
    assert_eq!(
        read(&store).values("w", "prompt").unwrap(),
        [("a".to_owned(), "1".to_owned()), ("b".to_owned(), "2".to_owned())]
    );
    assert!(read(&store).keys("w", "missing").unwrap().is_empty());
}

#[test]
fn prefix_scans_do_not_leak_into_neighbours() {
    let (_dir, store) = open_temp();
    // Workspaces and types that are prefixes of one another must stay apart.
    store.put_many("w", [("t", "k", "1"), ("tt", "k", "2")]).unwrap();
    store.put_many("ww", [("t", "k", "3")]).unwrap();
    store.put_many("", [("t", "k", "4")]).unwrap();
    assert_eq!(read(&store).values("w", "t").unwrap(), [("k".to_owned(), "1".to_owned())]);
    let ws = read(&store).workspace("w").unwrap();
    assert_eq!(ws.len(), 2);
    assert_eq!(ws["tt"]["k"], "2");
    assert!(read(&store).workspace("nope").unwrap().is_empty());
    let all = read(&store).all().unwrap();
    assert_eq!(all.keys().collect::<Vec<_>>(), ["", "w", "ww"]);
    assert_eq!(
        read(&store).values_all_workspaces("t").unwrap(),
        [
            ("".to_owned(), "k".to_owned(), "4".to_owned()),
            ("w".to_owned(), "k".to_owned(), "1".to_owned()),
            ("ww".to_owned(), "k".to_owned(), "3".to_owned()),
        ]
    );
}

#[test]
fn delete_many_and_version_counting() {
    let (_dir, store) = open_temp();
    store.put_many("w", [("t", "a", "1"), ("t", "b", "2"), ("t", "c", "3")]).unwrap();
    assert_eq!(store.delete_many("w", [("t", "a"), ("t", "c"), ("t", "missing")]).unwrap(), 2);
    assert_eq!(read(&store).keys("w", "t").unwrap(), ["b"]);
    // Upstream bumps the version for every put/delete request, even an empty one.
    assert_eq!(store.put_many("w", Vec::<(&str, &str, &str)>::new()).unwrap(), 3);
    assert_eq!(store.delete_many("w", Vec::<(&str, &str)>::new()).unwrap(), 4);
}

#[test]
fn a_refused_update_writes_nothing() {
    let (_dir, store) = open_temp();
    store.put_many("w", [("t", "keep", "old")]).unwrap();
    let result: Result<(), StoreError> = store.update(|update| {
        update.put("w", "t", "new", "1")?;
        update.put("w", "t", "keep", "changed")?;
        update.delete("w", "t", "keep")?;
        // Reads inside the transaction see its own writes...
        assert_eq!(update.get("w", "t", "new")?.as_deref(), Some("1"));
        // ...and a failure part-way through throws them all away.
        Err(StoreError::Storage(redb::Error::TransactionInProgress))
    });
    assert!(result.is_err());
    assert_eq!(read(&store).keys("w", "t").unwrap(), ["keep"]);
    assert_eq!(read(&store).get("w", "t", "keep").unwrap().as_deref(), Some("old"));
    assert_eq!(read(&store).version().unwrap(), 1);
}

#[test]
fn an_update_reads_as_a_snapshot_of_its_own_writes() {
    let (_dir, store) = open_temp();
    store.put_many("w", [("t", "a", "1"), ("u", "b", "2")]).unwrap();
    let inside = store
        .update(|update| {
            update.put("w", "t", "c", "3")?;
            update.delete("w", "u", "b")?;
            Ok::<_, StoreError>((update.workspace("w")?, update.all()?, update.values_all_workspaces("t")?))
        })
        .unwrap();
    let after = read(&store);
    assert_eq!(
        inside,
        (after.workspace("w").unwrap(), after.all().unwrap(), after.values_all_workspaces("t").unwrap())
    );
    assert_eq!(after.keys("w", "t").unwrap(), ["a", "c"]);
}

#[test]
fn update_without_writes_keeps_the_version() {
    let (_dir, store) = open_temp();
    let keys = store.update(|update| update.keys("w", "t")).unwrap();
    assert!(keys.is_empty());
    assert_eq!(read(&store).version().unwrap(), 0);
}

#[test]
fn survives_close_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.redb");
    {
        let store = ConfigStore::open(&path).unwrap();
        store.put_many("w", [("t", "k", "v")]).unwrap();
        store.delete_many("w", [("t", "gone")]).unwrap();
    }
    let store = ConfigStore::open(&path).unwrap();
    assert_eq!(read(&store).get("w", "t", "k").unwrap().as_deref(), Some("v"));
    assert_eq!(read(&store).version().unwrap(), 2);
}

#[test]
fn a_second_open_is_refused_as_locked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.redb");
    let _first = ConfigStore::open(&path).unwrap();
    let err = ConfigStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
    assert!(err.to_string().contains("in use by another process"), "{err}");
}

#[test]
fn a_foreign_file_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in [
        ("short.txt", b"hi\n".to_vec()),
        ("notes.txt", b"this is not a database\n".repeat(400)),
        ("zeros.bin", vec![0u8; 8192]),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, &content).unwrap();
        let err = ConfigStore::open(&path).unwrap_err();
        assert!(matches!(err, StoreError::NotAStore { .. }), "{name}: {err:?}");
        assert!(err.to_string().contains("is not a config store"), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), content, "{name} was modified");
    }
}

#[test]
fn a_redb_file_with_other_tables_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.redb");
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(TableDefinition::<u64, u64>::new("config")).unwrap();
        txn.commit().unwrap();
    }
    let err = ConfigStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::NotAStore { .. }), "{err:?}");
}

#[test]
fn a_new_store_appears_whole_and_an_empty_file_is_taken_as_new() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.redb");
    drop(ConfigStore::open(&path).unwrap());
    // Only the store itself: the staged file was renamed into place.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["config.redb"]);

    let empty = dir.path().join("empty.redb");
    std::fs::write(&empty, b"").unwrap();
    let store = ConfigStore::open(&empty).unwrap();
    store.put_many("ws", [("t", "k", "v")]).unwrap();
    assert_eq!(read(&store).get("ws", "t", "k").unwrap().as_deref(), Some("v"));
}

#[test]
fn a_missing_directory_is_an_open_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = ConfigStore::open(&dir.path().join("no/such/dir/config.redb")).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
}
