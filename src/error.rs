//! Errors as Taler clients see them.
//!
//! Every 4xx and 5xx answer of the server is an `ErrorDetail` JSON body
//! (`{"code", "hint", "detail", ...}`), whatever produced it: a handler, a body
//! reader or the dispatcher of the route table. Clients key on `code`,
//! so the numbers live in one table ([`ErrorCode`]) and the choice of HTTP status
//! and code for every [`ApiError`] in one exhaustive match ([`ApiError::parts`]):
//! a new variant cannot compile until it is mapped.

use std::fmt;

use serde::Serialize;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use crate::store::StoreError;

/// The Taler error codes this server answers with: upstream's numbers (`TALER_ErrorCode` of
/// GNU Taler's `taler_error_codes.h`), and the HTTP status that goes with each.
///
/// Numbers marked **Decision** are not (yet) registered upstream; they are here,
/// and only here, so that they can follow upstream with a one-line change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    GenericMethodInvalid,
    GenericEndpointUnknown,
    GenericJsonInvalid,
    GenericPaytoUriMalformed,
    GenericParameterMissing,
    GenericParameterMalformed,
    GenericCompressionInvalid,
    GenericCurrencyMismatch,
    GenericUriTooLong,
    GenericUploadExceedsLimit,
    GenericUnauthorized,
    GenericDbSetupFailed,
    GenericDbStoreFailed,
    GenericDbFetchFailed,
    GenericDbInvariantFailure,
    GenericInternalInvariantFailure,
    ExchangeManagementAuditorNotFound,
    ExchangeManagementAuditorMoreRecentPresent,
    ExchangeManagementAuditorAddSignatureInvalid,
    ExchangeManagementAuditorDelSignatureInvalid,
    KycBulkSignatureInvalid,
    ExchangeKycImport3rdPartyUnknown,
    KycBulkAlreadyKnown,
    KycBulkUnknown,
    BankUnknownAccount,
    BankTransferRequestUidReused,
    BankDuplicateReservePubSubject,
    BankUnknownCreditor,
    BankDerivationReuse,
    BankBadSignature,
    BankOldTimestamp,
    BankUnknownRegistration,
    BankTransferMappingReused,
    BankTransferWtidReused,
    DevClockBackwards,
    DevFaultInjected,
    DevSnapshotUnknown,
    DevSnapshotLimit,
    DevStateRestored,
    ServerBusy,
}

