//! `runway serve`: bind, open the store, make sure an admin exists, serve, and shut
//! down gracefully.
//!
//! Order matters, and each step fails with a one-line reason before anything is
//! announced:
//!
//! 1. The signal handlers are installed **first**, so a SIGTERM that arrives the
//!    instant the listening line is printed (as tests and supervisors do) triggers a
//!    graceful shutdown instead of the default "die immediately".
//! 2. The listener is bound before the store is touched: if the port is taken, the
//!    run fails before a first-start admin password could be generated, printed and
//!    then lost with the failed process.
//! 3. The store is opened — the data directory's database, or the DynamoDB tables,
//!    which are pinged so that missing tables or credentials fail here, in one
//!    sentence, rather than on the first request — then the first admin is
//!    ensured. A generated password is printed once, to stdout, never logged.
//! 4. Only then is `Runway listening on http://ADDR` printed, with the address
//!    actually bound, so `--listen 127.0.0.1:0` works and a reader of that line can
//!    connect at once.
//! 5. The reaper runs in the background every `RUNWAY_REAPER_INTERVAL_SECONDS`.
//! 6. Connections are served by [`crate::http`]: a header-read timeout, a cap on
//!    open connections, and the router's request and body timeouts.
//! 7. On SIGTERM or Ctrl-C, waiting claims (long polls) and live log streams are
//!    answered at once (204, and the end of the stream), the reaper stops, and the
//!    server stops accepting and lets in-flight requests finish.
//!    If they take longer than the grace period the process exits anyway, with a
//!    log line saying so and a failure status, because a supervisor should know the
//!    shutdown was not clean.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use runway_core::store::{LogStore, Store};
use runway_service::Service;
use runway_service::accounts::{self, Bootstrap};
use tokio::net::TcpListener;

use crate::config::{Config, DynamoSettings, StoreKind};
use crate::output;

/// The records and the logs, which on SQLite are one database and on AWS are
/// DynamoDB and S3 behind one value.
#[derive(Clone)]
pub struct Stores {
    /// Users, sessions, agents, jobs, the audit log.
    pub records: Arc<dyn Store>,
    /// Job logs.
    pub logs: Arc<dyn LogStore>,
}

impl std::fmt::Debug for Stores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stores")
            .field("backend", &self.records.backend())
            .finish_non_exhaustive()
    }
}

impl Stores {
    /// Both views of one store.
    pub fn of<T: Store + LogStore + 'static>(store: T) -> Self {
        let store = Arc::new(store);
        Self {
            records: Arc::clone(&store) as Arc<dyn Store>,
            logs: store,
        }
    }

    /// The application over these stores, with `config`'s dispatch settings.
    #[must_use]
    pub fn service(&self, settings: runway_service::DispatchSettings) -> Service {
        Service::new(Arc::clone(&self.records), Arc::clone(&self.logs), settings)
    }
}

/// Opens the configured store, creating the data directory (`0700`, the database
/// `0600`) if needed and tightening one that others can read. For DynamoDB
/// this builds the client only; no request is made (see [`check_store`]).
///
/// # Errors
/// If the directory cannot be created, the database cannot be opened, or no AWS
/// region is configured.
pub async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    Ok(open_stores(config).await?.records)
}

/// [`open_store`], with the log store beside it.
///
/// # Errors
/// As [`open_store`].
pub async fn open_stores(config: &Config) -> anyhow::Result<Stores> {
    match config.store {
        StoreKind::Dynamodb => Ok(Stores::of(open_dynamodb(&config.dynamodb).await?)),
        StoreKind::Sqlite => {
            let dir = config.data_dir.clone();
            // 0700 and 0600, whatever the umask; wider modes are tightened, and said so.
            let fixes = runway_store_sqlite::secure_data_dir(&dir)
                .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
            for fix in &fixes {
                tracing::warn!(data_dir = %dir.display(), "{fix}");
            }
            let store = tokio::task::spawn_blocking(move || open_sqlite(&dir))
                .await
                .context("the task opening the database panicked")??;
            Ok(store)
        }
    }
}

/// Builds the DynamoDB client (credentials, region, endpoint from the AWS chain and
/// the settings). Makes no request.
///
/// # Errors
/// If no region is configured.
pub async fn open_dynamodb(
    settings: &DynamoSettings,
) -> anyhow::Result<runway_store_dynamodb::DynamoStore> {
    runway_store_dynamodb::DynamoStore::connect(&settings.store_config())
        .await
        .context("cannot set up the DynamoDB client")
}

/// One cheap round trip to the store, so that missing DynamoDB tables, credentials
/// or permissions are reported at start-up with what to do about them.
///
/// # Errors
/// If the store does not answer.
pub async fn check_store(config: &Config, store: &dyn Store) -> anyhow::Result<()> {
    store.ping().await.with_context(|| match config.store {
        StoreKind::Sqlite => format!(
            "the database in {} does not answer",
            config.data_dir.display()
        ),
        StoreKind::Dynamodb => format!(
            "cannot reach the DynamoDB tables `{prefix}*` at {at}: check the AWS credentials \
             and region, and create the tables with `runway dynamodb create-tables --prefix {prefix}`",
            prefix = config.dynamodb.table_prefix,
            at = config.dynamodb.endpoint_for_display(env_var),
        ),
    })
}

