//! The binary on DynamoDB (moto): `dynamodb create-tables`, `serve` with the
//! first-start admin, and `admin` without a data directory; then the job stories
//! of `agents.rs` on DynamoDB + S3.
//!
//! Every test gets [`OnMoto`]: a table prefix of its own, so the tests share one
//! emulator without seeing each other, and a relay of its own in front of moto
//! (`runway-moto-proxy`) that every DynamoDB request of the binary goes through.
//! The relay passes one request at a time to moto, which makes each request atomic
//! as on DynamoDB (moto's transactions are not, across its threads) and is faster
//! than many clients at once against one Python process. It also plays the Lambda
//! function's IAM policy from `deploy/terraform/modules/runway/iam.tf`, so each
//! test ends by asserting that the server asked for nothing the policy does not
//! grant. S3 (the job logs) goes to moto directly: the relay handles DynamoDB's
//! `Content-Length` framed JSON only.

use std::path::Path;

use runway_moto_proxy::Proxy;

use crate::support::{
    ADMIN_PASSWORD, Server, Start, data_dir, generated_password, run_to_end, runway,
};

/// The variable naming the emulator, as in the store crate's tests.
const ENDPOINT_VAR: &str = "RUNWAY_TEST_DYNAMODB_ENDPOINT";

/// The emulator's endpoint, or a panic saying how to start it.
pub(crate) fn moto_endpoint() -> String {
    match std::env::var(ENDPOINT_VAR) {
        Ok(endpoint) if !endpoint.trim().is_empty() => endpoint,
        _ => panic!(
            "{ENDPOINT_VAR} is not set: the DynamoDB backend of `runway` is tested against \
             moto_server. Run:\n\n    \
             scripts/moto.sh install && scripts/moto.sh run cargo test -p runway-server\n"
        ),
    }
}

/// A table prefix no other test uses.
fn unique_prefix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("cli{}{nanos}_", std::process::id())
}

/// One test's share of the emulator: its table prefix, and its relay to moto.
/// Keep it alive as long as anything of the test talks to DynamoDB.
pub(crate) struct OnMoto {
    pub(crate) prefix: String,
    relay: Proxy,
}

impl OnMoto {
    pub(crate) async fn start() -> Self {
        Self {
            prefix: unique_prefix(),
            relay: Proxy::start(&moto_endpoint()).await,
        }
    }

    /// The DynamoDB endpoint to give the binary: the relay.
    fn endpoint(&self) -> &str {
        &self.relay.endpoint
    }

    /// The environment that points the binary at the relay with dummy
    /// credentials, so no real AWS account or profile is ever touched.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("RUNWAY_STORE", "dynamodb".into()),
            ("RUNWAY_DYNAMODB_TABLE_PREFIX", self.prefix.clone()),
            ("RUNWAY_DYNAMODB_ENDPOINT", self.endpoint().to_owned()),
            ("RUNWAY_DYNAMODB_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("AWS_CONFIG_FILE", "/dev/null".into()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
        ]
    }

    /// The binary with [`OnMoto::env`], in `dir`.
    fn runway(&self, dir: &Path) -> tokio::process::Command {
        let mut cmd = runway(dir);
        cmd.env_remove("AWS_PROFILE").env_remove("AWS_ENDPOINT_URL");
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `runway ARGS…` on the emulator: (success, stdout, stderr).
    async fn run(&self, dir: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        let mut cmd = self.runway(dir);
        cmd.args(args);
        let (status, stdout, stderr) = run_to_end(cmd, stdin).await;
        (status.success(), stdout, stderr)
    }

    async fn create_tables(&self, dir: &Path) -> String {
        let (ok, stdout, stderr) = self.run(dir, &["dynamodb", "create-tables"], None).await;
        assert!(ok, "create-tables failed:\n{stdout}\n{stderr}");
        stdout
    }

    fn start_options(&self, admin_password: Option<&'static str>) -> Start {
        Start {
            admin_password,
            env: self.env(),
            without_subcommand: false,
            listen: None,
        }
    }

    /// Tables and a log bucket of this test's own, and the environment that
    /// points `runway serve` at them.
    pub(crate) async fn jobs_backend(&self) -> crate::agents::Backend {
        let tmp = tempfile::tempdir().unwrap();
        // Bucket names are lowercase letters, digits and dashes.
        let bucket = format!(
            "logs-{}",
            self.prefix.trim_end_matches('_').replace('_', "-")
        );
        let mut env = self.env();
        env.push(("RUNWAY_LOG_BUCKET", bucket.clone()));
        env.push(("RUNWAY_S3_ENDPOINT", moto_endpoint()));
        let mut cmd = self.runway(tmp.path());
        cmd.args(["dynamodb", "create-tables"]);
        for (k, v) in &env[self.env().len()..] {
            cmd.env(k, v);
        }
        let (status, stdout, stderr) = run_to_end(cmd, None).await;
        assert!(
            status.success(),
            "create-tables failed:\n{stdout}\n{stderr}"
        );
        assert!(
            stdout.contains(&format!("Log bucket `{bucket}` is ready.")),
            "{stdout}"
        );
        crate::agents::Backend { env }
    }

    /// Ends the test: every DynamoDB call the binary made was one the function's
    /// IAM policy grants. (A refused call need not fail the story by itself: the
    /// server may retry it, or only log it from a background task.) Prints the
    /// relay's traffic, which `--nocapture` shows.
    pub(crate) fn assert_every_call_granted(self) {
        let denied = self.relay.denied();
        assert!(
            denied.is_empty(),
            "deploy/terraform/modules/runway/iam.tf does not grant what the server \
             called ({} refusals): {denied:#?}",
            denied.len()
        );
        eprintln!(
            "DynamoDB traffic through the relay:\n{}",
            self.relay.traffic()
        );
    }
}

