//! WorkspaceInit: creates a workspace and fills its config from the `__template__` workspace
//! (which `TemplateSeed` fills) or from a JSON seed file `{type: {key: value}}`.
//!
//! On TrustGraph 2.4.13 and later (the runtime's `--protocol workspaces`) it first registers
//! the workspace with IAM (`create-workspace`, named by Python's `str.title()` of its id), as
//! upstream 2.11.1 does: IAM records it in `__workspaces__`, config-svc copies the template into
//! it and flow-svc starts serving it. An answer that it exists already counts as success. On
//! TrustGraph 2.4.4 to 2.4.10, which have no IAM, it makes no IAM call, as 2.4.4 does not.
//!
//! Parameters:
//! - `workspace` (default `"default"`): the workspace to populate.
//! - `source` (default `"template"`): `"template"` or `"seed-file"`.
//! - `seed_file` (required when `source` is `"seed-file"`): the seed file's path; the operator
//!   must grant it.
//! - `overwrite` (default `false`): on a re-run (the flag changed), `true` rewrites every
//!   entry; `false` adds only the keys the workspace lacks, keeping in-workspace edits.
//! - `iam_timeout` (default: the runtime's `--request-timeout`, 10 s unless changed, which is
//!   upstream's default too): seconds to wait for IAM's answer, more than 0. The runtime's
//!   `--request-timeout` bounds it: a longer one waits only that long.
//!
//! Its grants, derived by the runtime: config read and write of `workspace`, iam `workspace`,
//! and read of `__template__` or of the seed file.
//!
//! An empty template fails the run (after the registration, as upstream), so it is retried
//! once `TemplateSeed` has run.

use std::time::Duration;

use bootstrap_guest::iam::{self, Registration};
use bootstrap_guest::pystr::title;
use bootstrap_guest::seed::{SeedTree, WriteMode};
use bootstrap_guest::{Context, Description, Error, Initialiser, Parameters, Params, ParamsError};
use bootstrap_guest::{debug, export_initialiser, info};
use bootstrap_upstream::builtins::workspace_init;
use serde::Deserialize;
use serde_json::Number;

/// Where the workspace's contents come from. serde's names must be literals: a test checks
/// them against `workspace_init::SOURCE_*`, which the runtime grants by.
#[derive(Debug, Default, Deserialize, PartialEq)]
enum Source {
    /// The whole `__template__` workspace.
    #[default]
    #[serde(rename = "template")]
    Template,
    /// The file named by `seed_file`.
    #[serde(rename = "seed-file")]
    SeedFile,
}

/// The parameters this initialiser reads.
#[derive(Debug, Deserialize, PartialEq)]
struct Settings {
    #[serde(default = "default_workspace")]
    workspace: String,
    #[serde(default)]
    source: Source,
    #[serde(default)]
    seed_file: Option<String>,
    #[serde(default)]
    overwrite: bool,
    /// Seconds; see the crate docs.
    #[serde(default)]
    iam_timeout: Option<Number>,
}

fn default_workspace() -> String {
    workspace_init::WORKSPACE.into()
}

impl Parameters for Settings {
    fn check(&self) -> Result<(), ParamsError> {
        let has_seed_file = self.seed_file.as_deref().is_some_and(|path| !path.is_empty());
        if self.source == Source::SeedFile && !has_seed_file {
            return Err(ParamsError::new("seed_file", "required when `source` is \"seed-file\""));
        }
        self.iam_timeout().map(drop)
    }
}

impl Settings {
    /// `iam_timeout` as a duration, if given.
    fn iam_timeout(&self) -> Result<Option<Duration>, ParamsError> {
        let Some(seconds) = &self.iam_timeout else { return Ok(None) };
        match seconds.as_f64().and_then(|seconds| Duration::try_from_secs_f64(seconds).ok()) {
            Some(timeout) if !timeout.is_zero() => Ok(Some(timeout)),
            _ => Err(ParamsError::new("iam_timeout", format!("{seconds} is not a number of seconds more than 0"))),
        }
    }

    /// Register the workspace with IAM, where the deployment's services register workspaces.
    fn register(&self) -> Result<(), Error> {
        if !iam::registers_workspaces() {
            return Ok(());
        }
        let workspace = &self.workspace;
        let registration = iam::create_workspace(workspace, &title(workspace), self.iam_timeout()?)
            .context("IAM create-workspace failed")?;
        match registration {
            Registration::AlreadyRegistered => info!("Workspace '{workspace}' already exists in IAM"),
            Registration::Registered => info!("Workspace '{workspace}' created via IAM"),
        }
        Ok(())
    }

