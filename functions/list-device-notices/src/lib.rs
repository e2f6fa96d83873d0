//! `GET /device/{id}/notices`: every notice decided about one device, published or
//! not and why, newest decision first, page by page. The history follows the device:
//! whoever may see the device now reads all of it. A school operator sees its
//! schools' devices only.

use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use pisync_shared::auth::Authenticator;
use pisync_shared::function::{async_trait, Aws, BoxError, HttpFunction, HttpHandler, Local};
use pisync_shared::http::cursor::CursorKey;
use pisync_shared::http::notice_pages::{self, NoticesBody};
use pisync_shared::http::routes::LIST_DEVICE_NOTICES;
use pisync_shared::http::{self, scope, ApiError, Call};
use pisync_shared::ports::{NoticeHistory, ReadDevices};
use std::sync::Arc;

pub struct ListDeviceNotices {
    devices: Arc<dyn ReadDevices>,
    history: Arc<dyn NoticeHistory>,
    cursor_key: CursorKey,
    auth: Authenticator,
}

const PARAMS: [&str; 2] = ["limit", "cursor"];

impl HttpFunction for ListDeviceNotices {
    const NAME: &'static str = env!("CARGO_PKG_NAME");

    async fn from_aws(aws: &Aws) -> Result<Self, BoxError> {
        let store = aws.store().await?;
        Ok(Self {
            devices: store.clone(),
            history: store,
            cursor_key: aws.cursor_key().await?,
            auth: aws.operator_auth(),
        })
    }

    fn from_local(local: &Local) -> Self {
        Self {
            devices: local.store.clone(),
            history: local.store.clone(),
            cursor_key: local.cursor_key.clone(),
            auth: local.auth.clone(),
        }
    }
}

#[async_trait]
impl HttpHandler for ListDeviceNotices {
    async fn handle(&self, req: Request) -> Response<Body> {
        match Call::admit(&LIST_DEVICE_NOTICES, &req, &self.auth).await {
            Ok(call) => call.reply(self.list(&call).await.map(|body| (StatusCode::OK, body))),
            Err(refused) => *refused,
        }
    }
}

impl ListDeviceNotices {
    async fn list(&self, call: &Call<'_>) -> Result<NoticesBody, ApiError> {
        let mut problems = Vec::new();
        let device = call.device_id().map_err(|e| problems.push(e)).ok();
        let params = call.query(&PARAMS, &mut problems);
        let limit = http::parse_limit(&params, &mut problems);
        let context = format!("device-notices\n{}", device.as_ref().map_or("", |d| d.as_str()));
        let before = notice_pages::cursor_param(&params, &self.cursor_key, &context, &mut problems);
        let (Some(device), true) = (device, problems.is_empty()) else {
            return Err(ApiError::invalid_request(problems));
        };
        let state = self.devices.device(&device).await?;
        scope::visible_device(&call.caller, &device, state)?;
        let page = self
            .history
            .device_notices(&device, before.as_deref(), limit)
            .await?;
        Ok(notice_pages::body(
            page,
            &self.cursor_key,
            &context,
            Some(device.to_string()),
        ))
    }
}