#[tokio::test]
async fn create_tables_creates_every_table_and_a_second_run_reports_them_as_existing() {
    let tmp = tempfile::tempdir().unwrap();
    let moto = OnMoto::start().await;
    let prefix = &moto.prefix;
    let first = moto.create_tables(tmp.path()).await;
    assert!(
        first.contains(&format!("with prefix `{prefix}` in us-east-1")),
        "{first}"
    );
    for table in [
        "users",
        "lookups",
        "sessions",
        "registration_tokens",
        "agents",
        "jobs",
        "audit",
    ] {
        let line = first
            .lines()
            .find(|l| l.contains(&format!("{prefix}{table} ")))
            .unwrap_or_else(|| panic!("no line for {table}:\n{first}"));
        assert!(line.trim_start().starts_with("created"), "{line}");
    }
    let tables = runway_store_dynamodb::schema().len();
    assert!(
        first.contains(&format!("{tables} created, 0 already existed")),
        "{first}"
    );
    assert!(
        first.contains("TTL on `"),
        "the sessions table has TTL: {first}"
    );

    let second = moto.create_tables(tmp.path()).await;
    assert_eq!(
        second
            .lines()
            .filter(|l| l.trim_start().starts_with("exists"))
            .count(),
        tables,
        "{second}"
    );
    assert!(
        second.contains(&format!("0 created, {tables} already existed")),
        "{second}"
    );
    moto.assert_every_call_granted();
}

#[tokio::test]
async fn create_tables_flags_beat_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let moto = OnMoto::start().await;
    let flag_prefix = format!("{}flag_", moto.prefix);
    let (ok, stdout, stderr) = moto
        .run(
            tmp.path(),
            &[
                "dynamodb",
                "create-tables",
                "--prefix",
                &flag_prefix,
                "--endpoint",
                moto.endpoint(),
            ],
            None,
        )
        .await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains(&format!("{flag_prefix}jobs")), "{stdout}");
    let (ok, _, stderr) = moto
        .run(
            tmp.path(),
            &["dynamodb", "create-tables", "--prefix", "bad prefix!"],
            None,
        )
        .await;
    assert!(!ok);
    assert!(
        stderr.starts_with("error: --prefix is `bad prefix!`"),
        "{stderr}"
    );
    moto.assert_every_call_granted();
}

