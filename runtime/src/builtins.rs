//! The core initialisers, compiled into the binary as WebAssembly components.
//!
//! They are ordinary guests (built from `initialisers/` by `build.rs` with the guest SDK) and run
//! in the same sandbox as any other component. What makes them "builtin" is only that the
//! runtime knows their parameters, so it can map upstream's `class:` names onto them and derive
//! the exact grants their params need: an upstream init file, which has no `grants:`, runs
//! unchanged and each core initialiser still reaches nothing else.

use std::path::Path;

use bootstrap_upstream::builtins::{TEMPLATE_WORKSPACE, default_flow_start, pulsar_topology, workspace_init};
use serde_json::Value;

use crate::init_file::resolve;
use crate::integrity::Digest;
use crate::policy::{Grants, Origin, WorkspacePattern};
use crate::sandbox::ComponentCode;

/// One of the four core initialisers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Builtin {
    PulsarTopology,
    TemplateSeed,
    WorkspaceInit,
    DefaultFlowStart,
}

const UPSTREAM_PACKAGE: &str = "trustgraph.bootstrap.initialisers";

impl Builtin {
    pub const ALL: [Builtin; 4] =
        [Self::PulsarTopology, Self::TemplateSeed, Self::WorkspaceInit, Self::DefaultFlowStart];

    /// The name used with `builtin:`.
    pub fn name(self) -> &'static str {
        match self {
            Self::PulsarTopology => "pulsar-topology",
            Self::TemplateSeed => "template-seed",
            Self::WorkspaceInit => "workspace-init",
            Self::DefaultFlowStart => "default-flow-start",
        }
    }

    /// Upstream's dotted class path, as used with `class:`.
    pub fn class(self) -> &'static str {
        match self {
            Self::PulsarTopology => "trustgraph.bootstrap.initialisers.PulsarTopology",
            Self::TemplateSeed => "trustgraph.bootstrap.initialisers.TemplateSeed",
            Self::WorkspaceInit => "trustgraph.bootstrap.initialisers.WorkspaceInit",
            Self::DefaultFlowStart => "trustgraph.bootstrap.initialisers.DefaultFlowStart",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|b| b.name() == name)
    }

    /// Upstream's class path, in its package form (`...initialisers.TemplateSeed`) or its module
    /// form (`...initialisers.template_seed.TemplateSeed`).
    pub fn from_class(class: &str) -> Option<Self> {
        let (module, class_name) = class.rsplit_once('.')?;
        Self::ALL.into_iter().find(|b| {
            b.class().ends_with(&format!(".{class_name}"))
                && (module == UPSTREAM_PACKAGE
                    || module == format!("{UPSTREAM_PACKAGE}.{}", b.name().replace('-', "_")))
        })
    }

    /// The component's bytes.
    pub fn component(self) -> &'static [u8] {
        self.embedded().0
    }

    /// The component as `build.rs` compiled it for the target's baseline CPU (see
    /// `sandbox::precompiled`); empty when the build could not precompile it.
    pub fn precompiled(self) -> &'static [u8] {
        self.embedded().1
    }

    /// The SHA-256 of [`Self::component`], as the build computed it: a start that finds the
    /// builtin in its compile cache never reads the component's bytes.
    pub fn digest(self) -> Digest {
        Digest::from_bytes(*self.embedded().2)
    }

    /// What the sandbox loads: the component, its digest and its precompiled artefact (if the
    /// build could make one). A warm start reads none of the component's bytes.
    pub fn code(self) -> ComponentCode<'static> {
        let precompiled = Some(self.precompiled()).filter(|artefact| !artefact.is_empty());
        ComponentCode { bytes: self.component(), digest: self.digest(), precompiled }
    }

    /// The component, its precompiled artefact and its digest, as `build.rs` left them in
    /// `OUT_DIR`.
    fn embedded(self) -> (&'static [u8], &'static [u8], &'static [u8; 32]) {
        macro_rules! guest {
            ($file:literal) => {
                (
                    include_bytes!(concat!(env!("OUT_DIR"), "/", $file, ".wasm")).as_slice(),
                    include_bytes!(concat!(env!("OUT_DIR"), "/", $file, ".cwasm")).as_slice(),
                    include_bytes!(concat!(env!("OUT_DIR"), "/", $file, ".sha256")),
                )
            };
        }
        match self {
            Self::PulsarTopology => guest!("pulsar_topology"),
            Self::TemplateSeed => guest!("template_seed"),
            Self::WorkspaceInit => guest!("workspace_init"),
            Self::DefaultFlowStart => guest!("default_flow_start"),
        }
    }

    /// The params as the guest will see them (seed-file paths made absolute against the init
    /// file's directory) and exactly the grants they need. Params of the wrong type are left for
    /// the guest's `validate` to report. A param left out has the default the guest reads it
    /// with: both sides take it from `bootstrap_upstream::builtins`.
    pub fn prepare(self, params: &Value, base_dir: &Path) -> (Value, Grants) {
        let mut params = params.clone();
        let text = |params: &Value, key: &str, default: &str| {
            params.get(key).and_then(Value::as_str).unwrap_or(default).to_owned()
        };
        let mut grants = Grants::default();
        match self {
            Self::PulsarTopology => {
                let admin_url = text(&params, "admin_url", pulsar_topology::ADMIN_URL);
                grants.http.extend(Origin::parse(&admin_url));
            }
            Self::TemplateSeed => {
                grants.config_read.push(WorkspacePattern::new(TEMPLATE_WORKSPACE));
                grants.config_write.push(WorkspacePattern::new(TEMPLATE_WORKSPACE));
                grants.files.extend(absolute_path_param(&mut params, "config_file", base_dir));
            }
            Self::WorkspaceInit => {
                let workspace = text(&params, "workspace", workspace_init::WORKSPACE);
                grants.config_read.push(WorkspacePattern::new(workspace.clone()));
                grants.config_write.push(WorkspacePattern::new(workspace));
                if text(&params, "source", workspace_init::SOURCE_TEMPLATE) == workspace_init::SOURCE_SEED_FILE {
                    grants.files.extend(absolute_path_param(&mut params, "seed_file", base_dir));
                } else {
                    grants.config_read.push(WorkspacePattern::new(TEMPLATE_WORKSPACE));
                }
            }
            Self::DefaultFlowStart => {
                grants.flow.push(WorkspacePattern::new(text(&params, "workspace", default_flow_start::WORKSPACE)));
            }
        }
        (params, grants)
    }
}

