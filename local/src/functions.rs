//! Every HTTP function crate the runner serves, in one list: each is built once from
//! the runner's stores ([`HttpFunction::from_local`]) and keyed by its name, which the
//! route table's `function` names. A route whose function is missing here stops the
//! runner at start (and fails `every_route_in_the_table_has_a_handler`).

use pisync_shared::function::{HttpFunction, HttpHandler, Local};
use std::collections::HashMap;
use std::sync::Arc;

/// The runner's handlers, by function name.
pub type Handlers = HashMap<&'static str, Arc<dyn HttpHandler>>;

fn entry<F: HttpFunction>(local: &Local) -> (&'static str, Arc<dyn HttpHandler>) {
    (F::NAME, Arc::new(F::from_local(local)))
}

/// The handler of every HTTP function crate.
pub fn http_handlers(local: &Local) -> Handlers {
    HashMap::from([
        entry::<record_sync_event::RecordSyncEvent>(local),
        entry::<record_sync_events::RecordSyncEvents>(local),
        entry::<get_sync_history::GetSyncHistory>(local),
        entry::<list_repeated_failures::ListRepeatedFailures>(local),
        entry::<get_device::GetDevice>(local),
        entry::<list_devices::ListDevices>(local),
        entry::<fleet_summary::FleetSummary>(local),
        entry::<serve_dashboard::ServeDashboard>(local),
        entry::<issue_device_credentials::IssueDeviceCredentials>(local),
        entry::<revoke_device_credentials::RevokeDeviceCredentials>(local),
        entry::<assign_device_school::AssignDeviceSchool>(local),
        entry::<put_school::PutSchool>(local),
        entry::<get_school::GetSchool>(local),
        entry::<preview_school_digest::PreviewSchoolDigest>(local),
        entry::<daily_analytics::DailyAnalytics>(local),
        entry::<school_analytics::SchoolAnalytics>(local),
        entry::<delete_school::DeleteSchool>(local),
        entry::<list_schools::ListSchools>(local),
        entry::<list_audit::ListAudit>(local),
        entry::<list_device_notices::ListDeviceNotices>(local),
        entry::<list_notices::ListNotices>(local),
    ])
}

/// The routes of the table whose function has no handler here.
pub fn unserved(handlers: &Handlers) -> Vec<&'static str> {
    pisync_shared::http::ROUTES
        .iter()
        .filter(|route| !handlers.contains_key(route.function))
        .map(|route| route.path)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_in_the_table_has_a_handler() {
        let (_dir, store) = pisync_shared::test_util::sqlite_store();
        let handlers = http_handlers(&pisync_shared::test_util::local(store));
        assert_eq!(unserved(&handlers), Vec::<&str>::new());
        let functions: std::collections::BTreeSet<&str> =
            pisync_shared::http::ROUTES.iter().map(|r| r.function).collect();
        let served: std::collections::BTreeSet<&str> = handlers.keys().copied().collect();
        assert_eq!(served, functions, "every handler serves a route of the table");
    }
}
