//! `keyward serve` seen from outside: its `/metrics` linted by `promtool`, a real Prometheus and
//! Alertmanager turning a pushed secret into a page, and `daemon/openapi.json` checked against
//! the live API, operation by operation.

use crate::serve::harness::{
    Daemon, FAST, bare_with_hook, commit_secret, metric_in, push, push_initial,
};
use crate::support::gh_token;
use keyward_tests::prometheus::{
    Alertmanager, INSTALL_HINT, Prometheus, WebhookReceiver, find_tool,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a pushed high-severity secret may take to reach the alert webhook. Measured here:
/// 1.1–1.5 s (push → finding 0.1 s, then at most one 1 s scrape, one 1 s rule evaluation, and
/// Alertmanager's immediate send); the bound leaves room for a loaded machine.
const ALERT_BOUND: Duration = Duration::from_secs(30);

/// A daemon watching `app.git` (post-receive hook, no polling) under `dir`, idle after its
/// first scan; `api` replaces the default `[api]` section.
fn daemon_with_repo(dir: &Path, api: Option<(u16, &str)>) -> (Daemon, PathBuf, PathBuf) {
    let (bare, work) = bare_with_hook(dir, "app");
    push_initial(&work);
    let body = format!(
        "{FAST}\n[[repository]]\nname = \"app\"\npath = {:?}\npoll-interval = \"1h\"\n",
        bare.display().to_string()
    );
    let d = match api {
        Some((port, section)) => Daemon::start_custom(dir, port, section, &body, None),
        None => Daemon::start(dir, &body),
    };
    d.wait_idle(Duration::from_secs(30));
    (d, bare, work)
}

// --- promtool ---

#[test]
fn serve_alerts_promtool_check_metrics_passes_on_the_live_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let (d, _bare, work) = daemon_with_repo(dir.path(), None);
    // One finding through the hook: the counters, the open gauge and all three histograms
    // (scan duration, time to detect, notify → start) have samples.
    let token = gh_token(3101);
    commit_secret(&work, "deploy.sh", &token);
    push(&d, &work);
    d.wait_finding(&token, Duration::from_secs(20));
    d.wait_idle(Duration::from_secs(20));
    let text = keyward_tests::wait_for(Duration::from_secs(10), || {
        let t = d.metrics();
        metric_in(
            &t,
            r#"keyward_findings_open{confidence="high",rule="github-pat-classic",severity="high",source_kind="git"}"#,
        )
        .is_some()
        .then_some(t)
    })
    .unwrap_or_else(|| {
        panic!(
            "the open-findings gauge never showed the finding:\n{}",
            d.metrics()
        )
    });
    assert_eq!(
        metric_in(&text, "keyward_notify_to_scan_start_seconds_count"),
        Some(1.0),
        "{text}"
    );

    let mut child = Command::new(find_tool(&["promtool"]))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running promtool: {e}: {INSTALL_HINT}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics ({}):\n{said}\non:\n{text}",
        out.status
    );
    assert!(!text.contains(&token), "the secret reached /metrics");
}

// --- Prometheus and Alertmanager ---

