//! End-to-end tests of `/metrics` and the REST API with real clients: ffmpeg publishes and
//! plays over RTMP, a raw client plays HTTP-FLV, and raw HTTP/1.0 requests scrape and query.
//! The OpenAPI document is kept true here: every documented path is fetched and its response
//! validated against the documented schema.

use crate::common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use hub::PublisherInfo;
use serde_json::Value;
use tokio::time::Instant;

/// Scrapes `/metrics` and parses the exposition into `series -> value`.
async fn scrape(server: &sluice::RunningServer) -> HashMap<String, f64> {
    let r = http_get(server.http_addr(), "/metrics").await;
    assert_eq!(r.status, 200);
    assert!(
        r.content_type.starts_with("text/plain; version=0.0.4"),
        "{}",
        r.content_type
    );
    let mut out = HashMap::new();
    for line in r
        .body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("series value");
        out.insert(series.to_owned(), value.parse().expect("a number"));
    }
    out
}

/// Scrapes `/metrics` and parses it with Python's `prometheus_client` (from the test venv
/// that scripts/test.sh prepares): `{"types": {family: type}, "samples": {series: value}}`.
async fn parse_with_prometheus_client(server: &sluice::RunningServer) -> serde_json::Value {
    use tokio::io::AsyncWriteExt;
    let text = http_get(server.http_addr(), "/metrics").await.body;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = root.join(".venv-test/bin/python");
    let script = root.join("crates/sluice/tests/metrics/parse_metrics.py");
    let mut child = tokio::process::Command::new(&python)
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{} runs (scripts/test.sh creates it): {e}",
                python.display()
            )
        });
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(text.as_bytes())
        .await
        .expect("write metrics");
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("parser in time")
        .expect("parser runs");
    assert!(
        out.status.success(),
        "prometheus_client refused the exposition: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("parser JSON")
}

fn get(m: &HashMap<String, f64>, series: &str) -> f64 {
    *m.get(series)
        .unwrap_or_else(|| panic!("no series {series}; have {:?}", m.keys()))
}

/// Polls the metrics until `pred` holds (bounded).
async fn scrape_until(
    server: &sluice::RunningServer,
    what: &str,
    pred: impl Fn(&HashMap<String, f64>) -> bool,
) -> HashMap<String, f64> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = scrape(server).await;
        if pred(&m) {
            return m;
        }
        assert!(Instant::now() < deadline, "never: {what}; metrics: {m:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Validates `v` against the subset of JSON Schema the document uses: `$ref` (to
/// `#/components/schemas/..`), `oneOf`, `type` (a name or a list), `properties`, `required`,
/// `items`, `minimum`, `maximum`, `additionalProperties: false`.
pub(crate) fn validate(doc: &Value, schema: &Value, v: &Value, at: &str) {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unsupported $ref {r}"));
        let target = &doc["components"]["schemas"][name];
        assert!(target.is_object(), "{at}: dangling $ref {r}");
        return validate(doc, target, v, at);
    }
    if let Some(options) = schema["oneOf"].as_array() {
        let ok = options
            .iter()
            .filter(|s| std::panic::catch_unwind(|| validate(doc, s, v, at)).is_ok());
        assert_eq!(
            ok.count(),
            1,
            "{at}: {v} matches not exactly one of {options:?}"
        );
        return;
    }
    if !schema["type"].is_null() {
        let types: Vec<&str> = match &schema["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            other => panic!("{at}: bad type {other}"),
        };
        let matches = |t: &str| match t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            "integer" => v.is_u64() || v.is_i64(),
            "number" => v.is_number(),
            other => panic!("{at}: unknown type {other}"),
        };
        assert!(
            types.iter().any(|t| matches(t)),
            "{at}: {v} is not {types:?}"
        );
    }
    if let Some(n) = v.as_f64() {
        if let Some(min) = schema["minimum"].as_f64() {
            assert!(n >= min, "{at}: {n} < minimum {min}");
        }
        if let Some(max) = schema["maximum"].as_f64() {
            assert!(n <= max, "{at}: {n} > maximum {max}");
        }
    }
    if let Some(obj) = v.as_object() {
        for r in schema["required"].as_array().into_iter().flatten() {
            let r = r.as_str().expect("required names");
            assert!(obj.contains_key(r), "{at}: missing required {r} in {v}");
        }
        if let Some(props) = schema["properties"].as_object() {
            for (k, s) in props {
                if let Some(x) = obj.get(k) {
                    validate(doc, s, x, &format!("{at}.{k}"));
                }
            }
            if schema["additionalProperties"] == false {
                for k in obj.keys() {
                    assert!(props.contains_key(k), "{at}: undocumented property {k}");
                }
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            validate(doc, items, x, &format!("{at}[{i}]"));
        }
    }
}

