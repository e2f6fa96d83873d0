//! Implementations of the storage and alert ports.

#[cfg(feature = "aws")]
pub mod aws;
#[cfg(feature = "dynamodb")]
pub mod dynamodb;
pub mod item;
#[cfg(feature = "sns")]
pub mod sns;
#[cfg(feature = "sqlite")]
pub mod sqlite;
