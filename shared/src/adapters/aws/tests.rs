use super::*;
use base64::Engine;
use sha2::{Digest, Sha256};

/// SHA-256 of each root's DER, as published by Amazon Trust Services
/// (https://www.amazontrust.com/repository/).
const EXPECTED_ROOTS: [&str; 5] = [
    "8ecde6884f3d87b1125ba31ac3fcb13d7016de7f57cc904fe1cb97c6ae98196e", // Amazon Root CA 1
    "1ba5b2aa8c65401a82960118f80bec4f62304d83cec4713a19c39c011ea46db4", // Amazon Root CA 2
    "18ce6cfe7bf14e60b2e347b8dfe868cb31d02ebb3ada271569f50343b46db3a4", // Amazon Root CA 3
    "e35d28419ed02025cfa69038cd623962458da5c695fbdea3c22b0bfb25897092", // Amazon Root CA 4
    "568d6905a2c88708a4b3025190edcfedb1974a606a13c6e5290fcb2ae63edab5", // Starfield Services Root CA G2
];

fn der_blocks(pem: &str) -> Vec<Vec<u8>> {
    let mut blocks = Vec::new();
    let mut body: Option<String> = None;
    for line in pem.lines() {
        match (line.trim(), body.as_mut()) {
            ("-----BEGIN CERTIFICATE-----", None) => body = Some(String::new()),
            ("-----END CERTIFICATE-----", Some(b64)) => {
                let der = base64::engine::general_purpose::STANDARD.decode(b64.as_bytes());
                blocks.push(der.expect("certificate body is base64"));
                body = None;
            }
            (text, Some(b64)) => b64.push_str(text),
            (text, None) => assert!(text.is_empty(), "text outside a certificate block: {text:?}"),
        }
    }
    assert!(body.is_none(), "unterminated certificate block");
    blocks
}

#[test]
fn the_compiled_in_bundle_is_exactly_the_amazon_trust_services_roots() {
    let pem = std::str::from_utf8(AWS_ROOTS_PEM).expect("PEM is text");
    let mut found: Vec<String> = der_blocks(pem)
        .iter()
        .map(|der| crate::digest::hex(&Sha256::digest(der)))
        .collect();
    found.sort();
    let mut expected: Vec<String> = EXPECTED_ROOTS.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(found, expected);
}

#[test]
fn sdk_errors_are_rendered_with_their_causes() {
    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("service error")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    let err = Outer(std::io::Error::other("throttled"));
    assert_eq!(
        describe_sdk_error("PutItem", &err),
        "PutItem: service error: throttled"
    );
}

/// Building an SDK client builds its TLS connector, which parses every trusted root:
/// a root rustls cannot read would panic here rather than at the first request.
#[cfg(feature = "dynamodb")]
#[tokio::test]
async fn sdk_clients_build_with_either_trust_store() {
    for roots in [TrustRoots::Aws, TrustRoots::System] {
        let loader = with_https_client(aws_config::defaults(BehaviorVersion::latest()), roots).unwrap();
        let config = loader
            .region(Region::new("eu-west-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "a", "b", None, None, "test",
            ))
            .load()
            .await;
        let client = aws_sdk_dynamodb::Client::new(&config);
        assert_eq!(client.config().region().map(|r| r.as_ref()), Some("eu-west-1"));
    }
}

/// A DynamoDB that accepts connections and never answers: a Lambda function's call
/// ends in an error (a 503 to the client) within the operation timeout, before the
/// function's own 10 s timeout, instead of hanging.
#[cfg(feature = "dynamodb")]
#[tokio::test]
async fn a_dynamodb_that_never_answers_is_an_error_within_the_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    // Accept and hold every connection, reading nothing back.
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            sockets.push(socket);
        }
    });
    let config = Config::default();
    let sdk = at_endpoint(loader(&config).unwrap(), &config, &endpoint)
        .load()
        .await;
    let store = crate::adapters::dynamodb::DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), "never");
    let started = std::time::Instant::now();
    let event = crate::test_util::stored_event("dev-1", 0, 0);
    let outcome = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        crate::ports::RecordEvents::record(&store, event),
    )
    .await
    .expect("the call ends on its own");
    let elapsed = started.elapsed();
    assert!(
        matches!(outcome, Err(crate::ports::StoreError::Unavailable { .. })),
        "{outcome:?}"
    );
    assert!(
        elapsed < std::time::Duration::from_secs(10),
        "ended after {elapsed:?}"
    );
    held.abort();
}
