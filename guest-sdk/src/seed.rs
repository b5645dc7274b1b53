//! Seeding a workspace from a `{type: {key: value}}` tree, as TrustGraph's `TemplateSeed`
//! and `WorkspaceInit` do: load the tree from a seed file or from the `__template__`
//! workspace, then write all of it, or only the keys a workspace lacks so that an operator's
//! edits survive a re-run.

use crate::config::{self, ConfigEntry};
use crate::pyjson::{self, Value};
use crate::{Context, Error, HostError};

// The reserved workspace that holds the template new workspaces are copied from: the one the
// runtime grants the core initialisers that use it.
pub use bootstrap_upstream::builtins::TEMPLATE_WORKSPACE;

/// Config values by type and key, in the order they were read. Values are JSON; they are
/// stored as their JSON text (see [`pyjson`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SeedTree {
    types: Vec<(String, Vec<(String, Value)>)>,
}

/// Which entries of a [`SeedTree`] to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Every entry, replacing what is there.
    All,
    /// Only the keys the workspace lacks, leaving existing values alone.
    MissingOnly,
}

impl WriteMode {
    /// The upstream rule: write everything on the first run (no `old_flag`) or when
    /// `overwrite` is set; on a re-run otherwise, only what is missing.
    pub fn for_run(old_flag: Option<&str>, overwrite: bool) -> WriteMode {
        if old_flag.is_none() || overwrite { WriteMode::All } else { WriteMode::MissingOnly }
    }
}

impl SeedTree {
    /// Parses seed-file text: a JSON mapping of config types, each a mapping of keys to
    /// values.
    pub fn from_json(text: &str) -> Result<SeedTree, String> {
        let Value::Mapping(types) = pyjson::loads(text).map_err(|error| error.to_string())? else {
            return Err("the top level must be a mapping of config types".into());
        };
        let mut tree = SeedTree::default();
        for (config_type, entries) in types {
            let Value::Mapping(entries) = entries else {
                return Err(format!("config type `{config_type}` must be a mapping of keys to values"));
            };
            tree.types.push((config_type, entries.into_iter().collect()));
        }
        Ok(tree)
    }

    /// Reads and parses the seed file at `path` (which the operator must have granted).
    pub fn load_file(path: &str) -> Result<SeedTree, Error> {
        let text = std::fs::read_to_string(path).context(format!("reading seed file {path}"))?;
        SeedTree::from_json(&text).map_err(|problem| Error::msg(format!("seed file {path}: {problem}")))
    }

    /// Builds a tree from config entries (such as a whole workspace's), parsing each value as
    /// JSON; a value that is not JSON is kept as a plain string, as upstream does.
    pub fn from_entries(entries: impl IntoIterator<Item = ConfigEntry>) -> SeedTree {
        let mut tree = SeedTree::default();
        for entry in entries {
            let value = pyjson::loads(&entry.value).unwrap_or(Value::String(entry.value));
            match tree.types.iter_mut().find(|(config_type, _)| *config_type == entry.config_type) {
                Some((_, keys)) => keys.push((entry.key, value)),
                None => tree.types.push((entry.config_type, vec![(entry.key, value)])),
            }
        }
        tree
    }

    /// Reads the whole `__template__` workspace; an empty template is an error, since it means
    /// `TemplateSeed` has not run yet (and a later wake will retry).
    pub fn load_template() -> Result<SeedTree, Error> {
        let tree = SeedTree::from_entries(config::get_workspace_entries(TEMPLATE_WORKSPACE)?);
        if tree.entry_count() == 0 {
            crate::bail!("Template workspace is empty — has TemplateSeed run yet?");
        }
        Ok(tree)
    }

    /// How many entries the tree holds, over all types.
    pub fn entry_count(&self) -> usize {
        self.types.iter().map(|(_, entries)| entries.len()).sum()
    }

    /// How many config types the tree holds.
    pub fn type_count(&self) -> usize {
        self.types.len()
    }

    /// Every entry, values encoded as JSON text.
    pub fn all_entries(&self) -> Vec<ConfigEntry> {
        self.types.iter().flat_map(|(config_type, entries)| to_config_entries(config_type, entries, &[])).collect()
    }