#[test]
fn serve_alerts_pushed_secret_pages_through_prometheus_and_alertmanager() {
    let dir = tempfile::tempdir().unwrap();
    let (d, _bare, work) = daemon_with_repo(dir.path(), None);
    let webhook = WebhookReceiver::start();
    let am = Alertmanager::start(&webhook.url());
    let rules = [
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/prometheus/keyward-alerts.yml")
    ];
    let prom = Prometheus::start(&format!("127.0.0.1:{}", d.port), &rules, Some(&am.addr()));

    // `increase()` needs the counter's 0 before the finding: wait until Prometheus has it.
    let series =
        r#"keyward_findings_new_total{confidence="high",severity="high",source_kind="git"}"#;
    let scraped = keyward_tests::wait_for(Duration::from_secs(30), || {
        let r = prom.query(series);
        (r[0]["value"][1] == "0").then_some(())
    });
    assert!(
        scraped.is_some(),
        "Prometheus never scraped {series} at 0: {}\nlog:\n{}",
        prom.query(series),
        prom.log()
    );

    let token = gh_token(3201);
    commit_secret(&work, "ci.env", &token);
    let pushed = Instant::now();
    push(&d, &work);
    let alert = webhook.wait_for_alert("KeywardNewCriticalFinding", ALERT_BOUND);
    let took = pushed.elapsed();
    let alert = alert.unwrap_or_else(|| {
        panic!(
            "no KeywardNewCriticalFinding at the webhook within {ALERT_BOUND:?}\n\
             received: {:#?}\nprometheus alerts: {:#}\nfindings: {:?}\n\
             prometheus log:\n{}\nalertmanager log:\n{}",
            webhook.received(),
            prom.alerts(),
            d.findings(""),
            prom.log(),
            am.log()
        )
    });
    eprintln!("push → KeywardNewCriticalFinding at the webhook: {took:?}");
    assert!(took < ALERT_BOUND);
    let labels = &alert["labels"];
    assert_eq!(labels["finding_severity"], "high", "{alert:#}");
    assert_eq!(labels["source_kind"], "git", "{alert:#}");
    assert_eq!(labels["severity"], "page", "{alert:#}");
    assert_eq!(labels["job"], "keyward", "{alert:#}");
    assert_eq!(
        alert["annotations"]["summary"], "New high secret found in a git source",
        "{alert:#}"
    );
    // The finding is in the API, as the page says.
    let (f, _) = d.wait_finding(&token, Duration::from_secs(5));
    assert_eq!(f["severity"], "high");

    // Nothing the alert path carries holds the secret: webhook bodies, Prometheus' alerts.
    let payloads = serde_json::to_string(&webhook.received()).unwrap();
    assert!(!payloads.contains(&token), "the secret reached the webhook");
    assert!(!prom.alerts().to_string().contains(&token));
    assert!(!d.metrics().contains(&token));
}

// --- OpenAPI ---

/// The keywords the checker understands; a schema using any other fails the test rather than
/// being half-checked.
const KEYWORDS: [&str; 14] = [
    "type",
    "required",
    "properties",
    "items",
    "$ref",
    "allOf",
    "nullable",
    "enum",
    "description",
    "format",
    "minimum",
    "maximum",
    "default",
    "minLength",
];

/// An OpenAPI 3.0 document and a checker for the JSON Schema subset it uses.
struct Spec {
    doc: Value,
}

