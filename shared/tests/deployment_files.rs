//! `openapi.yaml`, `template.yaml` and the workspace must agree with the code: the
//! route table ([`ROUTES`]) and the table schema written once in
//! `adapters::dynamodb::item`.

use pisync_shared::adapters::dynamodb::item::{
    EventItem, Projected, StateItem, FAILING, INDEXES, SCHOOL_DEVICES, SCHOOL_FAILING, SCHOOL_SILENT,
    STREAM_VIEW, TABLE_KEYS, TTL_ATTRIBUTE,
};
use pisync_shared::domain::applied::MAX_RECENT;
use pisync_shared::domain::device::{DeviceState, Status};
use pisync_shared::domain::school::SchoolId;
use pisync_shared::domain::streak::Streak;
use pisync_shared::http::ROUTES;
use pisync_shared::test_util::{device, minute, stored_event};
use serde_yaml::Value;
use std::path::Path;

fn repo_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn yaml(name: &str) -> Value {
    serde_yaml::from_str(&repo_file(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// `template.yaml` as CloudFormation sees it after the `AWS::LanguageExtensions`
/// transform: each `Fn::ForEach` loop of `Resources` expanded (a literal list, its
/// identifier replaced in keys and strings).
fn template() -> Value {
    let mut template = yaml("template.yaml");
    let resources = template["Resources"].as_mapping().expect("Resources").clone();
    let mut expanded = serde_yaml::Mapping::new();
    for (key, value) in resources {
        match text(&key).strip_prefix("Fn::ForEach::") {
            None => {
                expanded.insert(key, value);
            }
            Some(_) => {
                let [name, items, body] = value.as_sequence().expect("a loop").as_slice() else {
                    panic!("{key:?}: a loop is [identifier, list, body]");
                };
                let placeholder = format!("${{{}}}", text(name));
                for item in items.as_sequence().expect("a literal list") {
                    let body = substitute(body, &placeholder, text(item));
                    for (k, v) in body.as_mapping().expect("resources") {
                        expanded.insert(k.clone(), v.clone());
                    }
                }
            }
        }
    }
    template["Resources"] = resolve_conditions(&Value::Mapping(expanded));
    template
}

/// The school indexes' `!If [condition, then, else]` as a stack with every index
/// deployed sees them (the conditions only hold indexes back during an upgrade): the
/// `then` value. Other conditions stay as written.
fn resolve_conditions(value: &Value) -> Value {
    const INDEX_CONDITIONS: [&str; 2] = ["HasTwoSchoolIndexes", "HasThreeSchoolIndexes"];
    match value {
        Value::Tagged(t) if t.tag == "!If" => match t.value.as_sequence().map(Vec::as_slice) {
            Some([condition, then, _]) if INDEX_CONDITIONS.contains(&text(condition)) => {
                resolve_conditions(then)
            }
            _ => Value::Tagged(Box::new(serde_yaml::value::TaggedValue {
                tag: t.tag.clone(),
                value: resolve_conditions(&t.value),
            })),
        },
        Value::Sequence(seq) => Value::Sequence(seq.iter().map(resolve_conditions).collect()),
        Value::Mapping(map) => Value::Mapping(
            map.iter()
                .map(|(k, v)| (k.clone(), resolve_conditions(v)))
                .collect(),
        ),
        Value::Tagged(t) => Value::Tagged(Box::new(serde_yaml::value::TaggedValue {
            tag: t.tag.clone(),
            value: resolve_conditions(&t.value),
        })),
        other => other.clone(),
    }
}

fn substitute(value: &Value, placeholder: &str, item: &str) -> Value {
    match value {
        Value::String(s) => Value::String(s.replace(placeholder, item)),
        Value::Sequence(seq) => {
            Value::Sequence(seq.iter().map(|v| substitute(v, placeholder, item)).collect())
        }
        Value::Mapping(map) => Value::Mapping(
            map.iter()
                .map(|(k, v)| (substitute(k, placeholder, item), substitute(v, placeholder, item)))
                .collect(),
        ),
        Value::Tagged(tagged) => Value::Tagged(Box::new(serde_yaml::value::TaggedValue {
            tag: tagged.tag.clone(),
            value: substitute(&tagged.value, placeholder, item),
        })),
        other => other.clone(),
    }
}

/// A function's environment as deployed: the template's Globals, then its own.
fn environment(template: &Value, function: &Value) -> serde_yaml::Mapping {
    let mut env = template["Globals"]["Function"]["Environment"]["Variables"]
        .as_mapping()
        .cloned()
        .unwrap_or_default();
    if let Some(own) = function["Properties"]["Environment"]["Variables"].as_mapping() {
        env.extend(own.clone());
    }
    env
}

/// The logical id `Ref` (short or long form, or `Ref: {Fn::Sub}` in a loop) names.
fn reference(value: &Value) -> Option<String> {
    match value {
        Value::Tagged(t) if t.tag == "!Ref" => t.value.as_str().map(str::to_owned),
        Value::Mapping(m) => match m.get("Ref")? {
            Value::String(s) => Some(s.clone()),
            other => other["Fn::Sub"].as_str().map(str::to_owned),
        },
        _ => None,
    }
}

fn text(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v:?}"))
}

/// Every (METHOD, path) pair of an OpenAPI document.
fn openapi_operations(spec: &Value) -> Vec<(String, String)> {
    let mut ops = Vec::new();
    for (path, item) in spec["paths"].as_mapping().expect("paths") {
        for (method, _) in item.as_mapping().expect("a path item") {
            let method = text(method);
            if ["get", "put", "post", "delete", "patch", "head", "options"].contains(&method) {
                ops.push((method.to_ascii_uppercase(), text(path).to_owned()));
            }
        }
    }
    ops.sort();
    ops
}

fn route_operations() -> Vec<(String, String)> {
    let mut ops: Vec<_> = ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_owned()))
        .collect();
    ops.sort();
    ops
}

