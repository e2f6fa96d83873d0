//! The HTTP layer every endpoint shares: the route table, the seam a request passes
//! before its handler ([`Call::admit`]), replies in the one error shape with the
//! security headers, query parsing and signed page cursors.

pub mod cursor;
pub mod error;
pub mod notice_pages;
pub mod reply;
pub mod request;
pub mod routes;
pub mod scope;

pub use error::ApiError;
pub use reply::{error, json, no_content, SECURITY_HEADERS};
pub use request::{
    generate_request_id, is_json_media_type, parse_days, parse_limit, request_id, Call, Caller, QueryParams,
    DEFAULT_LIMIT, MAX_LIMIT,
};
pub use routes::{route_for, Route, ROUTES};

#[cfg(test)]
mod tests;
