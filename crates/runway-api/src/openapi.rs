//! The OpenAPI 3.1 document; the interactive docs that read it are in `docs`.
//!
//! The document is derived from the handlers' `#[utoipa::path]` attributes and the
//! response types' `ToSchema`, collected by the same registration that builds the
//! router (`crate::routes::all`), so it cannot drift from the code: a route exists in
//! both or in neither. It is built and serialized once per
//! process and served from memory.
//!
//! The statuses that come from the shared extractors and layers rather than from a
//! handler's own logic are added by [`CommonResponses`], from facts the document
//! already states: a JSON body can be 400, 408, 413, 415 and 422, a raw body 408,
//! 413 and 415, a query string 400, a bearer scheme 401, and every route 503
//! (`request_timeout`, `store_unavailable`). A handler documents only what it
//! decides itself (404, 409, 403, …), and its description wins where it gives one.
//!
//! [`ExactSchemas`] then makes the schemas say what serde does:
//!
//! * every integer states the range of its Rust type (`utoipa`'s
//!   `non_strict_integers` names it: `uint32`, `int64`, …), where the document
//!   would otherwise leave a `u32` unbounded above, or, with OpenAPI's `int32`,
//!   bounded at 2³¹ − 1;
//! * a parameter (path, query, header) is never `null`, though an `Option` makes
//!   its schema nullable: it is left out instead;
//! * a request type that refuses unknown fields (`#[serde(deny_unknown_fields)]`,
//!   `additionalProperties: false`) and is also `#[serde(flatten)]`ed into a
//!   response (`JobSpec` into `Job`) is copied open into that response, because
//!   the response has more fields than the request type.
//!
//! `scripts/schemathesis.sh` checks the server against the result.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::Number;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayItems, KnownFormat, Object, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use crate::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Runway",
        description = "The control plane of the Runway CI/CD service. Every error has the shape \
            `{\"error\":{\"code\",\"message\",\"request_id\"}}`; see docs/http-api.md."
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail)),
    tags(
        (name = "system", description = "Health, readiness and server info"),
        (name = "sessions", description = "Signing in and managing one's devices"),
        (name = "api tokens", description = "Personal API tokens for scripts and CI"),
        (name = "users", description = "Managing users and their sessions (admins)"),
        (name = "registration tokens", description = "Admin-created tokens that admit agents"),
        (name = "agents", description = "Build agents as users see them"),
        (name = "jobs", description = "Submitting and following jobs"),
        (name = "agent protocol", description = "The calls build agents make"),
        (name = "audit", description = "Who changed what, newest first (admins)"),
    )
)]
struct ApiDoc;

/// Adds the `bearer` security scheme the paths refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A session token (`rws_…`) or a personal API token (`rwp_…`) on \
                         /api/v1; on /agent/v1 a registration \
                         token (`rwr_…`) for register, a job token (`rwj_…`) for a job's \
                         start, lease, logs and finish, and the agent token (`rwa_…`) for \
                         everything else",
                    ))
                    .build(),
            ),
        );
    }
}

/// Adds to every operation the error responses its extractors and the layers
/// around every handler can produce (see the module docs), unless the handler
/// documents that status itself.
struct CommonResponses;

/// The media type of the JSON bodies `extract::ApiJson` reads.
const JSON: &str = "application/json";

impl CommonResponses {
    /// `(status, description)` of what `operation` can answer without its handler
    /// deciding it.
    fn of(operation: &Operation) -> Vec<(&'static str, &'static str)> {
        let mut out = Vec::new();
        if let Some(body) = &operation.request_body {
            let json = body.content.contains_key(JSON);
            if json {
                out.push(("400", "The body is not valid JSON (`invalid_json`)"));
            }
            out.push((
                "408",
                "The body did not arrive within `RUNWAY_BODY_READ_TIMEOUT_SECONDS` (`body_timeout`)",
            ));
            out.push((
                "413",
                "The body is over `RUNWAY_MAX_BODY_BYTES` (`payload_too_large`)",
            ));
            out.push((
                "415",
                "The body is not sent with the media type this route takes (`unsupported_media_type`)",
            ));
            if json {
                out.push((
                    "422",
                    "The body is not an object, or a field is missing, unknown, of the wrong type \
                     or out of range (`validation_failed`, naming the field)",
                ));
            }
        }
        let has_query = operation
            .parameters
            .iter()
            .flatten()
            .any(|p| matches!(p.parameter_in, ParameterIn::Query));
        if has_query {
            out.push((
                "400",
                "A query parameter is unknown, of the wrong type or out of range (`invalid_query`)",
            ));
        }
        if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
            out.push((
                "401",
                "No valid token of the kind this route takes (`unauthorized`)",
            ));
        }
        out.push((
            "503",
            "No answer within `RUNWAY_REQUEST_TIMEOUT_SECONDS` (`request_timeout`), or the store \
             is unavailable (`store_unavailable`); retry after `Retry-After` seconds",
        ));
        out
    }
}