impl ErrorCode {
    /// The number clients key on, and the fixed hint that goes with it.
    pub const fn number_and_hint(self) -> (u32, &'static str) {
        use ErrorCode::*;
        match self {
            GenericMethodInvalid => (20, "The HTTP method used is invalid for this endpoint."),
            GenericEndpointUnknown => {
                (21, "There is no endpoint defined for the URL provided by the client.")
            }
            GenericJsonInvalid => {
                (22, "The JSON in the client's request was malformed or lacks a required field.")
            }
            GenericPaytoUriMalformed => (24, "The payto:// URI provided by the client is malformed."),
            GenericParameterMissing => (25, "A required parameter in the request was missing."),
            GenericParameterMalformed => (26, "A parameter in the request was malformed."),
            GenericCompressionInvalid => {
                (28, "The body in the request could not be decompressed by the server.")
            }
            GenericCurrencyMismatch => {
                (30, "The currency involved in the operation is not acceptable for this server.")
            }
            GenericUriTooLong => {
                (31, "The URI is longer than the longest URI the HTTP server is willing to parse.")
            }
            GenericUploadExceedsLimit => (32, "The body is too large to be permissible for the endpoint."),
            GenericUnauthorized => {
                (40, "The service refused the request due to lack of proper authorization.")
            }
            GenericDbSetupFailed => (50, "The service failed initialize its connection to the database."),
            GenericDbStoreFailed => (52, "The service failed to store information in its database."),
            GenericDbFetchFailed => (53, "The service failed to fetch information from its database."),
            GenericDbInvariantFailure => {
                (56, "The service's database is inconsistent and violates service-internal invariants.")
            }
            GenericInternalInvariantFailure => {
                (60, "The service encountered an internal inconsistency (a bug, not the client's fault).")
            }
            ExchangeManagementAuditorNotFound => {
                (1800, "The auditor specified by the request is unknown to the exchange.")
            }
            ExchangeManagementAuditorMoreRecentPresent => {
                (1801, "The exchange is aware of a more recent request for this auditor (replay detected).")
            }
            ExchangeManagementAuditorAddSignatureInvalid => {
                (1802, "The signature to add or enable the auditor does not validate.")
            }
            ExchangeManagementAuditorDelSignatureInvalid => {
                (1803, "The signature to disable the auditor does not validate.")
            }
            // Decision: not yet registered upstream.
            KycBulkSignatureInvalid => {
                (1903, "The signature of the third party over the bulk KYC upload is invalid.")
            }
            // Decision: not yet registered upstream.
            ExchangeKycImport3rdPartyUnknown => {
                (1904, "The third party is unknown to the exchange or disabled.")
            }
            // Decision: not yet registered upstream (the If-Not-Match condition failed).
            KycBulkAlreadyKnown => (1905, "The exchange already has this bulk KYC data for this customer."),
            // Decision: not yet registered upstream (read-back of an unknown body hash).
            KycBulkUnknown => (1906, "The exchange holds no bulk KYC body with this hash."),
            BankUnknownAccount => {
                (5106, "The bank account referenced in the requested operation was not found.")
            }
            BankTransferRequestUidReused => (
                5112,
                "The request UID for a request to transfer funds has already been used, but with different details for the transfer.",
            ),
            BankDuplicateReservePubSubject => {
                (5114, "The reserve public key is already registered or was already used.")
            }
            BankUnknownCreditor => (5124, "The credit account is unknown or not supported."),
            BankDerivationReuse => {
                (5159, "The derived subject is already used by another registration; retry with another key.")
            }
            BankBadSignature => (5160, "The signature is invalid."),
            // Decision: number not found upstream.
            BankOldTimestamp => {
                (5161, "The timestamp is too old, too far in the future, or not newer than the registration.")
            }
            // Decision: not yet registered upstream.
            BankUnknownRegistration => (5162, "There is no live registration for this authorization key."),
            // Decision: not yet registered upstream.
            BankTransferMappingReused => {
                (5163, "The one-shot registration was already used by a credited transfer.")
            }
            BankTransferWtidReused => (
                5154,
                "The wtid for a request to transfer funds has already been used, but with a different request unpaid.",
            ),
            // Decision: 9901-9905 are taler-lite's own, for the development routes of a server
            // started with --dev or --ephemeral (README, "Use it in CI"); never in production.
            DevClockBackwards => (9901, "The server's clock never goes backwards."),
            DevFaultInjected => {
                (9902, "The request failed on purpose: a fault injected through POST /private/faults.")
            }
            DevSnapshotUnknown => (9903, "There is no snapshot of this name."),
            DevSnapshotLimit => {
                (9904, "The snapshots would exceed --max-snapshots or the database's size cap.")
            }
            DevStateRestored => {
                (9905, "The database was restored from a snapshot while this request was writing; retry it.")
            }
            // Decision: taler-lite's own, with 503 and `Retry-After` when one of the server's
            // bounds is reached (connections, staged bytes, held failed logins, shutdown);
            // README "Known limits".
            ServerBusy => (9920, "The server is at one of its limits; retry after the time it says."),
        }
    }

    pub const fn number(self) -> u32 {
        self.number_and_hint().0
    }

    pub const fn hint(self) -> &'static str {
        self.number_and_hint().1
    }
}

/// Which database step failed; decides the 5xx code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbStep {
    Setup,
    Store,
    Fetch,
    Invariant,
}

