//! The status API end to end without a kernel: frames through a real pipeline, queries through
//! the queue the watch loop reads, responses as the HTTP side makes them, checked against
//! `docs/schema/arpwatch-api.schema.json`; then over real HTTP on loopback with `--api` on and
//! off, and the `arpwatch status` client against it.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;

use http_body_util::BodyExt;
use hyper::{Method, StatusCode};
use serde_json::Value;

use super::*;
use crate::metrics::{Metrics, MetricsOptions, MetricsServer};
use crate::output::{Format, Mode, Pipeline};
use arpwatch_core::config::Config;
use arpwatch_core::testkit::observations::{frame, Frame};
use arpwatch_core::testkit::schema::check_against;

const A: &str = "02:00:00:00:00:0a";
const B: &str = "02:00:00:00:00:0b";
const CLIENT: &str = "02:00:00:00:00:99";
const CLIENT_IP: &str = "192.0.2.99";
const VIP: &str = "192.0.2.10";
const CONFIG: &str = "full_view = true\n[[pools]]\nname = \"vips\"\ncidrs = [\"192.0.2.0/28\"]\n";

fn pipeline() -> (Pipeline<Vec<u8>>, Config) {
    let config = Config::from_toml(CONFIG).unwrap();
    let mode = Mode::Detect {
        engine: Box::new(Engine::new(&config.engine)),
        annotator: Annotator::new("node-a"),
    };
    let mut pipeline = Pipeline::new(mode, Format::Json, Vec::new(), None);
    pipeline.keep_recent_events();
    (pipeline, config)
}

fn feed(pipeline: &mut Pipeline<Vec<u8>>, frames: impl IntoIterator<Item = Frame>) {
    for f in frames {
        pipeline.observe(&f.0).unwrap();
    }
}

/// IPVS without strictARP: A and B both answer the client for the VIP; 192.0.2.3 is announced by
/// A alone; the client's requests for 192.0.2.5 go unanswered.
fn incident() -> Vec<Frame> {
    let mut frames = Vec::new();
    for i in 0..3 {
        let t = 100.0 + f64::from(i);
        frames.push(frame(t).request(CLIENT, CLIENT_IP).asking(VIP));
        frames.push(frame(t + 0.001).reply(A, VIP).to(CLIENT, CLIENT_IP));
        frames.push(frame(t + 0.002).reply(B, VIP).to(CLIENT, CLIENT_IP));
        frames.push(frame(t + 0.5).request(CLIENT, CLIENT_IP).asking("192.0.2.5"));
    }
    frames.push(frame(103.0).announce(arpwatch_core::observation::ArpOp::Request, A, "192.0.2.3"));
    frames
}

/// Runs `respond` to its end while answering the queries it sends, as the watch loop would.
async fn serve_one<F: Future<Output = hyper::Response<http_body_util::Full<Bytes>>>>(
    pipeline: &Pipeline<Vec<u8>>,
    queries: &mut Queries,
    respond: F,
) -> (StatusCode, hyper::HeaderMap, String) {
    let mut respond = pin!(respond);
    let response = loop {
        tokio::select! {
            response = &mut respond => break response,
            request = queries.next() => pipeline.answer(request, None),
        }
    };
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, String::from_utf8(body.to_vec()).unwrap())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

use hyper::body::Bytes;

struct Api {
    pipeline: Pipeline<Vec<u8>>,
    handle: ApiHandle,
    queries: Queries,
}

impl Api {
    fn new() -> Api {
        let (pipeline, _) = pipeline();
        let (handle, queries) = channel("node-a");
        Api { pipeline, handle, queries }
    }