/// Every operation of a path.
fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .flatten()
}

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in operations(item) {
                for (status, description) in Self::of(operation) {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| {
                            RefOr::T(
                                ResponseBuilder::new()
                                    .description(description)
                                    .content(
                                        JSON,
                                        ContentBuilder::new()
                                            .schema(Some(Ref::from_schema_name("ErrorBody")))
                                            .build(),
                                    )
                                    .build(),
                            )
                        });
                }
            }
        }
    }
}

/// Integer ranges and open copies of closed schemas flattened into responses; see
/// the module docs.
struct ExactSchemas;

impl ExactSchemas {
    /// The range of the Rust integer type `format` names.
    fn range(format: &KnownFormat) -> Option<(Number, Number)> {
        #[expect(
            clippy::cast_possible_truncation,
            reason = "the document is built on 64-bit targets, where isize and usize are 64 bits"
        )]
        let range = match format {
            KnownFormat::Int8 => (Number::Int(i8::MIN.into()), Number::Int(i8::MAX.into())),
            KnownFormat::Int16 => (Number::Int(i16::MIN.into()), Number::Int(i16::MAX.into())),
            KnownFormat::Int32 => (
                Number::Int(i32::MIN as isize),
                Number::Int(i32::MAX as isize),
            ),
            KnownFormat::Int64 => (
                Number::Int(i64::MIN as isize),
                Number::Int(i64::MAX as isize),
            ),
            KnownFormat::UInt8 => (Number::UInt(0), Number::UInt(u8::MAX.into())),
            KnownFormat::UInt16 => (Number::UInt(0), Number::UInt(u16::MAX.into())),
            KnownFormat::UInt32 => (Number::UInt(0), Number::UInt(u32::MAX as usize)),
            KnownFormat::UInt64 => (Number::UInt(0), Number::UInt(u64::MAX as usize)),
            _ => return None,
        };
        Some(range)
    }

    fn is_integer(schema_type: &SchemaType) -> bool {
        match schema_type {
            SchemaType::Type(t) => *t == Type::Integer,
            SchemaType::Array(types) => types.contains(&Type::Integer),
            SchemaType::AnyValue => false,
        }
    }

    /// States the range of an integer whose bounds are not given.
    fn bound(object: &mut Object) {
        if !Self::is_integer(&object.schema_type) {
            return;
        }
        let Some(SchemaFormat::KnownFormat(format)) = &object.format else {
            return;
        };
        let Some((min, max)) = Self::range(format) else {
            return;
        };
        // utoipa spells the unsigned formats `u-int32`; the usual name is `uint32`.
        let name = match format {
            KnownFormat::Int8 => Some("int8"),
            KnownFormat::Int16 => Some("int16"),
            KnownFormat::UInt8 => Some("uint8"),
            KnownFormat::UInt16 => Some("uint16"),
            KnownFormat::UInt32 => Some("uint32"),
            KnownFormat::UInt64 => Some("uint64"),
            _ => None,
        };
        if let Some(name) = name {
            object.format = Some(SchemaFormat::Custom(name.to_owned()));
        }
        if object.minimum.is_none() && object.exclusive_minimum.is_none() {
            object.minimum = Some(min);
        }
        if object.maximum.is_none() && object.exclusive_maximum.is_none() {
            object.maximum = Some(max);
        }
    }

    /// A parameter is left out or has a value; it is never `null` (`?limit=null`
    /// is the text `null`), whatever `Option` made of it.
    fn not_null(object: &mut Object) {
        if let SchemaType::Array(types) = &mut object.schema_type {
            types.retain(|t| *t != Type::Null);
            if let [only] = types.as_slice() {
                object.schema_type = SchemaType::Type(only.clone());
            }
        }
    }

    fn walk(schema: &mut RefOr<Schema>) {
        if let RefOr::T(schema) = schema {
            Self::walk_schema(schema);
        }
    }

    fn walk_schema(schema: &mut Schema) {
        match schema {
            Schema::Object(object) => {
                Self::bound(object);
                object.properties.values_mut().for_each(Self::walk);
                if let Some(extra) = object.additional_properties.as_deref_mut()
                    && let AdditionalProperties::RefOr(extra) = extra
                {
                    Self::walk(extra);
                }
            }
            Schema::Array(array) => {
                if let ArrayItems::RefOrSchema(items) = &mut array.items {
                    Self::walk(items);
                }
                array.prefix_items.iter_mut().for_each(Self::walk_schema);
            }
            Schema::AllOf(all) => all.items.iter_mut().for_each(Self::walk),
            Schema::OneOf(one) => one.items.iter_mut().for_each(Self::walk),
            Schema::AnyOf(any) => any.items.iter_mut().for_each(Self::walk),
            _ => {}
        }
    }

    /// The component schemas that refuse unknown fields, opened.
    fn closed<'a>(
        schemas: impl IntoIterator<Item = (&'a String, &'a RefOr<Schema>)>,
    ) -> BTreeMap<String, Schema> {
        schemas
            .into_iter()
            .filter_map(|(name, schema)| match schema {
                RefOr::T(Schema::Object(object))
                    if matches!(
                        object.additional_properties.as_deref(),
                        Some(AdditionalProperties::FreeForm(false))
                    ) =>
                {
                    let mut open = object.clone();
                    open.additional_properties = None;
                    Some((format!("#/components/schemas/{name}"), Schema::Object(open)))
                }
                _ => None,
            })
            .collect()
    }
}

