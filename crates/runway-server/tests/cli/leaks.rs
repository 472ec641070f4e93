//! Proof that secrets stay secret: one scenario uses every kind of credential and
//! secret Runway handles, then every place the system writes to is searched, as
//! raw bytes, for each raw value, and none may be there.
//!
//! The scenario ([`use_every_secret`]) runs the real `runway serve` at
//! `RUNWAY_LOG=debug` (the most verbose level it allows) and a real `runway-agent`
//! at `RUNWAY_AGENT_LOG=debug`: the first-start admin password, a member created
//! with `runway admin create-user`, password sign-ins (session tokens), a password
//! reset, an OpenID Connect sign-in through the real test provider (the client
//! secret, the authorization code, the session), a registration token, the agent
//! token it is exchanged for, a job with a secret that the script echoes (so the
//! agent masks it) and uses, and a job token.
//! The agent keeps the job token it is given to itself, so the test claims one job
//! itself with the agent's token (read from the agent's state file after the agent
//! stopped), as an agent would, and finishes it with that job token.
//!
//! Then the places searched: the server's, the agent's and every admin command's
//! captured stdout and stderr; the API's answers after the fact; and the store:
//! on SQLite every file under the test's temp directory (database, WAL, logs,
//! the agent's journal and work files), on DynamoDB every item of every table (a
//! paginated `Scan`) and every object in the log bucket. One file is left out on
//! purpose: the agent's `state/agent.json`, which holds the agent token by design
//! (mode 0600) so that the agent survives restarts.
//!
//! A scan that reads nothing would pass vacuously, so each one must also find two
//! canaries the scenario planted in plain sight: a value in a job's plain `env`
//! (stored as given) and a line the script prints (stored in the job's log).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::agents::{Backend, Rig};
use crate::support::{ADMIN_PASSWORD, run_to_end, runway};

/// The longest any step may take.
const PATIENCE: Duration = Duration::from_secs(120);

