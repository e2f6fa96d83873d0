use super::*;
use crate::auth::token::{sign_device, sign_operator};
use crate::ports::credentials::DeviceCredential;
use crate::EventTime;
use async_trait::async_trait;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Credentials in memory, counting reads.
#[derive(Default)]
struct Credentials {
    current: Mutex<HashMap<String, [u8; 32]>>,
    reads: AtomicUsize,
}

impl Credentials {
    fn issue(&self, keys: &SigningKeys, device: &str) -> String {
        let token = sign_device(keys, device).unwrap();
        self.current
            .lock()
            .unwrap()
            .insert(device.into(), token::digest(&token));
        token
    }

    fn revoke(&self, device: &str) {
        self.current.lock().unwrap().remove(device);
    }

    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl CheckCredentials for Credentials {
    async fn current(&self, device_id: &str, _: Freshness) -> Result<Option<DeviceCredential>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        Ok(self
            .current
            .lock()
            .unwrap()
            .get(device_id)
            .map(|d| DeviceCredential {
                device_id: device_id.into(),
                token_digest: *d,
                issued_at: EventTime::now(),
            }))
    }
}

fn keys() -> SigningKeys {
    SigningKeys::new("k1", [("k1", &[b'1'; 32][..])]).unwrap()
}

fn bearer_of(token: &str) -> String {
    format!("Bearer {token}")
}

async fn caller(auth: &Authenticator, header: Option<&str>) -> Result<Caller, AuthError> {
    auth.authenticate(Presented {
        authorization: header.map(str::as_bytes),
        gateway_claims: None,
    })
    .await
}

fn local(credentials: &Arc<Credentials>) -> Authenticator {
    Authenticator::local(Arc::new(KeyRing::fixed(keys())), credentials.clone())
}

#[tokio::test]
async fn a_current_device_token_is_its_device() {
    let creds = Arc::new(Credentials::default());
    let token = creds.issue(&keys(), "device_1");
    let got = caller(&local(&creds), Some(&bearer_of(&token))).await.unwrap();
    assert_eq!(got, Caller::Device("device_1".into()));
}

#[tokio::test]
async fn a_forged_token_costs_no_store_read() {
    let creds = Arc::new(Credentials::default());
    let other = SigningKeys::new("k1", [("k1", &[b'x'; 32][..])]).unwrap();
    let forged = sign_device(&other, "device_1").unwrap();
    let err = caller(&local(&creds), Some(&bearer_of(&forged)))
        .await
        .unwrap_err();
    assert!(matches!(err, AuthError::Unauthorized("bad signature")), "{err:?}");
    assert_eq!(creds.reads(), 0);
}

#[tokio::test]
async fn a_replaced_token_stops_working_and_the_new_one_works() {
    let creds = Arc::new(Credentials::default());
    let auth = local(&creds);
    let old = creds.issue(&keys(), "device_1");
    let new = creds.issue(&keys(), "device_1");
    assert!(caller(&auth, Some(&bearer_of(&old))).await.is_err());
    assert!(caller(&auth, Some(&bearer_of(&new))).await.is_ok());
}

#[tokio::test]
async fn revocation_is_immediate_without_a_cache() {
    let creds = Arc::new(Credentials::default());
    let auth = local(&creds);
    let token = creds.issue(&keys(), "device_1");
    assert!(caller(&auth, Some(&bearer_of(&token))).await.is_ok());
    creds.revoke("device_1");
    assert!(caller(&auth, Some(&bearer_of(&token))).await.is_err());
}

#[tokio::test]
async fn the_lambda_cache_holds_a_verdict_for_its_ttl_only() {
    let creds = Arc::new(Credentials::default());
    let ttl = Duration::from_millis(200);
    let auth = Authenticator::devices(Arc::new(KeyRing::fixed(keys())), creds.clone(), ttl);
    let token = creds.issue(&keys(), "device_1");
    for _ in 0..3 {
        assert!(caller(&auth, Some(&bearer_of(&token))).await.is_ok());
    }
    assert_eq!(creds.reads(), 1, "one read, then the verdict is cached");
    creds.revoke("device_1");
    // Within the TTL the cached verdict stands (the documented revocation delay)...
    assert!(caller(&auth, Some(&bearer_of(&token))).await.is_ok());
    tokio::time::sleep(ttl).await;
    // ...after it, the store is read again.
    assert!(caller(&auth, Some(&bearer_of(&token))).await.is_err());
    // A token issued after a cached refusal is checked at once, not refused from cache.
    let fresh = creds.issue(&keys(), "device_1");
    assert!(caller(&auth, Some(&bearer_of(&fresh))).await.is_ok());
}