#[test]
fn openapi_documents_exactly_the_route_table() {
    assert_eq!(openapi_operations(&yaml("openapi.yaml")), route_operations());
}

#[test]
fn template_routes_each_route_to_its_function() {
    let template = template();
    let resources = template["Resources"].as_mapping().expect("Resources");
    for route in ROUTES {
        let name = route.template_resource();
        let function = &template["Resources"][name.as_str()];
        assert_eq!(function["Type"], "AWS::Serverless::Function", "{name}");
        assert_eq!(
            function["Metadata"]["BuildProperties"]["Binary"], route.function,
            "{name} builds the {} binary",
            route.function
        );
        assert!(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../functions")
                .join(route.function)
                .join("Cargo.toml")
                .exists(),
            "functions/{} is a crate",
            route.function
        );
    }
    // Every HttpApi event in the template is a route of the table, on that route's function.
    let mut declared = Vec::new();
    for (name, resource) in resources {
        let Some(events) = resource["Properties"]["Events"].as_mapping() else {
            continue;
        };
        for (_, event) in events {
            if event["Type"] == "HttpApi" {
                let (method, path) = (
                    text(&event["Properties"]["Method"]),
                    text(&event["Properties"]["Path"]),
                );
                let route = ROUTES
                    .iter()
                    .find(|r| r.method.as_str() == method && r.path == path)
                    .unwrap_or_else(|| panic!("{method} {path} in template.yaml is not in the route table"));
                assert_eq!(text(name), route.template_resource(), "{method} {path}");
                declared.push((method.to_owned(), path.to_owned()));
            }
        }
    }
    declared.sort();
    assert_eq!(declared, route_operations());
}

/// `[(name, type)]` of a CloudFormation list of `{AttributeName, <field>}`.
fn pairs(list: &Value, field: &str) -> Vec<(String, String)> {
    list.as_sequence()
        .expect("a list")
        .iter()
        .map(|v| (text(&v["AttributeName"]).to_owned(), text(&v[field]).to_owned()))
        .collect()
}

fn hash_range(keys: [&str; 2]) -> Vec<(String, String)> {
    vec![
        (keys[0].to_owned(), "HASH".to_owned()),
        (keys[1].to_owned(), "RANGE".to_owned()),
    ]
}

