//! `runway config`, bad configuration, and the help text.

use crate::support::{run_to_end, runway};

#[tokio::test]
async fn runway_config_shows_environment_overrides_and_redacts_the_admin_password() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("runway.toml"),
        "shutdown_grace_seconds = 7\nlog = \"debug\"\n",
    )
    .unwrap();
    let mut cmd = runway(tmp.path());
    cmd.arg("config")
        .env("RUNWAY_ADMIN_PASSWORD", "very-secret-password-123")
        .env("RUNWAY_LISTEN", "0.0.0.0:9999");
    let (status, stdout, stderr) = run_to_end(cmd, None).await;
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("listen = \"0.0.0.0:9999\""), "{stdout}");
    assert!(
        stdout.contains("admin_password = \"[redacted]\""),
        "{stdout}"
    );
    assert!(!stdout.contains("very-secret-password-123"));
    assert!(!stderr.contains("very-secret-password-123"));
    assert!(
        stdout.contains("shutdown_grace_seconds = 7"),
        "file value: {stdout}"
    );
    assert!(
        stdout.contains("log = \"info\""),
        "the environment (RUNWAY_LOG=info) beats the file: {stdout}"
    );
    assert!(
        stdout.contains("runway.toml"),
        "names the file read: {stdout}"
    );
    assert!(
        stdout.contains("RUNWAY_LISTEN"),
        "names the variables read: {stdout}"
    );
}

#[tokio::test]
async fn a_bad_listen_address_fails_naming_runway_listen() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [&["config"][..], &["serve"][..]] {
        let mut cmd = runway(tmp.path());
        cmd.args(args).env("RUNWAY_LISTEN", "nonsense");
        let (status, _, stderr) = run_to_end(cmd, None).await;
        assert_eq!(status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: RUNWAY_LISTEN is `nonsense`"),
            "{args:?}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

#[tokio::test]
async fn an_unknown_key_in_the_config_file_fails_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("custom.toml");
    std::fs::write(&path, "listen_address = \"127.0.0.1:1\"\n").unwrap();
    let mut cmd = runway(tmp.path());
    cmd.arg("config").arg("--config").arg(&path);
    let (status, _, stderr) = run_to_end(cmd, None).await;
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("listen_address"), "{stderr}");
}

#[tokio::test]
async fn the_dynamodb_store_is_refused_until_it_exists() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = runway(tmp.path());
    cmd.arg("serve").env("RUNWAY_STORE", "dynamodb");
    let (status, _, stderr) = run_to_end(cmd, None).await;
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.contains("the dynamodb store is not available in this build yet"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_help_names_the_listen_and_data_dir_variables() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [&["--help"][..], &["serve", "--help"][..]] {
        let mut cmd = runway(tmp.path());
        cmd.args(args);
        let (status, stdout, _) = run_to_end(cmd, None).await;
        assert!(status.success(), "{args:?}");
        assert!(stdout.contains("RUNWAY_LISTEN"), "{args:?}: {stdout}");
        assert!(stdout.contains("RUNWAY_DATA_DIR"), "{args:?}: {stdout}");
    }
}
