//! A core initialiser's params as its guest will see them, and the grants they imply.
//!
//! An upstream init file has no `grants:`, so for the core initialisers the runtime derives
//! exactly the grants their params need (a workspace, its registration with IAM, the template,
//! a seed file, the Pulsar admin URL), and nothing else.

use std::path::{Path, PathBuf};

use bootstrap_upstream::builtins::{TEMPLATE_WORKSPACE, default_flow_start, pulsar_topology, workspace_init};
use serde_json::Value;

use crate::builtins::Builtin;
use crate::init_file::resolve;
use crate::policy::{Grants, Origin, WorkspacePattern};

/// The params as the guest will see them (seed-file paths made absolute against the init
/// file's directory) and exactly the grants they need. Params of the wrong type are left for
/// the guest's `validate` to report. A param left out has the default the guest reads it
/// with: both sides take it from `bootstrap_upstream::builtins`.
pub(super) fn prepare(builtin: Builtin, params: &Value, base_dir: &Path) -> (Value, Grants) {
    let mut params = params.clone();
    let text = |params: &Value, key: &str, default: &str| {
        params.get(key).and_then(Value::as_str).unwrap_or(default).to_owned()
    };
    let mut grants = Grants::default();
    match builtin {
        Builtin::PulsarTopology => {
            let admin_url = text(&params, "admin_url", pulsar_topology::ADMIN_URL);
            grants.http.extend(Origin::parse(&admin_url));
        }
        Builtin::TemplateSeed => {
            grants.config_read.push(WorkspacePattern::new(TEMPLATE_WORKSPACE));
            grants.config_write.push(WorkspacePattern::new(TEMPLATE_WORKSPACE));
            grants.files.extend(absolute_path_param(&mut params, "config_file", base_dir));
        }
        Builtin::WorkspaceInit => {
            let workspace = text(&params, "workspace", workspace_init::WORKSPACE);
            grants.config_read.push(WorkspacePattern::new(workspace.clone()));
            grants.config_write.push(WorkspacePattern::new(workspace.clone()));
            // To register it, where the services register workspaces (TrustGraph 2.4.13 on).
            grants.iam.push(WorkspacePattern::new(workspace));
            if text(&params, "source", workspace_init::SOURCE_TEMPLATE) == workspace_init::SOURCE_SEED_FILE {
                grants.files.extend(absolute_path_param(&mut params, "seed_file", base_dir));
            } else {
                grants.config_read.push(WorkspacePattern::new(TEMPLATE_WORKSPACE));
            }
        }
        Builtin::DefaultFlowStart => {
            grants.flow.push(WorkspacePattern::new(text(&params, "workspace", default_flow_start::WORKSPACE)));
        }
    }
    (params, grants)
}

/// Make the string param `key` absolute and return the path, if it is a string.
fn absolute_path_param(params: &mut Value, key: &str, base_dir: &Path) -> Option<PathBuf> {
    let path = resolve(base_dir, params.get(key)?.as_str()?);
    params[key] = Value::String(path.to_string_lossy().into_owned());
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn template_seed_gets_its_seed_file_and_the_template_workspace() {
        let (params, grants) =
            prepare(Builtin::TemplateSeed, &json!({"config_file": "seed.json"}), Path::new("/etc/tg"));
        assert_eq!(params["config_file"], "/etc/tg/seed.json");
        assert_eq!(grants.files, vec![std::path::PathBuf::from("/etc/tg/seed.json")]);
        assert!(grants.may_write_config("__template__"));
        assert!(!grants.may_write_config("default"));
        assert!(grants.http.is_empty() && grants.flow.is_empty());
    }

    #[test]
    fn workspace_init_from_template_reads_template_and_writes_only_its_workspace() {
        let (_, grants) = prepare(Builtin::WorkspaceInit, &json!({"workspace": "acme"}), Path::new("/"));
        assert!(grants.may_read_config("__template__"));
        assert!(grants.may_write_config("acme"));
        assert!(grants.may_register("acme") && !grants.may_register("default"));
        assert!(!grants.may_write_config("__template__"));
        assert!(grants.files.is_empty() && grants.flow.is_empty());
    }

    /// Params left out: the grants cover what the guests then do, with TrustGraph's defaults.
    #[test]
    fn left_out_params_are_granted_at_their_defaults() {
        let (_, grants) = prepare(Builtin::PulsarTopology, &json!({}), Path::new("/"));
        assert_eq!(grants.http, vec![Origin::parse("http://pulsar:8080").unwrap()]);
        let (_, grants) = prepare(Builtin::WorkspaceInit, &json!({}), Path::new("/"));
        assert!(grants.may_write_config("default") && grants.may_read_config("__template__"));
        let (_, grants) = prepare(Builtin::WorkspaceInit, &json!({"source": "seed-file"}), Path::new("/"));
        assert!(grants.may_write_config("default") && !grants.may_read_config("__template__"));
        assert!(grants.may_register("default"));
        let (_, grants) = prepare(Builtin::DefaultFlowStart, &json!({}), Path::new("/"));
        assert!(grants.may_use_flow("default") && !grants.may_use_flow("other"));
        assert!(grants.may_ask_registration("default") && !grants.may_register("default"));
    }

    #[test]
    fn pulsar_topology_reaches_only_its_admin_url() {
        let (_, grants) =
            prepare(Builtin::PulsarTopology, &json!({"admin_url": "http://127.0.0.1:9/"}), Path::new("/"));
        assert!(grants.may_reach(&Origin::parse("http://127.0.0.1:9").unwrap()));
        assert!(!grants.may_reach(&Origin::parse("http://pulsar:8080").unwrap()));
        assert!(!grants.may_read_config("default"));
    }
}