    /// Writes the tree to `workspace` as `mode` says; returns how many entries it wrote.
    ///
    /// `All` is one `config.put` (none if the tree is empty). `MissingOnly` lists each type's
    /// keys and puts the missing ones, one `put` per type that lacks any.
    pub fn write(&self, workspace: &str, mode: WriteMode) -> Result<usize, HostError> {
        match mode {
            WriteMode::All => {
                let entries = self.all_entries();
                if !entries.is_empty() {
                    config::put(workspace, &entries)?;
                }
                Ok(entries.len())
            }
            WriteMode::MissingOnly => {
                let mut written = 0;
                for (config_type, entries) in &self.types {
                    let existing = config::list_keys(workspace, config_type)?;
                    let missing = to_config_entries(config_type, entries, &existing);
                    if !missing.is_empty() {
                        config::put(workspace, &missing)?;
                        written += missing.len();
                    }
                }
                Ok(written)
            }
        }
    }
}

/// The entries of one type whose keys are not in `existing`, values encoded as JSON text.
fn to_config_entries(config_type: &str, entries: &[(String, Value)], existing: &[String]) -> Vec<ConfigEntry> {
    entries
        .iter()
        .filter(|(key, _)| !existing.contains(key))
        .map(|(key, value)| ConfigEntry::new(config_type, key, value.dumps()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"{
        "prompt": {"system": "You are helpful", "rag": {"template": "Q: {q}", "n": 3}},
        "flow-blueprint": {"everything": {"description": "All", "tags": ["a"]}},
        "empty": {}
    }"#;

    #[test]
    fn seed_files_parse_in_file_order() {
        let tree = SeedTree::from_json(SEED).unwrap();
        assert_eq!(tree.type_count(), 3);
        assert_eq!(tree.entry_count(), 3);
        assert_eq!(
            tree.all_entries(),
            [
                ConfigEntry::new("prompt", "system", r#""You are helpful""#),
                ConfigEntry::new("prompt", "rag", r#"{"template": "Q: {q}", "n": 3}"#),
                ConfigEntry::new("flow-blueprint", "everything", r#"{"description": "All", "tags": ["a"]}"#),
            ]
        );
    }

    #[test]
    fn malformed_seed_files_say_what_is_wrong() {
        assert_eq!(SeedTree::from_json("[1]").unwrap_err(), "the top level must be a mapping of config types");
        assert_eq!(
            SeedTree::from_json(r#"{"prompt": ["x"]}"#).unwrap_err(),
            "config type `prompt` must be a mapping of keys to values"
        );
        assert!(SeedTree::from_json("{").unwrap_err().contains("EOF"));
    }

    #[test]
    fn missing_seed_files_name_the_path() {
        let error = SeedTree::load_file("/no/such/seed.json").unwrap_err().to_string();
        assert!(error.starts_with("reading seed file /no/such/seed.json: "), "{error}");
    }

    #[test]
    fn seed_files_load_from_disk() {
        let path = std::env::temp_dir().join(format!("bootstrap-guest-seed-{}.json", std::process::id()));
        std::fs::write(&path, SEED).unwrap();
        let loaded = SeedTree::load_file(path.to_str().unwrap());
        std::fs::remove_file(&path).unwrap();
        assert_eq!(loaded.unwrap(), SeedTree::from_json(SEED).unwrap());
    }

    #[test]
    fn entries_group_by_type_and_keep_non_json_values_as_strings() {
        let tree = SeedTree::from_entries([
            ConfigEntry::new("prompt", "a", r#"{"x":1,"b":[1,2]}"#),
            ConfigEntry::new("token-cost", "m", "0.5"),
            ConfigEntry::new("prompt", "raw", "not json"),
        ]);
        assert_eq!(tree.type_count(), 2);
        assert_eq!(
            tree.all_entries(),
            [
                ConfigEntry::new("prompt", "a", r#"{"x": 1, "b": [1, 2]}"#),
                ConfigEntry::new("prompt", "raw", r#""not json""#),
                ConfigEntry::new("token-cost", "m", "0.5"),
            ]
        );
    }

    #[test]
    fn only_missing_keys_are_selected() {
        let entries = vec![("a".to_string(), Value::Int(1)), ("b".to_string(), Value::Int(2))];
        assert_eq!(
            to_config_entries("t", &entries, &["a".to_string(), "z".to_string()]),
            [ConfigEntry::new("t", "b", "2")]
        );
        assert!(to_config_entries("t", &entries, &["a".into(), "b".into()]).is_empty());
    }

    #[test]
    fn first_runs_and_overwrite_write_all() {
        assert_eq!(WriteMode::for_run(None, false), WriteMode::All);
        assert_eq!(WriteMode::for_run(None, true), WriteMode::All);
        assert_eq!(WriteMode::for_run(Some("v1"), true), WriteMode::All);
        assert_eq!(WriteMode::for_run(Some("v1"), false), WriteMode::MissingOnly);
    }
}
