//! Stream patterns (`live/*`): `[[auth.rules]]`, the JWT `stream` claim, `record.streams`.

/// `*` matches any run of characters; everything else matches itself.
///
/// The classic greedy matcher with one backtrack point (the last `*`): O(pattern × key) in
/// the worst case, never exponential, whatever the number of stars (the key comes from the
/// client). Bytes are compared: a literal of the pattern starts on a character boundary, so it
/// can only match the key on one.
pub fn pattern_matches(pattern: &str, key: &str) -> bool {
    let (p, k) = (pattern.as_bytes(), key.as_bytes());
    let (mut pi, mut ki) = (0, 0);
    // After the last star seen: where the pattern resumes, and the key position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while ki < k.len() {
        match (p.get(pi), k.get(ki)) {
            (Some(b'*'), _) => {
                pi += 1;
                star = Some((pi, ki));
            }
            (Some(a), Some(b)) if a == b => {
                pi += 1;
                ki += 1;
            }
            _ => match star {
                // Let the last star swallow one more byte and retry from there.
                Some((resume, tried)) => {
                    pi = resume;
                    ki = tried + 1;
                    star = Some((resume, tried + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_with_stars() {
        assert!(pattern_matches("*", "live/a"));
        assert!(pattern_matches("live/*", "live/a"));
        assert!(!pattern_matches("live/*", "other/a"));
        assert!(pattern_matches("*/cam*", "x/cam2"));
        assert!(pattern_matches("live/a", "live/a"));
        assert!(!pattern_matches("live/a", "live/ab"));
        assert!(pattern_matches("live/**", "live/"));
        assert!(pattern_matches("a*b*c", "aXbYbZc"));
        assert!(!pattern_matches("a*b*c", "aXbYbZ"));
        assert!(pattern_matches("ü*", "üx"));
        assert!(!pattern_matches("", "x"));
        assert!(pattern_matches("", ""));
    }

    /// The exponential case the `auth_cidr_rule` fuzz target found (a slow unit): many stars
    /// and a key that almost matches. Checked against a naive reference on small cases too.
    #[test]
    fn many_stars_stay_linear_and_agree_with_a_reference() {
        fn reference(p: &[u8], k: &[u8]) -> bool {
            match p.split_first() {
                None => k.is_empty(),
                Some((b'*', rest)) => (0..=k.len()).any(|i| reference(rest, &k[i..])),
                Some((c, rest)) => k.first() == Some(c) && reference(rest, &k[1..]),
            }
        }
        let pattern = format!("{}e/*x", "*".repeat(40));
        let key = "e/".repeat(200);
        assert!(!pattern_matches(&pattern, &key));
        let mut seed = 7u32;
        for _ in 0..5000 {
            let mut next = |n: u32| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                seed % n
            };
            let p: String = (0..next(6))
                .map(|_| ['a', 'b', '*'][next(3) as usize])
                .collect();
            let k: String = (0..next(7)).map(|_| ['a', 'b'][next(2) as usize]).collect();
            assert_eq!(
                pattern_matches(&p, &k),
                reference(p.as_bytes(), k.as_bytes()),
                "{p:?} {k:?}"
            );
        }
    }
}
