//! `runway admin`, run against the data directory of a live server.

use std::path::Path;

use crate::support::{ADMIN_PASSWORD, Server, Start, data_dir, run_to_end, runway};

const BOB_PASSWORD: &str = "bobs-long-password-1";

async fn admin(data: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let mut cmd = runway(data.parent().unwrap());
    cmd.arg("admin")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env("RUNWAY_LOG", "warn");
    let (status, stdout, stderr) = run_to_end(cmd, stdin).await;
    (status.success(), stdout, stderr)
}

async fn server(data: &Path) -> Server {
    Server::start(
        data,
        Start {
            admin_password: Some(ADMIN_PASSWORD),
            ..Start::default()
        },
    )
    .await
}

#[tokio::test]
async fn a_user_created_with_a_password_on_stdin_signs_in_to_a_running_server() {
    let (_tmp, data) = data_dir();
    let server = server(&data).await;
    let (ok, stdout, stderr) = admin(
        &data,
        &[
            "create-user",
            "--username",
            "bob",
            "--role",
            "member",
            "--password-stdin",
        ],
        Some(&format!("{BOB_PASSWORD}\n")),
    )
    .await;
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("Created user `bob` with role member."),
        "{stdout}"
    );
    assert!(!stdout.contains(BOB_PASSWORD) && !stderr.contains(BOB_PASSWORD));
    let token = server.sign_in("bob", BOB_PASSWORD).await;
    let (status, me) = server.get("/api/v1/auth/session", &token).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user"]["role"], "member");

    let (ok, _, stderr) = admin(
        &data,
        &["create-user", "--username", "bob", "--password-stdin"],
        Some(&format!("{BOB_PASSWORD}\n")),
    )
    .await;
    assert!(!ok, "a taken username is refused");
    assert!(
        stderr.starts_with("error: cannot create the user `bob`"),
        "{stderr}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_user_created_without_a_password_gets_a_generated_one_printed_once() {
    let (_tmp, data) = data_dir();
    let server = server(&data).await;
    let (ok, stdout, stderr) = admin(
        &data,
        &["create-user", "--username", "carol", "--role", "admin"],
        None,
    )
    .await;
    assert!(ok, "{stderr}");
    let password = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Password for `carol`: "))
        .expect("the generated password is printed")
        .trim()
        .to_owned();
    let token = server.sign_in("carol", &password).await;
    let (_, me) = server.get("/api/v1/auth/session", &token).await;
    assert_eq!(me["user"]["role"], "admin");
    server.stop().await;
}

#[tokio::test]
async fn resetting_a_password_signs_that_user_out_of_every_device() {
    let (_tmp, data) = data_dir();
    let server = server(&data).await;
    let (ok, _, stderr) = admin(
        &data,
        &["create-user", "--username", "bob", "--password-stdin"],
        Some(BOB_PASSWORD),
    )
    .await;
    assert!(ok, "{stderr}");
    let laptop = server.sign_in("bob", BOB_PASSWORD).await;
    let phone = server.sign_in("bob", BOB_PASSWORD).await;
    let admin_token = server.sign_in("admin", ADMIN_PASSWORD).await;

    let new_password = "bobs-brand-new-password";
    let (ok, stdout, stderr) = admin(
        &data,
        &["reset-password", "--username", "bob", "--password-stdin"],
        Some(&format!("{new_password}\r\n")),
    )
    .await;
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("signed them out of every device"),
        "{stdout}"
    );

    for token in [&laptop, &phone] {
        let (status, body) = server.get("/api/v1/auth/session", token).await;
        assert_eq!(status, 401, "bob's old session still works: {body}");
    }
    let (status, _) = server.get("/api/v1/auth/session", &admin_token).await;
    assert_eq!(status, 200, "other users stay signed in");
    let (status, _) = server.try_sign_in("bob", BOB_PASSWORD).await;
    assert_eq!(status, 401, "the old password no longer works");
    server.sign_in("bob", new_password).await;
    server.stop().await;
}

#[tokio::test]
async fn admin_commands_explain_a_missing_user_or_database() {
    let (_tmp, data) = data_dir();
    let (ok, _, stderr) = admin(&data, &["reset-password", "--username", "nobody"], None).await;
    assert!(!ok);
    assert!(stderr.contains("no Runway database"), "{stderr}");
    assert!(!data.exists(), "no database is created by an admin command");

    let server = server(&data).await;
    let (ok, _, stderr) = admin(&data, &["reset-password", "--username", "nobody"], None).await;
    assert!(!ok);
    assert!(
        stderr.starts_with("error: cannot reset the password of `nobody`"),
        "{stderr}"
    );
    let (ok, _, stderr) = admin(
        &data,
        &["create-user", "--username", "dave", "--password-stdin"],
        Some("short\n"),
    )
    .await;
    assert!(!ok, "a weak password is refused");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    server.stop().await;
}

#[tokio::test]
async fn disabling_a_user_from_the_cli_signs_them_out_and_keeps_them_out_until_enabled() {
    let (_tmp, data) = data_dir();
    let server = server(&data).await;
    let (ok, _, stderr) = admin(
        &data,
        &["create-user", "--username", "bob", "--password-stdin"],
        Some(BOB_PASSWORD),
    )
    .await;
    assert!(ok, "{stderr}");
    let laptop = server.sign_in("bob", BOB_PASSWORD).await;

    let (ok, stdout, stderr) = admin(&data, &["disable-user", "--username", "bob"], None).await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("Disabled `bob`"), "{stdout}");
    let (status, _) = server.get("/api/v1/auth/session", &laptop).await;
    assert_eq!(status, 401, "bob's session is gone");
    let (status, body) = server.try_sign_in("bob", BOB_PASSWORD).await;
    assert_eq!(status, 403, "{body}");
    let (_, listed, _) = admin(&data, &["list-users"], None).await;
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("bob\tmember\tdisabled\t")),
        "{listed}"
    );
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("admin\tadmin\tenabled\t")),
        "{listed}"
    );

    let (ok, _, stderr) = admin(&data, &["disable-user", "--username", "admin"], None).await;
    assert!(!ok, "the last admin cannot be disabled");
    assert!(stderr.contains("cannot disable `admin`"), "{stderr}");
    let (ok, _, stderr) = admin(&data, &["enable-user", "--username", "bob"], None).await;
    assert!(ok, "{stderr}");
    server.sign_in("bob", BOB_PASSWORD).await;
    server.stop().await;
}