impl DbStep {
    /// Exhaustive on purpose: a new kind of store failure must be placed.
    fn of(error: &StoreError) -> DbStep {
        match error {
            StoreError::Pool(_)
            | StoreError::Closed
            | StoreError::ReadOnly
            | StoreError::SchemaTooNew { .. }
            | StoreError::SchemaNotCurrent { .. }
            | StoreError::NotOurs { .. }
            | StoreError::Locked(_)
            | StoreError::Stopped => DbStep::Setup,
            StoreError::Read(_) => DbStep::Fetch,
            StoreError::Sqlite(_) | StoreError::Io(_) | StoreError::Commit(_) | StoreError::Lost(_) => {
                DbStep::Store
            }
            StoreError::Invariant(_) => DbStep::Invariant,
            // Answered as `ApiError::StateRestored` (see `From<StoreError>`); a store step if not.
            StoreError::Restored => DbStep::Store,
        }
    }
}

/// Everything a handler can answer other than success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("method {method} is not allowed here (allowed: {allow})")]
    MethodNotAllowed { method: String, allow: String },
    #[error("no endpoint {path}")]
    EndpointUnknown { path: String },
    #[error("{detail}")]
    JsonInvalid { detail: String },
    #[error("field '{field}' is missing")]
    FieldMissing { field: String },
    #[error("field '{field}' is malformed: {detail}")]
    FieldMalformed { field: String, detail: String },
    #[error("header '{header}' is missing")]
    HeaderMissing { header: &'static str },
    #[error("header '{header}' is malformed: {detail}")]
    HeaderMalformed { header: &'static str, detail: String },
    #[error("{name} is malformed: {detail}")]
    ParameterMalformed { name: String, detail: String },
    /// A payto URI the gateway cannot use (not one, or without `receiver-name`): 400, code 24.
    #[error("field '{field}' is not a full payto URI: {detail}")]
    PaytoMalformed { field: String, detail: String },
    /// A compressed body that does not inflate: 400, code 28.
    #[error("the body does not inflate: {detail}")]
    CompressionInvalid { detail: String },
    /// A `Content-Encoding` the server does not inflate: 415.
    #[error("Content-Encoding '{encoding}' is not supported (deflate and gzip are)")]
    UnsupportedEncoding { encoding: String },
    /// An amount in another currency than the bank's: 400, code 30.
    #[error("field '{field}': currency {given} is not the bank's {expected}")]
    CurrencyMismatch { field: &'static str, given: String, expected: String },
    /// Something the server does not offer (yet): 501.
    #[error("{0} is not supported by this bank")]
    NotImplemented(&'static str),
    #[error("Content-Length is required")]
    LengthRequired,
    /// The body ended before Content-Length (the client went away).
    #[error("{detail}")]
    BodyIncomplete { detail: String },
    #[error("the client sent nothing for {idle:?}")]
    RequestTimeout { idle: std::time::Duration },
    /// A body arriving slower on average than `--min-body-rate`: 408, as a stalled one.
    #[error(
        "the body arrived too slowly: {read} bytes in {seconds} s, below the minimum of {minimum} bytes a second"
    )]
    BodyTooSlow { read: u64, seconds: u64, minimum: u64 },
    #[error("the body exceeds the limit of {limit} bytes")]
    UploadTooLarge { limit: u64 },
    #[error("the URI exceeds {limit} bytes")]
    UriTooLong { limit: usize },
    #[error("missing or wrong bearer token")]
    Unauthorized,
    /// The Wire Gateway's 401: Basic or Bearer, said in `WWW-Authenticate`.
    #[error(
        "missing or wrong credentials (Basic with the gateway's user name and the operator token, or Bearer with the token)"
    )]
    GatewayUnauthorized,
    /// An account name in a Wire Gateway path that names no configured account.
    #[error("no exchange account is named '{0}'")]
    BankUnknownAccount(String),
    /// An outgoing transfer that is not this account's, or none at all.
    #[error("no transfer {0} from this account")]
    BankUnknownTransfer(String),
    #[error("request_uid {0} was already used for a transfer with other details")]
    BankTransferRequestUidReused(String),
    #[error("wtid {0} was already used by a transfer with another request_uid")]
    BankTransferWtidReused(String),
    #[error("database failure: {source}")]
    Database {
        #[source]
        source: StoreError,
    },
    /// A bug that is not the database's (a task that died, a value that cannot
    /// be encoded): 500, logged.
    #[error("internal error: {0}")]
    Internal(String),
    /// The fixture file cannot be applied again (`POST /private/reset`): 500, and the
    /// detail says why (only the operator can ask, and it is their file).
    #[error("{0}")]
    Fixtures(String),
    #[error("auditor {0} is unknown")]
    AuditorNotFound(String),
    #[error("a more recent change for this auditor is recorded (at {stored_s} s)")]
    AuditorMoreRecentPresent { stored_s: String },
    #[error("master_sig does not verify over MasterAddAuditorPS with the exchange's master public key")]
    AuditorAddSignatureInvalid,
    #[error("master_sig does not verify over MasterDelAuditorPS with the exchange's master public key")]
    AuditorDelSignatureInvalid,
    #[error("{0}")]
    KycBulkSignatureInvalid(&'static str),
    #[error("third party {0} is unknown or disabled")]
    ExternUnknown(String),
    #[error("this customer already has a bulk upload with this hash")]
    KycBulkAlreadyKnown,
    #[error("no bulk KYC body has the hash {0}")]
    KycBulkUnknown(String),
    #[error("{0}")]
    BankDuplicateReservePub(&'static str),
    #[error("credit_account {0} is not an account of this exchange")]
    BankUnknownCreditor(String),
    #[error("the derived {format} subject {subject} is held by another registration")]
    BankDerivationReuse { format: &'static str, subject: String },
    #[error("{0}")]
    BankBadSignature(&'static str),
    #[error("{0}")]
    BankOldTimestamp(String),
    /// No live registration: 404 on unregistration, 409 on a mapped transfer.
    #[error("no live registration for authorization_pub {authorization_pub}")]
    BankUnknownRegistration { authorization_pub: String, conflict: bool },
    #[error("the one-shot registration for {0} was already used")]
    BankTransferMappingReused(String),
    /// A clock move that would take the server's time back: 409 naming `set` or `real`.
    #[error("{detail}")]
    ClockBackwards { field: &'static str, detail: String },
    /// A fault injected through `POST /private/faults`: its status.
    #[error("fault {id} injected for {method} {route}")]
    FaultInjected { id: u64, status: StatusCode, method: String, route: &'static str },
    #[error("no snapshot is named '{0}'")]
    SnapshotUnknown(String),
    #[error("{0}")]
    SnapshotLimit(String),
    /// `POST /private/snapshots/{name}/restore` replaced the state an upload was writing into.
    #[error(
        "the database was restored from a snapshot while this upload was streaming in; nothing of it was kept"
    )]
    StateRestored,
    /// One of the server's bounds is reached: 503 with `Retry-After` (and `Connection: close`
    /// when `close`), before anything of the request is read or stored.
    #[error("{what}")]
    Busy { what: String, retry_after_s: u64, close: bool },
    /// A health probe found part of the database not answering in time: 503.
    #[error("the database's {part} is not answering: {detail}")]
    Unavailable { part: Unresponsive, detail: String },
}

/// The part of the database that a health probe found not answering; decides
/// the code of the 503.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unresponsive {
    /// A read on the pool: 53, as a failed fetch.
    ReadPool,
    /// The writer thread's round trip: 50, as the database connection being
    /// unusable (nothing was to be stored).
    Writer,
}

impl fmt::Display for Unresponsive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unresponsive::ReadPool => "read pool",
            Unresponsive::Writer => "writer thread",
        })
    }
}

