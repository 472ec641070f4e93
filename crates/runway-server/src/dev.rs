//! `runway dev`: the server and one local agent in one process, so a newcomer can
//! submit a job and watch it run with nothing else to start.
//!
//! It is `runway serve` (same store, same reaper, same Router) plus the real
//! `runway-agent` code, linked in as a library and run on a thread of its own with
//! its own single-threaded runtime, exactly as the standalone binary runs it. The
//! agent talks to the server over loopback HTTP like any other agent: nothing is
//! short-circuited, so what works here works with a fleet.
//!
//! * **Registration.** On start, `dev` makes a one-use registration token through
//!   the service, audited as made by the system (the operator is on the machine
//!   already) and hands it to the agent,
//!   whose token and journal then live in `<data dir>/dev-agent/state` and whose job
//!   workspaces in `<data dir>/dev-agent/work`. A restart reuses the saved agent token.
//! * **Labels.** The agent has the label `*`, so it runs every job of the `default`
//!   queue, whatever labels the job asks for.
//! * **Shutdown.** The agent owns the signals: the first SIGTERM or Ctrl-C stops
//!   claiming, lets running jobs finish and disconnects; a second one cancels them.
//!   Only when the agent has left does the server drain and stop, so the agent's
//!   last calls (finish, disconnect) always have a server to reach.

use anyhow::Context as _;
use runway_core::OffsetDateTime;
use runway_core::id::UserId;
use runway_service::accounts;
use runway_service::audit::Caller;
use runway_service::registration_tokens::{self, NewRegistrationToken};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::output;
use crate::serve::{self, check_store, open_stores};

/// The agent's directory inside the data directory.
pub const AGENT_DIR: &str = "dev-agent";

/// Runs the server and one agent until the agent is stopped (SIGTERM, Ctrl-C).
///
/// # Errors
/// As `runway serve`; an agent that fails to start or stops with an error.
pub async fn dev(config: &Config) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener
        .local_addr()
        .context("cannot read the bound address")?;
    let stores = open_stores(config).await?;
    check_store(config, stores.records.as_ref()).await?;
    let bootstrap = accounts::ensure_admin(stores.records.as_ref(), config.admin_password.clone())
        .await
        .context("cannot create the first admin user")?;
    serve::announce_bootstrap(bootstrap)?;

    // A one-use token, valid for a minute: enough for the agent's first start, and
    // worthless afterwards (a restart uses the agent token the agent saved).
    let now = OffsetDateTime::now_utc();
    let checked = registration_tokens::check(
        NewRegistrationToken {
            description: Some("runway dev: the local agent".into()),
            expires_at: Some(Some(now + time::Duration::minutes(1))),
            max_uses: Some(1),
        },
        now,
    )
    .context("cannot make the local agent's registration token")?;
    // Made by no user: `runway dev` itself, as the system in the audit log.
    let (_, registration_token) = registration_tokens::create(
        stores.records.as_ref(),
        &Caller::system(),
        UserId::new(),
        checked,
    )
    .await
    .context("cannot create the local agent's registration token")?;

    let agent_dir = config.data_dir.join(AGENT_DIR);
    let server_url = format!("http://{addr}");
    let args = runway_agent::Args {
        server_url: server_url.clone(),
        registration_token: Some(registration_token.expose().to_owned()),
        name: Some("dev-agent".into()),
        region: None,
        labels: Some(runway_agent::config::Labels(vec!["*".into()])),
        queue: None,
        capacity: 2,
        work_dir: agent_dir.join("work"),
        state_dir: agent_dir.join("state"),
        log: config.log.clone(),
    };
    let (agent_done_tx, agent_done_rx) = tokio::sync::oneshot::channel();
    let agent = std::thread::Builder::new()
        .name("runway-agent".into())
        .spawn(move || {
            let result = runway_agent::run_embedded(args);
            let _ = agent_done_tx.send(());
            result
        })
        .context("cannot start the local agent's thread")?;

    output::lines(&[
        &format!("Runway listening on {server_url}"),
        &format!("API docs: {server_url}/docs"),
        "Local agent: dev-agent, runs 2 jobs at once from the `default` queue, any labels.",
        "Ctrl-C stops the agent (running jobs finish first; twice cancels them), then the server.",
    ])?;
    tracing::info!(listen.addr = %addr, data_dir = %config.data_dir.display(), "runway dev listening");

    let service = stores
        .service(config.dispatch_settings())
        .with_limits(config.limits.clone());
    let agent_gone = async move {
        let _ = agent_done_rx.await;
        "the local agent stopped"
    };
    let served = serve::run_server(config, listener, service, agent_gone).await;
    let agent_result = agent
        .join()
        .map_err(|_| anyhow::anyhow!("the local agent panicked"))?;
    agent_result
        .map_err(|err| anyhow::anyhow!("the local agent failed: {}", runway_agent::Chain(&err)))?;
    served
}
