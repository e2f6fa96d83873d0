//! Per-device limits on DynamoDB Local (PISYNC_TEST_DYNAMODB_ENDPOINT): sandboxes
//! sharing a device's count through its credential item admit at most twice the
//! limit together, and a device nobody floods costs no write.

use pisync_shared::domain::limits::{Admission, DeviceLimits};
use pisync_shared::ports::{DeviceCredential, LimitDevices, ManageCredentials};
use pisync_shared::test_util::{device, dynamodb_local_credentials};
use pisync_shared::EventTime;

const LIMITS: DeviceLimits = DeviceLimits {
    requests_per_minute: 40,
    events_per_minute: 100_000,
};

/// The start of a minute, so a test's requests all fall in one window.
fn minute_start() -> EventTime {
    let now = EventTime::now().millis();
    EventTime::from_millis(now - now.rem_euclid(60_000) + 60_000).unwrap()
}

async fn issued(credentials: &pisync_shared::adapters::dynamodb::DynamoCredentials, id: &str) {
    credentials
        .replace(&DeviceCredential {
            device_id: id.into(),
            token_digest: [1; 32],
            issued_at: EventTime::now(),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn sandboxes_together_admit_at_most_twice_the_limit() {
    let credentials = dynamodb_local_credentials("limits").await;
    issued(&credentials, "flood").await;
    // Eight sandboxes taking turns: the worst spread the adapter's bound allows.
    let sandboxes: Vec<_> = (0..8).map(|_| credentials.device_limits(LIMITS)).collect();
    let now = minute_start();
    let flood = device("flood");
    let mut admitted = 0;
    for round in 0..40 {
        for sandbox in &sandboxes {
            if sandbox.admit(&flood, 1, now.plus_millis(round)).await.unwrap() == Admission::Admitted {
                admitted += 1;
            }
        }
    }
    assert!(
        (LIMITS.requests_per_minute..=2 * LIMITS.requests_per_minute).contains(&admitted),
        "admitted {admitted} of 320 against a limit of 40"
    );
    // One sandbox alone counts exactly.
    issued(&credentials, "alone").await;
    let alone = credentials.device_limits(LIMITS);
    let mut admitted = 0;
    for i in 0..60 {
        if alone
            .admit(&device("alone"), 1, now.plus_millis(i))
            .await
            .unwrap()
            == Admission::Admitted
        {
            admitted += 1;
        }
    }
    assert_eq!(admitted, LIMITS.requests_per_minute);
}

#[tokio::test]
async fn a_new_minute_starts_a_new_count_and_other_devices_are_not_limited() {
    let credentials = dynamodb_local_credentials("limits").await;
    for id in ["busy", "quiet"] {
        issued(&credentials, id).await;
    }
    let (a, b) = (
        credentials.device_limits(LIMITS),
        credentials.device_limits(LIMITS),
    );
    let now = minute_start();
    for i in 0..200 {
        let sandbox = if i % 2 == 0 { &a } else { &b };
        sandbox
            .admit(&device("busy"), 1, now.plus_millis(i))
            .await
            .unwrap();
    }
    assert!(matches!(
        a.admit(&device("busy"), 1, now.plus_millis(500)).await.unwrap(),
        Admission::Refused { .. }
    ));
    assert_eq!(
        b.admit(&device("quiet"), 1, now.plus_millis(500)).await.unwrap(),
        Admission::Admitted
    );
    let next = now.plus_millis(60_000);
    assert_eq!(
        a.admit(&device("busy"), 1, next).await.unwrap(),
        Admission::Admitted
    );
    // A fresh sandbox in the next minute starts from the shared count, which the
    // last minute's total does not carry into.
    let fresh = credentials.device_limits(LIMITS);
    assert_eq!(
        fresh.admit(&device("busy"), 1, next).await.unwrap(),
        Admission::Admitted
    );
}

#[tokio::test]
async fn a_device_without_a_credential_item_is_still_counted_in_the_sandbox() {
    let credentials = dynamodb_local_credentials("limits").await;
    let sandbox = credentials.device_limits(DeviceLimits {
        requests_per_minute: 8,
        events_per_minute: 1000,
    });
    let now = minute_start();
    let mut admitted = 0;
    for i in 0..20 {
        if sandbox
            .admit(&device("revoked"), 1, now.plus_millis(i))
            .await
            .unwrap()
            == Admission::Admitted
        {
            admitted += 1;
        }
    }
    assert_eq!(
        admitted, 8,
        "no item to share through: the sandbox's own count holds"
    );
}