impl ApiError {
    pub fn field(field: impl Into<String>, detail: impl fmt::Display) -> Self {
        ApiError::FieldMalformed { field: field.into(), detail: detail.to_string() }
    }

    pub fn header(header: &'static str, detail: impl fmt::Display) -> Self {
        ApiError::HeaderMalformed { header, detail: detail.to_string() }
    }

    /// A malformed path segment or query parameter.
    pub fn parameter(name: impl Into<String>, detail: impl fmt::Display) -> Self {
        ApiError::ParameterMalformed { name: name.into(), detail: detail.to_string() }
    }

    /// HTTP status and Taler code. Exhaustive on purpose: no `_` arm.
    pub fn parts(&self) -> (StatusCode, ErrorCode) {
        use ApiError::*;
        use ErrorCode as C;
        match self {
            MethodNotAllowed { .. } => (StatusCode::METHOD_NOT_ALLOWED, C::GenericMethodInvalid),
            EndpointUnknown { .. } => (StatusCode::NOT_FOUND, C::GenericEndpointUnknown),
            JsonInvalid { .. } | FieldMissing { .. } => (StatusCode::BAD_REQUEST, C::GenericJsonInvalid),
            FieldMalformed { .. } | HeaderMalformed { .. } | ParameterMalformed { .. } => {
                (StatusCode::BAD_REQUEST, C::GenericParameterMalformed)
            }
            HeaderMissing { .. } => (StatusCode::BAD_REQUEST, C::GenericParameterMissing),
            PaytoMalformed { .. } => (StatusCode::BAD_REQUEST, C::GenericPaytoUriMalformed),
            CompressionInvalid { .. } => (StatusCode::BAD_REQUEST, C::GenericCompressionInvalid),
            UnsupportedEncoding { .. } => (StatusCode::UNSUPPORTED_MEDIA_TYPE, C::GenericParameterMalformed),
            CurrencyMismatch { .. } => (StatusCode::BAD_REQUEST, C::GenericCurrencyMismatch),
            NotImplemented(_) => (StatusCode::NOT_IMPLEMENTED, C::GenericEndpointUnknown),
            LengthRequired => (StatusCode::LENGTH_REQUIRED, C::GenericParameterMissing),
            BodyIncomplete { .. } => (StatusCode::BAD_REQUEST, C::GenericParameterMalformed),
            RequestTimeout { .. } | BodyTooSlow { .. } => {
                (StatusCode::REQUEST_TIMEOUT, C::GenericParameterMalformed)
            }
            UploadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, C::GenericUploadExceedsLimit),
            UriTooLong { .. } => (StatusCode::URI_TOO_LONG, C::GenericUriTooLong),
            Unauthorized | GatewayUnauthorized => (StatusCode::UNAUTHORIZED, C::GenericUnauthorized),
            BankUnknownAccount(_) | BankUnknownTransfer(_) => (StatusCode::NOT_FOUND, C::BankUnknownAccount),
            BankTransferRequestUidReused(_) => (StatusCode::CONFLICT, C::BankTransferRequestUidReused),
            BankTransferWtidReused(_) => (StatusCode::CONFLICT, C::BankTransferWtidReused),
            Database { source } => (
                StatusCode::INTERNAL_SERVER_ERROR,
                match DbStep::of(source) {
                    DbStep::Setup => C::GenericDbSetupFailed,
                    DbStep::Store => C::GenericDbStoreFailed,
                    DbStep::Fetch => C::GenericDbFetchFailed,
                    DbStep::Invariant => C::GenericDbInvariantFailure,
                },
            ),
            Internal(_) | Fixtures(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, C::GenericInternalInvariantFailure)
            }
            AuditorNotFound(_) => (StatusCode::NOT_FOUND, C::ExchangeManagementAuditorNotFound),
            AuditorMoreRecentPresent { .. } => {
                (StatusCode::CONFLICT, C::ExchangeManagementAuditorMoreRecentPresent)
            }
            AuditorAddSignatureInvalid => {
                (StatusCode::FORBIDDEN, C::ExchangeManagementAuditorAddSignatureInvalid)
            }
            AuditorDelSignatureInvalid => {
                (StatusCode::FORBIDDEN, C::ExchangeManagementAuditorDelSignatureInvalid)
            }
            KycBulkSignatureInvalid(_) => (StatusCode::FORBIDDEN, C::KycBulkSignatureInvalid),
            ExternUnknown(_) => (StatusCode::NOT_FOUND, C::ExchangeKycImport3rdPartyUnknown),
            KycBulkAlreadyKnown => (StatusCode::PRECONDITION_FAILED, C::KycBulkAlreadyKnown),
            KycBulkUnknown(_) => (StatusCode::NOT_FOUND, C::KycBulkUnknown),
            BankDuplicateReservePub(_) => (StatusCode::CONFLICT, C::BankDuplicateReservePubSubject),
            BankUnknownCreditor(_) => (StatusCode::CONFLICT, C::BankUnknownCreditor),
            BankDerivationReuse { .. } => (StatusCode::CONFLICT, C::BankDerivationReuse),
            BankBadSignature(_) => (StatusCode::CONFLICT, C::BankBadSignature),
            BankOldTimestamp(_) => (StatusCode::CONFLICT, C::BankOldTimestamp),
            BankUnknownRegistration { conflict, .. } => (
                if *conflict { StatusCode::CONFLICT } else { StatusCode::NOT_FOUND },
                C::BankUnknownRegistration,
            ),
            BankTransferMappingReused(_) => (StatusCode::CONFLICT, C::BankTransferMappingReused),
            ClockBackwards { .. } => (StatusCode::CONFLICT, C::DevClockBackwards),
            FaultInjected { status, .. } => (*status, C::DevFaultInjected),
            SnapshotUnknown(_) => (StatusCode::NOT_FOUND, C::DevSnapshotUnknown),
            SnapshotLimit(_) => (StatusCode::CONFLICT, C::DevSnapshotLimit),
            StateRestored => (StatusCode::SERVICE_UNAVAILABLE, C::DevStateRestored),
            Busy { .. } => (StatusCode::SERVICE_UNAVAILABLE, C::ServerBusy),
            Unavailable { part: Unresponsive::ReadPool, .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, C::GenericDbFetchFailed)
            }
            Unavailable { part: Unresponsive::Writer, .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, C::GenericDbSetupFailed)
            }
        }
    }

    /// The request parameter (field, header, path segment) the error is
    /// about, so that a client can point at it. Exhaustive: no `_` arm.
    fn parameter_name(&self) -> Option<&str> {
        use ApiError::*;
        match self {
            FieldMissing { field } | FieldMalformed { field, .. } => Some(field),
            HeaderMissing { header } | HeaderMalformed { header, .. } => Some(header),
            ParameterMalformed { name, .. } => Some(name),
            LengthRequired | UploadTooLarge { .. } => Some("Content-Length"),
            Unauthorized | GatewayUnauthorized => Some("Authorization"),
            PaytoMalformed { field, .. } => Some(field),
            UnsupportedEncoding { .. } => Some("Content-Encoding"),
            CurrencyMismatch { field, .. } => Some(field),
            BankUnknownAccount(_) => Some("account"),
            BankUnknownTransfer(_) => Some("row_id"),
            BankTransferRequestUidReused(_) => Some("request_uid"),
            BankTransferWtidReused(_) => Some("wtid"),
            AuditorNotFound(_) => Some("AUDITOR_PUB"),
            AuditorAddSignatureInvalid | AuditorDelSignatureInvalid => Some("master_sig"),
            KycBulkSignatureInvalid(_) => Some("Taler-Extern-Signature"),
            ExternUnknown(_) => Some("EXTERN_PUB"),
            KycBulkUnknown(_) => Some("H_BODY"),
            BankDuplicateReservePub(_) => Some("account_pub"),
            BankUnknownCreditor(_) => Some("credit_account"),
            BankDerivationReuse { .. } | BankUnknownRegistration { .. } | BankTransferMappingReused(_) => {
                Some("authorization_pub")
            }
            BankBadSignature(_) => Some("authorization_sig"),
            BankOldTimestamp(_) => Some("timestamp"),
            ClockBackwards { field, .. } => Some(field),
            SnapshotUnknown(_) | SnapshotLimit(_) => Some("name"),
            MethodNotAllowed { .. }
            | EndpointUnknown { .. }
            | JsonInvalid { .. }
            | CompressionInvalid { .. }
            | NotImplemented(_)
            | BodyIncomplete { .. }
            | RequestTimeout { .. }
            | BodyTooSlow { .. }
            | UriTooLong { .. }
            | Database { .. }
            | Internal(_)
            | Fixtures(_)
            | AuditorMoreRecentPresent { .. }
            | KycBulkAlreadyKnown
            | FaultInjected { .. }
            | StateRestored
            | Busy { .. }
            | Unavailable { .. } => None,
        }
    }

    /// The `ErrorDetail` body.
    pub fn detail(&self) -> ErrorDetail {
        let (_, code) = self.parts();
        let detail = match self {
            // Internal details stay in the log.
            ApiError::Database { source } => format!("database failure ({:?})", DbStep::of(source)),
            ApiError::Internal(_) => "internal error".to_owned(),
            other => other.to_string(),
        };
        ErrorDetail {
            code: code.number(),
            hint: code.hint(),
            detail,
            parameter: self.parameter_name().map(str::to_owned),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(source: StoreError) -> Self {
        match source {
            StoreError::Restored => ApiError::StateRestored,
            source => ApiError::Database { source },
        }
    }
}

/// Taler's `ErrorDetail`.
#[derive(Debug, Serialize)]
pub struct ErrorDetail {
    pub code: u32,
    pub hint: &'static str,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
}

impl warp::Reply for ApiError {
    fn into_response(self) -> Response {
        let (status, _) = self.parts();
        if let ApiError::FaultInjected { .. } = &self {
            // Asked for: not the server's trouble.
            log::info!("{status}: {self}");
        } else if status.is_server_error() {
            log::error!("{self}: {:?}", std::error::Error::source(&self));
        } else {
            log::debug!("{status}: {self}");
        }
        let mut response = json_response(status, &self.detail());
        if let ApiError::MethodNotAllowed { allow, .. } = &self
            && let Ok(v) = HeaderValue::from_str(allow)
        {
            response.headers_mut().insert(header::ALLOW, v);
        }
        if let ApiError::Busy { retry_after_s, close, .. } = &self {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_s));
            if *close {
                response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
        }
        if let ApiError::GatewayUnauthorized = &self {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Basic realm=\"taler-wire-gateway\", Bearer realm=\"taler-wire-gateway\"",
                ),
            );
        }
        response
    }
}