/// What the scenario used and where its traces are.
pub struct Used {
    /// Every raw secret the scenario used, by what it is.
    pub secrets: Vec<(&'static str, String)>,
    /// Stored in plain sight: must be found by every store scan.
    pub env_canary: String,
    pub log_canary: String,
    /// Everything the processes printed (server, agent, admin commands) and the
    /// API answered, apart from the answers that hand a credential out.
    pub printed: Vec<(String, String)>,
    /// The agent's own token file, left out of the file scan.
    pub agent_file: PathBuf,
}

/// The public URL the provider has the callback of registered.
const PUBLIC_URL: &str = "https://runway.example.test";
/// The provider's client secret for `runway` (tests/oidc/provider.mjs).
const OIDC_CLIENT_SECRET: &str = "runway-test-client-secret";

/// The test OpenID provider, or a panic saying how to start it.
fn oidc_issuer() -> String {
    match std::env::var("RUNWAY_TEST_OIDC_ISSUER") {
        Ok(issuer) if !issuer.trim().is_empty() => issuer,
        _ => panic!(
            "RUNWAY_TEST_OIDC_ISSUER is not set: this test signs in through a real \
             OpenID provider. Run:\n\n    scripts/oidc-provider.sh install && \
             scripts/oidc-provider.sh run cargo test -p runway-server --test cli leaks\n"
        ),
    }
}

/// A browser: follows no redirect by itself, keeps the cookies it is given.
struct Browser {
    http: reqwest::Client,
    cookies: std::collections::BTreeMap<String, String>,
}

impl Browser {
    /// Sends `request` with the cookies; the response's `Location`, made absolute
    /// against `base`, and its cookies kept.
    async fn redirect(
        &mut self,
        request: reqwest::RequestBuilder,
        base: &str,
    ) -> (String, Vec<String>) {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let response = request.header("cookie", cookie).send().await.unwrap();
        let set: Vec<String> = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for value in &set {
            let pair = value.split(';').next().unwrap();
            if let Some((name, value)) = pair.split_once('=') {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = response.status();
        let Some(location) = response
            .headers()
            .get("location")
            .filter(|_| status.is_redirection())
            .map(|l| l.to_str().unwrap().to_owned())
        else {
            panic!(
                "expected a redirect, got {status}: {}",
                response.text().await.unwrap()
            );
        };
        let location = if location.starts_with('/') {
            format!("{base}{location}")
        } else {
            location
        };
        (location, set)
    }
}

/// Signs `account` in through the provider, as a browser would: Runway's login,
/// the provider's form, and back to Runway's callback (on the test's own address,
/// not the public URL). The authorization code and the session token.
async fn oidc_sign_in(rig: &Rig, account: &str) -> (String, String) {
    let mut browser = Browser {
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        cookies: std::collections::BTreeMap::new(),
    };
    let runway = rig.server.base.clone();
    let (authorize, _) = browser
        .redirect(
            browser.http.get(rig.server.url("/api/v1/auth/oidc/login")),
            &runway,
        )
        .await;
    let provider = authorize.split('/').take(3).collect::<Vec<_>>().join("/");
    let (form, _) = browser
        .redirect(browser.http.get(&authorize), &provider)
        .await;
    let (resume, _) = browser
        .redirect(
            browser
                .http
                .post(format!("{form}/login"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(format!("login={account}")),
            &provider,
        )
        .await;
    let (callback, _) = browser.redirect(browser.http.get(&resume), &provider).await;
    let callback = callback
        .strip_prefix(PUBLIC_URL)
        .unwrap_or_else(|| panic!("the provider sent the browser elsewhere: {callback}"));
    let code = callback
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("code="))
        .expect("the callback carries a code")
        .to_owned();
    let (_, set) = browser
        .redirect(browser.http.get(rig.server.url(callback)), &runway)
        .await;
    let session = set
        .iter()
        .find_map(|c| c.strip_prefix("runway_session="))
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_else(|| panic!("no session cookie in {set:?}"))
        .to_owned();
    let (status, me) = rig.server.get("/api/v1/auth/session", &session).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user"]["username"], format!("{account}@example.com"));
    (code, session)
}

/// A value no other test or run uses.
fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{what}-{}-{nanos}", std::process::id())
}

/// Runs `runway admin ARGS…` on the backend's store with `stdin`; its output.
async fn admin(rig: &Rig, backend: &Backend, args: &[&str], stdin: &str) -> String {
    let mut cmd = runway(rig.tmp.path());
    cmd.arg("admin").args(args).env("RUNWAY_LOG", "debug");
    if backend.env.is_empty() {
        cmd.arg("--data-dir").arg(&rig.data);
    }
    for (k, v) in &backend.env {
        cmd.env(k, v);
    }
    let (status, stdout, stderr) = run_to_end(cmd, Some(stdin)).await;
    assert!(status.success(), "admin {args:?}: {stdout}\n{stderr}");
    format!("{stdout}\n{stderr}")
}

/// The scenario: every secret used once and the jobs finished; the server still
/// runs.
pub async fn use_every_secret(backend: &Backend) -> (Rig, Used) {
    let issuer = oidc_issuer();
    let rig = Rig::start(
        backend,
        &[
            ("RUNWAY_LOG", "debug"),
            ("RUNWAY_PUBLIC_URL", PUBLIC_URL),
            ("RUNWAY_OIDC_ISSUER_URL", &issuer),
            ("RUNWAY_OIDC_CLIENT_ID", "runway"),
            ("RUNWAY_OIDC_CLIENT_SECRET", OIDC_CLIENT_SECRET),
        ],
    )
    .await;
    let mut printed = Vec::new();

    // A person signs in through the OpenID provider.
    let (code, oidc_session) = oidc_sign_in(&rig, "ada").await;

    // A member made by an operator, who signs in, has the password reset and
    // signs in with the new one.
    let member_password = unique("members-first-password");
    let reset_password = unique("members-reset-password");
    let out = admin(
        &rig,
        backend,
        &[
            "create-user",
            "--username",
            "mia",
            "--role",
            "member",
            "--password-stdin",
        ],
        &format!("{member_password}\n"),
    )
    .await;
    printed.push(("`runway admin create-user`".into(), out));
    let first_session = rig.server.sign_in("mia", &member_password).await;
    let out = admin(
        &rig,
        backend,
        &["reset-password", "--username", "mia", "--password-stdin"],
        &format!("{reset_password}\n"),
    )
    .await;
    printed.push(("`runway admin reset-password`".into(), out));
    assert_eq!(
        rig.server.try_sign_in("mia", &member_password).await.0,
        401,
        "the old password is gone"
    );
    let second_session = rig.server.sign_in("mia", &reset_password).await;

    // A real agent runs a job with a secret, which the script prints and uses.
    let mut agent = rig.agent("builder-1", &[("RUNWAY_AGENT_LOG", "debug")]);
    let job_secret = unique("job-secret-value");
    let env_canary = unique("plain-env-canary");
    let log_canary = unique("printed-log-canary");
    let ran = rig
        .submit(json!({
            "name": "deploy",
            "script": format!(
                "echo \"token is $DEPLOY_TOKEN\"; test \"${{#DEPLOY_TOKEN}}\" = {len}; \
                 echo \"{log_canary} $PLAIN\"",
                len = job_secret.len()
            ),
            "secrets": {"DEPLOY_TOKEN": job_secret},
            "env": {"PLAIN": env_canary},
            "timeout_seconds": 60
        }))
        .await;
    let job = rig.wait_for(&ran, &["succeeded", "failed"], PATIENCE).await;
    assert_eq!(job["status"], "succeeded", "{job}\n{}", agent.stderr());
    assert_eq!(
        rig.log(&ran).await,
        format!("token is ***\n{log_canary} {env_canary}\n"),
        "the agent masks the secret, and only the secret"
    );
    agent.sigterm().await;
    assert!(agent.wait(PATIENCE).await.success(), "{}", agent.stderr());

    // The agent's token, from where the agent keeps it; with it the test claims a
    // job itself, to hold a job token.
    let agent_file = agent.state_dir.join("agent.json");
    let saved: Value = serde_json::from_slice(&std::fs::read(&agent_file).unwrap()).unwrap();
    let agent_token = saved["token"].as_str().unwrap().to_owned();
    let claimed_secret = unique("claimed-job-secret");
    let by_hand = rig
        .submit(json!({
            "name": "by hand",
            "script": "true",
            "secrets": {"API_KEY": claimed_secret},
        }))
        .await;
    let (status, claim) = rig
        .server
        .post("/agent/v1/jobs/claim?wait=0", &agent_token, json!({}))
        .await;
    assert_eq!(status, 200, "{claim}");
    assert_eq!(claim["job"]["id"], by_hand.as_str());
    assert_eq!(
        claim["job"]["secrets"]["API_KEY"], claimed_secret,
        "the claim is where the agent gets the secret"
    );
    let job_token = claim["job_token"].as_str().unwrap().to_owned();
    let (status, body) = rig
        .server
        .post(
            &format!("/agent/v1/jobs/{by_hand}/start"),
            &job_token,
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = rig
        .server
        .post(
            &format!("/agent/v1/jobs/{by_hand}/finish"),
            &job_token,
            json!({"result": "succeeded", "exit_code": 0, "log_bytes": 0, "log_crc32": 0}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    rig.wait_for(&by_hand, &["succeeded"], PATIENCE).await;

    // A personal API token, used once; and a user made through the users API with
    // a password, who signs in with it.
    let (status, body) = rig
        .server
        .post(
            "/api/v1/auth/tokens",
            &rig.admin,
            json!({"name": "leak scan", "read_only": true}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let api_token = body["token"].as_str().unwrap().to_owned();
    let (status, body) = rig.server.get("/api/v1/jobs", &api_token).await;
    assert_eq!(status, 200, "{body}");
    printed.push((
        "GET /api/v1/jobs with an API token".into(),
        body.to_string(),
    ));
    let created_password = unique("api-created-users-password");
    let (status, body) = rig
        .server
        .post(
            "/api/v1/users",
            &rig.admin,
            json!({"username": "uma", "role": "member", "password": created_password}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    printed.push(("POST /api/v1/users".into(), body.to_string()));
    let created_session = rig.server.sign_in("uma", &created_password).await;

    // The API after the fact: everything an admin and the member can read.
    for path in [
        format!("/api/v1/jobs/{ran}"),
        format!("/api/v1/jobs/{by_hand}"),
        format!("/api/v1/jobs/{ran}/log"),
        "/api/v1/jobs".into(),
        "/api/v1/agents".into(),
        "/api/v1/registration-tokens".into(),
        "/api/v1/auth/sessions".into(),
        "/api/v1/auth/session".into(),
        "/api/v1/audit?limit=200".into(),
        "/api/v1/auth/tokens".into(),
        "/api/v1/users".into(),
    ] {
        for (who, token) in [
            ("admin", &rig.admin),
            ("mia", &second_session),
            ("ada", &oidc_session),
        ] {
            let (_, body) = rig.server.get(&path, token).await;
            printed.push((format!("GET {path} as {who}"), body.to_string()));
        }
    }
    assert!(
        agent.stderr().contains("DEBUG"),
        "the agent logged at debug level: {}",
        agent.stderr()
    );
    printed.push(("the agent's stderr".into(), agent.stderr()));

    let secrets = vec![
        ("the first-start admin password", ADMIN_PASSWORD.to_owned()),
        ("the member's first password", member_password),
        ("the member's reset password", reset_password),
        ("the admin's session token", rig.admin.clone()),
        ("the member's first session token", first_session),
        ("the member's second session token", second_session),
        ("the OIDC client secret", OIDC_CLIENT_SECRET.to_owned()),
        ("the OIDC authorization code", code),
        ("the OIDC sign-in's session token", oidc_session),
        ("the registration token", rig.registration.clone()),
        ("the agent token", agent_token),
        ("the job token", job_token),
        ("the job secret the agent ran with", job_secret),
        ("the job secret claimed by hand", claimed_secret),
        ("the personal API token", api_token),
        (
            "the password of a user made through the API",
            created_password,
        ),
        (
            "the session token of a user made through the API",
            created_session,
        ),
    ];
    let used = Used {
        secrets,
        env_canary,
        log_canary,
        printed,
        agent_file,
    };
    (rig, used)
}

impl Used {
    /// Stops the server and adds what it printed to [`Used::printed`]; the rig's
    /// temp directory, which lives on for the scan.
    pub async fn stop_server(&mut self, rig: Rig) -> tempfile::TempDir {
        let Rig { server, tmp, .. } = rig;
        let (stdout, stderr) = server.stop().await;
        assert!(
            stderr.contains("DEBUG"),
            "the server logged at debug level: {stderr}"
        );
        self.printed.push(("the server's stdout".into(), stdout));
        self.printed.push(("the server's stderr".into(), stderr));
        tmp
    }

    /// No secret in anything printed or answered.
    pub fn assert_nothing_printed(&self) {
        for (place, text) in &self.printed {
            for (what, secret) in &self.secrets {
                assert!(!text.contains(secret.as_str()), "{place} shows {what}");
            }
        }
    }

    /// No secret in any of `blobs` (place, bytes), and both canaries in some.
    pub fn assert_stored_without_secrets(&self, blobs: &[(String, Vec<u8>)]) {
        assert!(!blobs.is_empty(), "the scan read nothing");
        for (place, bytes) in blobs {
            for (what, secret) in &self.secrets {
                assert!(!contains(bytes, secret), "{place} holds {what}");
            }
        }
        for canary in [&self.env_canary, &self.log_canary] {
            assert!(
                blobs.iter().any(|(_, bytes)| contains(bytes, canary)),
                "the scan cannot find the canary `{canary}` stored in plain sight, \
                 so it proves nothing; it read: {:?}",
                blobs.iter().map(|(p, _)| p).collect::<Vec<_>>()
            );
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Every file under `dir` but `except`, as raw bytes.
fn every_file(dir: &Path, except: &Path, into: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            every_file(&path, except, into);
        } else if path != except {
            into.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
}

#[tokio::test]
async fn on_sqlite_no_password_token_or_secret_is_in_any_log_file_or_answer() {
    let (rig, mut used) = use_every_secret(&Backend::default()).await;
    let data = rig.data.clone();
    let tmp = used.stop_server(rig).await;
    used.assert_nothing_printed();
    let mut files = Vec::new();
    every_file(tmp.path(), &used.agent_file, &mut files);
    assert!(
        files.iter().any(|(p, _)| Path::new(p).starts_with(&data)),
        "the data directory was scanned: {:?}",
        files.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    used.assert_stored_without_secrets(&files);
}

/// The raw bytes of one DynamoDB attribute value, every string, number and binary
/// in it (map keys too), so that nothing escapes the search whatever its type.
fn attribute_bytes(value: &aws_sdk_dynamodb::types::AttributeValue, into: &mut Vec<u8>) {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    match value {
        A::S(s) | A::N(s) => into.extend_from_slice(s.as_bytes()),
        A::B(b) => into.extend_from_slice(b.as_ref()),
        A::Ss(all) | A::Ns(all) => all
            .iter()
            .for_each(|s| into.extend_from_slice(s.as_bytes())),
        A::Bs(all) => all.iter().for_each(|b| into.extend_from_slice(b.as_ref())),
        A::L(all) => all.iter().for_each(|v| attribute_bytes(v, into)),
        A::M(map) => {
            for (k, v) in map {
                into.extend_from_slice(k.as_bytes());
                into.push(b'\n');
                attribute_bytes(v, into);
            }
        }
        A::Bool(_) | A::Null(_) => {}
        other => panic!("an attribute type the scan cannot read: {other:?}"),
    }
    into.push(b'\n');
}

/// Every item of every table under `prefix` and every object in `bucket`, read
/// straight from moto with the AWS SDK.
async fn everything_on_moto(prefix: &str, bucket: &str) -> Vec<(String, Vec<u8>)> {
    use aws_config::{BehaviorVersion, Region};
    use aws_sdk_dynamodb::config::Credentials;
    let endpoint = crate::dynamodb::moto_endpoint();
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .credentials_provider(Credentials::new("test", "test", None, None, "leaks"))
        .region(Region::new("us-east-1"))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .load()
        .await;
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .endpoint_url(&endpoint)
            .build(),
    );
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .endpoint_url(&endpoint)
            .force_path_style(true)
            .build(),
    );

    let mut blobs = Vec::new();
    let mut tables = Vec::new();
    let mut pages = dynamodb.list_tables().into_paginator().send();
    while let Some(page) = pages.next().await {
        tables.extend(
            page.unwrap()
                .table_names()
                .iter()
                .filter(|t| t.starts_with(prefix))
                .cloned(),
        );
    }
    assert_eq!(
        tables.len(),
        runway_store_dynamodb::schema().len(),
        "every table is scanned: {tables:?}"
    );
    for table in tables {
        let mut pages = dynamodb.scan().table_name(&table).into_paginator().send();
        while let Some(page) = pages.next().await {
            for item in page.unwrap().items() {
                let mut bytes = Vec::new();
                for (name, value) in item {
                    bytes.extend_from_slice(name.as_bytes());
                    bytes.push(b'\n');
                    attribute_bytes(value, &mut bytes);
                }
                blobs.push((format!("an item of DynamoDB table {table}"), bytes));
            }
        }
    }
    let mut pages = s3.list_objects_v2().bucket(bucket).into_paginator().send();
    let mut objects = 0;
    while let Some(page) = pages.next().await {
        for object in page.unwrap().contents() {
            let key = object.key().unwrap();
            let body = s3
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .unwrap()
                .body
                .collect()
                .await
                .unwrap()
                .into_bytes()
                .to_vec();
            blobs.push((format!("S3 object {bucket}/{key}"), body));
            objects += 1;
        }
    }
    assert!(objects > 0, "the log bucket holds the job's log");
    blobs
}

#[tokio::test]
async fn on_dynamodb_no_password_token_or_secret_is_in_any_log_item_object_or_answer() {
    let _heavy = crate::agents::one_heavy_story_at_a_time().await;
    let moto = crate::dynamodb::OnMoto::start().await;
    let backend = moto.jobs_backend().await;
    let bucket = backend
        .env
        .iter()
        .find_map(|(k, v)| (*k == "RUNWAY_LOG_BUCKET").then(|| v.clone()))
        .unwrap();
    let (rig, mut used) = use_every_secret(&backend).await;
    let tmp = used.stop_server(rig).await;
    used.assert_nothing_printed();
    let mut blobs = everything_on_moto(&moto.prefix, &bucket).await;
    // And the files the agent wrote (its token file aside).
    every_file(tmp.path(), &used.agent_file, &mut blobs);
    used.assert_stored_without_secrets(&blobs);
    // The log canary is in the bucket itself, so the object scan is no formality.
    assert!(
        blobs
            .iter()
            .any(|(p, b)| p.starts_with("S3 object") && contains(b, &used.log_canary)),
        "the job's log is in the bucket"
    );
    moto.assert_every_call_granted();
}
