//! Credentials in queries: `token=`, `expires=&sign=` (form-encoded, so `+` is a space
//! here, unlike in a path), and the RTMP ways of passing a query.

/// Longest query value considered (a JWT is limited to [`crate::jwt::MAX_TOKEN_LEN`]).
const MAX_QUERY_VALUE: usize = crate::jwt::MAX_TOKEN_LEN;

/// The credentials of a query: (raw, decoded) values of `token`, `expires`, `sign`; the
/// first of each wins.
#[derive(Debug, Default)]
pub struct QueryCredentials {
    /// `token=`: a JWT.
    pub token: Option<(String, String)>,
    /// `expires=`: a signed URL's expiry (unix seconds).
    pub expires: Option<(String, String)>,
    /// `sign=`: a signed URL's signature.
    pub sign: Option<(String, String)>,
}

impl QueryCredentials {
    /// Reads the credentials of a raw query (without `?`); values that are too long or not
    /// printable ASCII are ignored.
    pub fn parse(query: &str) -> Self {
        let mut q = Self::default();
        for pair in query.split('&') {
            let Some((k, v)) = pair.split_once('=') else {
                continue;
            };
            if v.len() > MAX_QUERY_VALUE || !v.bytes().all(|b| b.is_ascii_graphic()) {
                continue;
            }
            let slot = match k {
                "token" => &mut q.token,
                "expires" => &mut q.expires,
                "sign" => &mut q.sign,
                _ => continue,
            };
            if slot.is_none() {
                *slot = Some((v.to_owned(), form_decode(v)));
            }
        }
        q
    }
}

/// Decodes a form-encoded query value: `%XX` escapes and `+` as a space; malformed escapes
/// are kept as they are and bytes that are not UTF-8 are replaced.
pub fn form_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        let hex = |j: usize| b.get(j).and_then(|&h| (h as char).to_digit(16));
        match (c, hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                // Two hex digits: at most 0xFF.
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of `name` in a raw query, form-decoded (the first one wins).
pub fn query_value(query: &str, name: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| form_decode(v))
}

/// Joins two optional queries with `&` (an RTMP stream name's query and the connect query).
pub fn merge_queries(a: Option<&str>, b: Option<&str>) -> Option<String> {
    match (a.filter(|s| !s.is_empty()), b.filter(|s| !s.is_empty())) {
        (Some(a), Some(b)) => Some(format!("{a}&{b}")),
        (Some(x), None) | (None, Some(x)) => Some(x.to_owned()),
        (None, None) => None,
    }
}

/// The query of an RTMP `connect`: the `app` query, else the `tcUrl` query.
pub fn rtmp_connect_query(app_query: Option<&str>, tc_url: Option<&str>) -> Option<String> {
    app_query
        .filter(|q| !q.is_empty())
        .or_else(|| tc_url.and_then(|u| u.split_once('?')).map(|(_, q)| q))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_credentials_and_rtmp_queries() {
        let q = QueryCredentials::parse("a=1&token=x%2Ey&token=second&sign=ab&expires=5");
        assert_eq!(q.token, Some(("x%2Ey".into(), "x.y".into())));
        assert_eq!(q.sign.unwrap().1, "ab");
        assert_eq!(q.expires.unwrap().1, "5");
        assert!(QueryCredentials::parse("token").token.is_none());
        assert_eq!(
            merge_queries(Some("a=1"), Some("b=2")).as_deref(),
            Some("a=1&b=2")
        );
        assert_eq!(merge_queries(Some(""), Some("b=2")).as_deref(), Some("b=2"));
        assert_eq!(merge_queries(None, None), None);
        assert_eq!(
            rtmp_connect_query(None, Some("rtmp://h/live?token=t")).as_deref(),
            Some("token=t")
        );
        assert_eq!(
            rtmp_connect_query(Some("k=1"), Some("rtmp://h/live?token=t")).as_deref(),
            Some("k=1")
        );
        assert_eq!(rtmp_connect_query(None, Some("rtmp://h/live")), None);
    }

    #[test]
    fn form_decoding() {
        assert_eq!(form_decode("a+b%20c%zz"), "a b c%zz");
        assert_eq!(
            query_value("x=1&stream=live%2Fa+b", "stream").as_deref(),
            Some("live/a b")
        );
        assert_eq!(query_value("x=1", "stream"), None);
    }
}
