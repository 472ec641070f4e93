//! `runway admin`: user management straight on the store — the data directory's
//! database, or the DynamoDB tables with `RUNWAY_STORE=dynamodb`.
//!
//! No server is involved: an operator who is locked out (lost admin password) has
//! no session to call the API with, and the store already enforces every rule.
//! SQLite's WAL mode lets this run while a server uses the same file. The account
//! rules themselves (username shape, password strength, revoking sessions on a
//! reset) live in `runway_service::accounts`, shared with the HTTP handlers, so the CLI
//! cannot drift from the API.
//!
//! The database must already exist: creating it here would make a typo in
//! `--data-dir` silently start a second, empty installation, and a user created in
//! a fresh database would also stop `serve` from bootstrapping `admin`. On DynamoDB
//! the tables are pinged first for the same reason, and because this is how the
//! first user of a Lambda deployment is made: the function never prints a
//! generated password.
//!
//! `list-users`, `disable-user` and `enable-user` go through
//! `runway_service::users`, the rules of the users API: disabling revokes every
//! session and API token in one write, and the last enabled admin stays.
//!
//! Passwords come from the first line of stdin (`--password-stdin`), never from a
//! flag, which would leave them in shell history and `ps`; otherwise one is
//! generated and printed once.

use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use runway_core::password::generate_password;
use runway_core::secret::Secret;
use runway_core::store::Store;
use runway_core::user::Role;
use runway_service::accounts;

use crate::config::{Config, StoreKind};
use crate::output;
use crate::serve::{check_store, open_store};

/// Reads a password from the first line of `input`, without its line ending.
///
/// # Errors
/// If the input cannot be read or the line is empty.
pub fn read_password_line(mut input: impl BufRead) -> anyhow::Result<Secret> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let password = line
        .strip_suffix('\n')
        .map_or(line.as_str(), |l| l.strip_suffix('\r').unwrap_or(l));
    anyhow::ensure!(
        !password.is_empty(),
        "--password-stdin was given but stdin held no password"
    );
    Ok(Secret::new(password))
}

/// The password to set: the one given, else a generated one that must be shown.
fn password_or_generated(given: Option<Secret>) -> (Secret, bool) {
    match given {
        Some(password) => (password, false),
        None => (generate_password(), true),
    }
}

fn ensure_database_exists(dir: &Path) -> anyhow::Result<()> {
    let db = dir.join(runway_store_sqlite::DB_FILE_NAME);
    anyhow::ensure!(
        db.is_file(),
        "no Runway database at {}: run `runway serve` once to create it, or point \
         --data-dir / RUNWAY_DATA_DIR at the right directory",
        db.display()
    );
    Ok(())
}

/// Opens a store that must already exist.
async fn open_existing_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    if config.store == StoreKind::Sqlite {
        ensure_database_exists(&config.data_dir)?;
    }
    let store = open_store(config).await?;
    if config.store == StoreKind::Dynamodb {
        check_store(config, store.as_ref()).await?;
    }
    Ok(store)
}

fn show_generated(username: &str, password: &Secret) -> anyhow::Result<()> {
    output::lines(&[
        &format!("Password for `{username}`: {}", password.expose()),
        "(shown once; store it somewhere safe)",
    ])
}

/// `runway admin create-user`.
///
/// # Errors
/// A missing database or tables, an invalid username, a weak password, a taken
/// username, or a store failure.
pub async fn create_user(
    config: &Config,
    username: &str,
    role: Role,
    password: Option<Secret>,
) -> anyhow::Result<()> {
    let store = open_existing_store(config).await?;
    let (password, generated) = password_or_generated(password);
    let user = accounts::create_user(store.as_ref(), username, &password, role)
        .await
        .with_context(|| format!("cannot create the user `{username}`"))?;
    tracing::info!(user.id = %user.id, user.name = %user.username, user.role = user.role.as_str(), "created user");
    output::lines(&[&format!(
        "Created user `{}` with role {}.",
        user.username,
        user.role.as_str()
    )])?;
    if generated {
        show_generated(username, &password)?;
    }
    Ok(())
}

