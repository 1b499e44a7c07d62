//! The API's error shape and body decoding.

use axum::Json;
use axum::body::Bytes;
use axum::extract::FromRequest;
use axum::extract::rejection::BytesRejection;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::code::Code;
use crate::model::{Problem, Problems, serde_problem};

/// An error answer: `{code, message, location, problems}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiError {
    #[serde(skip)]
    #[schema(ignore)]
    pub status: StatusCode,
    /// A stable, machine-readable code (see docs/errors.md).
    #[schema(value_type = String)]
    pub code: Code,
    pub message: String,
    /// Where in the request the fault is (a dotted path into the body), if anywhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// Every fault, when there are several (journey validation): `{path, message}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub problems: Option<Problems>,
    /// Seconds after which to try again (`Retry-After`), when overloaded.
    #[serde(skip)]
    #[schema(ignore)]
    pub retry_after: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: Code, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            location: None,
            problems: None,
            retry_after: None,
        }
    }

    /// 503 `OVERLOADED` with `Retry-After`: the engine accepts nothing more until its
    /// partitions catch up.
    pub fn overloaded(backlog: usize, limit: usize) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::Overloaded,
            format!(
                "{backlog} accepted events wait for processing, the limit is {limit} (max_ingest_backlog); nothing of this request was stored, send it again later"
            ),
        );
        e.retry_after = Some(1);
        e
    }

    pub fn at(mut self, location: impl Into<String>) -> Self {
        let location = location.into();
        self.location = (!location.is_empty()).then_some(location);
        self
    }

    pub fn bad_request(problem: Problem) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            Code::InvalidRequest,
            problem.message,
        )
        .at(problem.path)
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, Code::NotFound, what)
    }

    pub fn invalid_definition(problems: Problems) -> Self {
        Self::invalid(Code::InvalidJourney, "invalid journey", problems)
    }

    /// 422 `INVALID_MANIFEST`: a plugin manifest with located problems.
    pub fn invalid_manifest(problems: Problems) -> Self {
        Self::invalid(Code::InvalidManifest, "invalid manifest", problems)
    }

    /// 422 `INVALID_TEMPLATE`: a message template with located problems.
    pub fn invalid_template(problems: Problems) -> Self {
        Self::invalid(Code::InvalidTemplate, "invalid template", problems)
    }

    /// 422 `INVALID_REQUEST`: a definition (a subscription group, ...) with located
    /// problems.
    pub fn invalid_request(what: &str, problems: Problems) -> Self {
        Self::invalid(Code::InvalidRequest, what, problems)
    }

    fn invalid(code: Code, what: &str, problems: Problems) -> Self {
        let first = problems.first().cloned();
        let message = match &first {
            Some(p) if problems.0.len() == 1 => format!("{what}: {p}"),
            Some(p) => format!("{what}: {p} (and {} more)", problems.0.len() - 1),
            None => what.to_string(),
        };
        let mut e = Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message);
        e.location = first.map(|p| p.path).filter(|p| !p.is_empty());
        e.problems = Some(problems);
        e
    }

    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Code::Internal,
            "internal error; see the engine log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(&self)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::internal(e)
    }
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

/// 405 for a route that exists under other methods, in the JSON error shape.
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        Code::MethodNotAllowed,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// The error answers any operation may give, for the OpenAPI document.
pub struct Errors;

impl utoipa::IntoResponses for Errors {
    fn responses()
    -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<utoipa::openapi::Response>> {
        use utoipa::PartialSchema;
        let answers = [
            ("400", "The request is malformed; `location` says where."),
            ("401", "An API token is required, or it is unknown."),
            ("403", "The token's scope does not cover the request."),
            ("404", "No such resource."),
            ("405", "The route does not take this method."),
            ("409", "The request does not apply to the resource's state."),
            (
                "408",
                "The body did not arrive in time (`http_body_timeout_seconds`).",
            ),
            ("413", "The body is over a size limit."),
            (
                "422",
                "The request is well formed but invalid (with `problems`).",
            ),
            ("500", "An engine fault; the log has the details."),
            ("503", "Overloaded: send again after `Retry-After` seconds."),
        ];
        answers
            .into_iter()
            .map(|(status, description)| {
                let response = utoipa::openapi::ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        utoipa::openapi::Content::new(Some(ApiError::schema())),
                    )
                    .build();
                (status.to_string(), response.into())
            })
            .collect()
    }
}

