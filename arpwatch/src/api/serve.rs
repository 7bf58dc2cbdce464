//! The HTTP side of the status API: paths and parameters checked, the watch loop asked, the
//! answer serialised. Every response is JSON with `"api_version"` (the page at `/` is HTML).

use std::net::IpAddr;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Response, StatusCode};
use serde_json::{json, Value};

use arpwatch_core::observation::Timestamp;
use arpwatch_core::status::API_VERSION;

use super::{page, Answer, ApiHandle, Query, Unanswered, DEFAULT_LIMIT, MAX_LIMIT};

const ENDPOINTS: &str =
    "/api/v1/ips, /api/v1/ips/{ip}, /api/v1/conditions, /api/v1/events, / (the status page)";

/// The response to `method` `path` `?query`, for a path under `/api/` or `/`.
pub async fn respond(
    api: &ApiHandle,
    method: &Method,
    path: &str,
    query: Option<&str>,
) -> Response<Full<Bytes>> {
    let Some(route) = Route::of(path) else {
        return error(StatusCode::NOT_FOUND, format!("no such endpoint {path}; try {ENDPOINTS}"));
    };
    if method != Method::GET && method != Method::HEAD {
        let mut response =
            error(StatusCode::METHOD_NOT_ALLOWED, "the status API is read-only: only GET and HEAD");
        response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let query = match route.query(query.unwrap_or("")) {
        Ok(query) => query,
        Err(problem) => return error(StatusCode::BAD_REQUEST, problem),
    };
    let answer = match api.ask(query.clone()).await {
        Ok(answer) => answer,
        Err(why) => {
            let message = match why {
                Unanswered::Busy => "the agent is busy: too many status queries, try again",
                Unanswered::Timeout => "the agent did not answer in time, try again",
                Unanswered::Stopped => "the agent is stopping",
            };
            return error(StatusCode::SERVICE_UNAVAILABLE, message);
        }
    };
    let node = api.node();
    let body = match answer {
        Answer::NoEngine if route == Route::Page => {
            let mut view = super::empty_view(crate::metrics::wall_clock_now());
            view.node = Some(node.clone());
            return html(page::render(&view));
        }
        Answer::NoEngine => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the agent runs with --raw: it prints observations and has no detection state",
            )
        }
        Answer::View(mut view) => {
            view.node = Some(node.clone());
            return html(page::render(&view));
        }
        Answer::Ips { ips, more, total } => {
            let Query::Ips { limit, .. } = query else { unreachable!("asked for IPs") };
            let next = more.then(|| {
                let last = ips.last().map(|s| s.ip.to_string()).unwrap_or_default();
                format!("/api/v1/ips?after={last}&limit={limit}")
            });
            json!({ "ips": ips, "total": total, "truncated": more, "next": next })
        }
        Answer::Ip(Some(status)) => json!({ "ip": status }),
        Answer::Ip(None) => {
            let Query::Ip(ip) = query else { unreachable!("asked for an IP") };
            return error(
                StatusCode::NOT_FOUND,
                format!(
                    "{ip} is not known to this agent: it is in no pool and was never seen claimed"
                ),
            );
        }
        Answer::Conditions { conditions, total } => {
            json!({ "conditions": conditions, "total": total, "truncated": total > conditions.len() })
        }
        Answer::Events(slice) => {
            let Query::Events { since, limit, .. } = query else {
                unreachable!("asked for events")
            };
            let events: Vec<Value> =
                slice.events.iter().filter_map(|line| serde_json::from_str(line).ok()).collect();
            let since = since.map(|t| format!("since={}&", t.to_rfc3339())).unwrap_or_default();
            let next = slice
                .more
                .then(|| format!("/api/v1/events?{since}cursor={}&limit={limit}", slice.cursor));
            json!({
                "events": events,
                "truncated": slice.more,
                "next": next,
                "cursor": slice.cursor,
                "oldest": slice.oldest,
                "held": slice.held,
                "forgotten": slice.forgotten,
            })
        }
    };
    let mut body = body;
    if let Value::Object(fields) = &mut body {
        fields.insert("api_version".into(), API_VERSION.into());
        fields.insert("generated".into(), json!(crate::metrics::wall_clock_now()));
        fields.insert("node".into(), json!(node));
    }
    respond_json(StatusCode::OK, &body)
}

/// The endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route<'a> {
    Page,
    Ips,
    Ip(&'a str),
    Conditions,
    Events,
}

