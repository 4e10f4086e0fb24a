//! The endpoint URL of a subscription.
//!
//! Checked here: scheme, host, no credentials, length. Whether the host
//! resolves to a public address is decided by the delivery service at
//! connect time (DNS can change after a subscription is created).

use std::fmt;

use serde::{Deserialize, Serialize};
use url::Url;

use crate::ValidationError;

/// A checked endpoint URL, with what each delivery attempt needs of it
/// made once: the request target, the text logs show and the breaker's
/// key (every attempt used to derive them again).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EndpointUrl {
    url: Url,
    /// `None` when `http` cannot carry it as a request target.
    target: Option<http::Uri>,
    redacted: String,
    endpoint: String,
}

impl EndpointUrl {
    pub const MAX_LEN: usize = 2048;

    pub fn parse(text: &str) -> Result<Self, ValidationError> {
        let err = |reason: String| ValidationError::new("url", reason);
        if text.is_empty() {
            return Err(err("is required".into()));
        }
        if text.len() > Self::MAX_LEN {
            return Err(err(format!("is longer than {} characters", Self::MAX_LEN)));
        }
        let url = Url::parse(text).map_err(|e| err(format!("`{text}` is not a valid URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(err(format!("must use http or https, not `{}`", url.scheme())));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(err("has no host".into()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(err("must not contain credentials; send them in `headers` instead".into()));
        }
        if url.fragment().is_some() {
            return Err(err("must not contain a #fragment".into()));
        }
        let target = url.as_str().parse().ok();
        let host = url.host_str().unwrap_or_default();
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        let rest = if url.path() == "/" && url.query().is_none() { "/" } else { "/…" };
        let redacted = format!("{}://{host}{port}{rest}", url.scheme());
        let port = url.port_or_known_default().unwrap_or(0);
        let endpoint = format!("{}://{host}:{port}{}", url.scheme(), url.path());
        Ok(Self { url, target, redacted, endpoint })
    }

    pub fn is_https(&self) -> bool {
        self.url.scheme() == "https"
    }

    pub fn as_url(&self) -> &Url {
        &self.url
    }

    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    /// The URL as an HTTP request's target; `None` when `http` cannot carry
    /// it (then nothing can be sent to it).
    pub fn target(&self) -> Option<&http::Uri> {
        self.target.as_ref()
    }

    /// The URL as logs, spans and operational events show it: scheme, host
    /// and port only, the path cut to `/…` (Slack-style URLs keep their
    /// secret in the path, others in the query).
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// The endpoint deliveries to this URL go to, as one circuit breaker
    /// counts it: scheme, host, port and path (the query left out).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

impl fmt::Display for EndpointUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str())
    }
}

impl TryFrom<String> for EndpointUrl {
    type Error = ValidationError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<EndpointUrl> for String {
    fn from(u: EndpointUrl) -> String {
        u.url.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_and_https_urls_are_accepted_and_normalised() {
        let u = EndpointUrl::parse("HTTPS://Example.com/hook?x=1").expect("valid");
        assert_eq!(u.as_str(), "https://example.com/hook?x=1");
        assert_eq!(u.redacted(), "https://example.com/…");
        assert_eq!(
            EndpointUrl::parse("https://hooks.slack.com:8443/services/T0/B0/secret").expect("valid").redacted(),
            "https://hooks.slack.com:8443/…"
        );
        assert_eq!(EndpointUrl::parse("https://example.com").expect("valid").redacted(), "https://example.com/");
        assert!(EndpointUrl::parse("http://127.0.0.1:8080/").is_ok());
    }

    #[test]
    fn endpoints_are_urls_without_query_so_paths_on_one_host_are_apart() {
        let parse = |u: &str| EndpointUrl::parse(u).expect("valid");
        assert_eq!(parse("https://Example.com/a?b=c").endpoint(), "https://example.com:443/a");
        assert_ne!(parse("https://hooks.example.com/1").endpoint(), parse("https://hooks.example.com/2").endpoint());
        let target = parse("http://127.0.0.1:8080/hook?x=1");
        assert_eq!(target.target().map(ToString::to_string).as_deref(), Some("http://127.0.0.1:8080/hook?x=1"));
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        let cases = [
            ("", "required"),
            ("example.com/hook", "not a valid URL"),
            ("ftp://example.com/", "http or https"),
            ("https://user:pw@example.com/", "credentials"),
            ("https://example.com/#frag", "fragment"),
        ];
        for (text, expected) in cases {
            let err = EndpointUrl::parse(text).expect_err(text);
            assert!(err.reason.contains(expected), "{text}: {err}");
        }
    }
}
