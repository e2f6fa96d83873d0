use super::*;
use crate::auth::token::{sign_device, sign_operator};
use crate::auth::Scope;
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
    let read = sign_operator(&keys(), &Operator::district(Scope::Read), later).unwrap();
    assert_eq!(
        caller(&auth, Some(&bearer_of(&read))).await.unwrap(),
        Caller::Operator(Operator::of(Scope::Read, Reach::District, "operator"))
    );
    let school = Operator::of(
        Scope::Admin,
        Reach::of(vec![school("a"), school("b")]),
        "ana@school-a",
    );
    let token = sign_operator(&keys(), &school, later).unwrap();
    assert_eq!(
        caller(&auth, Some(&bearer_of(&token))).await.unwrap(),
        Caller::Operator(school),
        "a school admin's token names its schools and subject"
    );
    let expired = sign_operator(&keys(), &Operator::district(Scope::Admin), later - 120).unwrap();
    assert!(caller(&auth, Some(&bearer_of(&expired))).await.is_err());
}

#[tokio::test]
async fn operator_tokens_are_refused_where_only_devices_are_checked() {
    let creds = Arc::new(Credentials::default());
    let auth = Authenticator::devices(Arc::new(KeyRing::fixed(keys())), creds, Duration::from_secs(60));
    let read = sign_operator(
        &keys(),
        &Operator::district(Scope::Admin),
        chrono::Utc::now().timestamp() + 60,
    )
    .unwrap();
    assert!(caller(&auth, Some(&bearer_of(&read))).await.is_err());
}

fn school(id: &str) -> SchoolId {
    SchoolId::parse(id).unwrap()
}

/// The claims API Gateway passes (each as text, a list as `[a b]`) and the token it
/// verified, whose payload holds the groups as a JSON array.
fn verified(groups: serde_json::Value) -> (HashMap<String, String>, String) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let as_text = match &groups {
        serde_json::Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(|g| g.as_str().unwrap())
                .collect::<Vec<_>>()
                .join(" ")
        ),
        other => other.as_str().unwrap_or_default().to_owned(),
    };
    let payload = serde_json::json!({"sub": "5b8f-sub", "iss": "https://issuer.example", "cognito:groups": groups, "username": "ana"});
    let token = format!(
        "{}.{}.signature-verified-by-api-gateway",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#),
        URL_SAFE_NO_PAD.encode(payload.to_string())
    );
    let claims = HashMap::from([
        ("cognito:groups".to_owned(), as_text),
        ("sub".to_owned(), "5b8f-sub".to_owned()),
        ("iss".to_owned(), "https://issuer.example".to_owned()),
        ("username".to_owned(), "ana".to_owned()),
    ]);
    (claims, format!("Bearer {token}"))
}

async fn gateway_caller(groups: serde_json::Value) -> Caller {
    let (claims, header) = verified(groups);
    Authenticator::gateway_operators("cognito:groups")
        .authenticate(Presented {
            authorization: Some(header.as_bytes()),
            gateway_claims: Some(&claims),
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn gateway_groups_become_district_or_school_operators() {
    use serde_json::json;
    let district = |scope| Caller::Operator(Operator::of(scope, Reach::District, "ana"));
    assert_eq!(
        gateway_caller(json!(["pisync-read", "pisync-admin"])).await,
        district(Scope::Admin)
    );
    assert_eq!(gateway_caller(json!("pisync-read")).await, district(Scope::Read));
    assert_eq!(
        gateway_caller(json!(["teachers", "pisync-read"])).await,
        district(Scope::Read)
    );
    assert_eq!(
        gateway_caller(json!(["school-north-read", "school-south-admin"])).await,
        Caller::Operator(Operator {
            reads: Reach::of(vec![school("north"), school("south")]),
            administers: Some(Reach::of(vec![school("south")])),
            subject: "ana".into(),
        })
    );
    assert_eq!(gateway_caller(json!(["teachers"])).await, Caller::NoRole);
    assert_eq!(gateway_caller(json!([])).await, Caller::NoRole);
    assert_eq!(
        gateway_caller(json!(["school-bad id-admin"])).await,
        Caller::NoRole
    );
}

/// An external IdP may name a group `x pisync-admin`; API Gateway passes it on as
/// `[x pisync-admin]`, which a split would read as two groups. Matched exactly from
/// the token's array, it is no PiSync group.
#[tokio::test]
async fn a_group_whose_name_contains_a_pisync_group_is_not_that_group() {
    use serde_json::json;
    assert_eq!(gateway_caller(json!(["x pisync-admin"])).await, Caller::NoRole);
    assert_eq!(gateway_caller(json!(["[pisync-admin]"])).await, Caller::NoRole);
    assert_eq!(
        gateway_caller(json!(["school-a-admin extra"])).await,
        Caller::NoRole
    );
}

#[tokio::test]
async fn a_token_that_is_not_the_verified_one_has_no_role() {
    let auth = Authenticator::gateway_operators("cognito:groups");
    let (mut claims, header) = verified(serde_json::json!(["pisync-admin"]));
    claims.insert("sub".into(), "someone-else".into());
    let presented = |header: &'static str, claims| Presented {
        authorization: Some(header.as_bytes()),
        gateway_claims: Some(claims),
    };
    let header: &'static str = Box::leak(header.into_boxed_str());
    assert_eq!(
        auth.authenticate(presented(header, &claims)).await.unwrap(),
        Caller::NoRole
    );
    let (claims, _) = verified(serde_json::json!(["pisync-admin"]));
    assert_eq!(
        auth.authenticate(presented("Bearer not.a-jwt", &claims))
            .await
            .unwrap(),
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
    let mut ring = KeyRing::load(source.clone()).await.unwrap();
    // Force the next unknown key id to reload (the interval starts at load).
    ring.last_reload = crate::throttle::Throttle::default();
    let ring = Arc::new(ring);
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