#[tokio::test]
async fn the_sdks_own_endpoint_variable_works_too() {
    let tmp = tempfile::tempdir().unwrap();
    let moto = OnMoto::start().await;
    let mut cmd = moto.runway(tmp.path());
    cmd.args(["dynamodb", "create-tables"])
        .env_remove("RUNWAY_DYNAMODB_ENDPOINT")
        .env("AWS_ENDPOINT_URL_DYNAMODB", moto.endpoint());
    let (status, stdout, stderr) = run_to_end(cmd, None).await;
    assert!(status.success(), "{stderr}");
    assert!(
        stdout.contains(&format!(
            "({}, from AWS_ENDPOINT_URL_DYNAMODB)",
            moto.endpoint()
        )),
        "{stdout}"
    );
    let tables = runway_store_dynamodb::schema().len();
    assert!(stdout.contains(&format!("{tables} created")), "{stdout}");
    moto.assert_every_call_granted();
}

#[tokio::test]
async fn serve_on_dynamodb_bootstraps_admin_once_and_needs_no_data_dir() {
    let (_tmp, data) = data_dir();
    let moto = OnMoto::start().await;
    moto.create_tables(data.parent().unwrap()).await;

    let server = Server::start(&data, moto.start_options(None)).await;
    let password = generated_password(&server.stdout()).expect("a generated admin password");
    let token = server.sign_in("admin", &password).await;
    let (status, info) = server.get("/api/v1/info", &token).await;
    assert_eq!(status, 200);
    assert_eq!(info["store"], "dynamodb", "{info}");
    let (_, stderr) = server.stop().await;
    assert!(!stderr.contains(&password), "the password is never logged");

    let again = Server::start(&data, moto.start_options(None)).await;
    assert!(
        generated_password(&again.stdout()).is_none(),
        "admin exists already: {}",
        again.stdout()
    );
    again.sign_in("admin", &password).await;
    again.stop().await;
    assert!(!data.exists(), "DynamoDB needs no data directory");
    moto.assert_every_call_granted();
}

#[tokio::test]
async fn admin_commands_work_against_dynamodb_without_a_data_dir() {
    let (_tmp, data) = data_dir();
    let dir = data.parent().unwrap();
    let moto = OnMoto::start().await;
    moto.create_tables(dir).await;

    let (ok, stdout, stderr) = moto
        .run(
            dir,
            &[
                "admin",
                "create-user",
                "--username",
                "ada",
                "--role",
                "admin",
                "--password-stdin",
            ],
            Some("adas-long-password-1\n"),
        )
        .await;
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("Created user `ada` with role admin."),
        "{stdout}"
    );

    let (ok, stdout, stderr) = moto
        .run(dir, &["admin", "reset-password", "--username", "ada"], None)
        .await;
    assert!(ok, "{stderr}");
    let new_password = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Password for `ada`: "))
        .expect("a generated password")
        .trim()
        .to_owned();

    let server = Server::start(&data, moto.start_options(Some(ADMIN_PASSWORD))).await;
    assert_eq!(
        server.try_sign_in("ada", "adas-long-password-1").await.0,
        401
    );
    server.sign_in("ada", &new_password).await;
    // A user existed before the first start, so no `admin` was bootstrapped.
    assert_eq!(server.try_sign_in("admin", ADMIN_PASSWORD).await.0, 401);
    server.stop().await;
    assert!(!data.exists(), "DynamoDB needs no data directory");
    moto.assert_every_call_granted();
}

#[tokio::test]
async fn serve_and_admin_without_tables_fail_saying_how_to_create_them() {
    let tmp = tempfile::tempdir().unwrap();
    let moto = OnMoto::start().await;
    let prefix = &moto.prefix;
    for args in [
        &["serve", "--listen", "127.0.0.1:0"][..],
        &["admin", "create-user", "--username", "ada"][..],
    ] {
        let (ok, stdout, stderr) = moto.run(tmp.path(), args, None).await;
        assert!(!ok, "{args:?}: {stdout}");
        assert!(
            stderr.starts_with(&format!(
                "error: cannot reach the DynamoDB tables `{prefix}*` at {}",
                moto.endpoint()
            )),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("runway dynamodb create-tables"), "{stderr}");
        assert!(
            !stdout.contains("password"),
            "nothing is bootstrapped: {stdout}"
        );
    }
    moto.assert_every_call_granted();
}

