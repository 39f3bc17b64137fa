//! [`load`]: the defaults, then the file, the environment and the flags, with every error
//! and warning found on the way.

use std::path::Path;

use super::env;
use super::file;
use super::issue::{ConfigErrors, ConfigIssue, Warning};
use super::layer::Layer;
use super::settings::{Overrides, ServeConfig};

/// The service's configuration: the defaults, overridden by `file` (when given; a file that
/// cannot be read is an error), then by the environment as `env` reads it (`std::env::var`
/// in the service, a map in tests), then by `flags`.
///
/// Returns the configuration with its warnings, or every error found.
pub fn load(
    file: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    flags: &Overrides,
) -> Result<(ServeConfig, Vec<Warning>), ConfigErrors> {
    let gathered = gather(file, env, flags);
    if gathered.errors.is_empty() {
        Ok((gathered.config, gathered.warnings))
    } else {
        Err(ConfigErrors(gathered.errors))
    }
}

/// What [`load`] found: the configuration as far as it could be read, the errors and the
/// warnings.
pub(super) struct Gathered {
    pub(super) config: ServeConfig,
    pub(super) errors: Vec<ConfigIssue>,
    pub(super) warnings: Vec<Warning>,
}

/// What the file, the environment and the flags make, errors and warnings included.
pub(super) fn gather(
    file: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    flags: &Overrides,
) -> Gathered {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut layer = Layer::default();
    if let Some(path) = file {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let checked = file::check(&text, Some(path));
                errors.extend(checked.errors);
                warnings.extend(checked.warnings);
                layer = checked.layer;
            }
            Err(e) => errors.push(ConfigIssue {
                file: Some(path.to_owned()),
                line: None,
                column: None,
                path: String::new(),
                message: format!("cannot read the file: {e}"),
            }),
        }
    }
    env::apply(&mut layer, env, &mut errors);
    flags.apply(&mut layer);
    let schema_from_env = layer.schema_from_env;
    let mut config = layer.resolve();
    warnings.extend(env::schema_ignored(schema_from_env, &config.store));
    config.source = file.map(Path::to_owned);
    Gathered {
        config,
        errors,
        warnings,
    }
}
