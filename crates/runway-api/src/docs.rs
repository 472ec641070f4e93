//! `/docs`: the interactive API docs, served entirely from the binary.
//!
//! The UI is Swagger UI as the `utoipa-swagger-ui` crate embeds it. With its
//! `vendored` feature the crate's build script unpacks the release archive that the
//! `utoipa-swagger-ui-vendored` crate carries, so the build downloads nothing and
//! `Cargo.lock` pins the exact files through the two crates' checksums (under
//! `vendored` the script ignores `SWAGGER_UI_DOWNLOAD_URL`; it would still replace
//! files with those of a `SWAGGER_UI_OVERWRITE_FOLDER`, which nothing here sets).
//! The crate also writes the start-up script, `swagger-initializer.js`, from
//! [`config`]: this server's own document, the base layout, no online validator.
//!
//! The page, `assets/docs.html`, is Runway's own. The crate's `index.html` names its
//! files `./…`, so it has to live at `/docs/`; the crate's axum router sends `/docs`
//! there by a redirect to an absolute path, which breaks behind a proxy that serves
//! Runway under a path prefix. Ours is served at `/docs` itself, names its files
//! `docs/assets/…` (relative, so a prefix works) and has no inline script, so the
//! page's CSP (`security::HTML_CSP`: `'self'` only) holds with no exception. Hence
//! only the crate's framework-free `serve` is used, not its axum feature.
//!
//! Only the files the page loads are served ([`ASSETS`]), each with its exact
//! content type (`X-Content-Type-Options: nosniff` makes browsers insist on it);
//! anything else the crate embeds (the ES-module bundles, the OAuth2 redirect page)
//! is a 404. Assets may be cached for a day: the page names them with `?v=` and a
//! hash of their bytes, so a new release is fetched at once.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest as _, Sha256};
use utoipa_swagger_ui::Config;

use crate::AppState;
use crate::error::ApiError;

const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The files under `/docs/assets/` that the page loads, with their `Content-Type`,
/// in the order the page names them.
pub(crate) const ASSETS: &[(&str, &str)] = &[
    ("swagger-ui.css", CSS),
    ("index.css", CSS),
    ("swagger-ui-bundle.js", JAVASCRIPT),
    ("swagger-ui-standalone-preset.js", JAVASCRIPT),
    ("swagger-initializer.js", JAVASCRIPT),
];

/// How Swagger UI starts. `openapi.json` is relative to the page, `/docs`, so it is
/// `/openapi.json`, or the same under a proxy's path prefix.
fn config() -> Config<'static> {
    Config::new(["openapi.json"])
        // No top bar with a box to load other documents: this page shows one.
        .use_base_layout()
        // No badge fetched from swagger.io's online validator.
        .validator_url("none")
}

/// One file of [`ASSETS`], read once from the crate.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: Bytes,
}

/// [`ASSETS`] as the crate serves them; a file it lacks is left out (and a test
/// fails).
static FILES: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    let config = Arc::new(config());
    ASSETS
        .iter()
        .filter_map(|&(name, content_type)| {
            match utoipa_swagger_ui::serve(name, Arc::clone(&config)) {
                Ok(Some(file)) => Some(Asset {
                    name,
                    content_type,
                    bytes: match file.bytes {
                        Cow::Borrowed(bytes) => Bytes::from_static(bytes),
                        Cow::Owned(bytes) => Bytes::from(bytes),
                    },
                }),
                Ok(None) => {
                    tracing::error!(file = name, "Swagger UI has no such file");
                    None
                }
                Err(error) => {
                    tracing::error!(file = name, %error, "Swagger UI file failed to render");
                    None
                }
            }
        })
        .collect()
});

/// The first 8 bytes of a SHA-256 over every asset, in hex: the page's `?v=`.
static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut hash = Sha256::new();
    for asset in FILES.iter() {
        hash.update(asset.name.as_bytes());
        hash.update(&asset.bytes);
    }
    hash.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
});

/// The page, with the version filled in once.
static PAGE: LazyLock<Bytes> = LazyLock::new(|| {
    Bytes::from(include_str!("../assets/docs.html").replace("{version}", &VERSION))
});

/// How long browsers may keep an asset: a day (the page's `?v=` changes with it).
const ASSET_CACHE: &str = "public, max-age=86400";

async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    let found = FILES
        .iter()
        .find(|a| a.name == name)
        .ok_or_else(|| ApiError::not_found("docs asset"))?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(found.content_type),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static(ASSET_CACHE)),
        ],
        found.bytes.clone(),
    )
        .into_response())
}

/// `/docs` and `/docs/assets/{name}`.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/docs", get(|| async { Html(PAGE.clone()) }))
        .route("/docs/assets/{name}", get(asset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crate_has_every_file_the_page_loads() {
        let names: Vec<&str> = FILES.iter().map(|a| a.name).collect();
        let wanted: Vec<&str> = ASSETS.iter().map(|&(name, _)| name).collect();
        assert_eq!(names, wanted);
        assert!(FILES.iter().all(|a| !a.bytes.is_empty()));
        assert_eq!(VERSION.len(), 16);
    }

    #[test]
    fn the_page_names_every_asset_by_a_relative_url_with_the_version() {
        let page = String::from_utf8(PAGE.to_vec()).unwrap();
        for &(name, _) in ASSETS {
            let url = format!("\"docs/assets/{name}?v={}\"", *VERSION);
            assert!(page.contains(&url), "{url} missing from the page");
        }
        assert!(!page.contains("{version}"));
    }

    #[test]
    fn the_initializer_is_filled_in_from_the_config() {
        let initializer = FILES
            .iter()
            .find(|a| a.name == "swagger-initializer.js")
            .unwrap();
        let script = std::str::from_utf8(&initializer.bytes).unwrap();
        assert!(!script.contains("{{config}}"), "{script}");
        assert!(script.contains("\"url\": \"openapi.json\""), "{script}");
    }
}
