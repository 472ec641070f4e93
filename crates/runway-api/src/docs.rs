//! `/docs`: the interactive API docs, served entirely from the binary.
//!
//! The page is Swagger UI, vendored unchanged from the npm package
//! `swagger-ui-dist` ([`SWAGGER_UI_VERSION`]; its integrity and the files' SHA-256
//! are pinned in this module's tests and in `assets/swagger-ui/README.md`, which
//! says how to update them) and embedded with `include_bytes!`. It was chosen over
//! the Scalar page `utoipa-scalar` renders, which loads its script from a CDN,
//! unpinned; and over the `utoipa-swagger-ui` crate, whose build script unpacks and
//! embeds the whole distribution (about 11 MB, source maps included) where the page
//! needs two files (2 MB): the binary is also the Lambda zip.
//!
//! Only `assets/docs.html` and `assets/runway-docs.js` are Runway's own: the page
//! and its start-up script, a file rather than inline, so the page's CSP
//! (`security::HTML_CSP`: `'self'` only, no inline script) holds with no exception.
//! Every URL in them is relative, so the page works behind a path prefix too.
//!
//! Assets are answered with their exact content type (`X-Content-Type-Options:
//! nosniff` makes browsers insist on it) and may be cached for a day; the page
//! names them with `?v=<version>`, so an upgrade is fetched at once.

use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::AppState;
use crate::error::ApiError;

/// The vendored release of `swagger-ui-dist`.
pub(crate) const SWAGGER_UI_VERSION: &str = "5.35.0";

/// One file under `/docs/assets/`.
pub(crate) struct Asset {
    /// Its name in the URL.
    pub(crate) name: &'static str,
    /// Its `Content-Type`.
    pub(crate) content_type: &'static str,
    /// The bytes.
    pub(crate) bytes: &'static [u8],
}

/// Everything the page loads.
pub(crate) const ASSETS: &[Asset] = &[
    Asset {
        name: "swagger-ui-bundle.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js"),
    },
    Asset {
        name: "swagger-ui.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../assets/swagger-ui/swagger-ui.css"),
    },
    Asset {
        name: "runway-docs.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/runway-docs.js"),
    },
];

/// The page, with the version filled in once.
static PAGE: std::sync::LazyLock<Bytes> = std::sync::LazyLock::new(|| {
    Bytes::from(include_str!("../assets/docs.html").replace("{version}", SWAGGER_UI_VERSION))
});

/// How long browsers may keep an asset: a day (the page's `?v=` changes with it).
const ASSET_CACHE: &str = "public, max-age=86400";

async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    let found = ASSETS
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
        Bytes::from_static(found.bytes),
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
    use sha2::{Digest as _, Sha256};

    use super::*;

    /// The npm tarball's integrity, as `npm view swagger-ui-dist@5.35.0
    /// dist.integrity` prints it.
    const SWAGGER_UI_INTEGRITY: &str = "sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ==";

    /// SHA-256 of each vendored file, as `sha256sum` prints it.
    const PINNED: &[(&str, &str)] = &[
        (
            "swagger-ui-bundle.js",
            "e6a898692f2d768e807c3ba4626068a69a2c5dd960dd6c76f3e4d3a3de180af2",
        ),
        (
            "swagger-ui.css",
            "5ed08757e53da3e026d6cbecc61fe5d43585c9560b302d534ad56692519a273d",
        ),
    ];

    #[test]
    fn the_vendored_swagger_ui_is_the_pinned_release() {
        let readme = include_str!("../assets/swagger-ui/README.md");
        assert!(readme.contains(&format!("swagger-ui-dist@{SWAGGER_UI_VERSION}")));
        assert!(readme.contains(SWAGGER_UI_INTEGRITY));
        for &(name, pinned) in PINNED {
            let asset = ASSETS.iter().find(|a| a.name == name).unwrap();
            let actual: String = Sha256::digest(asset.bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(actual, pinned, "{} is not the vendored file", asset.name);
            assert!(
                readme.contains(pinned),
                "the README lacks {}'s hash",
                asset.name
            );
        }
    }

    #[test]
    fn the_page_names_every_asset_by_a_relative_url_with_the_version() {
        let page = String::from_utf8(PAGE.to_vec()).unwrap();
        for asset in ASSETS {
            let url = format!("\"docs/assets/{}?v={SWAGGER_UI_VERSION}\"", asset.name);
            assert!(page.contains(&url), "{url} missing from the page");
        }
        assert!(!page.contains("{version}"));
    }
}