/// `axum`'s query extractor, answering a bad query with a located JSON error.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Query(q.0))
            .map_err(|e| {
                ApiError::new(StatusCode::BAD_REQUEST, Code::InvalidRequest, e.body_text())
            })
    }
}

/// `axum`'s path extractor, answering a bad path parameter with a JSON error.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> axum::extract::FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Path(p.0))
            .map_err(|e| {
                ApiError::new(StatusCode::BAD_REQUEST, Code::InvalidRequest, e.body_text())
            })
    }
}

/// The body limit of a route and the setting it comes from, set on each group of routes
/// (uploads and imports take more than the rest), and the time a body may take.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub bytes: usize,
    pub setting: &'static str,
    pub timeout: std::time::Duration,
}

/// A request body within the route's size limit, received within
/// `http_body_timeout_seconds`. A body whose declared length (`Content-Length`) is over
/// the limit is refused before any of it is read.
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request<axum::body::Body>, state: &S) -> Result<Self, ApiError> {
        let limits = req.extensions().get::<BodyLimits>().copied();
        let too_large = |setting: &str| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                Code::BodyTooLarge,
                format!("the request body is larger than the limit ({setting})"),
            )
        };
        if let Some(limits) = limits {
            let declared = req
                .headers()
                .get(axum::http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            if declared.is_some_and(|n| n > limits.bytes as u64) {
                return Err(too_large(limits.setting));
            }
        }
        let setting = limits.map_or("max_body_bytes", |l| l.setting);
        let read = Bytes::from_request(req, state);
        let read = match limits {
            Some(limits) => match tokio::time::timeout(limits.timeout, read).await {
                Ok(read) => read,
                Err(_) => {
                    return Err(ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        Code::BodyTimeout,
                        format!(
                            "the request body did not arrive within {} s (http_body_timeout_seconds)",
                            limits.timeout.as_secs()
                        ),
                    ));
                }
            },
            None => read.await,
        };
        match read {
            Ok(b) => Ok(Body(b)),
            Err(BytesRejection::FailedToBufferBody(e))
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(too_large(setting))
            }
            Err(e) => Err(ApiError::new(e.status(), Code::BadBody, e.body_text())),
        }
    }
}

/// Parses JSON text into `T`, locating the fault: at its field, or for text that is not
/// JSON (truncated, a stray character) at its line and column.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let (line, column, syntax) = {
            let inner = e.inner();
            (
                inner.line(),
                inner.column(),
                inner.is_syntax() || inner.is_eof(),
            )
        };
        let mut problem = serde_problem(e);
        if syntax && problem.path.is_empty() {
            problem.path = crate::model::syntax_location(line, column);
        }
        ApiError::bad_request(problem)
    })
}

/// Deserializes a JSON value into `T`, locating the fault under `prefix`.
pub fn from_value<T: DeserializeOwned>(
    value: serde_json::Value,
    prefix: &str,
) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let mut p = serde_problem(e);
        p.path = join(prefix, &p.path);
        ApiError::bad_request(p)
    })
}

/// Joins two dotted paths.
pub fn join(prefix: &str, path: &str) -> String {
    match (prefix.is_empty(), path.is_empty()) {
        (true, _) => path.to_string(),
        (_, true) => prefix.to_string(),
        _ if path.starts_with('[') => format!("{prefix}{path}"),
        _ => format!("{prefix}.{path}"),
    }
}