/// `runway admin reset-password`: sets the password and revokes every session.
///
/// # Errors
/// A missing database or tables, no such user, a weak password, or a store failure.
pub async fn reset_password(
    config: &Config,
    username: &str,
    password: Option<Secret>,
) -> anyhow::Result<()> {
    let store = open_existing_store(config).await?;
    let (password, generated) = password_or_generated(password);
    accounts::reset_password(store.as_ref(), username, &password)
        .await
        .with_context(|| format!("cannot reset the password of `{username}`"))?;
    tracing::info!(user.name = %username, "reset password and revoked sessions");
    output::lines(&[&format!(
        "Reset the password of `{username}` and signed them out of every device."
    )])?;
    if generated {
        show_generated(username, &password)?;
    }
    Ok(())
}

/// `runway admin list-users`: every user, newest first, one per line.
///
/// # Errors
/// A missing database or tables, or a store failure.
pub async fn list_users(config: &Config) -> anyhow::Result<()> {
    let store = open_existing_store(config).await?;
    let users = runway_service::users::Users::new(Arc::clone(&store));
    let mut page = runway_core::page::PageRequest {
        limit: runway_core::page::MAX_LIMIT,
        after: None,
    };
    loop {
        let listed = users.list(&page).await.context("cannot list the users")?;
        for user in &listed.items {
            let state = if user.disabled { "disabled" } else { "enabled" };
            output::lines(&[&format!(
                "{}\t{}\t{state}\t{}",
                user.username,
                user.role.as_str(),
                user.id
            )])?;
        }
        match listed.next_cursor {
            Some(cursor) => page.after = Some(cursor),
            None => return Ok(()),
        }
    }
}

/// `runway admin disable-user` and `enable-user`, with the rules of the users
/// API (`runway_service::users`): disabling revokes every session and API token
/// in the same write, and the last enabled admin stays. Audited as the system.
///
/// # Errors
/// A missing database or tables, no such user, the last admin, or a store failure.
pub async fn set_disabled(config: &Config, username: &str, disabled: bool) -> anyhow::Result<()> {
    let store = open_existing_store(config).await?;
    let user = store
        .user_by_username(username)
        .await?
        .with_context(|| format!("no user is called `{username}`"))?;
    let change = runway_core::user::UserChange {
        disabled: Some(disabled),
        ..Default::default()
    };
    runway_service::users::Users::new(store)
        .update(&runway_service::audit::Caller::system(), user.id, change)
        .await
        .with_context(|| {
            let what = if disabled { "disable" } else { "enable" };
            format!("cannot {what} `{username}`")
        })?;
    let done = if disabled {
        "Disabled `{username}`: signed out of every device, API tokens revoked."
    } else {
        "Enabled `{username}`."
    };
    output::lines(&[&done.replace("{username}", username)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_from_stdin_loses_only_its_line_ending() {
        let p = read_password_line(&b"  spaced pass word \r\nsecond line\n"[..]).unwrap();
        assert_eq!(p.expose(), "  spaced pass word ");
        let p = read_password_line(&b"no-newline-at-all"[..]).unwrap();
        assert_eq!(p.expose(), "no-newline-at-all");
    }

    #[test]
    fn an_empty_stdin_is_refused() {
        let err = read_password_line(&b""[..]).unwrap_err().to_string();
        assert!(err.contains("stdin held no password"), "{err}");
        assert!(read_password_line(&b"\n"[..]).is_err());
    }

    #[test]
    fn admin_commands_refuse_a_directory_without_a_database() {
        let dir = tempfile::tempdir().unwrap();
        let err = ensure_database_exists(dir.path()).unwrap_err().to_string();
        assert!(err.contains("run `runway serve` once"), "{err}");
        assert!(!dir.path().join("runway.db").exists());
    }
}
