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
