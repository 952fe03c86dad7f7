//! The admin API's error: a status code and a JSON body `{"error": "..."}` that says what to do.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::broker::BrokerError;
use crate::definitions::DefinitionsError;
use crate::plugin::PluginError;
use crate::queue::QueueError;
use crate::routing::TopologyError;
use crate::store::StoreError;

/// An HTTP error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.message }));
        (self.status, body).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

fn queue_status(e: &QueueError) -> StatusCode {
    match e {
        QueueError::NotFound(_) => StatusCode::NOT_FOUND,
        QueueError::ConfigMismatch(_) => StatusCode::CONFLICT,
        QueueError::InvalidName { .. }
        | QueueError::InvalidConfig(_)
        | QueueError::UnknownDeliveryTag(_) => StatusCode::BAD_REQUEST,
        QueueError::Deleted => StatusCode::GONE,
        QueueError::TooManyQueues { .. } => StatusCode::FORBIDDEN,
        QueueError::Store(StoreError::NoSpace { .. } | StoreError::CatalogFull { .. }) => {
            StatusCode::INSUFFICIENT_STORAGE
        }
        QueueError::EmbeddedOnly(_) => StatusCode::NOT_IMPLEMENTED,
        QueueError::JetStream(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn plugin_status(e: &PluginError) -> StatusCode {
    match e {
        PluginError::NotFound { .. } => StatusCode::NOT_FOUND,
        PluginError::NoPreviousVersion { .. } | PluginError::WrongKind { .. } => {
            StatusCode::CONFLICT
        }
        PluginError::InvalidName { .. } => StatusCode::BAD_REQUEST,
        PluginError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        // Compile, world, instantiate and call failures: the upload is at fault.
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

fn topology_status(e: &TopologyError) -> StatusCode {
    match e {
        TopologyError::NoSuchExchange(_) => StatusCode::NOT_FOUND,
        TopologyError::Inequivalent { .. } | TopologyError::InUse(_) => StatusCode::CONFLICT,
        TopologyError::Predefined(_) => StatusCode::FORBIDDEN,
        TopologyError::InvalidArguments(_) => StatusCode::BAD_REQUEST,
    }
}

fn broker_status(e: &BrokerError) -> StatusCode {
    match e {
        BrokerError::ExchangeNotFound(_) => StatusCode::NOT_FOUND,
        BrokerError::InternalExchange(_) => StatusCode::FORBIDDEN,
        BrokerError::Rejected(_) => StatusCode::UNPROCESSABLE_ENTITY,
        BrokerError::Topology(t) => topology_status(t),
        BrokerError::Queue(q) => queue_status(q),
        BrokerError::Plugin(p) => plugin_status(p),
        BrokerError::Cluster(_) => StatusCode::SERVICE_UNAVAILABLE,
        BrokerError::Internal(_) | BrokerError::TopologyFile { .. } => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

impl From<BrokerError> for ApiError {
    fn from(e: BrokerError) -> ApiError {
        ApiError::new(broker_status(&e), e.to_string())
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> ApiError {
        ApiError::new(queue_status(&e), e.to_string())
    }
}

impl From<PluginError> for ApiError {
    fn from(e: PluginError) -> ApiError {
        ApiError::new(plugin_status(&e), e.to_string())
    }
}

impl From<DefinitionsError> for ApiError {
    fn from(e: DefinitionsError) -> ApiError {
        let status = match &e {
            DefinitionsError::Broker { source, .. } => broker_status(source),
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("background task failed: {e}"),
        )
    }
}

/// Turn error responses that axum produced itself (a malformed JSON body, a body over the
/// limit, a bad path or query) into the API's `{"error": ...}` shape, so clients parse one
/// format.
pub async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 10)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes).trim().to_owned();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let mut out = ApiError::new(status, message).into_response();
    for (name, value) in parts.headers.iter() {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}
