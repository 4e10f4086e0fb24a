//! The portal's configuration: defaults, then a TOML file, then
//! `HOOKLINE_*` environment variables, validated before anything starts.

use std::net::SocketAddr;

use axum::http::HeaderValue;
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
    /// How often one client may open links (`/enter`).
    pub enter_limit: EnterLimit,
}

/// The rate limit on opening links, per client address. A code cannot be
/// guessed (it carries a MAC), but each try costs the services a call.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnterLimit {
    /// Links opened per minute, sustained, by one client address.
    pub per_minute: u32,
    /// Opened at once before the sustained rate applies.
    pub burst: u32,
    /// Take the client's address from the last `X-Forwarded-For` hop (set
    /// it behind a proxy or ingress that writes that header; otherwise
    /// every subscriber shares the proxy's address).
    pub trust_forwarded_for: bool,
}

impl Default for EnterLimit {
    fn default() -> Self {
        Self { per_minute: 30, burst: 10, trust_forwarded_for: false }
    }
}

/// What the pages look like.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Brand {
    /// Shown in the header and the title.
    pub name: String,
    /// `#rrggbb`: links, buttons and the header's rule.
    pub primary_color: String,
    /// A PNG, SVG, JPEG or WebP file (at most 256 KiB) shown in the header,
    /// served by the portal itself (`/logo`): nothing is fetched from
    /// another host. Unset: the name only.
    pub logo_path: Option<std::path::PathBuf>,
}

/// Largest logo file.
const MAX_LOGO: u64 = 256 * 1024;

impl Default for Brand {
    fn default() -> Self {
        Self { name: "Webhooks".into(), primary_color: "#2457c5".into(), logo_path: None }
    }
}

impl Brand {
    /// The logo's content type and bytes, read once at start.
    pub(crate) fn load_logo(&self) -> Result<Option<(HeaderValue, Vec<u8>)>, ConfigError> {
        let Some(path) = &self.logo_path else { return Ok(None) };
        let invalid = |m: String| ConfigError::Invalid(format!("brand.logo_path: {}: {m}", path.display()));
        let content_type = match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("png") => "image/png",
            Some("svg") => "image/svg+xml",
            Some("jpg" | "jpeg") => "image/jpeg",
            Some("webp") => "image/webp",
            _ => return Err(invalid("must end in .png, .svg, .jpg, .jpeg or .webp".into())),
        };
        let size = std::fs::metadata(path).map_err(|e| invalid(e.to_string()))?.len();
        if size > MAX_LOGO {
            return Err(invalid(format!("{size} bytes; at most {MAX_LOGO}")));
        }
        let bytes = std::fs::read(path).map_err(|e| invalid(e.to_string()))?;
        Ok(Some((HeaderValue::from_static(content_type), bytes)))
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
            enter_limit: EnterLimit::default(),
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
        if self.enter_limit.per_minute == 0 || self.enter_limit.burst == 0 {
            return invalid("enter_limit: per_minute and burst must be at least 1".into());
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
        assert!(with(|c| c.enter_limit.burst = 0));
        let ok = Config { frame_ancestors: vec!["https://app.example.com".into()], ..Config::default() };
        assert!(ok.validate().is_ok());
    }

    #[test]
    fn a_logo_is_read_once_with_its_type_and_bounded_in_size() {
        let dir = std::env::temp_dir().join(format!("hookline-portal-logo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let logo = |name: &str, bytes: usize| {
            let path = dir.join(name);
            std::fs::write(&path, vec![b'x'; bytes]).expect("write");
            Brand { logo_path: Some(path), ..Brand::default() }.load_logo()
        };
        let (content_type, bytes) = logo("logo.svg", 10).expect("readable").expect("a logo");
        assert_eq!((content_type.to_str().expect("ascii"), bytes.len()), ("image/svg+xml", 10));
        assert!(logo("logo.gif", 10).is_err(), "unknown type");
        assert!(logo("big.png", 256 * 1024 + 1).is_err(), "too large");
        assert!(Brand::default().load_logo().expect("no logo").is_none());
        std::fs::remove_dir_all(&dir).ok();
    }
}
