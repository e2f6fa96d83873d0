//! The daily digest: at its `digest_at` on each open day, a school gets one
//! `school.digest` notice saying how its devices stand, which are worst, what was
//! recorded but not published, and how yesterday's syncs went. The periodic check
//! sends the digests due; `GET /schools/{id}/digest` composes one without sending it.
//!
//! Every figure comes from what the stores keep anyway — the school's device counts,
//! the failing and silent lists (a page each), its notice history and its day totals —
//! so a digest costs a few reads whatever the size of the school.

use crate::domain::device::Status;
use crate::domain::fleet::Day;
use crate::domain::notice::{DigestDay, SchoolDigest, DIGEST_LIST_MAX};
use crate::domain::school::{School, SchoolId};
use crate::domain::time::EventTime;
use crate::ports::{
    DigestLedger, NoticeHistory, NoticeQuery, ReadDevices, ReadFleet, ReadSchools, Store, StoreError, Within,
};
use chrono::NaiveDate;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Most history entries a digest reads to count the notices held back in the last
/// 24 hours (ten pages): a school with more counts this many.
pub const UNPUBLISHED_READ_MAX: usize = 1_000;

/// How far back a digest counts the notices held back.
const UNPUBLISHED_WINDOW_MILLIS: i64 = 24 * 3_600_000;

/// Schools read per page while looking for digests due.
const SCHOOLS_PER_PAGE: usize = 100;

/// Most schools one round reads the mark of (and composes the digest of, when not
/// sent): a district whose schools share a `digest_at` gets theirs over a few runs (a
/// minute apart in AWS) rather than in one run too long for its timeout.
pub const DIGESTS_PER_ROUND: usize = 100;

/// What a digest is composed from.
#[derive(Clone, Copy)]
pub struct DigestSources<'a> {
    pub schools: &'a dyn ReadSchools,
    pub devices: &'a dyn ReadDevices,
    pub notices: &'a dyn NoticeHistory,
    pub days: &'a dyn ReadFleet,
}

/// The ports a digest is composed from, owned: what the periodic check and the preview
/// route keep, lending [`DigestSources`] to each call.
#[derive(Clone)]
pub struct DigestReads {
    schools: Arc<dyn ReadSchools>,
    devices: Arc<dyn ReadDevices>,
    notices: Arc<dyn NoticeHistory>,
    days: Arc<dyn ReadFleet>,
}

impl DigestReads {
    pub fn of(store: Arc<dyn Store>) -> Self {
        Self {
            schools: store.clone(),
            devices: store.clone(),
            notices: store.clone(),
            days: store,
        }
    }

    pub fn sources(&self) -> DigestSources<'_> {
        DigestSources {
            schools: self.schools.as_ref(),
            devices: self.devices.as_ref(),
            notices: self.notices.as_ref(),
            days: self.days.as_ref(),
        }
    }
}

/// What `school`'s digest for its local `date` says at `now`.
pub async fn compose_digest(
    sources: DigestSources<'_>,
    school: &School,
    date: NaiveDate,
    now: EventTime,
) -> Result<SchoolDigest, StoreError> {
    let id = &school.school_id;
    let within = Within::Schools(vec![id.clone()]);
    let devices = sources
        .schools
        .school_counts(std::slice::from_ref(id))
        .await?
        .pop()
        .map(|c| c.devices)
        .unwrap_or_default();
    let within = &within;
    let worst = |status| async move {
        let page = sources
            .devices
            .devices(Some(status), DIGEST_LIST_MAX, None, within)
            .await?;
        Ok::<_, StoreError>(page.devices.into_iter().map(|d| d.device_id).collect())
    };
    let failing = worst(Status::Failing).await?;
    let silent = worst(Status::Silent).await?;
    let unpublished = count_unpublished(sources.notices, id, now).await?;
    let yesterday = date.pred_opt().unwrap_or(date);
    Ok(SchoolDigest {
        school_id: id.clone(),
        name: school.name.clone(),
        date: date.to_string(),
        devices,
        failing,
        silent,
        unpublished,
        yesterday: day_of(sources.days, id, yesterday).await?,
        detected_at: now,
        alert_id: format!("{id}@digest@{date}"),
    })
}