/// Make the string param `key` absolute and return the path, if it is a string.
fn absolute_path_param(params: &mut Value, key: &str, base_dir: &Path) -> Option<std::path::PathBuf> {
    let path = resolve(base_dir, params.get(key)?.as_str()?);
    params[key] = Value::String(path.to_string_lossy().into_owned());
    Some(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_builds_digests_are_the_components_sha256() {
        for builtin in Builtin::ALL {
            assert_eq!(builtin.digest(), Digest::of(builtin.component()), "{}", builtin.name());
        }
    }

    #[test]
    fn the_code_handed_to_the_sandbox_is_the_embedded_component_with_its_artefact() {
        for builtin in Builtin::ALL {
            let code = builtin.code();
            assert!(std::ptr::eq(code.bytes, builtin.component()), "{}", builtin.name());
            assert_eq!(code.digest, builtin.digest());
            assert!(code.precompiled.is_some_and(|artefact| !artefact.is_empty()), "{}", builtin.name());
        }
    }

    #[test]
    fn upstream_class_paths_map_to_builtins() {
        assert_eq!(Builtin::from_class("trustgraph.bootstrap.initialisers.TemplateSeed"), Some(Builtin::TemplateSeed));
        assert_eq!(
            Builtin::from_class("trustgraph.bootstrap.initialisers.workspace_init.WorkspaceInit"),
            Some(Builtin::WorkspaceInit)
        );
        assert_eq!(Builtin::from_class("acme.initialisers.TemplateSeed"), None);
        assert_eq!(Builtin::from_class("TemplateSeed"), None);
    }

    #[test]
    fn template_seed_gets_its_seed_file_and_the_template_workspace() {
        let (params, grants) =
            Builtin::TemplateSeed.prepare(&json!({"config_file": "seed.json"}), Path::new("/etc/tg"));
        assert_eq!(params["config_file"], "/etc/tg/seed.json");
        assert_eq!(grants.files, vec![std::path::PathBuf::from("/etc/tg/seed.json")]);
        assert!(grants.may_write_config("__template__"));
        assert!(!grants.may_write_config("default"));
        assert!(grants.http.is_empty() && grants.flow.is_empty());
    }

    #[test]
    fn workspace_init_from_template_reads_template_and_writes_only_its_workspace() {
        let (_, grants) = Builtin::WorkspaceInit.prepare(&json!({"workspace": "acme"}), Path::new("/"));
        assert!(grants.may_read_config("__template__"));
        assert!(grants.may_write_config("acme"));
        assert!(!grants.may_write_config("__template__"));
        assert!(grants.files.is_empty());
    }

    /// Params left out: the grants cover what the guests then do, with TrustGraph's defaults.
    #[test]
    fn left_out_params_are_granted_at_their_defaults() {
        let (_, grants) = Builtin::PulsarTopology.prepare(&json!({}), Path::new("/"));
        assert_eq!(grants.http, vec![Origin::parse("http://pulsar:8080").unwrap()]);
        let (_, grants) = Builtin::WorkspaceInit.prepare(&json!({}), Path::new("/"));
        assert!(grants.may_write_config("default") && grants.may_read_config("__template__"));
        let (_, grants) = Builtin::WorkspaceInit.prepare(&json!({"source": "seed-file"}), Path::new("/"));
        assert!(grants.may_write_config("default") && !grants.may_read_config("__template__"));
        let (_, grants) = Builtin::DefaultFlowStart.prepare(&json!({}), Path::new("/"));
        assert!(grants.may_use_flow("default") && !grants.may_use_flow("other"));
    }

    #[test]
    fn pulsar_topology_reaches_only_its_admin_url() {
        let (_, grants) = Builtin::PulsarTopology.prepare(&json!({"admin_url": "http://127.0.0.1:9/"}), Path::new("/"));
        assert!(grants.may_reach(&Origin::parse("http://127.0.0.1:9").unwrap()));
        assert!(!grants.may_reach(&Origin::parse("http://pulsar:8080").unwrap()));
        assert!(!grants.may_read_config("default"));
    }
}