#[test]
fn template_table_matches_the_schema_the_code_uses() {
    let template = template();
    let table = &template["Resources"]["EventsTable"]["Properties"];
    let mut attributes = pairs(&table["AttributeDefinitions"], "AttributeType");
    attributes.sort();
    let mut expected: Vec<_> = TABLE_KEYS
        .iter()
        .chain(INDEXES.iter().flat_map(|i| i.keys.iter()))
        .map(|k| (k.to_string(), "S".to_owned()))
        .collect();
    expected.sort();
    assert_eq!(attributes, expected);
    assert_eq!(pairs(&table["KeySchema"], "KeyType"), hash_range(TABLE_KEYS));
    let indexes = table["GlobalSecondaryIndexes"].as_sequence().expect("indexes");
    assert_eq!(indexes.len(), INDEXES.len());
    for schema in INDEXES {
        let index = indexes
            .iter()
            .find(|i| i["IndexName"] == schema.name)
            .unwrap_or_else(|| panic!("index {} in template.yaml", schema.name));
        assert_eq!(
            pairs(&index["KeySchema"], "KeyType"),
            hash_range(schema.keys),
            "{}",
            schema.name
        );
        match schema.projection {
            Projected::KeysOnly => assert_eq!(index["Projection"]["ProjectionType"], "KEYS_ONLY"),
            Projected::Include(names) => {
                assert_eq!(index["Projection"]["ProjectionType"], "INCLUDE");
                let projected: Vec<&str> = index["Projection"]["NonKeyAttributes"]
                    .as_sequence()
                    .expect("projected attributes")
                    .iter()
                    .map(text)
                    .collect();
                assert_eq!(projected, names, "{}", schema.name);
            }
        }
    }
    assert_eq!(table["StreamSpecification"]["StreamViewType"], STREAM_VIEW);
    assert_eq!(table["TimeToLiveSpecification"]["AttributeName"], TTL_ATTRIBUTE);
}

/// Detection recognises a redelivered record among the device's events applied since
/// the stream last moved on: that holds while a batch is no larger than what it keeps,
/// and while one batch of a shard is processed at a time.
#[test]
fn stream_batches_fit_what_detection_remembers() {
    let template = template();
    let stream =
        &template["Resources"]["DetectFailuresFunction"]["Properties"]["Events"]["TableStream"]["Properties"];
    let batch = stream["BatchSize"].as_u64().expect("BatchSize");
    assert!(batch as usize <= MAX_RECENT, "BatchSize {batch} > {MAX_RECENT}");
    assert!(
        stream["ParallelizationFactor"].is_null() || stream["ParallelizationFactor"] == 1,
        "one batch per shard at a time"
    );
}

#[test]
fn items_carry_the_attributes_the_schema_names() {
    let event: serde_dynamo::Item = EventItem::new(&stored_event("d", 1, 0), Some(42))
        .to_item()
        .expect("an event item");
    for key in TABLE_KEYS.iter().chain([&TTL_ATTRIBUTE]) {
        assert!(event.get(*key).is_some(), "event items carry {key}");
    }
    let mut state = DeviceState::new(device("d"));
    state.last_sync_at = Some(minute(3));
    state.last_seen_at = Some(minute(3));
    state.streak = Some(Streak {
        count: 3,
        started_at: minute(1),
        last_failure_at: minute(3),
        last_total_errors: 1,
        fresh: true,
    });
    let Projected::Include(failing_projection) = FAILING.projection else {
        panic!("the failing index projects the list's fields");
    };
    let item = |status, failing| -> serde_dynamo::Item {
        serde_dynamo::to_item(StateItem::new(&state, 1, status, failing).expect("a state item"))
            .expect("an item")
    };
    let failing = item(Some(Status::Failing), true);
    for key in TABLE_KEYS.iter().chain(&FAILING.keys).chain(failing_projection) {
        assert!(failing.get(*key).is_some(), "failing state items carry {key}");
    }
    let healthy = item(Some(Status::Healthy), false);
    for key in FAILING.keys {
        assert!(
            healthy.get(key).is_none(),
            "only failing states enter the index ({key})"
        );
    }
    let school_keys: Vec<&str> = [SCHOOL_DEVICES, SCHOOL_FAILING, SCHOOL_SILENT]
        .iter()
        .flat_map(|i| i.keys)
        .collect();
    let unassigned = item(Some(Status::Silent), true);
    for key in &school_keys {
        assert!(
            unassigned.get(*key).is_none(),
            "a device in no school is in no school index ({key})"
        );
    }
    state.school_id = SchoolId::parse("north");
    let in_school = |status, failing| -> serde_dynamo::Item {
        serde_dynamo::to_item(StateItem::new(&state, 1, status, failing).expect("a state item"))
            .expect("an item")
    };
    let silent = in_school(Some(Status::Silent), true);
    for schema in INDEXES.iter().filter(|i| i.name != FAILING.name) {
        for key in schema.keys {
            assert!(
                silent.get(key).is_some(),
                "silent state items in a school carry {key}"
            );
        }
    }
    let never_reported = in_school(None, false);
    for key in INDEXES.iter().flat_map(|i| i.keys) {
        assert!(
            never_reported.get(key).is_none(),
            "a device assigned before it reported is in no list ({key})"
        );
    }
}