impl Spec {
    /// Follows `$ref` (`#/components/...`) until the value is not a reference.
    fn resolve<'a>(&'a self, mut v: &'a Value) -> &'a Value {
        while let Some(r) = v.get("$ref").and_then(Value::as_str) {
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("only local $ref: {r}"));
            v = self
                .doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling $ref {r}"));
        }
        v
    }

    /// Errors of `value` against `schema`, each with its JSON path. With `whole`, properties
    /// that `schema` (with its `allOf`) does not declare are errors too: the spec documents
    /// every field the server sends.
    fn check(&self, schema: &Value, value: &Value, at: &str, whole: bool, errs: &mut Vec<String>) {
        let s = self.resolve(schema);
        let obj = s
            .as_object()
            .unwrap_or_else(|| panic!("schema at {at} is not an object: {s}"));
        for k in obj.keys() {
            assert!(
                KEYWORDS.contains(&k.as_str()),
                "schema keyword {k:?} at {at} is not checked by this test"
            );
        }
        if value.is_null() {
            if s["nullable"] != true && (obj.contains_key("type") || obj.contains_key("allOf")) {
                errs.push(format!("{at}: null, but not nullable"));
            }
            return;
        }
        for sub in s["allOf"].as_array().into_iter().flatten() {
            self.check(sub, value, at, false, errs);
        }
        if let Some(t) = s["type"].as_str() {
            let ok = match t {
                "object" => value.is_object(),
                "array" => value.is_array(),
                "string" => value.is_string(),
                "integer" => value.is_i64() || value.is_u64(),
                "number" => value.is_number(),
                "boolean" => value.is_boolean(),
                other => panic!("unknown type {other:?} at {at}"),
            };
            if !ok {
                errs.push(format!("{at}: {value} is not of type {t}"));
                return;
            }
        }
        if let Some(allowed) = s["enum"].as_array()
            && !allowed.contains(value)
        {
            errs.push(format!("{at}: {value} not in {allowed:?}"));
        }
        if let Some(map) = value.as_object() {
            for name in s["required"].as_array().into_iter().flatten() {
                let name = name.as_str().expect("required names are strings");
                if !map.contains_key(name) {
                    errs.push(format!("{at}: required property {name:?} missing"));
                }
            }
            if let Some(props) = s["properties"].as_object() {
                for (k, sub) in props {
                    if let Some(v) = map.get(k) {
                        self.check(sub, v, &format!("{at}.{k}"), true, errs);
                    }
                }
            }
            if whole && (s.get("properties").is_some() || s.get("allOf").is_some()) {
                let declared = self.declared(s);
                for k in map.keys() {
                    if !declared.contains(k) {
                        errs.push(format!("{at}: property {k:?} is not in the spec"));
                    }
                }
            }
        }
        if let (Some(items), Some(list)) = (s.get("items"), value.as_array()) {
            for (i, v) in list.iter().enumerate() {
                self.check(items, v, &format!("{at}[{i}]"), true, errs);
            }
        }
        if let (Some(min), Some(text)) = (s["minLength"].as_u64(), value.as_str())
            && (text.chars().count() as u64) < min
        {
            errs.push(format!("{at}: shorter than {min}"));
        }
    }

    /// Property names a schema declares, its `allOf` branches included.
    fn declared(&self, schema: &Value) -> BTreeSet<String> {
        let s = self.resolve(schema);
        let mut names: BTreeSet<String> = s["properties"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        for sub in s["allOf"].as_array().into_iter().flatten() {
            names.extend(self.declared(sub));
        }
        names
    }

    /// Every `(METHOD, path template)` the spec describes.
    fn operations(&self) -> BTreeSet<(String, String)> {
        let mut ops = BTreeSet::new();
        for (path, item) in self.doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                if ["get", "post", "put", "patch", "delete", "head", "options"]
                    .contains(&method.as_str())
                {
                    ops.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        ops
    }

    fn operation(&self, method: &str, template: &str) -> &Value {
        let op = &self.doc["paths"][template][method.to_lowercase()];
        assert!(op.is_object(), "{method} {template} is not in openapi.json");
        op
    }
}

/// One real request and what came back.
#[derive(Debug)]
struct Reply {
    status: u16,
    media_type: String,
    /// Header names, lower case.
    headers: BTreeSet<String>,
    text: String,
}

/// A request body: JSON, or raw bytes sent as `application/json`.
enum Body {
    None,
    Json(Value),
    Raw(&'static str),
}

struct Case {
    method: &'static str,
    template: &'static str,
    /// Path and query, as sent.
    target: String,
    body: Body,
    /// The status this request must get (so each case tests what it says).
    want: u16,
}

fn case(
    method: &'static str,
    template: &'static str,
    target: impl Into<String>,
    body: Body,
    want: u16,
) -> Case {
    Case {
        method,
        template,
        target: target.into(),
        body,
        want,
    }
}

fn call(agent: &ureq::Agent, base: &str, c: &Case, auth: Option<&str>) -> Reply {
    let url = format!("{base}{}", c.target);
    let result = match (c.method, &c.body) {
        ("GET", _) => {
            let mut r = agent.get(&url);
            if let Some(a) = auth {
                r = r.header("Authorization", a);
            }
            r.call()
        }
        ("POST", body) => {
            let mut r = agent.post(&url);
            if let Some(a) = auth {
                r = r.header("Authorization", a);
            }
            match body {
                Body::None => r.send_empty(),
                Body::Json(v) => r.send_json(v),
                Body::Raw(t) => r.header("Content-Type", "application/json").send(*t),
            }
        }
        (m, _) => panic!("no client for {m}"),
    };
    let mut resp = result.unwrap_or_else(|e| panic!("{} {url}: {e}", c.method));
    let media_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    Reply {
        status: resp.status().as_u16(),
        media_type,
        headers: resp
            .headers()
            .keys()
            .map(|k| k.as_str().to_owned())
            .collect(),
        text: resp.body_mut().read_to_string().unwrap_or_default(),
    }
}

/// Errors of one reply against the operation's documented responses.
fn check_reply(spec: &Spec, c: &Case, reply: &Reply) -> Vec<String> {
    let op = spec.operation(c.method, c.template);
    let what = format!("{} {} → {}", c.method, c.target, reply.status);
    let mut errs = Vec::new();
    let responses = &op["responses"];
    let Some(response) = responses
        .get(reply.status.to_string())
        .or_else(|| responses.get("default"))
    else {
        let listed: Vec<_> = responses.as_object().unwrap().keys().collect();
        return vec![format!(
            "{what}: status not listed (the spec lists {listed:?})"
        )];
    };
    let response = spec.resolve(response);
    for name in response["headers"]
        .as_object()
        .into_iter()
        .flat_map(|h| h.keys())
    {
        if !reply.headers.contains(&name.to_lowercase()) {
            errs.push(format!("{what}: header {name} missing"));
        }
    }
    let Some(content) = response["content"].as_object() else {
        return errs;
    };
    let Some(media) = content.get(&reply.media_type) else {
        let listed: Vec<_> = content.keys().collect();
        errs.push(format!(
            "{what}: Content-Type {:?} not listed ({listed:?})",
            reply.media_type
        ));
        return errs;
    };
    if reply.media_type == "application/json" {
        match serde_json::from_str::<Value>(&reply.text) {
            Ok(v) => {
                if let Some(schema) = media.get("schema") {
                    spec.check(schema, &v, &what, true, &mut errs);
                }
            }
            Err(e) => errs.push(format!("{what}: body is not JSON ({e}): {}", reply.text)),
        }
    }
    errs
}

/// The daemon's API token on its non-loopback listener.
const API_TOKEN: &str = "openapi-test-token-0123456789";

#[test]
fn serve_alerts_openapi_matches_the_live_server() {
    let spec_text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.json"))
            .unwrap();
    let spec = Spec {
        doc: serde_json::from_str(&spec_text).expect("openapi.json is JSON"),
    };
    assert!(spec.doc["openapi"].as_str().unwrap().starts_with("3.0."));

    // A loopback listener (no token) and a remote one (token), one finding, one scan.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), format!("{API_TOKEN}\n")).unwrap();
    let (local, remote) = (keyward_tests::free_port(), keyward_tests::free_port());
    let api = format!(
        "[api]\nlisten = [\"127.0.0.1:{local}\", \"0.0.0.0:{remote}\"]\n\
         socket = {:?}\ntoken-file = \"token\"\n",
        dir.path().join("keyward.sock").display().to_string()
    );
    let (d, bare, work) = daemon_with_repo(dir.path(), Some((local, &api)));
    let token = gh_token(3301);
    commit_secret(&work, "deploy.sh", &token);
    push(&d, &work);
    let (f, _) = d.wait_finding(&token, Duration::from_secs(20));
    d.wait_idle(Duration::from_secs(20));
    let fp = f["fingerprint"].as_str().unwrap().to_owned();
    let nofp = "0".repeat(fp.len());

    let valid_status =
        json!({"status": "ignored", "reason": "a test credential", "by": "openapi-test"});
    let cases = vec![
        case("GET", "/healthz", "/healthz", Body::None, 200),
        case("GET", "/readyz", "/readyz", Body::None, 200),
        case("GET", "/metrics", "/metrics", Body::None, 200),
        case("GET", "/openapi.json", "/openapi.json", Body::None, 200),
        case(
            "GET",
            "/v1/findings",
            "/v1/findings?status=open&severity=high&rule=github-pat-classic&source=git\
             &since=2000-01-01T00:00:00Z&confidence=medium&limit=50&offset=0",
            Body::None,
            200,
        ),
        case(
            "GET",
            "/v1/findings",
            "/v1/findings?since=0",
            Body::None,
            200,
        ),
        case(
            "GET",
            "/v1/findings",
            "/v1/findings?severity=urgent",
            Body::None,
            400,
        ),
        case(
            "GET",
            "/v1/findings",
            "/v1/findings?colour=red",
            Body::None,
            400,
        ),
        case(
            "GET",
            "/v1/findings",
            "/v1/findings?confidence=certain",
            Body::None,
            400,
        ),
        case(
            "GET",
            "/v1/findings/{fingerprint}",
            format!("/v1/findings/{nofp}"),
            Body::None,
            404,
        ),
        case(
            "POST",
            "/v1/findings/{fingerprint}/status",
            format!("/v1/findings/{fp}/status"),
            Body::Json(valid_status.clone()),
            200,
        ),
        // After the status change, so its history is not empty.
        case(
            "GET",
            "/v1/findings/{fingerprint}",
            format!("/v1/findings/{fp}"),
            Body::None,
            200,
        ),
        case(
            "POST",
            "/v1/findings/{fingerprint}/status",
            format!("/v1/findings/{fp}/status"),
            Body::Json(json!({"status": "gone", "reason": "x"})),
            400,
        ),
        case(
            "POST",
            "/v1/findings/{fingerprint}/status",
            format!("/v1/findings/{fp}/status"),
            Body::Json(json!({"status": "open", "reason": ""})),
            400,
        ),
        case(
            "POST",
            "/v1/findings/{fingerprint}/status",
            format!("/v1/findings/{fp}/status"),
            Body::Raw("{not json"),
            400,
        ),
        case(
            "POST",
            "/v1/findings/{fingerprint}/status",
            format!("/v1/findings/{nofp}/status"),
            Body::Json(valid_status),
            404,
        ),
        case("GET", "/v1/scans", "/v1/scans?limit=10", Body::None, 200),
        case("GET", "/v1/scans", "/v1/scans?limit=many", Body::None, 400),
        case("GET", "/v1/sources", "/v1/sources", Body::None, 200),
        case(
            "POST",
            "/v1/sources/{name}/scan",
            "/v1/sources/app/scan",
            Body::None,
            202,
        ),
        case(
            "POST",
            "/v1/sources/{name}/scan",
            "/v1/sources/nope/scan",
            Body::None,
            404,
        ),
        case(
            "POST",
            "/v1/notify/git",
            "/v1/notify/git",
            Body::Json(json!({"path": bare.display().to_string()})),
            202,
        ),
        case(
            "POST",
            "/v1/notify/git",
            "/v1/notify/git",
            Body::Json(json!({"path": dir.path().join("elsewhere.git").display().to_string()})),
            404,
        ),
        case(
            "POST",
            "/v1/notify/git",
            "/v1/notify/git",
            Body::Json(json!({"repo": "app"})),
            400,
        ),
    ];

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let base = d.url();
    let mut errs = Vec::new();
    let mut bodies = String::new();
    for c in &cases {
        // The request body agrees with the spec exactly when the server accepts it.
        let op = spec.operation(c.method, c.template);
        if let Some(schema) = op["requestBody"]["content"]["application/json"].get("schema") {
            let mut body_errs = Vec::new();
            match &c.body {
                Body::Json(v) => spec.check(schema, v, "request", true, &mut body_errs),
                Body::Raw(_) => body_errs.push("not JSON".to_owned()),
                Body::None => body_errs.push("no body".to_owned()),
            }
            let accepted = c.want < 400 || c.want == 404;
            if accepted != body_errs.is_empty() {
                errs.push(format!(
                    "{} {}: the server {} this body, the spec's request schema says {body_errs:?}",
                    c.method,
                    c.target,
                    if accepted { "accepts" } else { "refuses" }
                ));
            }
        }
        let reply = call(&agent, &base, c, None);
        if reply.status != c.want {
            errs.push(format!(
                "{} {}: want {}, got {} {}",
                c.method, c.target, c.want, reply.status, reply.text
            ));
        }
        errs.extend(check_reply(&spec, c, &reply));
        bodies.push_str(&reply.text);
        // The lists this test relies on to exercise the item schemas are not empty.
        if reply.status == 200 && reply.media_type == "application/json" {
            let v: Value = serde_json::from_str(&reply.text).unwrap_or(Value::Null);
            for key in ["findings", "scans", "sources", "location_list", "history"] {
                if v.get(key)
                    .and_then(Value::as_array)
                    .is_some_and(Vec::is_empty)
                {
                    errs.push(format!("{} {}: {key} is empty", c.method, c.target));
                }
            }
        }
    }
    // /openapi.json serves this very file.
    let served = cases
        .iter()
        .find(|c| c.template == "/openapi.json")
        .unwrap();
    let served: Value = serde_json::from_str(&call(&agent, &base, served, None).text).unwrap();
    assert_eq!(served, spec.doc, "/openapi.json is not daemon/openapi.json");

    // Every operation was called, with every query parameter it documents.
    let called: BTreeSet<(String, String)> = cases
        .iter()
        .map(|c| (c.method.to_owned(), c.template.to_owned()))
        .collect();
    assert_eq!(called, spec.operations(), "operations called vs described");
    for (method, template) in spec.operations() {
        let op = spec.operation(&method, &template);
        for p in op["parameters"].as_array().into_iter().flatten() {
            let p = spec.resolve(p);
            if p["in"] != "query" {
                continue;
            }
            let name = p["name"].as_str().unwrap();
            let used = cases.iter().any(|c| {
                c.template == template
                    && c.target.split_once('?').is_some_and(|(_, q)| {
                        q.split('&').any(|kv| kv.split('=').next() == Some(name))
                    })
            });
            assert!(
                used,
                "{method} {template}: query parameter {name} never sent"
            );
        }
    }

    // The remote listener: an operation with `security: []` answers without a token, every
    // other one answers 401 (which its responses must list) and works with the token.
    let remote_base = format!("http://127.0.0.1:{remote}");
    let bearer = format!("Bearer {API_TOKEN}");
    for c in &cases {
        let op = spec.operation(c.method, c.template);
        let open = op["security"].as_array().is_some_and(Vec::is_empty);
        let reply = call(&agent, &remote_base, c, None);
        let want = if open { c.want } else { 401 };
        if reply.status != want {
            errs.push(format!(
                "remote {} {} without a token: want {want}, got {}",
                c.method, c.target, reply.status
            ));
        }
        errs.extend(check_reply(&spec, c, &reply));
        if !open && c.method == "GET" {
            let reply = call(&agent, &remote_base, c, Some(&bearer));
            if reply.status != c.want {
                errs.push(format!(
                    "remote {} {} with the token: want {}, got {}",
                    c.method, c.target, c.want, reply.status
                ));
            }
        }
    }

    assert!(
        errs.is_empty(),
        "openapi.json vs the live server:\n  {}\nlog:\n{}",
        errs.join("\n  "),
        d.log()
    );
    assert!(!bodies.contains(&token), "the secret reached an API body");
}

#[test]
fn serve_alerts_openapi_checker_finds_each_kind_of_mismatch() {
    let spec = Spec {
        doc: json!({"components": {"schemas": {
            "Base": {"type": "object", "required": ["id"], "properties": {
                "id": {"type": "integer"},
                "state": {"type": "string", "enum": ["a", "b"]},
                "note": {"type": "string", "nullable": true}
            }},
            "Full": {"allOf": [{"$ref": "#/components/schemas/Base"}], "type": "object",
                     "required": ["items"],
                     "properties": {"items": {"type": "array", "items": {"type": "boolean"}}}}
        }}}),
    };
    let full = json!({"$ref": "#/components/schemas/Full"});
    let errors = |v: Value| {
        let mut e = Vec::new();
        spec.check(&full, &v, "$", true, &mut e);
        e
    };
    assert_eq!(
        errors(json!({"id": 1, "state": "a", "note": null, "items": [true]})),
        Vec::<String>::new()
    );
    let cases = [
        (json!({"items": []}), "required property \"id\" missing"),
        (json!({"id": 1}), "required property \"items\" missing"),
        (
            json!({"id": "1", "items": []}),
            "$.id: \"1\" is not of type integer",
        ),
        (json!({"id": 1.5, "items": []}), "is not of type integer"),
        (json!({"id": 1, "state": "c", "items": []}), "not in"),
        (
            json!({"id": null, "items": []}),
            "$.id: null, but not nullable",
        ),
        (
            json!({"id": 1, "items": [1]}),
            "$.items[0]: 1 is not of type boolean",
        ),
        (
            json!({"id": 1, "items": [], "extra": 0}),
            "property \"extra\" is not in the spec",
        ),
        (json!([]), "is not of type object"),
    ];
    for (value, want) in cases {
        let e = errors(value.clone());
        assert!(
            e.iter().any(|m| m.contains(want)),
            "{value}: {e:?}, want {want:?}"
        );
    }
}
