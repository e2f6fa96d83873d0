//! pisync-local's integration tests, in one binary (one link, and no helper can go
//! unused unnoticed): the real runner over HTTP on both stores, every file in
//! `events/` through its handler, property tests on arbitrary requests, and detection
//! on a real DynamoDB stream.

mod analytics;
mod audit;
mod auth;
mod batch;
mod blackbox;
mod connections;
mod export;
mod faults;
mod fleet;
mod fuzz_requests;
mod isolation;
mod limits;
mod metrics;
mod notices;
mod schools;
mod stream;
mod support;
mod webhooks;