#[tokio::test]
async fn malformed_headers_are_unauthorized() {
    let creds = Arc::new(Credentials::default());
    let auth = local(&creds);
    let token = creds.issue(&keys(), "device_1");
    for header in [
        None,
        Some(String::new()),
        Some(format!("Basic {token}")),
        Some(token.clone()),
        Some("Bearer ".into()),
        Some("Bearer garbage".into()),
        Some(bearer_of(&token[..token.len() - 3])),
    ] {
        let got = caller(&auth, header.as_deref()).await;
        assert!(
            matches!(got, Err(AuthError::Unauthorized(_))),
            "{header:?}: {got:?}"
        );
    }
    assert!(caller(&auth, Some(&format!("bEaReR {token}"))).await.is_ok());
}

#[tokio::test]
async fn local_operator_tokens_carry_their_scope() {
    let creds = Arc::new(Credentials::default());
    let auth = local(&creds);
    let later = chrono::Utc::now().timestamp() + 60;
    let read = sign_operator(&keys(), Scope::Read, later).unwrap();
    assert_eq!(
        caller(&auth, Some(&bearer_of(&read))).await.unwrap(),
        Caller::Operator(Scope::Read)
    );
    let expired = sign_operator(&keys(), Scope::Admin, later - 120).unwrap();
    assert!(caller(&auth, Some(&bearer_of(&expired))).await.is_err());
}

#[tokio::test]
async fn operator_tokens_are_refused_where_only_devices_are_checked() {
    let creds = Arc::new(Credentials::default());
    let auth = Authenticator::devices(Arc::new(KeyRing::fixed(keys())), creds, Duration::from_secs(60));
    let read = sign_operator(&keys(), Scope::Admin, chrono::Utc::now().timestamp() + 60).unwrap();
    assert!(caller(&auth, Some(&bearer_of(&read))).await.is_err());
}

#[tokio::test]
async fn gateway_groups_become_scopes() {
    let auth = Authenticator::gateway_operators("cognito:groups");
    let claims = |groups: &str| HashMap::from([("cognito:groups".to_string(), groups.to_string())]);
    let with = |claims| Presented {
        authorization: Some(b"Bearer eyJ..."),
        gateway_claims: Some(claims),
    };
    let (both, read, json, other) = (
        claims("[pisync-read pisync-admin]"),
        claims("pisync-read"),
        claims(r#"["teachers","pisync-read"]"#),
        claims("[teachers]"),
    );
    assert_eq!(
        auth.authenticate(with(&both)).await.unwrap(),
        Caller::Operator(Scope::Admin)
    );
    assert_eq!(
        auth.authenticate(with(&read)).await.unwrap(),
        Caller::Operator(Scope::Read)
    );
    assert_eq!(
        auth.authenticate(with(&json)).await.unwrap(),
        Caller::Operator(Scope::Read)
    );
    assert_eq!(auth.authenticate(with(&other)).await.unwrap(), Caller::NoRole);
    assert_eq!(
        auth.authenticate(with(&HashMap::new())).await.unwrap(),
        Caller::NoRole
    );
    // Without the authorizer's claims nothing is trusted.
    assert!(caller(&auth, Some("Bearer eyJ...")).await.is_err());
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_from_the_source() {
    struct Source(Mutex<SigningKeys>);
    #[async_trait]
    impl LoadKeys for Source {
        async fn load(&self) -> Result<SigningKeys, StoreError> {
            Ok(self.0.lock().unwrap().clone())
        }
    }
    let source = Arc::new(Source(Mutex::new(keys())));
    let ring = Arc::new(KeyRing::load(source.clone()).await.unwrap());
    // Force the next unknown key id to reload (the interval starts at load).
    *ring.last_reload.lock().unwrap() = None;
    let creds = Arc::new(Credentials::default());
    let auth = Authenticator::local(ring, creds.clone());
    let rotated = SigningKeys::new("k2", [("k1", &[b'1'; 32][..]), ("k2", &[b'2'; 32][..])]).unwrap();
    *source.0.lock().unwrap() = rotated.clone();
    let token = creds.issue(&rotated, "device_1");
    assert!(caller(&auth, Some(&bearer_of(&token))).await.is_ok());
}

#[tokio::test]
async fn authentication_off_admits_anyone() {
    assert_eq!(caller(&Authenticator::off(), None).await.unwrap(), Caller::Anyone);
}