// ------------------------------------------- jobs run on DynamoDB + S3 (moto)

#[tokio::test]
async fn on_dynamodb_a_job_runs_and_its_output_arrives_in_order() {
    let _heavy = crate::agents::one_heavy_story_at_a_time().await;
    let moto = OnMoto::start().await;
    crate::agents::a_job_runs_and_its_output_arrives_in_order(&moto.jobs_backend().await).await;
    moto.assert_every_call_granted();
}

#[tokio::test]
async fn on_dynamodb_a_failing_script_fails_the_job_with_its_exit_code() {
    let _heavy = crate::agents::one_heavy_story_at_a_time().await;
    let moto = OnMoto::start().await;
    crate::agents::a_failing_script_fails_the_job_with_its_exit_code(&moto.jobs_backend().await)
        .await;
    moto.assert_every_call_granted();
}

#[tokio::test]
async fn on_dynamodb_megabytes_of_output_arrive_complete_and_in_order_through_s3() {
    let _heavy = crate::agents::one_heavy_story_at_a_time().await;
    let moto = OnMoto::start().await;
    // About 2.4 MB, ten chunks: every chunk is an S3 PUT and a conditional update
    // through the emulator, which is slow on a small machine.
    crate::agents::megabytes_of_output_arrive_complete_and_in_order(
        &moto.jobs_backend().await,
        200_000,
    )
    .await;
    moto.assert_every_call_granted();
}

#[tokio::test]
async fn on_dynamodb_a_secret_never_appears_in_the_log_or_the_api() {
    let _heavy = crate::agents::one_heavy_story_at_a_time().await;
    let moto = OnMoto::start().await;
    let (rig, _) =
        crate::agents::a_secret_never_appears_in_the_log_or_the_api(&moto.jobs_backend().await)
            .await;
    rig.server.stop().await;
    moto.assert_every_call_granted();
}

#[tokio::test]
async fn on_dynamodb_cancel_stops_the_whole_process_tree() {
    let _heavy = crate::agents::one_heavy_story_at_a_time().await;
    let moto = OnMoto::start().await;
    crate::agents::cancel_stops_the_whole_process_tree(&moto.jobs_backend().await).await;
    moto.assert_every_call_granted();
}

#[tokio::test]
async fn on_dynamodb_a_job_past_its_timeout_is_timed_out() {
    let _heavy = crate::agents::one_heavy_story_at_a_time().await;
    let moto = OnMoto::start().await;
    crate::agents::a_job_past_its_timeout_is_timed_out(&moto.jobs_backend().await).await;
    moto.assert_every_call_granted();
}

#[tokio::test]
async fn on_dynamodb_a_job_lost_with_its_agent_is_retried_by_another() {
    let _heavy = crate::agents::one_heavy_story_at_a_time().await;
    let moto = OnMoto::start().await;
    crate::agents::a_job_lost_with_its_agent_is_retried_by_another(&moto.jobs_backend().await)
        .await;
    moto.assert_every_call_granted();
}

#[tokio::test]
async fn on_dynamodb_a_server_crash_loses_nothing_and_every_job_finishes() {
    let _heavy = crate::agents::one_heavy_story_at_a_time().await;
    let moto = OnMoto::start().await;
    crate::agents::a_server_crash_loses_nothing_and_every_job_finishes(&moto.jobs_backend().await)
        .await;
    moto.assert_every_call_granted();
}

/// The contention story at the size it asks for on the emulator, with the
/// rule of the SQLite one (16 × 2,000): every job ends with exactly one attempt,
/// which succeeded, and by the agents' own journals no job ran twice, let alone
/// twice at once. The relay is what makes the strict rule hold here: without it a
/// transaction moto canceled could undo a concurrent finish, and the attempt would
/// be reaped as lost and run again.
#[tokio::test]
async fn on_dynamodb_eight_agents_run_two_hundred_fifty_jobs_each_exactly_once() {
    let _heavy = crate::agents::one_heavy_story_at_a_time().await;
    let moto = OnMoto::start().await;
    crate::agents::many_agents_run_many_jobs_each_exactly_once(&moto.jobs_backend().await, 8, 250)
        .await;
    moto.assert_every_call_granted();
}