/// The school's notices recorded but not published in the 24 hours before `now`: its
/// history newest first, until an entry is older (at most [`UNPUBLISHED_READ_MAX`]).
async fn count_unpublished(
    notices: &dyn NoticeHistory,
    school: &SchoolId,
    now: EventTime,
) -> Result<u32, StoreError> {
    let since = now.plus_millis(-UNPUBLISHED_WINDOW_MILLIS);
    let within = Within::Schools(vec![school.clone()]);
    let mut before: Option<String> = None;
    let (mut read, mut held) = (0usize, 0u32);
    while read < UNPUBLISHED_READ_MAX {
        let page = notices
            .notice_feed(&NoticeQuery {
                within: &within,
                kind: None,
                before: before.as_deref(),
                limit: 100,
            })
            .await?;
        read += page.notices.len();
        for (_, record) in &page.notices {
            if record.decided_at < since {
                return Ok(held);
            }
            held += u32::from(!record.published);
        }
        match page.notices.last() {
            Some((key, _)) if page.more => before = Some(key.clone()),
            _ => break,
        }
    }
    Ok(held)
}

/// The syncs of `date`. Day totals are kept per UTC day (by device timestamp): the day
/// counted is the UTC day with the school's local date.
async fn day_of(days: &dyn ReadFleet, school: &SchoolId, date: NaiveDate) -> Result<DigestDay, StoreError> {
    let text = date.to_string();
    let day = Day::parse(&text).unwrap_or(Day::from_number(0));
    let within = Within::Schools(vec![school.clone()]);
    let totals = days
        .days(day, day, &within)
        .await?
        .remove(&day)
        .unwrap_or_default();
    let failure_rate = if totals.syncs == 0 {
        0.0
    } else {
        totals.failures as f64 / totals.syncs as f64
    };
    Ok(DigestDay {
        date: text,
        syncs: totals.syncs,
        failures: totals.failures,
        failure_rate,
    })
}

/// The dates this process knows each school's digest was sent for, so a warm periodic
/// check does not read every school's mark every minute for the rest of the day.
#[derive(Debug, Default)]
pub struct SentDigests(Mutex<HashMap<SchoolId, NaiveDate>>);

impl SentDigests {
    fn reaches(&self, school: &SchoolId, date: NaiveDate) -> bool {
        self.0
            .lock()
            .map(|sent| sent.get(school).is_some_and(|d| *d >= date))
            .unwrap_or(false)
    }

    fn note(&self, school: &SchoolId, date: NaiveDate) {
        if let Ok(mut sent) = self.0.lock() {
            sent.insert(school.clone(), date);
        }
    }
}

/// What one digest round did.
#[derive(Debug, Default)]
pub struct DigestRound {
    /// Digests saved to the outbox (and history) this round.
    pub sent: Vec<SchoolDigest>,
    /// Schools whose digest could not be composed or saved: the next round tries again.
    pub failed: Vec<(SchoolId, StoreError)>,
}

/// Saves the digest of every school whose digest is due at `now` and not yet sent
/// for today, at most [`DIGESTS_PER_ROUND`] (the rest are due at the next round). One
/// school's failure does not stop the others.
pub async fn send_due_digests(
    sources: DigestSources<'_>,
    ledger: &dyn DigestLedger,
    sent: &SentDigests,
    now: EventTime,
) -> Result<DigestRound, StoreError> {
    let mut round = DigestRound::default();
    // Schools whose mark was read (and digest composed, if not sent yet) this round.
    let mut attempted = 0;
    let mut after: Option<SchoolId> = None;
    loop {
        let page = sources.schools.schools(after.as_ref(), SCHOOLS_PER_PAGE).await?;
        for school in &page.schools {
            let Some(date) = school.digest_due(now) else {
                continue;
            };
            if sent.reaches(&school.school_id, date) {
                continue;
            }
            if attempted == DIGESTS_PER_ROUND {
                return Ok(round);
            }
            attempted += 1;
            match send_digest(sources, ledger, school, date, now).await {
                Ok(saved) => {
                    sent.note(&school.school_id, date);
                    round.sent.extend(saved);
                }
                Err(err) => round.failed.push((school.school_id.clone(), err)),
            }
        }
        match page.schools.last() {
            Some(last) if page.more => after = Some(last.school_id.clone()),
            _ => return Ok(round),
        }
    }
}

/// Composes and saves the school's digest for `date` unless its mark says it was sent.
async fn send_digest(
    sources: DigestSources<'_>,
    ledger: &dyn DigestLedger,
    school: &School,
    date: NaiveDate,
    now: EventTime,
) -> Result<Option<SchoolDigest>, StoreError> {
    if ledger
        .last_digest(&school.school_id)
        .await?
        .is_some_and(|last| last >= date)
    {
        return Ok(None);
    }
    let digest = compose_digest(sources, school, date, now).await?;
    Ok(ledger.save_digest(&digest, date).await?.then_some(digest))
}