/// Fetches every documented path (path parameters filled from `key`) and checks the 200
/// response against its schema; checks every served API route is documented.
async fn check_openapi(server: &sluice::RunningServer, key: &str) {
    let r = http_get(server.http_addr(), "/api/v1/openapi.json").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, "application/json");
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().expect("paths");
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    for (name, s) in schemas {
        if s["type"] == "object" {
            assert_eq!(s["additionalProperties"], false, "{name} must be closed");
        }
    }
    for route in sluice::API_ROUTES {
        assert!(paths.contains_key(route), "route {route} is not documented");
    }
    let (app, stream) = key.split_once('/').expect("app/stream");
    for (path, item) in paths {
        if let Some(op) = item.get("delete") {
            check_delete(server, &doc, path, op).await;
        }
        if item.get("get").is_none() {
            continue;
        }
        let url = path.replace("{app}", app).replace("{stream}", stream);
        let r = http_get(server.http_addr(), &url).await;
        assert_eq!(r.status, 200, "{url}: {}", r.body);
        assert_eq!(r.content_type, "application/json", "{url}");
        let schema = &item["get"]["responses"]["200"]["content"]["application/json"]["schema"];
        assert!(schema.is_object(), "{path}: no 200 schema");
        validate(&doc, schema, &r.json(), &url);
        // Documented error responses use the Error schema.
        for (status, resp) in item["get"]["responses"].as_object().expect("responses") {
            if status != "200" {
                let s = &resp["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(s, "#/components/schemas/Error", "{path} {status}");
            }
        }
    }
}

