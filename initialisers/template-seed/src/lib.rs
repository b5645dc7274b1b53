//! TemplateSeed: fills the reserved `__template__` workspace, from which `WorkspaceInit`
//! copies new workspaces, with the contents of a JSON seed file `{type: {key: value}}`.
//!
//! Parameters:
//! - `config_file` (required): the seed file's path; the operator must grant it.
//! - `overwrite` (default `false`): on a re-run (the flag changed), `true` rewrites every
//!   entry; `false` adds only the keys the template lacks, keeping an operator's edits.
//!
//! The first run writes every entry in one `config.put`. Matches TrustGraph 2.4.4.

use bootstrap_guest::seed::{SeedTree, TEMPLATE_WORKSPACE, WriteMode};
use bootstrap_guest::{Description, Error, Initialiser, Parameters, Params, ParamsError};
use bootstrap_guest::{export_initialiser, info};
use serde::Deserialize;

/// The parameters this initialiser reads.
#[derive(Debug, Deserialize, PartialEq)]
struct Settings {
    config_file: String,
    #[serde(default)]
    overwrite: bool,
}

impl Parameters for Settings {
    fn check(&self) -> Result<(), ParamsError> {
        if self.config_file.is_empty() {
            return Err(ParamsError::new("config_file", "must not be empty"));
        }
        Ok(())
    }
}

struct TemplateSeed;

impl Initialiser for TemplateSeed {
    fn describe() -> Description {
        Description::new("Seeds the __template__ workspace from a JSON seed file")
    }

    fn validate(params: &Params) -> Result<Vec<String>, String> {
        params.validate_as::<Settings>()
    }

    fn run(params: &Params, old_flag: Option<&str>, _new_flag: &str) -> Result<(), Error> {
        let settings: Settings = params.read()?;
        let seed = SeedTree::load_file(&settings.config_file)?;
        let mode = WriteMode::for_run(old_flag, settings.overwrite);
        let written = seed.write(TEMPLATE_WORKSPACE, mode)?;
        match mode {
            WriteMode::All => info!("Template seeded with {written} entries"),
            WriteMode::MissingOnly => info!("Template upsert-missing: {written} new entries"),
        }
        Ok(())
    }
}

export_initialiser!(TemplateSeed);

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(json: &str) -> Result<Vec<String>, String> {
        TemplateSeed::validate(&Params::from_json(json).unwrap())
    }

    #[test]
    fn config_file_is_required_and_overwrite_defaults_to_false() {
        let params = Params::from_json(r#"{"config_file": "/seed.json"}"#).unwrap();
        assert_eq!(params.read::<Settings>().unwrap(), Settings { config_file: "/seed.json".into(), overwrite: false });
        assert_eq!(validate("{}").unwrap_err(), "missing required parameter `config_file`");
        assert_eq!(validate(r#"{"config_file": ""}"#).unwrap_err(), "parameter `config_file`: must not be empty");
    }

    #[test]
    fn wrong_types_name_the_parameter() {
        let error = validate(r#"{"config_file": "/s", "overwrite": "yes"}"#).unwrap_err();
        assert!(error.starts_with("parameter `overwrite`: invalid type"), "{error}");
    }

    #[test]
    fn only_undocumented_parameters_draw_warnings() {
        let warnings = validate(r#"{"config_file": "/s", "overwrite": true, "overwirte": true}"#).unwrap();
        assert!(matches!(&warnings[..], [only] if only.starts_with("unknown parameter `overwirte`")), "{warnings:?}");
    }

    #[test]
    fn describe_waits_for_the_services() {
        assert!(TemplateSeed::describe().wait_for_services);
    }
}