impl<'a> Route<'a> {
    fn of(path: &'a str) -> Option<Route<'a>> {
        Some(match path {
            "/" => Route::Page,
            "/api/v1/ips" | "/api/v1/ips/" => Route::Ips,
            "/api/v1/conditions" => Route::Conditions,
            "/api/v1/events" => Route::Events,
            _ => Route::Ip(path.strip_prefix("/api/v1/ips/").filter(|ip| !ip.contains('/'))?),
        })
    }

    /// The query of this route with the parameters of `raw` (`a=1&b=2`), checked.
    fn query(self, raw: &str) -> Result<Query, String> {
        let params = Params::parse(raw)?;
        let query = match self {
            Route::Page => {
                params.only(&[])?;
                Query::View
            }
            Route::Ips => {
                params.only(&["limit", "after"])?;
                let after = params.get("after").map(|a| parse_ip("after", a)).transpose()?;
                Query::Ips { after, limit: params.limit()? }
            }
            Route::Ip(ip) => {
                params.only(&[])?;
                Query::Ip(parse_ip("the path", &percent_decode(ip)?)?)
            }
            Route::Conditions => {
                params.only(&["limit"])?;
                Query::Conditions { limit: params.limit()? }
            }
            Route::Events => {
                params.only(&["since", "cursor", "limit"])?;
                let since = params.get("since").map(parse_since).transpose()?;
                let after = params
                    .get("cursor")
                    .map(|c| {
                        c.parse::<u64>().map_err(|_| {
                            format!("cursor={c}: give the cursor of a previous answer (a number)")
                        })
                    })
                    .transpose()?;
                Query::Events { since, after, limit: params.limit()? }
            }
        };
        Ok(query)
    }
}

/// Query parameters, percent-decoded (`+` stays `+`, as in an RFC 3339 offset).
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(raw: &str) -> Result<Params, String> {
        let mut params = Vec::new();
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = percent_decode(key)?;
            if params.iter().any(|(k, _)| *k == key) {
                return Err(format!("parameter {key} is given twice"));
            }
            params.push((key, percent_decode(value)?));
        }
        Ok(Params(params))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Refuses parameters this endpoint does not take (a typo would otherwise go unnoticed).
    fn only(&self, known: &[&str]) -> Result<(), String> {
        match self.0.iter().find(|(k, _)| !known.contains(&k.as_str())) {
            Some((key, _)) if known.is_empty() => {
                Err(format!("unknown parameter {key}: this endpoint takes none"))
            }
            Some((key, _)) => {
                Err(format!("unknown parameter {key}: this endpoint takes {}", known.join(", ")))
            }
            None => Ok(()),
        }
    }

    /// `limit`: 1 or more, [`DEFAULT_LIMIT`] when absent, at most [`MAX_LIMIT`].
    fn limit(&self) -> Result<usize, String> {
        let Some(raw) = self.get("limit") else {
            return Ok(DEFAULT_LIMIT);
        };
        match raw.parse::<usize>() {
            Ok(0) | Err(_) => Err(format!(
                "limit={raw}: give a number from 1 to {MAX_LIMIT} (larger ones are taken as {MAX_LIMIT})"
            )),
            Ok(n) => Ok(n.min(MAX_LIMIT)),
        }
    }
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("{s:?} has a bad percent-escape"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?} is not UTF-8"))
}

fn parse_ip(what: &str, s: &str) -> Result<IpAddr, String> {
    s.parse().map_err(|_| {
        format!("{what}: {s:?} is not an IPv4 or IPv6 address (e.g. 192.0.2.10, 2001:db8::10)")
    })
}

/// `since`: an RFC 3339 time (e.g. `2026-05-01T10:00:00Z`).
fn parse_since(s: &str) -> Result<Timestamp, String> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|_| format!("since={s}: not an RFC 3339 time such as 2026-05-01T10:00:00Z"))?;
    let ns = u64::try_from(t.unix_timestamp_nanos())
        .map_err(|_| format!("since={s}: before 1970 or too far ahead"))?;
    Ok(Timestamp::from_nanos(ns))
}

fn respond_json(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut bytes = serde_json::to_vec(body).unwrap_or_default();
    bytes.push(b'\n');
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An error response: `{"api_version": 1, "error": "..."}`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response<Full<Bytes>> {
    respond_json(status, &json!({ "api_version": API_VERSION, "error": message.into() }))
}

fn html(page: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(page)));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_parameters_are_checked() {
        let q = |path: &str, raw: &str| Route::of(path).ok_or("no route".to_owned())?.query(raw);
        assert_eq!(q("/api/v1/ips", ""), Ok(Query::Ips { after: None, limit: DEFAULT_LIMIT }));
        assert_eq!(
            q("/api/v1/ips", "limit=5000&after=192.0.2.9"),
            Ok(Query::Ips { after: Some("192.0.2.9".parse().unwrap()), limit: MAX_LIMIT })
        );
        assert_eq!(q("/api/v1/ips/2001:db8::1", ""), Ok(Query::Ip("2001:db8::1".parse().unwrap())));
        assert_eq!(
            q("/api/v1/ips/2001%3Adb8%3A%3A1", ""),
            Ok(Query::Ip("2001:db8::1".parse().unwrap()))
        );
        assert_eq!(
            q("/api/v1/events", "since=2026-05-01T10:00:00%2B02:00&limit=3"),
            Ok(Query::Events {
                since: Some(Timestamp::from_secs(1_777_622_400)),
                after: None,
                limit: 3
            })
        );
        assert_eq!(q("/", ""), Ok(Query::View));
        for (path, raw, says) in [
            ("/api/v1/ips/192.0.2.300", "", "not an IPv4 or IPv6 address"),
            ("/api/v1/ips", "limit=0", "limit=0"),
            ("/api/v1/ips", "limit=ten", "limit=ten"),
            ("/api/v1/ips", "after=x", "after"),
            ("/api/v1/ips", "limt=3", "unknown parameter limt"),
            ("/api/v1/ips", "limit=1&limit=2", "twice"),
            ("/api/v1/events", "since=yesterday", "RFC 3339"),
            ("/api/v1/events", "cursor=-1", "cursor=-1"),
            ("/api/v1/events", "since=1960-01-01T00:00:00Z", "before 1970"),
            ("/api/v1/conditions", "x=%zz", "percent"),
        ] {
            let err = q(path, raw).unwrap_err();
            assert!(err.contains(says), "{path}?{raw}: {err}");
        }
        for path in ["/api", "/api/v2/ips", "/api/v1/ips/192.0.2.1/x", "/index.html"] {
            assert_eq!(Route::of(path), None, "{path}");
        }
    }
}