    async fn call(&mut self, method: Method, target: &str) -> (StatusCode, Value) {
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query)),
            None => (target, None),
        };
        let respond = respond(&self.handle, &method, path, query);
        let (status, headers, body) = serve_one(&self.pipeline, &mut self.queries, respond).await;
        if status == StatusCode::METHOD_NOT_ALLOWED {
            assert_eq!(headers["allow"], "GET, HEAD");
        }
        if target != "/" {
            assert_eq!(headers["content-type"], "application/json", "{target}");
        }
        let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
        (status, value)
    }

    async fn get(&mut self, target: &str) -> Value {
        let (status, value) = self.call(Method::GET, target).await;
        assert_eq!(status, StatusCode::OK, "{target}: {value}");
        check_response(&value);
        value
    }

    /// The event lines the pipeline wrote, as JSON.
    fn written(&self) -> Vec<Value> {
        let out = String::from_utf8(self.pipeline.output().clone()).unwrap();
        out.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

#[test]
fn an_ips_status_shows_both_responders_the_open_condition_and_its_requests() {
    runtime().block_on(async {
        let mut api = Api::new();
        feed(&mut api.pipeline, incident());
        let body = api.get(&format!("/api/v1/ips/{VIP}")).await;
        assert_eq!(body["api_version"], 1);
        assert_eq!(body["node"], "node-a");
        let st = &body["ip"];
        assert_eq!(st["ip"], VIP);
        assert_eq!(st["pool"], "vips");
        let claims: Vec<&str> =
            st["claims"].as_array().unwrap().iter().map(|c| c["mac"].as_str().unwrap()).collect();
        assert_eq!(claims, [A, B]);
        assert_eq!(st["claims"][0]["count"], 3);
        assert_eq!(st["owner"]["mac"], A);
        let conditions = st["conditions"].as_array().unwrap();
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0]["event"], "multi_responder");
        assert_eq!(conditions[0]["macs"], serde_json::json!([A, B]));
        assert_eq!(st["requests"]["seen"], 3);
        assert_eq!(st["requests"]["answered"], 3);

        // Unanswered: seen, not answered.
        let st = api.get("/api/v1/ips/192.0.2.5").await;
        let r = &st["ip"]["requests"];
        assert_eq!((r["seen"].as_u64(), r["answered"].as_u64()), (Some(3), Some(0)));
        assert_eq!(r["unanswered"].as_u64().unwrap() + r["waiting"].as_u64().unwrap(), 3);
        assert!(st["ip"]["owner"].is_null());

        let open = api.get("/api/v1/conditions").await;
        let kinds: Vec<&str> = open["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["event"].as_str().unwrap())
            .collect();
        assert!(kinds.contains(&"multi_responder") && kinds.contains(&"unanswered"), "{kinds:?}");
        assert_eq!(open["total"], kinds.len());
        let one = api.get("/api/v1/conditions?limit=1").await;
        assert_eq!(
            (one["conditions"].as_array().unwrap().len(), &one["truncated"]),
            (1, &Value::Bool(true))
        );

        let page = api.call(Method::GET, "/").await;
        assert_eq!(page.0, StatusCode::OK);
        assert!(page.1.as_str().unwrap().contains("<html"), "{}", page.1);
    });
}