/// A documented DELETE: 204 and 404 are documented, and a real call on a resource that does
/// not exist answers the documented 404 with an Error body (204 is exercised by
/// `api_lists_and_kicks_sessions`).
async fn check_delete(server: &sluice::RunningServer, doc: &Value, path: &str, op: &Value) {
    let responses = op["responses"].as_object().expect("responses");
    assert!(
        responses.contains_key("204"),
        "{path}: DELETE 204 undocumented"
    );
    let url = path
        .replace("{app}", "no-such-app")
        .replace("{stream}", "none")
        .replace("{id}", "18446744073709551615");
    let r = http_request(server.http_addr(), "DELETE", &url).await;
    assert_eq!(r.status, 404, "DELETE {url}: {}", r.body);
    let schema = &responses["404"]["content"]["application/json"]["schema"];
    assert_eq!(schema["$ref"], "#/components/schemas/Error", "{path}");
    assert_eq!(r.content_type, "application/json");
    validate(doc, schema, &r.json(), &url);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_api_follow_a_live_stream() {
    let mut cfg = test_config();
    cfg.hub.publisher_grace_ms = 300;
    let server = start(cfg).await;
    let key = "live/x";
    let rtmp = format!("rtmp://{}/{key}", server.rtmp_addr());
    let mut publisher = publish(&rtmp, -1, &["-re"]);
    wait_live(&server, key).await;
    let mut rtmp_player = play_null(&rtmp);
    let mut flv_player = RawFlvClient::connect(server.http_addr(), &format!("/{key}.flv")).await;
    assert!(
        !flv_player
            .read_tags(Duration::from_secs(5))
            .await
            .is_empty()
    );
    assert_eq!(flv_player.status, 200);

    let rtmp_viewers = r#"sluice_stream_viewers{protocol="rtmp",stream="live/x"}"#;
    let flv_viewers = r#"sluice_stream_viewers{protocol="http-flv",stream="live/x"}"#;
    let ingest = r#"sluice_stream_ingest_bytes_total{stream="live/x"}"#;
    let first = scrape_until(&server, "an rtmp viewer", |m| {
        m.get(rtmp_viewers) == Some(&1.0)
    })
    .await;
    // Keep the HTTP-FLV player draining while time passes.
    flv_player.collect_for(Duration::from_millis(1000)).await;
    let second = scrape(&server).await;

    assert_eq!(get(&second, rtmp_viewers), 1.0);
    assert_eq!(get(&second, flv_viewers), 1.0);
    assert_eq!(
        get(
            &second,
            r#"sluice_stream_viewers{protocol="ws-flv",stream="live/x"}"#
        ),
        0.0
    );
    assert_eq!(get(&second, r#"sluice_viewers{protocol="rtmp"}"#), 1.0);
    assert_eq!(get(&second, r#"sluice_viewers{protocol="http-flv"}"#), 1.0);
    assert!(get(&first, ingest) > 0.0);
    assert!(
        get(&second, ingest) > get(&first, ingest),
        "ingest bytes grow"
    );
    assert!(
        get(
            &second,
            r#"sluice_stream_ingest_frames_total{stream="live/x"}"#
        ) > 0.0
    );
    assert!(
        get(
            &second,
            r#"sluice_stream_egress_bytes_total{protocol="http-flv",stream="live/x"}"#
        ) > 0.0
    );
    assert!(
        get(
            &second,
            r#"sluice_stream_egress_bytes_total{protocol="rtmp",stream="live/x"}"#
        ) > 0.0
    );
    assert!(get(&second, r#"sluice_egress_bytes_total{protocol="rtmp"}"#) > 0.0);
    assert!(get(&second, r#"sluice_ingress_bytes_total{protocol="rtmp"}"#) > 0.0);
    let info = second
        .iter()
        .find(|(k, _)| k.starts_with("sluice_stream_info{"))
        .expect("an info series");
    for label in [
        r#"stream="live/x""#,
        r#"width="640""#,
        r#"height="360""#,
        r#"video_codec="h264""#,
        r#"audio_codec="aac""#,
        r#"sample_rate="48000""#,
    ] {
        assert!(info.0.contains(label), "{label} missing in {}", info.0);
    }
    assert_eq!(*info.1, 1.0);
    assert_eq!(get(&second, r#"sluice_stream_live{stream="live/x"}"#), 1.0);
    assert_eq!(
        get(
            &second,
            r#"sluice_stream_publisher_info{protocol="rtmp",stream="live/x"}"#
        ),
        1.0
    );
    assert!(
        get(
            &second,
            r#"sluice_stream_gop_cache_frames{stream="live/x"}"#
        ) > 0.0
    );
    assert!(
        get(
            &second,
            r#"sluice_stream_keyframe_interval_seconds{stream="live/x"}"#
        ) > 0.5
    );
    assert_eq!(
        get(
            &second,
            r#"sluice_stream_publisher_reconnects_total{stream="live/x"}"#
        ),
        0.0
    );
    assert!(get(&second, "sluice_process_resident_memory_bytes") > 0.0);
    assert!(get(&second, "sluice_process_open_fds") > 0.0);
    assert!(get(&second, "sluice_uptime_seconds") > 0.0);
    assert!(
        get(
            &second,
            r#"sluice_connections_accepted_total{protocol="rtmp"}"#
        ) >= 2.0
    );
    assert!(
        get(
            &second,
            r#"sluice_connections_accepted_total{protocol="http"}"#
        ) >= 1.0
    );
    assert_eq!(get(&second, "sluice_streams"), 1.0);
    // Delivery latency: sampled per viewer write, per protocol, as a real histogram.
    let rtmp_lat = scrape_until(&server, "rtmp latency samples", |m| {
        m.get(r#"sluice_delivery_latency_seconds_count{protocol="rtmp"}"#)
            .is_some_and(|v| *v > 0.0)
    })
    .await;
    let lat_sum = get(
        &rtmp_lat,
        r#"sluice_delivery_latency_seconds_sum{protocol="rtmp"}"#,
    );
    let lat_count = get(
        &rtmp_lat,
        r#"sluice_delivery_latency_seconds_count{protocol="rtmp"}"#,
    );
    assert!(
        lat_sum / lat_count < 1.0,
        "mean RTMP delivery latency under a second"
    );
    assert!(
        get(
            &rtmp_lat,
            r#"sluice_delivery_latency_seconds_bucket{protocol="rtmp",le="+Inf"}"#
        ) == lat_count
    );
    let detail = http_get(server.http_addr(), "/api/v1/streams/live/x")
        .await
        .json();
    assert!(detail["latency_ms"].as_f64().is_some(), "{detail}");
    // A real Prometheus parser (prometheus_client) reads the whole exposition, and agrees
    // with ours on the values.
    let parsed = parse_with_prometheus_client(&server).await;
    assert_eq!(
        parsed["types"]["sluice_delivery_latency_seconds"],
        "histogram"
    );
    assert_eq!(parsed["types"]["sluice_stream_viewers"], "gauge");
    assert_eq!(
        parsed["samples"][r#"sluice_stream_viewers{protocol="rtmp",stream="live/x"}"#],
        1.0
    );
    assert!(
        parsed["samples"][r#"sluice_delivery_latency_seconds_count{protocol="http-flv"}"#]
            .as_f64()
            .is_some(),
        "{parsed}"
    );
    assert!(
        second
            .keys()
            .any(|k| k.starts_with("sluice_build_info{version="))
    );

    // The API sees the same stream.
    let addr = server.http_addr();
    let list = http_get(addr, "/api/v1/streams").await;
    assert_eq!(list.status, 200);
    let list = list.json();
    assert_eq!(list["total"], 1);
    assert_eq!(list["offset"], 0);
    assert_eq!(list["limit"], 100);
    assert_eq!(list["items"][0]["key"], key);
    let detail = http_get(addr, &format!("/api/v1/streams/{key}")).await;
    assert_eq!(detail.status, 200);
    let d = detail.json();
    assert_eq!(d["key"], key);
    assert_eq!(d["live"], true);
    assert_eq!(d["publisher"]["protocol"], "rtmp");
    assert!(
        d["publisher"]["remote"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert_eq!(d["video"]["codec"], "h264");
    assert_eq!(d["video"]["width"], 640);
    assert_eq!(d["video"]["height"], 360);
    assert_eq!(d["audio"]["codec"], "aac");
    assert_eq!(d["audio"]["sample_rate"], 48000);
    assert_eq!(d["audio"]["channels"], 2);
    assert_eq!(d["viewers"]["rtmp"], 1);
    assert_eq!(d["viewers"]["http-flv"], 1);
    assert_eq!(d["viewers"]["ws-flv"], 0);
    assert!(d["ingest"]["bytes"].as_u64().unwrap() > 0);
    assert!(d["gop"]["frames"].as_u64().unwrap() > 0);
    assert_eq!(d["publisher_connects"], 1);
    let srv = http_get(addr, "/api/v1/server").await.json();
    assert_eq!(srv["listeners"]["rtmp"], server.rtmp_addr().to_string());
    assert_eq!(srv["listeners"]["http"], server.http_addr().to_string());
    assert_eq!(srv["config"]["publisher_grace_ms"], 300);
    assert_eq!(srv["streams"], 1);

    let missing = http_get(addr, "/api/v1/streams/live/nope").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.content_type, "application/json");
    assert_eq!(missing.json()["code"], "stream_not_found");
    assert!(
        missing.json()["message"]
            .as_str()
            .unwrap()
            .contains("live/nope")
    );
    for q in ["limit=0", "limit=5000", "offset=-1"] {
        let bad = http_get(addr, &format!("/api/v1/streams?{q}")).await;
        assert_eq!(bad.status, 400, "{q}");
        assert_eq!(bad.json()["code"], "invalid_pagination", "{q}");
    }
    let unknown = http_get(addr, "/api/v1/nothing/here").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["code"], "not_found");

    check_openapi(&server, key).await;

    // Everyone leaves; after the grace period the stream's series are gone.
    publisher.kill().await.expect("kill publisher");
    rtmp_player.kill().await.expect("kill player");
    drop(flv_player);
    let gone = scrape_until(&server, "the stream's series gone", |m| {
        !m.keys().any(|k| k.contains("live/x"))
    })
    .await;
    assert_eq!(get(&gone, "sluice_streams"), 0.0);
    let viewers_gone = scrape_until(&server, "viewers at zero", |m| {
        m.get(r#"sluice_viewers{protocol="rtmp"}"#) == Some(&0.0)
            && m.get(r#"sluice_viewers{protocol="http-flv"}"#) == Some(&0.0)
    })
    .await;
    assert!(
        get(
            &viewers_gone,
            r#"sluice_egress_bytes_total{protocol="rtmp"}"#
        ) > 0.0
    );
    let after = http_get(addr, &format!("/api/v1/streams/{key}")).await;
    assert_eq!(after.status, 404);
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_paginates_streams() {
    let server = start(test_config()).await;
    let mut publishers = Vec::new();
    for name in ["live/c", "live/a", "live/b"] {
        let info = PublisherInfo {
            protocol: "rtmp",
            remote: "192.0.2.1:1000".into(),
        };
        publishers.push(server.hub().publish(name, info).expect("publish"));
    }
    let keys = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["key"].as_str().expect("key").to_owned())
            .collect()
    };
    let page = |q: &'static str| http_get(server.http_addr(), q);
    let all = page("/api/v1/streams").await.json();
    assert_eq!(keys(&all), ["live/a", "live/b", "live/c"]);
    assert_eq!(all["total"], 3);
    let p1 = page("/api/v1/streams?limit=2").await.json();
    assert_eq!(keys(&p1), ["live/a", "live/b"]);
    assert_eq!(
        (p1["total"].as_u64(), p1["limit"].as_u64()),
        (Some(3), Some(2))
    );
    let p2 = page("/api/v1/streams?offset=2&limit=2").await.json();
    assert_eq!(keys(&p2), ["live/c"]);
    assert_eq!(
        (p2["total"].as_u64(), p2["offset"].as_u64()),
        (Some(3), Some(2))
    );
    let p3 = page("/api/v1/streams?offset=7&limit=2").await.json();
    assert!(keys(&p3).is_empty());
    assert_eq!(p3["total"], 3);
    // A stream without media yet has no tracks.
    let d = page("/api/v1/streams/live/a").await.json();
    assert!(d["video"].is_null() && d["audio"].is_null());
    assert_eq!(d["viewers"]["rtmp"], 0);
    check_openapi(&server, "live/a").await;
    drop(publishers);
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

/// Polls `GET /api/v1/sessions` until `pred` holds (bounded); returns the items.
async fn sessions_until(
    server: &sluice::RunningServer,
    what: &str,
    pred: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = http_get(server.http_addr(), "/api/v1/sessions").await;
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        let items = v["items"].as_array().expect("items").clone();
        assert_eq!(v["total"].as_u64(), Some(items.len() as u64));
        if pred(&items) {
            return items;
        }
        assert!(Instant::now() < deadline, "never: {what}; sessions: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn find<'a>(items: &'a [Value], kind: &str, protocol: &str) -> Option<&'a Value> {
    items
        .iter()
        .find(|i| i["kind"] == kind && i["protocol"] == protocol)
}

fn bytes_of(items: &[Value], id: &Value) -> u64 {
    items
        .iter()
        .find(|i| &i["id"] == id)
        .and_then(|i| i["bytes"].as_u64())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_lists_and_kicks_sessions() {
    let mut cfg = test_config();
    // Long enough that only `DELETE /api/v1/streams/..` can end the stream in time.
    cfg.hub.publisher_grace_ms = 30_000;
    let server = start(cfg).await;
    let addr = server.http_addr();
    let key = "live/x";
    let rtmp = format!("rtmp://{}/{key}", server.rtmp_addr());
    let mut publisher = publish(&rtmp, -1, &["-re"]);
    wait_live(&server, key).await;
    let mut player = play_null(&rtmp);
    let mut flv = RawFlvClient::connect(addr, "/live/x.flv").await;
    assert!(!flv.read_tags(Duration::from_secs(10)).await.is_empty());

    let all_flowing = |items: &[Value]| {
        items.len() == 3 && items.iter().all(|i| i["bytes"].as_u64().unwrap_or(0) > 0)
    };
    let first = sessions_until(&server, "3 sessions with bytes", all_flowing).await;
    let publ = find(&first, "publisher", "rtmp")
        .expect("rtmp publisher")
        .clone();
    let rtmp_viewer = find(&first, "viewer", "rtmp").expect("rtmp viewer").clone();
    let flv_viewer = find(&first, "viewer", "http-flv")
        .expect("http-flv viewer")
        .clone();
    for s in [&publ, &rtmp_viewer, &flv_viewer] {
        assert_eq!(s["stream"], key);
        assert!(
            s["remote"]
                .as_str()
                .is_some_and(|r| r.starts_with("127.0.0.1:")),
            "{s}"
        );
        assert!(
            s["started_at"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{s}"
        );
        assert!(s["duration_seconds"].as_f64().is_some());
    }
    let ids: Vec<u64> = first
        .iter()
        .map(|i| {
            i["id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("numeric id")
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "sorted by id: {ids:?}");
    check_openapi(&server, key).await;
    // Pagination and the stream filter.
    let p = http_get(addr, "/api/v1/sessions?offset=1&limit=1")
        .await
        .json();
    assert_eq!(
        (p["total"].as_u64(), p["items"][0]["id"].as_str()),
        (Some(3), Some(ids[1].to_string().as_str()))
    );
    let other = http_get(addr, "/api/v1/sessions?stream=live/other")
        .await
        .json();
    assert_eq!(other["total"], 0);
    let this = http_get(addr, "/api/v1/sessions?stream=live%2Fx")
        .await
        .json();
    assert_eq!(this["total"], 3);
    assert_eq!(http_get(addr, "/api/v1/sessions?limit=0").await.status, 400);

    // Bytes keep growing while the flv client keeps reading.
    flv.collect_for(Duration::from_millis(300)).await;
    sessions_until(&server, "bytes grow", |items| {
        [&publ, &rtmp_viewer, &flv_viewer]
            .iter()
            .all(|s| bytes_of(items, &s["id"]) > s["bytes"].as_u64().unwrap_or(0))
    })
    .await;

    // Kick the HTTP-FLV viewer: its body ends.
    let flv_id = flv_viewer["id"].as_str().expect("id");
    let r = http_request(addr, "DELETE", &format!("/api/v1/sessions/{flv_id}")).await;
    assert_eq!(r.status, 204, "{}", r.body);
    flv.collect_for(Duration::from_secs(10)).await;
    assert!(flv.ended, "the kicked HTTP-FLV body ended");
    sessions_until(&server, "2 sessions", |items| {
        items.len() == 2 && find(items, "viewer", "http-flv").is_none()
    })
    .await;

    // Kick the RTMP viewer: ffmpeg's player exits.
    let rv_id = rtmp_viewer["id"].as_str().expect("id");
    let r = http_request(addr, "DELETE", &format!("/api/v1/sessions/{rv_id}")).await;
    assert_eq!(r.status, 204, "{}", r.body);
    tokio::time::timeout(Duration::from_secs(10), player.wait())
        .await
        .expect("the kicked ffmpeg player exits")
        .expect("wait");
    sessions_until(&server, "publisher only", |items| items.len() == 1).await;

    // Unknown ids and streams.
    for id in ["999999", "abc"] {
        let r = http_request(addr, "DELETE", &format!("/api/v1/sessions/{id}")).await;
        assert_eq!(r.status, 404);
        assert_eq!(r.json()["code"], "session_not_found");
    }
    let r = http_request(addr, "DELETE", "/api/v1/streams/live/nope").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["code"], "stream_not_found");

    // Stop publishing: the publisher is kicked and the stream ends now, not after the grace.
    let r = http_request(addr, "DELETE", &format!("/api/v1/streams/{key}")).await;
    assert_eq!(r.status, 204, "{}", r.body);
    let streams = http_get(addr, "/api/v1/streams").await.json();
    assert_eq!(streams["total"], 0, "{streams}");
    assert_eq!(
        http_get(addr, &format!("/api/v1/streams/{key}"))
            .await
            .status,
        404
    );
    tokio::time::timeout(Duration::from_secs(10), publisher.wait())
        .await
        .expect("the kicked ffmpeg publisher exits")
        .expect("wait");
    sessions_until(&server, "no sessions", |items| items.is_empty()).await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kicking_a_websocket_viewer_closes_it() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let server = start(test_config()).await;
    let key = "live/wskick";
    let _publisher = publish(
        &format!("rtmp://{}/{key}", server.rtmp_addr()),
        -1,
        &["-re"],
    );
    wait_live(&server, key).await;
    let url = format!("ws://{}/{key}.flv", server.http_addr());
    let (mut ws, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("ws connects");
    // Media flows before the kick.
    let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("data in time");
    assert!(matches!(first, Some(Ok(Message::Binary(_)))), "{first:?}");
    let items = sessions_until(&server, "a ws-flv viewer", |i| {
        find(i, "viewer", "ws-flv").is_some()
    })
    .await;
    let id = find(&items, "viewer", "ws-flv").expect("ws session")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let r = http_request(
        server.http_addr(),
        "DELETE",
        &format!("/api/v1/sessions/{id}"),
    )
    .await;
    assert_eq!(r.status, 204, "{}", r.body);
    // The server sends a Close frame (after anything already queued) and the stream ends.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut closed = false;
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, ws.next()).await {
        match msg {
            Ok(Message::Close(_)) | Err(_) => {
                closed = true;
                break;
            }
            Ok(_) => {}
        }
    }
    assert!(closed, "the kicked WebSocket viewer was closed");
    sessions_until(&server, "the ws session is gone", |i| {
        find(i, "viewer", "ws-flv").is_none()
    })
    .await;
    assert!(server.shutdown(Duration::from_secs(5)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_have_a_listener_of_their_own() {
    let mut cfg = test_config();
    cfg.http.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let server = start(cfg).await;
    let addr = server.metrics_addr().expect("metrics listener bound");
    assert_ne!(addr, server.http_addr());
    let r = http_get(addr, "/metrics").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("sluice_uptime_seconds"), "{}", r.body);
    // Only /metrics there, and /metrics no longer on the main listener.
    assert_eq!(http_get(addr, "/api/v1/server").await.status, 404);
    assert_eq!(http_get(server.http_addr(), "/metrics").await.status, 404);
    assert_eq!(
        http_get(server.http_addr(), "/api/v1/server").await.status,
        200
    );
    assert!(server.shutdown(Duration::from_secs(5)).await);
}
