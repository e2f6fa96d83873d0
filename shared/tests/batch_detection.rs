//! Batch-aware detection through a real store (SQLite): a backlog applied at once —
//! one state read and one state write for the device — ends in the same state, with
//! the same notices, as the same events applied one by one in device-timestamp order,
//! whatever order the batch holds them in.

use pisync_shared::domain::detection::{apply_event, apply_records, Record, Rules};
use pisync_shared::domain::streak::StreakRule;
use pisync_shared::ports::{DeviceStates, RecordEvents};
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

fn rules(threshold: u32) -> Rules {
    Rules {
        streak: StreakRule {
            threshold,
            ..StreakRule::default()
        },
        ..Rules::default()
    }
}

fn records(events: &[StoredEvent]) -> Vec<Record> {
    events.iter().map(|e| Record::new(None, e.clone())).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_backlog_at_once_equals_one_by_one((in_order, shuffled, threshold) in backlog(), split in 0usize..30) {
        let now = minute(1000);
        runtime().block_on(async {
            // One by one, in device-timestamp order, each stored as it arrives.
            let (_one_dir, one) = sqlite_store();
            let mut one_notices = Vec::new();
            let mut last = None;
            for e in &in_order {
                one.record(e.clone()).await.unwrap();
                let applied = apply_event(&one, rules(threshold), e, now).await.unwrap();
                one_notices.extend(applied.notices.clone());
                last = Some(applied);
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
            let mut batch_notices = Vec::new();
            for part in [first, second] {
                if !part.is_empty() {
                    let applied = apply_records(&batch, rules(threshold), &records(part), now).await.unwrap();
                    batch_notices.extend(applied.notices);
                }
            }
            let batch_state = batch.load(&in_order[0].device_id).await.unwrap().unwrap().state;
            prop_assert_eq!(batch_state.consecutive_failures(), one_state.consecutive_failures());
            prop_assert_eq!(batch_state.last_success_at, one_state.last_success_at);
            prop_assert_eq!(batch_state.last_sync_at, one_state.last_sync_at);
            prop_assert_eq!(batch_state.totals, one_state.totals);
            if cut == 0 || cut == shuffled.len() {
                // The whole backlog in one batch: the very same notices.
                prop_assert_eq!(&batch_notices, &one_notices);
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
    let applied = apply_records(&store, Rules::default(), &records(&events), minute(100))
        .await
        .unwrap();
    assert_eq!(applied.new_events.len(), 50);
    assert_eq!(applied.state.consecutive_failures(), 50);
    let version = store.load(&events[0].device_id).await.unwrap().unwrap().version;
    assert_eq!(version, 1, "fifty events, one save");
    assert_eq!(applied.notices.len(), 1, "one alert for the run, as one by one");
}
