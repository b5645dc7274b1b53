//! The core initialisers, compiled into the binary as WebAssembly components.
//!
//! They are ordinary guests (built from `initialisers/` by `build.rs` with the guest SDK) and run
//! in the same sandbox as any other component. What makes them "builtin" is only that the
//! runtime knows them: it maps upstream's `class:` names onto them, loads them from the
//! artefacts the build precompiled, and derives the exact grants their params need (in
//! `initialiser::builtin_params`), so that an upstream init file, which has no `grants:`, runs
//! unchanged and each core initialiser still reaches nothing else.

use crate::integrity::Digest;
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
