//! The portal's configuration: defaults, then a TOML file, then
//! `HOOKLINE_*` environment variables, validated before anything starts.

use std::net::SocketAddr;

use hookline_server::config::{ConfigError, ServiceConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// HTTP listen address of the pages.
    pub listen_addr: SocketAddr,
    /// Admin HTTP address (`/healthz`, `/readyz`, `/metrics`); unset: off.
    pub admin_addr: Option<SocketAddr>,
    /// The subscription service (exchanges links, lists endpoints).
    pub subscriptions_url: String,
    /// The delivery service (the delivery log).
    pub delivery_url: String,
    /// Mark the session cookie `Secure` (sent over HTTPS only). Turn off
    /// only to serve plain HTTP on a developer's machine.
    pub secure_cookies: bool,
    /// Who may show the portal in an iframe (CSP `frame-ancestors`), e.g.
    /// `["https://app.example.com"]`; empty: nobody.
    pub frame_ancestors: Vec<String>,
    pub brand: Brand,
}

/// What the pages look like.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Brand {
    /// Shown in the header and the title.
    pub name: String,
    /// `#rrggbb`: links, buttons and the header's rule.
    pub primary_color: String,
}

impl Default for Brand {
    fn default() -> Self {
        Self { name: "Webhooks".into(), primary_color: "#2457c5".into() }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            admin_addr: None,
            subscriptions_url: "http://127.0.0.1:50051".into(),
            delivery_url: "http://127.0.0.1:50053".into(),
            secure_cookies: true,
            frame_ancestors: Vec::new(),
            brand: Brand::default(),
        }
    }
}

impl Config {
    /// Defaults, then `file`, then `HOOKLINE_*` variables; then validates.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        hookline_server::config::load_validated(file)
    }
}

impl ServiceConfig for Config {
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        for (name, value) in [("subscriptions_url", &self.subscriptions_url), ("delivery_url", &self.delivery_url)] {
            if !value.starts_with("http://") && !value.starts_with("https://") {
                return invalid(format!("{name}: must be an http:// or https:// URL"));
            }
        }
        let color = self.brand.primary_color.strip_prefix('#').unwrap_or_default();
        if color.len() != 6 || !color.chars().all(|c| c.is_ascii_hexdigit()) {
            return invalid("brand.primary_color: write it as #rrggbb".into());
        }
        if self.brand.name.is_empty() || self.brand.name.len() > 64 {
            return invalid("brand.name: 1 to 64 characters".into());
        }
        for origin in &self.frame_ancestors {
            let parsed = url::Url::parse(origin).ok().filter(|u| u.path() == "/" && u.query().is_none());
            if parsed.is_none() || origin.contains([' ', ';', '\'']) {
                return invalid(format!("frame_ancestors: `{origin}` is not an origin like https://app.example.com"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_names_and_frame_ancestors_are_checked() {
        assert!(Config::default().validate().is_ok());
        let with = |f: fn(&mut Config)| {
            let mut c = Config::default();
            f(&mut c);
            c.validate().is_err()
        };
        assert!(with(|c| c.brand.primary_color = "red; } body { display: none".into()));
        assert!(with(|c| c.brand.primary_color = "#12345".into()));
        assert!(with(|c| c.brand.name = String::new()));
        assert!(with(|c| c.frame_ancestors = vec!["https://a.example.com; script-src *".into()]));
        assert!(with(|c| c.frame_ancestors = vec!["https://a.example.com/path".into()]));
        assert!(with(|c| c.delivery_url = "127.0.0.1:50053".into()));
        let ok = Config { frame_ancestors: vec!["https://app.example.com".into()], ..Config::default() };
        assert!(ok.validate().is_ok());
    }
}
