//! Schools: their settings, and the device counts each one keeps.

use super::StoreError;
use crate::domain::fleet::SchoolCounts;
use crate::domain::school::{School, SchoolId};
use async_trait::async_trait;

/// What `PUT /schools/{id}` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchoolPut {
    Created,
    Replaced,
    /// It does not exist and the caller may only replace: nothing written.
    NotFound,
}

/// What `DELETE /schools/{id}` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchoolDeleted {
    Deleted,
    NotFound,
    /// Devices are still assigned to it: nothing was deleted.
    NotEmpty,
}

/// A page of schools, by id.
#[derive(Clone, Debug, PartialEq)]
pub struct SchoolPage {
    pub schools: Vec<School>,
    pub more: bool,
}

/// Reads schools and their counts (the read routes; the cost of a page is the page's).
#[async_trait]
pub trait ReadSchools: Send + Sync {
    async fn school(&self, id: &SchoolId) -> Result<Option<School>, StoreError>;

    /// Schools by id, strictly after `after`, at most `limit`.
    async fn schools(&self, after: Option<&SchoolId>, limit: usize) -> Result<SchoolPage, StoreError>;

    /// Each school's device counts, in the order asked (zero for a school without
    /// devices).
    async fn school_counts(&self, ids: &[SchoolId]) -> Result<Vec<SchoolCounts>, StoreError>;
}

/// Creates, replaces and deletes schools (district and school admins).
#[async_trait]
pub trait ManageSchools: Send + Sync {
    /// Creates or replaces `school`; with `may_create` false (a school admin) only
    /// replaces, checked in the same write (a school deleted meanwhile stays deleted).
    async fn put_school(&self, school: &School, may_create: bool) -> Result<SchoolPut, StoreError>;

    /// Deletes the school unless devices are assigned to it (checked in the same
    /// write, so an assignment racing the delete never leaves a device in no school).
    async fn delete_school(&self, id: &SchoolId) -> Result<SchoolDeleted, StoreError>;
}
