//! Batch-aware detection through a real store (SQLite): a backlog applied at once —
//! one state read and one state write for the device — ends in the same state, with
//! the same notices, as the same events applied one by one in device-timestamp order,
//! whatever order the batch holds them in.

use pisync_shared::domain::detection::{apply_event, apply_events};
use pisync_shared::domain::streak::StreakRule;
use pisync_shared::ports::RecordEvents;
use pisync_shared::test_util::{minute, sqlite_store, stored_event};
use pisync_shared::StoredEvent;
use proptest::prelude::*;

fn backlog() -> impl Strategy<Value = (Vec<StoredEvent>, Vec<StoredEvent>, u32)> {
    (
        proptest::collection::vec(prop_oneof![Just(0u32), 1u32..4], 1..30),
        1u32..5,
    )
        .prop_flat_map(|(errors, threshold)| {
            let events: Vec<StoredEvent> = errors
                .iter()
                .enumerate()
                .map(|(m, e)| stored_event("dev-backlog", m as i64, *e))
                .collect();
            (Just(events.clone()), Just(events).prop_shuffle(), Just(threshold))
        })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_backlog_at_once_equals_one_by_one((in_order, shuffled, threshold) in backlog(), split in 0usize..30) {
        let rule = StreakRule { threshold };
        let now = minute(1000);
        runtime().block_on(async {
            // One by one, in device-timestamp order, each stored as it arrives.
            let (_one_dir, one) = sqlite_store();
            let mut last = None;
            for e in &in_order {
                one.record(e.clone()).await.unwrap();
                last = Some(apply_event(&one, rule, e, now).await.unwrap());
            }
            let one_state = last.unwrap().state;
            // A backlog: everything stored first, then applied in two stream batches,
            // each in the order the device sent it.
            let (_batch_dir, batch) = sqlite_store();
            for e in &shuffled {
                batch.record(e.clone()).await.unwrap();
            }
            let cut = split.min(shuffled.len());
            let (first, second) = shuffled.split_at(cut);
            let mut applied = None;
            for part in [first, second] {
                if !part.is_empty() {
                    applied = Some(apply_events(&batch, rule, part, now).await.unwrap());
                }
            }
            let batch_state = applied.unwrap().state;
            prop_assert_eq!(batch_state.consecutive_failures(), one_state.consecutive_failures());
            prop_assert_eq!(batch_state.last_success_at, one_state.last_success_at);
            prop_assert_eq!(batch_state.last_sync_at, one_state.last_sync_at);
            if cut == 0 || cut == shuffled.len() {
                // The whole backlog in one batch: the very same notices.
                prop_assert_eq!(&batch_state.pending_notices, &one_state.pending_notices);
            }
            Ok(())
        })?;
    }
}

#[tokio::test]
async fn a_backlog_costs_one_state_write() {
    let (_dir, store) = sqlite_store();
    let events: Vec<StoredEvent> = (0..50).map(|m| stored_event("dev-one-write", m, 1)).collect();
    for e in &events {
        store.record(e.clone()).await.unwrap();
    }
    let applied = apply_events(&store, StreakRule::default(), &events, minute(100))
        .await
        .unwrap();
    assert!(applied.newly_applied);
    assert_eq!(applied.state.consecutive_failures(), 50);
    let version = pisync_shared::ports::DeviceStates::load(&store, &events[0].device_id)
        .await
        .unwrap()
        .unwrap()
        .version;
    assert_eq!(version, 1, "fifty events, one save");
    assert_eq!(
        applied.state.pending_notices.len(),
        1,
        "one alert for the run, as one by one"
    );
}
