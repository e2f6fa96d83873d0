//! Implementations of the ports, each behind a feature so a Lambda links only what it
//! calls.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
#[cfg(feature = "firehose")]
pub mod firehose;
pub mod minute_counters;
pub mod secret_file;
#[cfg(feature = "secrets")]
pub mod secrets;
#[cfg(feature = "sns")]
pub mod sns;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(feature = "sqs")]
pub mod sqs;
#[cfg(feature = "webhook")]
pub mod webhook;