impl Modify for ExactSchemas {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            let closed = Self::closed(&components.schemas);
            for schema in components.schemas.values_mut() {
                if let RefOr::T(Schema::AllOf(all)) = schema {
                    for part in &mut all.items {
                        if let RefOr::Ref(r) = part
                            && let Some(open) = closed.get(&r.ref_location)
                        {
                            *part = RefOr::T(open.clone());
                        }
                    }
                }
                Self::walk(schema);
            }
        }
        for item in openapi.paths.paths.values_mut() {
            for operation in operations(item) {
                for parameter in operation.parameters.iter_mut().flatten() {
                    if let Some(RefOr::T(Schema::Object(object))) = &mut parameter.schema {
                        Self::not_null(object);
                    }
                    parameter.schema.iter_mut().for_each(Self::walk);
                }
                if let Some(body) = &mut operation.request_body {
                    for content in body.content.values_mut() {
                        content.schema.iter_mut().for_each(Self::walk);
                    }
                }
                for response in operation.responses.responses.values_mut() {
                    if let RefOr::T(response) = response {
                        for content in response.content.values_mut() {
                            content.schema.iter_mut().for_each(Self::walk);
                        }
                        for header in response.headers.values_mut() {
                            Self::walk(&mut header.schema);
                        }
                    }
                }
            }
        }
    }
}

/// The OpenAPI 3.1 document of the whole API.
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    // The modifiers run on the whole document, paths included, so after the merge
    // (a derive's `modifiers(…)` would see only the path-less base).
    let mut doc = ApiDoc::openapi().merge_from(crate::routes::all().1);
    BearerAuth.modify(&mut doc);
    CommonResponses.modify(&mut doc);
    ExactSchemas.modify(&mut doc);
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

static DOCUMENT: LazyLock<Bytes> = LazyLock::new(|| {
    Bytes::from(serde_json::to_vec(&openapi()).unwrap_or_else(|_| b"{}".to_vec()))
});

/// `/openapi.json` and `/docs`.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/openapi.json",
            get(|| async {
                (
                    [(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    )],
                    DOCUMENT.clone(),
                )
                    .into_response()
            }),
        )
        .merge(crate::docs::routes())
}