#[test]
fn the_watched_ips_come_in_pages_that_say_where_the_next_starts() {
    runtime().block_on(async {
        let mut api = Api::new();
        feed(&mut api.pipeline, incident());
        let all = api.get("/api/v1/ips").await;
        let ips = |v: &Value| -> Vec<String> {
            v["ips"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["ip"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(ips(&all), ["192.0.2.3", "192.0.2.5", VIP]);
        assert_eq!(
            (&all["total"], &all["truncated"], &all["next"]),
            (&3.into(), &false.into(), &Value::Null)
        );
        let mut seen = Vec::new();
        let mut target = "/api/v1/ips?limit=2".to_owned();
        loop {
            let page = api.get(&target).await;
            seen.extend(ips(&page));
            match page["next"].as_str() {
                Some(next) => {
                    assert_eq!(page["truncated"], true);
                    target = next.to_owned();
                }
                None => break,
            }
        }
        assert_eq!(seen, ips(&all));
        assert_eq!(ips(&api.get("/api/v1/ips?after=192.0.2.5").await), [VIP]);
    });
}

#[test]
fn events_are_the_lines_the_agent_wrote_and_since_pages_forward() {
    runtime().block_on(async {
        let mut api = Api::new();
        feed(&mut api.pipeline, incident());
        let written = api.written();
        assert!(written.len() >= 5, "{written:?}");
        let all = api.get("/api/v1/events").await;
        assert_eq!(all["events"].as_array().unwrap(), &written);
        assert_eq!(all["held"], written.len());
        for event in &written {
            check_event(event);
        }
        // The multi_responder's start and what followed it.
        let start = written.iter().find(|e| e["event"] == "multi_responder").unwrap();
        let since = start["ts"].as_str().unwrap();
        let later = api.get(&format!("/api/v1/events?since={since}")).await;
        let later = later["events"].as_array().unwrap();
        assert!(later.contains(start));
        assert_eq!(later[0]["ts"], since, "since is inclusive");
        let time = |e: &Value| {
            let ts = e["ts"].as_str().unwrap();
            time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339).unwrap()
        };
        let expected: Vec<&Value> = written.iter().filter(|e| time(e) >= time(start)).collect();
        assert_eq!(later.iter().collect::<Vec<_>>(), expected);
        // Paged two at a time, the pages add up to the same.
        let mut target = format!("/api/v1/events?since={since}&limit=2");
        let mut paged = Vec::new();
        loop {
            let page = api.get(&target).await;
            paged.extend(page["events"].as_array().unwrap().iter().cloned());
            match page["next"].as_str() {
                Some(next) => target = next.to_owned(),
                None => break,
            }
        }
        assert_eq!(paged.iter().collect::<Vec<_>>(), expected);
        let latest = api.get("/api/v1/events?limit=1").await;
        assert_eq!(latest["events"][0], *written.last().unwrap());
        assert_eq!(latest["truncated"], true);
    });
}

#[test]
fn errors_say_what_is_wrong_in_json() {
    runtime().block_on(async {
        let mut api = Api::new();
        feed(&mut api.pipeline, incident());
        for (method, target, status, says) in [
            (Method::GET, "/api/v1/ips/192.0.2.300", StatusCode::BAD_REQUEST, "not an IPv4"),
            (Method::GET, "/api/v1/ips/203.0.113.1", StatusCode::NOT_FOUND, "not known"),
            (Method::GET, "/api/v1/ips?limit=0", StatusCode::BAD_REQUEST, "limit=0"),
            (Method::GET, "/api/v1/events?since=now", StatusCode::BAD_REQUEST, "RFC 3339"),
            (Method::GET, "/api/v1/nope", StatusCode::NOT_FOUND, "no such endpoint"),
            (Method::GET, "/api/v2/ips", StatusCode::NOT_FOUND, "no such endpoint"),
            (Method::POST, "/api/v1/ips", StatusCode::METHOD_NOT_ALLOWED, "read-only"),
            (Method::DELETE, "/api/v1/ips/192.0.2.10", StatusCode::METHOD_NOT_ALLOWED, "read-only"),
        ] {
            let (got, body) = api.call(method.clone(), target).await;
            assert_eq!(got, status, "{method} {target}: {body}");
            assert!(body["error"].as_str().unwrap().contains(says), "{target}: {body}");
            check_response(&body);
        }
    });
}

#[test]
fn a_full_queue_and_a_spent_budget_are_refused_without_the_engine() {
    runtime().block_on(async {
        let (handle, mut queries) = channel("node-a");
        let mut waiting = Vec::new();
        for _ in 0..QUEUE {
            let (reply, answer) = oneshot::channel();
            handle.sender.try_send(Request { query: Query::View, reply }).unwrap();
            waiting.push(answer);
        }
        assert_eq!(handle.ask(Query::View).await.unwrap_err(), Unanswered::Busy);
        // The loop takes at most MAX_QUERIES_PER_SECOND in a second; the rest are dropped.
        let mut taken = 0;
        for _ in 0..QUEUE {
            drop(queries.next().await);
            taken += 1;
        }
        let mut refused = 0;
        for _ in QUEUE..MAX_QUERIES_PER_SECOND as usize + 10 {
            let (reply, answer) = oneshot::channel();
            handle.sender.try_send(Request { query: Query::View, reply }).unwrap();
            match tokio::time::timeout(Duration::from_millis(20), queries.next()).await {
                Ok(_request) => taken += 1,
                Err(_) => {
                    refused += 1;
                    assert!(answer.await.is_err(), "dropped unanswered");
                }
            }
        }
        assert_eq!((taken, refused), (MAX_QUERIES_PER_SECOND, 10));
    });
}

/// Real HTTP on loopback: the server with the API, the same without (`--api off`), and the
/// `arpwatch status` client.
#[test]
fn over_http_the_api_and_page_answer_and_api_off_hides_them() {
    runtime().block_on(async {
        let (mut pipeline, config) = pipeline();
        feed(&mut pipeline, incident());
        let metrics = Metrics::new(&config, &MetricsOptions::default());
        let (handle, mut queries) = channel("node-a");
        let on = MetricsServer::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let off = MetricsServer::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let (on_addr, off_addr) = (on.local_addr(), off.local_addr());
        tokio::spawn(on.run(metrics.exporter(), Some(handle)));
        tokio::spawn(off.run(metrics.exporter(), None));
        let fetch = |addr: SocketAddr, path: &'static str| {
            tokio::task::spawn_blocking(move || client::get(&addr.to_string(), path))
        };
        let mut work = pin!(async {
            let vip = fetch(on_addr, "/api/v1/ips/192.0.2.10").await.unwrap().unwrap();
            assert_eq!(vip.0, 200);
            assert_eq!(vip.1["ip"]["claims"].as_array().unwrap().len(), 2);
            assert_eq!(fetch(on_addr, "/").await.unwrap().unwrap().0, 200);
            assert_eq!(fetch(on_addr, "/metrics").await.unwrap().unwrap().0, 200);
            for path in ["/api/v1/ips", "/", "/api/v1/ips/192.0.2.10"] {
                let (status, _) = fetch(off_addr, path).await.unwrap().unwrap();
                assert_eq!(status, 404, "--api off: {path}");
            }
            assert_eq!(fetch(off_addr, "/metrics").await.unwrap().unwrap().0, 200);

            // `arpwatch status` against it: a CIDR over the pages, an IP, an unknown IP.
            let plan = crate::plan::StatusPlan {
                targets: vec![
                    "192.0.2.8/29".parse().unwrap(),
                    "192.0.2.3/32".parse().unwrap(),
                    "203.0.113.7/32".parse().unwrap(),
                ],
                server: on_addr.to_string(),
                format: Format::Json,
            };
            let report =
                tokio::task::spawn_blocking(move || client::collect(&plan)).await.unwrap().unwrap();
            let ips: Vec<&str> = report["ips"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["ip"].as_str().unwrap())
                .collect();
            assert_eq!(ips, ["192.0.2.3", VIP]);
            assert_eq!(report["unknown"], serde_json::json!(["203.0.113.7"]));
            assert_eq!(report["node"], "node-a");
            let table = client::table(&report);
            assert!(
                table.contains(A) && table.contains(B) && table.contains("multi_responder"),
                "{table}"
            );

            // --api off as the client sees it: one sentence, no guessing.
            let plan = crate::plan::StatusPlan {
                targets: vec![],
                server: off_addr.to_string(),
                format: Format::Json,
            };
            let err = tokio::task::spawn_blocking(move || client::collect(&plan))
                .await
                .unwrap()
                .unwrap_err();
            assert!(err.contains("does not serve the status API"), "{err}");
        });
        loop {
            tokio::select! {
                () = &mut work => break,
                request = queries.next() => pipeline.answer(request, None),
            }
        }
    });
}

#[test]
fn the_client_says_in_one_sentence_when_the_agent_cannot_be_reached() {
    // A port nobody listens on: bind one, note it, close it.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let plan =
        crate::plan::StatusPlan { targets: vec![], server: addr.to_string(), format: Format::Text };
    let err = client::collect(&plan).unwrap_err();
    assert!(err.starts_with(&format!("cannot reach the agent at {addr}")), "{err}");
    assert_eq!(err.lines().count(), 1);
}

#[test]
fn the_kernel_counters_go_by_direction() {
    let totals = crate::kernel::CounterTotals::default();
    let counters = kernel_counters(&totals);
    assert_eq!(counters.ingress, DirectionCounters::default());
}

// ---------------------------------------------------------------- schema

fn api_schema() -> Value {
    serde_json::from_str(include_str!("../../../docs/schema/arpwatch-api.schema.json")).unwrap()
}

/// `value` is one of the responses the schema describes.
fn check_response(value: &Value) {
    let schema = api_schema();
    assert_eq!(
        schema["$defs"]["ips_response"]["properties"]["api_version"]["const"],
        API_VERSION_VALUE
    );
    check_against(value, &schema, &schema["$defs"]);
    for event in value["events"].as_array().into_iter().flatten() {
        check_event(event);
    }
}

const API_VERSION_VALUE: u32 = arpwatch_core::status::API_VERSION;

fn check_event(event: &Value) {
    let events: Value =
        serde_json::from_str(include_str!("../../../docs/schema/arpwatch-events.schema.json"))
            .unwrap();
    check_against(event, &events["$defs"]["event"], &events["$defs"]);
}

#[test]
fn the_schema_describes_every_response_and_the_sample_view_fields() {
    let schema = api_schema();
    let defs = &schema["$defs"];
    let sample = serde_json::to_value(arpwatch_core::status::sample()).unwrap();
    for ip in sample["ips"].as_array().unwrap() {
        check_against(ip, &defs["ip_status"], defs);
    }
    for condition in sample["conditions"].as_array().unwrap() {
        check_against(condition, &defs["condition"], defs);
    }
}