/// Every route is guarded: operator routes by the API's JWT authorizer (the default),
/// the device route explicitly public at the gateway because its function verifies
/// device tokens itself (it is given the keys and the credentials table to do so).
#[test]
fn template_guards_every_route() {
    use pisync_shared::auth::Access;
    let template = template();
    let api = &template["Resources"]["HttpApi"]["Properties"]["Auth"];
    let default = text(&api["DefaultAuthorizer"]);
    let authorizer = &api["Authorizers"][default];
    assert_eq!(authorizer["IdentitySource"], "$request.header.Authorization");
    assert!(
        !authorizer["JwtConfiguration"]["issuer"].is_null(),
        "issuer: Cognito or OIDC"
    );
    for route in ROUTES {
        let function = &template["Resources"][route.template_resource().as_str()];
        let events = function["Properties"]["Events"].as_mapping().expect("events");
        let (_, event) = events
            .iter()
            .find(|(_, e)| {
                e["Properties"]["Path"] == route.path && e["Properties"]["Method"] == route.method.as_str()
            })
            .expect("the route's event");
        let gateway_authorizer = event["Properties"]["Auth"]["Authorizer"]
            .as_str()
            .unwrap_or(default);
        let env = environment(&template, function);
        match route.access {
            Access::Device => {
                assert_eq!(
                    gateway_authorizer, "NONE",
                    "{}: verified in the function",
                    route.path
                );
                for var in [
                    "TOKEN_SIGNING_KEYS_SECRET_ARN",
                    "CREDENTIALS_TABLE_NAME",
                    "CREDENTIAL_CACHE_SECONDS",
                ] {
                    assert!(
                        env.contains_key(var),
                        "{} verifies device tokens: needs {var}",
                        route.path
                    );
                }
            }
            Access::Public => {
                assert_eq!(
                    gateway_authorizer, "NONE",
                    "{}: public, holds no data",
                    route.path
                );
            }
            Access::Read | Access::Admin => {
                assert_eq!(gateway_authorizer, default, "{} {}", route.method, route.path);
                assert!(
                    env.contains_key("OPERATOR_GROUPS_CLAIM"),
                    "{}: maps groups to scopes",
                    route.path
                );
            }
        }
    }
}

/// No function's environment names the HTTP API. SAM writes each route's function ARN
/// into the API's definition, so the API depends on every function behind it; a
/// function that also depends on the API (its id in a variable) is a cycle, and
/// CloudFormation refuses the whole stack. The linters read the template before the
/// transform and cannot see it; the emulator's deploy found it (scripts/stack-test.sh).
#[test]
fn no_function_environment_names_the_api() {
    let template = template();
    for (name, resource) in template["Resources"].as_mapping().expect("Resources") {
        if resource["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        for (var, value) in &environment(&template, resource) {
            let written = serde_yaml::to_string(value).expect("yaml");
            assert!(
                !written.contains("HttpApi"),
                "{}: {} names the API: {written}",
                text(name),
                text(var)
            );
        }
    }
}

/// No secret is placed in a function's environment: functions get secrets' ARNs and
/// read them through Secrets Manager at start.
#[test]
fn no_secret_value_in_any_environment() {
    let raw = repo_file("template.yaml");
    assert!(
        !raw.contains("{{resolve:"),
        "dynamic references put secret values in the environment"
    );
    let template = template();
    for (name, resource) in template["Resources"].as_mapping().expect("Resources") {
        if resource["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        for (var, _) in &environment(&template, resource) {
            let var = text(var);
            assert!(
                !(var.contains("KEY") || var.contains("SECRET")) || var.ends_with("_SECRET_ARN"),
                "{}: {var} looks like a secret value",
                text(name)
            );
        }
    }
}

