//! Who may read the database files: the data directory is 0700 and the database,
//! its WAL and its shared-memory file 0600, whatever the umask; wider ones found on
//! start are tightened and reported.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use runway_core::id::UserId;
use runway_core::store::UserStore;
use runway_core::user::{Role, User};
use runway_store_sqlite::{DB_FILE_NAME, PermissionFix};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn user() -> User {
    User {
        id: UserId::new(),
        username: "ada".into(),
        role: Role::Admin,
        created_at: time::OffsetDateTime::now_utc(),
        password_hash: "$argon2id$not-a-real-hash".into(),
        credential_epoch: 0,
        disabled: false,
    }
}

#[tokio::test]
async fn a_new_data_directory_is_0700_and_the_database_its_wal_and_its_shm_are_0600() {
    let tmp = tempfile::tempdir().unwrap();
    // A group- and world-readable parent, as /var/lib is: it is not ours to change.
    chmod(tmp.path(), 0o755);
    let dir = tmp.path().join("runway").join("data");
    let store = runway_store_sqlite::open_data_dir(&dir).unwrap();
    store.create_user(&user()).await.unwrap();

    let db = dir.join(DB_FILE_NAME);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(
        mode(&tmp.path().join("runway")),
        0o700,
        "a parent it created"
    );
    assert_eq!(
        mode(tmp.path()),
        0o755,
        "a parent that existed is left alone"
    );
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(&with_suffix(&db, "-wal")), 0o600);
    assert_eq!(mode(&with_suffix(&db, "-shm")), 0o600);
}

#[tokio::test]
async fn an_existing_data_directory_that_others_can_read_is_tightened_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let db = dir.join(DB_FILE_NAME);
    {
        let store = runway_store_sqlite::open_data_dir(&dir).unwrap();
        store.create_user(&user()).await.unwrap();
        // As an older Runway, or a restored backup, would have left them.
        chmod(&dir, 0o755);
        chmod(&db, 0o644);
        chmod(&with_suffix(&db, "-wal"), 0o664);
    }

    let fixes = runway_store_sqlite::secure_data_dir(&dir).unwrap();
    let tightened: Vec<(PathBuf, u32, u32)> = fixes
        .iter()
        .map(|fix| match fix {
            PermissionFix::Tightened { path, was, now } => (path.clone(), *was, *now),
            PermissionFix::LeftAsIs { .. } => panic!("{fix}"),
        })
        .collect();
    assert!(
        tightened.contains(&(dir.clone(), 0o755, 0o700)),
        "{tightened:?}"
    );
    assert!(
        tightened.contains(&(db.clone(), 0o644, 0o600)),
        "{tightened:?}"
    );
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&db), 0o600);
    let message = fixes[0].to_string();
    assert!(message.contains("readable by others"), "{message}");

    let store = runway_store_sqlite::open_data_dir(&dir).unwrap();
    store
        .create_user(&User {
            username: "grace".into(),
            ..user()
        })
        .await
        .unwrap();
    assert_eq!(mode(&with_suffix(&db, "-wal")), 0o600);
    assert_eq!(mode(&with_suffix(&db, "-shm")), 0o600);
    assert!(
        runway_store_sqlite::secure_data_dir(&dir)
            .unwrap()
            .is_empty(),
        "nothing is left to tighten"
    );
}

#[tokio::test]
async fn a_database_opened_by_path_is_0600_in_a_directory_left_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    chmod(tmp.path(), 0o750);
    let path = tmp.path().join("elsewhere.db");
    let store = runway_store_sqlite::open(&path).unwrap();
    store.create_user(&user()).await.unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&with_suffix(&path, "-wal")), 0o600);
    assert_eq!(mode(tmp.path()), 0o750);
}
