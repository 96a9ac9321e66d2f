//! The web console: a static single-page app served at `GET /` and `GET /console/{file}`.
//!
//! The assets (plain HTML, CSS and ES modules written for Sluice, no third-party code) live in
//! `crates/server/console/` and are embedded in the binary at compile time, so the console
//! works offline and without Node. Each response carries `Cache-Control: no-cache` and a strong
//! `ETag` (a 64-bit FNV-1a hash of the content, computed once); a matching `If-None-Match`
//! gets `304 Not Modified`.

use std::sync::LazyLock;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// One embedded console file.
#[derive(Debug, Clone, Copy)]
pub struct ConsoleAsset {
    /// File name under `/console/` (`index.html` is also served at `/`).
    pub name: &'static str,
    /// The `Content-Type` it is served with.
    pub content_type: &'static str,
    /// The file's bytes.
    pub body: &'static str,
}

/// Every file of the console, embedded at compile time.
pub const CONSOLE_ASSETS: [ConsoleAsset; 7] = [
    asset("index.html", HTML, include_str!("../console/index.html")),
    asset("style.css", CSS, include_str!("../console/style.css")),
    asset("app.js", JS, include_str!("../console/app.js")),
    asset("api.js", JS, include_str!("../console/api.js")),
    asset("chart.js", JS, include_str!("../console/chart.js")),
    asset("player.js", JS, include_str!("../console/player.js")),
    asset("format.js", JS, include_str!("../console/format.js")),
];

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";

/// The console's Content-Security-Policy: only its own scripts and styles, media from blob:
/// URLs (Media Source Extensions), requests to this origin only.
pub const CONSOLE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; media-src 'self' blob:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; frame-ancestors 'none'";

const fn asset(name: &'static str, content_type: &'static str, body: &'static str) -> ConsoleAsset {
    ConsoleAsset {
        name,
        content_type,
        body,
    }
}

/// The ETags of [`CONSOLE_ASSETS`], index for index, computed on first use.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    CONSOLE_ASSETS
        .iter()
        .map(|a| format!("\"{:016x}\"", fnv1a64(a.body.as_bytes())))
        .collect()
});

/// 64-bit FNV-1a: a stable content hash (not for security; it only names a version).
fn fnv1a64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Finds an embedded asset by file name.
pub fn console_asset(name: &str) -> Option<ConsoleAsset> {
    CONSOLE_ASSETS.iter().copied().find(|a| a.name == name)
}

/// `GET /`: the console page.
pub(crate) async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers).unwrap_or_else(not_found)
}

/// Serves asset `name` honouring `If-None-Match`, or `None` when there is no such asset.
pub(crate) fn serve(name: &str, headers: &HeaderMap) -> Option<Response> {
    let i = CONSOLE_ASSETS.iter().position(|a| a.name == name)?;
    let a = CONSOLE_ASSETS.get(i)?;
    let etag = ETAGS.get(i)?;
    let fresh = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*");
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, a.content_type)], a.body).into_response()
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if a.content_type == HTML {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONSOLE_CSP),
        );
    }
    Some(resp)
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "no such console file",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn etag_of(r: &Response) -> String {
        r.headers()[header::ETAG].to_str().unwrap().to_owned()
    }

    #[test]
    fn fnv_matches_reference_vectors() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn every_asset_is_served_with_type_cache_and_etag() {
        let none = HeaderMap::new();
        for a in CONSOLE_ASSETS {
            let r = serve(a.name, &none).expect(a.name);
            assert_eq!(r.status(), StatusCode::OK, "{}", a.name);
            assert_eq!(r.headers()[header::CONTENT_TYPE], a.content_type);
            assert_eq!(r.headers()[header::CACHE_CONTROL], "no-cache");
            let etag = etag_of(&r);
            assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() == 18);
            assert!(!a.body.is_empty());
        }
        assert!(serve("nope.js", &none).is_none());
        assert!(serve("../Cargo.toml", &none).is_none());
        assert!(console_asset("app.js").is_some());
    }

    #[test]
    fn etags_differ_between_files() {
        let mut tags: Vec<&String> = ETAGS.iter().collect();
        tags.sort();
        tags.dedup();
        assert_eq!(tags.len(), CONSOLE_ASSETS.len());
    }

    #[test]
    fn if_none_match_gives_304() {
        let first = serve("app.js", &HeaderMap::new()).unwrap();
        let etag = etag_of(&first);
        for value in [
            etag.clone(),
            format!("W/{etag}"),
            format!("\"x\", {etag}"),
            "*".into(),
        ] {
            let mut h = HeaderMap::new();
            h.insert(
                header::IF_NONE_MATCH,
                HeaderValue::from_str(&value).unwrap(),
            );
            let r = serve("app.js", &h).unwrap();
            assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "{value}");
            assert_eq!(etag_of(&r), etag);
        }
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"stale\""));
        assert_eq!(serve("app.js", &h).unwrap().status(), StatusCode::OK);
    }

    #[test]
    fn page_references_only_embedded_local_assets() {
        let html = console_asset("index.html").unwrap().body;
        for a in CONSOLE_ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            // Every module is reachable: the page loads app.js, which imports the others.
            let all: String = CONSOLE_ASSETS.iter().map(|x| x.body).collect();
            assert!(
                all.contains(&format!("./{}", a.name))
                    || all.contains(&format!("/console/{}", a.name)),
                "{} unreferenced",
                a.name
            );
        }
        assert!(html.contains("/console/app.js") && html.contains("/console/style.css"));
        // No CDN, no external fonts: nothing but same-origin URLs.
        for a in CONSOLE_ASSETS {
            for bad in [
                "https://",
                "src=\"http",
                "href=\"http",
                "url(http",
                "@import",
            ] {
                assert!(!a.body.contains(bad), "{} contains {bad}", a.name);
            }
        }
        // A favicon is inline, so the browser never asks for /favicon.ico.
        assert!(html.contains("rel=\"icon\"") && html.contains("data:image/svg+xml"));
    }

    #[test]
    fn html_gets_a_content_security_policy() {
        let r = serve("index.html", &HeaderMap::new()).unwrap();
        assert_eq!(r.headers()[header::CONTENT_SECURITY_POLICY], CONSOLE_CSP);
        let r = serve("app.js", &HeaderMap::new()).unwrap();
        assert!(r.headers().get(header::CONTENT_SECURITY_POLICY).is_none());
    }
}