    fn load_tree(&self) -> Result<SeedTree, Error> {
        match (&self.source, &self.seed_file) {
            (Source::SeedFile, Some(path)) => SeedTree::load_file(path),
            _ => {
                let tree = SeedTree::load_template()?;
                debug!("Loaded {} template entries across {} types", tree.entry_count(), tree.type_count());
                Ok(tree)
            }
        }
    }
}

struct WorkspaceInit;

impl Initialiser for WorkspaceInit {
    fn describe() -> Description {
        Description::new("Populates a workspace from the __template__ workspace or a seed file")
    }

    fn validate(params: &Params) -> Result<Vec<String>, String> {
        params.validate_as::<Settings>()
    }

    fn run(params: &Params, old_flag: Option<&str>, _new_flag: &str) -> Result<(), Error> {
        let settings: Settings = params.read()?;
        settings.register()?;
        let tree = settings.load_tree()?;
        let workspace = &settings.workspace;
        let mode = WriteMode::for_run(old_flag, settings.overwrite);
        let written = tree.write(workspace, mode)?;
        match mode {
            WriteMode::All => info!("Workspace '{workspace}' populated with {written} entries"),
            WriteMode::MissingOnly => {
                info!("Workspace '{workspace}' upsert-missing: {written} new entries")
            }
        }
        Ok(())
    }
}

export_initialiser!(WorkspaceInit);

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(json: &str) -> Result<Settings, String> {
        Params::from_json(json).unwrap().read().map_err(|error| error.to_string())
    }

    #[test]
    fn defaults_match_upstream() {
        assert_eq!(
            settings("{}").unwrap(),
            Settings {
                workspace: "default".into(),
                source: Source::Template,
                seed_file: None,
                overwrite: false,
                iam_timeout: None,
            }
        );
    }

    /// The runtime grants the template workspace or the seed file by these names.
    #[test]
    fn sources_are_spelled_as_the_runtime_grants_them() {
        let source = |name: &str| serde_json::from_value::<Source>(serde_json::json!(name)).unwrap();
        assert_eq!(source(workspace_init::SOURCE_TEMPLATE), Source::Template);
        assert_eq!(source(workspace_init::SOURCE_SEED_FILE), Source::SeedFile);
    }

    #[test]
    fn seed_file_source_needs_a_seed_file() {
        let expected = "parameter `seed_file`: required when `source` is \"seed-file\"";
        assert_eq!(settings(r#"{"source": "seed-file"}"#).unwrap_err(), expected);
        assert_eq!(settings(r#"{"source": "seed-file", "seed_file": ""}"#).unwrap_err(), expected);
        let ok = settings(r#"{"source": "seed-file", "seed_file": "/s.json", "workspace": "w"}"#);
        assert_eq!(ok.unwrap().seed_file.as_deref(), Some("/s.json"));
    }

    #[test]
    fn bad_source_and_types_name_the_parameter() {
        let error = settings(r#"{"source": "file"}"#).unwrap_err();
        assert_eq!(error, "parameter `source`: unknown variant `file`, expected `template` or `seed-file`");
        let error = settings(r#"{"iam_timeout": "soon"}"#).unwrap_err();
        assert!(error.starts_with("parameter `iam_timeout`: invalid type"), "{error}");
    }

    #[test]
    fn iam_timeout_is_a_number_of_seconds_more_than_0() {
        let timeout = |json: &str| settings(json).map(|settings| settings.iam_timeout().unwrap());
        assert_eq!(timeout("{}"), Ok(None));
        assert_eq!(timeout(r#"{"iam_timeout": 10}"#), Ok(Some(Duration::from_secs(10))));
        assert_eq!(timeout(r#"{"iam_timeout": 2.5}"#), Ok(Some(Duration::from_millis(2500))));
        for bad in ["0", "-1", "0.0"] {
            let error = settings(&format!(r#"{{"iam_timeout": {bad}}}"#)).unwrap_err();
            assert_eq!(error, format!("parameter `iam_timeout`: {bad} is not a number of seconds more than 0"));
        }
    }

    #[test]
    fn only_undocumented_parameters_draw_warnings() {
        let params = Params::from_json(r#"{"workspace": "w", "source": "template", "seed_file": "/s", "overwrite": true, "iam_timeout": 10, "sorce": "x"}"#).unwrap();
        let warnings = WorkspaceInit::validate(&params).unwrap();
        assert!(matches!(&warnings[..], [only] if only.starts_with("unknown parameter `sorce`")), "{warnings:?}");
    }
}