/// Every function has its own log group (with the retention setting), writes to it,
/// and has an errors alarm on its own name; a route's function is one of them.
#[test]
fn every_function_has_its_log_group_and_errors_alarm() {
    let template = template();
    let resources = template["Resources"].as_mapping().expect("Resources");
    let functions: Vec<String> = resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .map(|(name, _)| text(name).to_owned())
        .collect();
    for route in ROUTES {
        assert!(functions.contains(&route.template_resource()), "{}", route.path);
    }
    for function in &functions {
        let stem = function.strip_suffix("Function").expect("named …Function");
        let logs = &template["Resources"][format!("{stem}Logs").as_str()];
        assert_eq!(logs["Type"], "AWS::Logs::LogGroup", "{function}: its log group");
        assert!(
            !logs["Properties"]["RetentionInDays"].is_null(),
            "{function}: log retention"
        );
        assert_eq!(
            reference(&template["Resources"][function.as_str()]["Properties"]["LoggingConfig"]["LogGroup"]),
            Some(format!("{stem}Logs")),
            "{function} logs to its group"
        );
        let alarm = &template["Resources"][format!("{stem}ErrorsAlarm").as_str()];
        assert_eq!(
            alarm["Type"], "AWS::CloudWatch::Alarm",
            "{function}: its errors alarm"
        );
        assert_eq!(alarm["Properties"]["MetricName"], "Errors");
        let dimension = &alarm["Properties"]["Dimensions"][0];
        assert_eq!(dimension["Name"], "FunctionName");
        assert_eq!(
            reference(&dimension["Value"]),
            Some(function.clone()),
            "{stem}ErrorsAlarm"
        );
    }
}

/// The workflows name third-party actions by commit, never by a tag that can move:
/// the deploy job holds a role that can change production.
#[test]
fn workflow_actions_are_pinned_to_commits() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.github/workflows");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("workflows") {
        let path = entry.expect("an entry").path();
        let text = std::fs::read_to_string(&path).expect("a workflow");
        for line in text
            .lines()
            .filter(|l| l.trim_start().starts_with("- uses:") || l.trim_start().starts_with("uses:"))
        {
            let action = line.split("uses:").nth(1).unwrap_or("").trim();
            let reference = action.split('#').next().unwrap_or("").trim();
            let (_, version) = reference
                .split_once('@')
                .unwrap_or_else(|| panic!("{line}: no @ref"));
            assert!(
                version.len() == 40 && version.bytes().all(|b| b.is_ascii_hexdigit()),
                "{}: {action} is not pinned to a commit",
                path.display()
            );
            seen += 1;
        }
    }
    assert!(seen > 0, "no actions found");
}

/// The ```sql blocks of docs/analytics.md that start `-- name: NAME`, by name.
fn documented_queries() -> std::collections::BTreeMap<String, String> {
    let doc = repo_file("docs/analytics.md");
    doc.split("```sql\n")
        .skip(1)
        .filter_map(|block| {
            let sql = block.split("```").next()?;
            let name = sql.lines().next()?.strip_prefix("-- name: ")?;
            Some((name.trim().to_owned(), sql.to_owned()))
        })
        .collect()
}

#[test]
fn the_named_athena_queries_are_the_documented_ones() {
    let template = template();
    let named: std::collections::BTreeMap<String, String> = template["Resources"]
        .as_mapping()
        .expect("resources")
        .values()
        .filter(|r| r["Type"] == "AWS::Athena::NamedQuery")
        .map(|r| {
            let p = &r["Properties"];
            (text(&p["Name"]).to_owned(), text(&p["QueryString"]).to_owned())
        })
        .collect();
    let documented = documented_queries();
    assert_eq!(named.len(), 2, "{named:?}");
    assert_eq!(named, documented, "template.yaml and docs/analytics.md");
}

#[test]
fn the_export_table_has_the_columns_the_local_export_writes() {
    let template = template();
    let table = &template["Resources"]["ExportEventsTable"]["Properties"]["TableInput"];
    let columns: Vec<(String, String)> = table["StorageDescriptor"]["Columns"]
        .as_sequence()
        .expect("columns")
        .iter()
        .map(|c| (text(&c["Name"]).to_owned(), text(&c["Type"]).to_owned()))
        .collect();
    let expected = [
        ("device_id", "string"),
        ("school_id", "string"),
        ("timestamp", "timestamp"),
        ("received_at", "timestamp"),
        ("outcome", "string"),
        ("total_files_synced", "bigint"),
        ("total_errors", "bigint"),
        ("internet_speed", "double"),
    ];
    let expected: Vec<(String, String)> = expected.iter().map(|(n, t)| ((*n).into(), (*t).into())).collect();
    assert_eq!(columns, expected);
    assert_eq!(text(&table["PartitionKeys"][0]["Name"]), "date");
    let stream = &template["Resources"]["ExportStream"]["Properties"]["ExtendedS3DestinationConfiguration"];
    assert_eq!(
        text(&stream["Prefix"]),
        "events/date=!{partitionKeyFromQuery:date}/"
    );
}