/// A JSON answer. Serialising our own plain structs cannot fail; were it to, the
/// client still gets a JSON error rather than a panic.
pub fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    let (status, bytes) = match serde_json::to_vec(body) {
        Ok(bytes) => (status, bytes),
        Err(e) => {
            log::error!("cannot serialise a response: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                br#"{"code":56,"hint":"The service's database is inconsistent and violates service-internal invariants.","detail":"response serialisation failed"}"#.to_vec(),
            )
        }
    };
    let mut response = Response::new(bytes.into());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_wire_formats_table() {
        let table = [
            (ErrorCode::GenericMethodInvalid, 20),
            (ErrorCode::GenericEndpointUnknown, 21),
            (ErrorCode::GenericJsonInvalid, 22),
            (ErrorCode::GenericPaytoUriMalformed, 24),
            (ErrorCode::GenericParameterMissing, 25),
            (ErrorCode::GenericParameterMalformed, 26),
            (ErrorCode::GenericCompressionInvalid, 28),
            (ErrorCode::GenericCurrencyMismatch, 30),
            (ErrorCode::GenericUriTooLong, 31),
            (ErrorCode::GenericUploadExceedsLimit, 32),
            (ErrorCode::GenericUnauthorized, 40),
            (ErrorCode::GenericDbSetupFailed, 50),
            (ErrorCode::GenericDbStoreFailed, 52),
            (ErrorCode::GenericDbFetchFailed, 53),
            (ErrorCode::GenericDbInvariantFailure, 56),
            (ErrorCode::GenericInternalInvariantFailure, 60),
            (ErrorCode::ExchangeManagementAuditorNotFound, 1800),
            (ErrorCode::ExchangeManagementAuditorMoreRecentPresent, 1801),
            (ErrorCode::ExchangeManagementAuditorAddSignatureInvalid, 1802),
            (ErrorCode::ExchangeManagementAuditorDelSignatureInvalid, 1803),
            (ErrorCode::KycBulkSignatureInvalid, 1903),
            (ErrorCode::ExchangeKycImport3rdPartyUnknown, 1904),
            (ErrorCode::KycBulkAlreadyKnown, 1905),
            (ErrorCode::KycBulkUnknown, 1906),
            (ErrorCode::BankUnknownAccount, 5106),
            (ErrorCode::BankTransferRequestUidReused, 5112),
            (ErrorCode::BankTransferWtidReused, 5154),
            (ErrorCode::BankDuplicateReservePubSubject, 5114),
            (ErrorCode::BankUnknownCreditor, 5124),
            (ErrorCode::BankDerivationReuse, 5159),
            (ErrorCode::BankBadSignature, 5160),
            (ErrorCode::BankOldTimestamp, 5161),
            (ErrorCode::BankUnknownRegistration, 5162),
            (ErrorCode::BankTransferMappingReused, 5163),
            (ErrorCode::DevClockBackwards, 9901),
            (ErrorCode::DevFaultInjected, 9902),
            (ErrorCode::DevSnapshotUnknown, 9903),
            (ErrorCode::DevSnapshotLimit, 9904),
            (ErrorCode::DevStateRestored, 9905),
            (ErrorCode::ServerBusy, 9920),
        ];
        for (code, number) in table {
            assert_eq!(code.number(), number, "{code:?}");
            assert!(!code.hint().is_empty());
        }
    }

    #[test]
    fn unknown_registration_status_depends_on_the_endpoint() {
        let e = |conflict| ApiError::BankUnknownRegistration { authorization_pub: "K".into(), conflict };
        assert_eq!(e(false).parts().0, StatusCode::NOT_FOUND);
        assert_eq!(e(true).parts().0, StatusCode::CONFLICT);
    }

    #[test]
    fn an_unresponsive_database_is_503_with_the_code_of_its_part() {
        let e = |part| ApiError::Unavailable { part, detail: "no answer within 1s".into() };
        assert_eq!(
            e(Unresponsive::ReadPool).parts(),
            (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::GenericDbFetchFailed)
        );
        assert_eq!(
            e(Unresponsive::Writer).parts(),
            (StatusCode::SERVICE_UNAVAILABLE, ErrorCode::GenericDbSetupFailed)
        );
        assert!(e(Unresponsive::Writer).detail().detail.contains("writer thread"));
    }

    #[test]
    fn detail_names_the_field() {
        let d = ApiError::field("auditor_pub", "expected 52 base32 characters").detail();
        assert_eq!(d.code, 26);
        assert_eq!(d.parameter.as_deref(), Some("auditor_pub"));
        assert!(d.detail.contains("auditor_pub"));
    }
}
