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
async fn runway_config_redacts_the_oidc_client_secret_and_serve_refuses_oidc_without_a_public_url()
{
    let tmp = tempfile::tempdir().unwrap();
    let oidc = [
        ("RUNWAY_OIDC_ISSUER_URL", "https://id.example.com"),
        ("RUNWAY_OIDC_CLIENT_ID", "runway"),
        ("RUNWAY_OIDC_CLIENT_SECRET", "oidc-client-secret-value"),
    ];
    let mut cmd = runway(tmp.path());
    cmd.arg("config")
        .envs(oidc)
        .env("RUNWAY_PUBLIC_URL", "https://ci.example.com");
    let (status, stdout, stderr) = run_to_end(cmd, None).await;
    assert!(status.success(), "{stderr}");
    assert!(
        stdout.contains("oidc_client_secret = \"[redacted]\""),
        "{stdout}"
    );
    assert!(stdout.contains("oidc_issuer_url = \"https://id.example.com\""));
    assert!(!stdout.contains("oidc-client-secret-value"));
    assert!(!stderr.contains("oidc-client-secret-value"));

    let mut cmd = runway(tmp.path());
    cmd.arg("serve")
        .envs(oidc)
        .env("RUNWAY_LISTEN", "127.0.0.1:0");
    let (status, _, stderr) = run_to_end(cmd, None).await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("RUNWAY_OIDC_ISSUER_URL is set without RUNWAY_PUBLIC_URL"),
        "{stderr}"
    );
    assert!(!stderr.contains("oidc-client-secret-value"));
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
async fn runway_config_shows_the_dynamodb_settings() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = runway(tmp.path());
    cmd.arg("config")
        .env("RUNWAY_STORE", "dynamodb")
        .env("RUNWAY_DYNAMODB_TABLE_PREFIX", "runway-staging-")
        .env("RUNWAY_DYNAMODB_ENDPOINT", "http://127.0.0.1:4566");
    let (status, stdout, stderr) = run_to_end(cmd, None).await;
    assert!(status.success(), "{stderr}");
    assert!(stdout.contains("store = \"dynamodb\""), "{stdout}");
    assert!(
        stdout.contains("dynamodb_table_prefix = \"runway-staging-\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("dynamodb_endpoint = \"http://127.0.0.1:4566\""),
        "{stdout}"
    );
    assert!(stdout.contains("# dynamodb_region is not set"), "{stdout}");
}

#[tokio::test]
async fn an_unknown_store_fails_naming_both_backends() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = runway(tmp.path());
    cmd.arg("serve").env("RUNWAY_STORE", "postgres");
    let (status, _, stderr) = run_to_end(cmd, None).await;
    assert_eq!(status.code(), Some(1));
    assert!(
        stderr.starts_with("error: RUNWAY_STORE is `postgres`"),
        "{stderr}"
    );
    assert!(stderr.contains("`sqlite` or `dynamodb`"), "{stderr}");
}

#[tokio::test]
async fn runway_lambda_outside_lambda_fails_with_a_sentence_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = runway(tmp.path());
    cmd.arg("lambda").env_remove("AWS_LAMBDA_RUNTIME_API");
    let (status, _, stderr) = run_to_end(cmd, None).await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: `runway lambda` runs only inside AWS Lambda"),
        "{stderr}"
    );
    assert!(stderr.contains("AWS_LAMBDA_RUNTIME_API"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
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
