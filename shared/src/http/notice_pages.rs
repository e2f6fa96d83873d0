//! What the two notice history routes share: a page's body and its cursor, which is
//! good only for the list it was issued for.

use super::cursor::CursorKey;
use super::request::QueryParams;
use crate::domain::notice::NoticeRecord;
use crate::domain::validate::FieldError;
use crate::ports::NoticePage;
use serde::Serialize;

/// `{"notices": […], "next_cursor"}` (with `device_id` on a device's page).
#[derive(Serialize)]
pub struct NoticesBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    pub notices: Vec<NoticeRecord>,
    pub next_cursor: Option<String>,
}

/// The history key the `cursor` parameter stands for, if any; a cursor issued for
/// another list (`context`) or forged is a problem.
pub fn cursor_param(
    params: &QueryParams<'_>,
    key: &CursorKey,
    context: &str,
    problems: &mut Vec<FieldError>,
) -> Option<String> {
    let cursor = params.get("cursor")?;
    let before = key.open(context, cursor);
    if before.is_none() {
        problems.push(FieldError::new("cursor", "is not a cursor this endpoint issued"));
    }
    before
}

/// The page as the reply's body, with a cursor to the next one when there is more.
pub fn body(page: NoticePage, key: &CursorKey, context: &str, device_id: Option<String>) -> NoticesBody {
    let next_cursor = match (page.more, page.notices.last()) {
        (true, Some((last, _))) => Some(key.seal(context, last)),
        _ => None,
    };
    NoticesBody {
        device_id,
        notices: page.notices.into_iter().map(|(_, record)| record).collect(),
        next_cursor,
    }
}
