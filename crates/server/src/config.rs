//! Loading a service's configuration the same way everywhere: its
//! defaults, then a TOML file, then `HOOKLINE_*` environment variables
//! (nested keys joined with `__`).
//!
//! The file is strict: an unknown key is an error, so a typo is caught.
//! Environment variables are shared by all services (one ConfigMap for the
//! whole deployment), so each service takes only the variables naming one
//! of its own keys and leaves the others' alone.

use std::{collections::HashSet, path::Path};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use serde::{Serialize, de::DeserializeOwned};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("config file {0} does not exist")]
    MissingFile(String),
    #[error("{0}")]
    Invalid(#[from] Box<figment::Error>),
}

/// A configuration that could not be loaded or broke a rule; the message
/// is for the operator.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Invalid(String),
}

/// A service's configuration: what `load_validated` needs of it.
pub trait ServiceConfig: Serialize + DeserializeOwned + Default {
    /// Every rule the configuration must follow.
    fn validate(&self) -> Result<(), ConfigError>;
}

/// [`load`], then [`ServiceConfig::validate`].
pub fn load_validated<T: ServiceConfig>(file: Option<&Path>) -> Result<T, ConfigError> {
    let config: T = load(file).map_err(|e| ConfigError::Invalid(e.to_string()))?;
    config.validate()?;
    Ok(config)
}

/// Defaults of `T`, then `file`, then the `HOOKLINE_*` variables naming a
/// key of `T`.
pub fn load<T: Serialize + DeserializeOwned + Default>(file: Option<&Path>) -> Result<T, LoadError> {
    let defaults = T::default();
    let known: HashSet<String> = match serde_json::to_value(&defaults) {
        Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
        _ => HashSet::new(),
    };
    let mut figment = Figment::from(Serialized::defaults(defaults));
    if let Some(path) = file {
        if !path.exists() {
            return Err(LoadError::MissingFile(path.display().to_string()));
        }
        figment = figment.merge(Toml::file(path));
    }
    let env = Env::prefixed("HOOKLINE_").split("__").filter(move |key| {
        let top = key.as_str().split('.').next().unwrap_or_default().to_ascii_lowercase();
        known.contains(&top)
    });
    figment.merge(env).extract().map_err(|e| LoadError::Invalid(Box::new(e)))
}

/// Checks every service makes, each answering a sentence to show the
/// operator.
pub mod checks {
    use hookline_auth::AuthConfig;

    /// The address of another hookline service.
    pub fn service_url(key: &str, url: &str) -> Result<(), String> {
        if url.starts_with("http://") || url.starts_with("https://") {
            Ok(())
        } else {
            Err(format!("{key} must be an http:// or https:// address (got `{url}`)"))
        }
    }

    pub fn partitions(count: u16) -> Result<(), String> {
        if (1..=1024).contains(&count) { Ok(()) } else { Err("partitions must be between 1 and 1024".into()) }
    }

    /// At least one client token; the service token when the service calls
    /// the others; a configuration the authenticator accepts.
    pub fn auth(auth: &AuthConfig, needs_service_token: bool) -> Result<(), String> {
        if auth.tokens.is_empty() {
            return Err(
                "auth.tokens is empty: configure at least one token (HOOKLINE_AUTH__TOKENS='[{token=\"...\",admin=true}]')"
                    .into(),
            );
        }
        if needs_service_token && auth.service_token.is_none() {
            return Err("auth.service_token is required: this service presents it to the subscription service".into());
        }
        auth.authenticator().map(|_| ()).map_err(|e| e.to_string())
    }
}
