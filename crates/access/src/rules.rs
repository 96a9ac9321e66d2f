//! Which rule applies to a stream, its IP lists, and the mode it asks for.

use std::net::IpAddr;

use crate::Action;
use crate::pattern::pattern_matches;
use crate::refusal::{Reason, Refusal};
use config::cidr::{Cidr, any_contains, parse_list};
use config::{AuthConfig, AuthMode};

#[derive(Debug, Clone)]
struct Rule {
    pattern: String,
    publish: AuthMode,
    play: AuthMode,
    allow: Vec<Cidr>,
    deny: Vec<Cidr>,
}

/// The rules of `[auth]`, with parsed CIDRs.
#[derive(Debug, Clone)]
pub struct Rules {
    publish: AuthMode,
    play: AuthMode,
    rules: Vec<Rule>,
}

impl Rules {
    /// Compiles `cfg` (validated: invalid CIDRs were refused there).
    pub fn new(cfg: &AuthConfig) -> Self {
        Self {
            publish: cfg.publish,
            play: cfg.play,
            rules: cfg
                .rules
                .iter()
                .map(|r| Rule {
                    pattern: r.pattern.clone(),
                    publish: r.publish,
                    play: r.play,
                    allow: parse_list(&r.allow_ips),
                    deny: parse_list(&r.deny_ips),
                })
                .collect(),
        }
    }

    /// The mode `action` on `key` (`app/stream`) needs, after the first matching rule's IP
    /// lists admitted `ip`. A `deny` mode is returned as a refusal.
    pub fn decide(
        &self,
        action: Action,
        key: &str,
        ip: Option<IpAddr>,
    ) -> Result<AuthMode, Refusal> {
        let (mode, rule) = match self.rules.iter().find(|r| pattern_matches(&r.pattern, key)) {
            Some(r) => (
                match action {
                    Action::Publish => r.publish,
                    Action::Play => r.play,
                },
                Some(r),
            ),
            None => (
                match action {
                    Action::Publish => self.publish,
                    Action::Play => self.play,
                },
                None,
            ),
        };
        if let Some(r) = rule {
            let denied = ip.is_some_and(|ip| any_contains(&r.deny, ip));
            let outside = !r.allow.is_empty() && !ip.is_some_and(|ip| any_contains(&r.allow, ip));
            if denied || outside {
                return Err(Refusal::new(
                    Reason::IpDenied,
                    "this client address may not access this stream",
                ));
            }
        }
        if mode == AuthMode::Deny {
            return Err(Refusal::new(
                Reason::DenyRule,
                format!("{} is not allowed on this stream", action.as_str()),
            ));
        }
        Ok(mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::AuthRule;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn first_matching_rule_wins_else_defaults() {
        let cfg = AuthConfig {
            publish: AuthMode::Token,
            play: AuthMode::Open,
            rules: vec![
                AuthRule {
                    pattern: "live/secret*".into(),
                    publish: AuthMode::Deny,
                    play: AuthMode::Webhook,
                    ..AuthRule::default()
                },
                AuthRule {
                    pattern: "live/*".into(),
                    publish: AuthMode::Open,
                    play: AuthMode::Token,
                    ..AuthRule::default()
                },
            ],
            ..AuthConfig::default()
        };
        let r = Rules::new(&cfg);
        let none = ip("192.0.2.1");
        assert_eq!(
            r.decide(Action::Play, "live/secret1", none),
            Ok(AuthMode::Webhook)
        );
        assert_eq!(
            r.decide(Action::Publish, "live/secret1", none)
                .unwrap_err()
                .reason,
            Reason::DenyRule
        );
        assert_eq!(
            r.decide(Action::Publish, "live/a", none),
            Ok(AuthMode::Open)
        );
        assert_eq!(r.decide(Action::Play, "live/a", none), Ok(AuthMode::Token));
        assert_eq!(
            r.decide(Action::Publish, "other/a", none),
            Ok(AuthMode::Token)
        );
        assert_eq!(r.decide(Action::Play, "other/a", none), Ok(AuthMode::Open));
    }

    #[test]
    fn ip_lists() {
        let cfg = AuthConfig {
            rules: vec![AuthRule {
                pattern: "*".into(),
                allow_ips: vec!["10.0.0.0/8".into(), "2001:db8::/32".into()],
                deny_ips: vec!["10.9.0.0/16".into()],
                ..AuthRule::default()
            }],
            ..AuthConfig::default()
        };
        let r = Rules::new(&cfg);
        assert!(r.decide(Action::Play, "a/b", ip("10.1.2.3")).is_ok());
        assert!(r.decide(Action::Play, "a/b", ip("2001:db8::5")).is_ok());
        for bad in [ip("10.9.1.1"), ip("192.0.2.1"), ip("::1"), None] {
            assert_eq!(
                r.decide(Action::Publish, "a/b", bad).unwrap_err().reason,
                Reason::IpDenied,
                "{bad:?}"
            );
        }
    }
}