/// A process environment variable, lossily decoded (for messages only).
pub(crate) fn env_var(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

fn open_sqlite(dir: &Path) -> anyhow::Result<Stores> {
    let store = runway_store_sqlite::open_data_dir(dir).with_context(|| {
        format!(
            "cannot open the database {}",
            dir.join(runway_store_sqlite::DB_FILE_NAME).display()
        )
    })?;
    Ok(Stores::of(store))
}

/// What the first start must tell the operator, exactly once.
pub(crate) fn announce_bootstrap(bootstrap: Bootstrap) -> anyhow::Result<()> {
    match bootstrap {
        Bootstrap::AlreadyInitialized => {}
        Bootstrap::CreatedWithGivenPassword => {
            tracing::info!(
                user.name = "admin",
                "created user `admin` with the password from RUNWAY_ADMIN_PASSWORD"
            );
        }
        Bootstrap::CreatedWithGeneratedPassword(password) => {
            tracing::info!(
                user.name = "admin",
                "created user `admin` with a generated password (printed once to stdout)"
            );
            output::lines(&[
                "",
                "================================================================",
                &format!("Created user `admin` with password: {}", password.expose()),
                "(shown once; change it with `runway admin reset-password --username admin`)",
                "================================================================",
                "",
            ])?;
        }
    }
    Ok(())
}

/// Resolves when SIGTERM or Ctrl-C arrives. Built before binding, so the handlers
/// are in place from the moment the server is announced.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = &'static str>> {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    Ok(async move {
        #[cfg(unix)]
        let term = async move {
            term.recv().await;
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            () = term => "SIGTERM",
            result = tokio::signal::ctrl_c() => match result {
                Ok(()) => "Ctrl-C",
                // Without a Ctrl-C handler, SIGTERM still works; wait for it alone.
                Err(_) => std::future::pending().await,
            },
        }
    })
}

/// Runs the server until a shutdown signal, then drains.
///
/// # Errors
/// Startup failures (data directory, database, admin bootstrap, port in use), a
/// failing server, or a drain that outlived the grace period.
pub async fn serve(config: &Config) -> anyhow::Result<()> {
    let signal = shutdown_signal()?;
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
    announce_bootstrap(bootstrap)?;

    output::lines(&[
        &format!("Runway listening on http://{addr}"),
        &format!("API docs: http://{addr}/docs"),
    ])?;
    match config.store {
        StoreKind::Sqlite => tracing::info!(
            listen.addr = %addr,
            store = "sqlite",
            data_dir = %config.data_dir.display(),
            "runway listening"
        ),
        StoreKind::Dynamodb => tracing::info!(
            listen.addr = %addr,
            store = "dynamodb",
            dynamodb.table_prefix = %config.dynamodb.table_prefix,
            "runway listening"
        ),
    }
    let service = stores
        .service(config.dispatch_settings())
        .with_limits(config.limits.clone());
    run_server(config, listener, service, signal).await
}

/// Runs the reaper every `interval` until `service` is closed.
pub fn spawn_reaper(service: Service, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let closed = service.closed();
        tokio::pin!(closed);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = &mut closed => return,
            }
            if let Err(err) = service.reap().await {
                tracing::warn!(error = %err, "reaper pass failed; retrying at the next tick");
            }
        }
    })
}

/// Serves `service` on `listener` until `signal`, with the reaper beside it, then
/// drains. Shared by `serve` and `dev`.
///
/// # Errors
/// A failing server, or a drain that outlived the grace period.
pub(crate) async fn run_server(
    config: &Config,
    listener: TcpListener,
    service: Service,
    signal: impl Future<Output = &'static str> + Send + 'static,
) -> anyhow::Result<()> {
    let reaper = spawn_reaper(
        service.clone(),
        Duration::from_secs(config.reaper_interval_seconds),
    );
    let router = runway_api::router(service.clone(), config.api_config());
    let grace = Duration::from_secs(config.shutdown_grace_seconds);
    let (signaled_tx, signaled_rx) = tokio::sync::oneshot::channel::<()>();
    let closing = service.clone();
    let graceful = async move {
        let which = signal.await;
        tracing::info!(
            signal = which,
            grace_seconds = grace.as_secs(),
            "shutting down: no new connections; waiting for in-flight requests"
        );
        // Answer long polls and end live streams now, rather than making the
        // drain wait for them.
        closing.close();
        let _ = signaled_tx.send(());
    };
    let server = crate::http::serve(listener, router, config.connection_limits(), graceful);

    let deadline = async move {
        if signaled_rx.await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            // The server ended without a signal; its own result decides.
            std::future::pending::<()>().await;
        }
    };
    let outcome = tokio::select! {
        () = server => {
            tracing::info!("shut down cleanly");
            Ok(())
        }
        () = deadline => {
            tracing::warn!(
                grace_seconds = grace.as_secs(),
                "requests still in flight after the shutdown grace period; exiting anyway"
            );
            Err(anyhow::anyhow!(
                "requests were still in flight {} s after the shutdown signal (RUNWAY_SHUTDOWN_GRACE_SECONDS)",
                grace.as_secs()
            ))
        }
    };
    service.close();
    reaper.abort();
    outcome
}
