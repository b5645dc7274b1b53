//! Refreshing tenants: what is read when, what stays in service when a tenant errs.

use std::path::Path;

use super::*;
use crate::builtins::Builtin;
use crate::init_file::InitFile;

/// A tenant `acme` whose directory holds `c.wasm` (a real component: a core initialiser's
/// bytes, loaded as a tenant's own) and the tenant file `t.yaml`.
struct Fixture {
    dir: tempfile::TempDir,
    tenants: Tenants,
}

impl Fixture {
    fn new(entries: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("acme")).unwrap();
        std::fs::write(dir.path().join("acme/c.wasm"), Builtin::WorkspaceInit.code().bytes).unwrap();
        let init = dir.path().join("init.yaml");
        let ceiling = "ceiling: {grants: {config: {read: [acme-*], write: [acme-*]}}, limits: {fuel: 5000000000}}";
        std::fs::write(&init, format!("initialisers: []\ntenants:\n  - {{name: acme, path: acme, {ceiling}}}\n"))
            .unwrap();
        let fixture =
            Self { tenants: Tenants::new(InitFile::load(&init).unwrap().tenants, Sandbox::new().unwrap()), dir };
        fixture.write(entries);
        fixture
    }

    /// Replace the tenant file, as an editor or Kubernetes does: write aside, rename over.
    fn write(&self, entries: &str) {
        let aside = self.dir.path().join("acme/.t.yaml.tmp");
        std::fs::write(&aside, format!("initialisers:\n{entries}")).unwrap();
        std::fs::rename(aside, self.dir.path().join("acme/t.yaml")).unwrap();
    }

    fn in_service(&self) -> Vec<(String, String)> {
        self.tenants.running().map(|init| (init.name.to_string(), init.flag.to_string())).collect()
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }
}

fn entry(name: &str, flag: &str, workspace: &str) -> String {
    format!(
        "  - {{name: {name}, flag: {flag}, component: c.wasm, params: {{workspace: {workspace}}}, grants: {{config: {{write: [{workspace}]}}}}}}\n"
    )
}

fn summary(report: &TenantsReport) -> (bool, usize, usize) {
    let acme = &report.tenants[0];
    (acme.reloaded, acme.entries, acme.refused)
}

#[tokio::test]
async fn an_unchanged_tenant_is_not_read_again() {
    let mut fixture = Fixture::new(&entry("seed", "v1", "acme-1"));
    let first = fixture.tenants.refresh().await;
    assert_eq!((first.changed, first.components_read, summary(&first)), (true, 1, (true, 1, 0)));
    assert_eq!(fixture.in_service(), [("acme/seed".to_owned(), "v1".to_owned())]);

    let steady = fixture.tenants.refresh().await;
    assert_eq!((steady.changed, steady.components_read, summary(&steady)), (false, 0, (false, 1, 0)));

    // A new entry of the same component: the file is read again, the component is not.
    fixture.write(&(entry("seed", "v1", "acme-1") + &entry("more", "v1", "acme-2")));
    let grown = fixture.tenants.refresh().await;
    assert_eq!((grown.changed, grown.components_read, summary(&grown)), (true, 0, (true, 2, 0)));

    // SIGHUP: everything read again, whatever the stamps say.
    fixture.tenants.reload_handle().request();
    let forced = fixture.tenants.refresh().await;
    assert_eq!((forced.components_read, summary(&forced)), (1, (true, 2, 0)));
}

#[tokio::test]
async fn a_refused_change_leaves_the_last_good_version_in_service() {
    let mut fixture = Fixture::new(&(entry("seed", "v1", "acme-1") + &entry("other", "v1", "acme-2")));
    fixture.tenants.refresh().await;

    // `seed` now asks for another tenant's workspace: refused, and its v1 keeps running.
    fixture.write(&(entry("seed", "v2", "beta-1") + &entry("other", "v2", "acme-2")));
    let report = fixture.tenants.refresh().await;
    assert_eq!(summary(&report), (true, 2, 1));
    assert_eq!(fixture.in_service(), [("acme/seed".into(), "v1".into()), ("acme/other".into(), "v2".into())]);
    let refusal = fixture.tenants.tenants()[0].refused()[0].to_string();
    assert!(refusal.contains("initialiser 'seed' (entry 1), field 'grants.config.write': 'beta-1'"), "{refusal}");

    // A file that does not parse keeps the whole set.
    fixture.write("  - {name: broken\n");
    let report = fixture.tenants.refresh().await;
    assert_eq!(summary(&report), (true, 2, 1));
    assert!(fixture.tenants.tenants()[0].file_error().is_some());

    // An entry gone from the file stops; a fixed one comes back.
    fixture.write(&entry("seed", "v3", "acme-1"));
    let report = fixture.tenants.refresh().await;
    assert_eq!(summary(&report), (true, 1, 0));
    assert_eq!(fixture.in_service(), [("acme/seed".to_owned(), "v3".to_owned())]);
    assert!(fixture.tenants.tenants()[0].file_error().is_none());
}

#[tokio::test]
async fn a_replaced_component_is_read_again_and_a_bad_one_refused() {
    let mut fixture = Fixture::new(&entry("seed", "v1", "acme-1"));
    fixture.tenants.refresh().await;
    let replace = |path: &Path, bytes: &[u8]| {
        let aside = path.with_extension("tmp");
        std::fs::write(&aside, bytes).unwrap();
        std::fs::rename(aside, path).unwrap();
    };
    replace(&fixture.path("acme/c.wasm"), b"not a component");
    let report = fixture.tenants.refresh().await;
    assert_eq!((report.components_read, summary(&report)), (1, (true, 1, 1)), "refused, v1 kept");
    let refusal = fixture.tenants.tenants()[0].refused()[0].to_string();
    assert!(refusal.contains("field 'component'"), "{refusal}");

    replace(&fixture.path("acme/c.wasm"), Builtin::WorkspaceInit.code().bytes);
    let report = fixture.tenants.refresh().await;
    assert_eq!((report.components_read, summary(&report)), (1, (true, 1, 0)));
}

#[tokio::test]
async fn a_granted_file_that_links_outside_the_ceiling_is_refused() {
    let mut fixture = Fixture::new("  []\n");
    let allowed = fixture.path("seed/acme");
    std::fs::create_dir_all(&allowed).unwrap();
    std::fs::write(allowed.join("real.json"), "{}").unwrap();
    std::fs::write(fixture.path("secret.json"), "{}").unwrap();
    std::os::unix::fs::symlink(fixture.path("secret.json"), allowed.join("link.json")).unwrap();
    std::os::unix::fs::symlink(allowed.join("real.json"), allowed.join("inside.json")).unwrap();
    let init = fixture.path("init.yaml");
    let ceiling = format!("ceiling: {{grants: {{files: [{}/]}}}}", allowed.display());
    std::fs::write(&init, format!("initialisers: []\ntenants:\n  - {{name: acme, path: acme, {ceiling}}}\n")).unwrap();
    fixture.tenants = Tenants::new(InitFile::load(&init).unwrap().tenants, Sandbox::new().unwrap());
    let grant = |name: &str, file: &str| {
        format!(
            "  - {{name: {name}, flag: v1, component: c.wasm, params: {{workspace: x}}, grants: {{files: [{}]}}}}\n",
            allowed.join(file).display()
        )
    };
    fixture.write(&(grant("linked", "link.json") + &grant("inside", "inside.json") + &grant("plain", "real.json")));
    let report = fixture.tenants.refresh().await;
    assert_eq!(summary(&report), (true, 2, 1));
    let refusal = fixture.tenants.tenants()[0].refused()[0].to_string();
    assert!(
        refusal.contains("'linked'") && refusal.contains("field 'grants.files'") && refusal.contains("leads to"),
        "{refusal}"
    );
}

#[tokio::test]
async fn a_duplicate_of_a_good_entry_does_not_bring_back_its_old_version() {
    let mut fixture = Fixture::new(&entry("seed", "v1", "acme-1"));
    fixture.tenants.refresh().await;
    fixture.write(&(entry("seed", "v2", "acme-1") + &entry("seed", "v3", "acme-1")));
    let report = fixture.tenants.refresh().await;
    assert_eq!(summary(&report), (true, 1, 1));
    assert_eq!(fixture.in_service(), [("acme/seed".to_owned(), "v2".to_owned())]);
}

/// A ConfigMap as the kubelet mounts it: the files are links through `..data`, itself a link to
/// a timestamped directory that an update replaces by renaming a new link over `..data`.
#[tokio::test]
async fn a_configmap_update_is_seen_at_the_next_refresh() {
    let mut fixture = Fixture::new("  []\n");
    let mount = fixture.path("acme");
    std::fs::remove_file(mount.join("t.yaml")).unwrap();
    let version = |name: &str, entries: &str| {
        let dir = mount.join(name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("t.yaml"), format!("initialisers:\n{entries}")).unwrap();
        std::fs::copy(mount.join("c.wasm"), dir.join("c.wasm")).unwrap();
    };
    version("..2026_12_05_v1", &entry("seed", "v1", "acme-1"));
    std::os::unix::fs::symlink("..2026_12_05_v1", mount.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/t.yaml", mount.join("t.yaml")).unwrap();
    std::fs::remove_file(mount.join("c.wasm")).unwrap();
    std::os::unix::fs::symlink("..data/c.wasm", mount.join("c.wasm")).unwrap();
    fixture.tenants.refresh().await;
    assert_eq!(fixture.in_service(), [("acme/seed".to_owned(), "v1".to_owned())]);
    assert!(!fixture.tenants.refresh().await.changed, "nothing changed yet");

    version("..2026_12_05_v2", &entry("seed", "v2", "acme-1"));
    std::os::unix::fs::symlink("..2026_12_05_v2", mount.join("..data_tmp")).unwrap();
    std::fs::rename(mount.join("..data_tmp"), mount.join("..data")).unwrap();
    let report = fixture.tenants.refresh().await;
    assert_eq!(summary(&report), (true, 1, 0));
    assert_eq!(report.components_read, 1, "the component is a new file too (same bytes: no compile)");
    assert_eq!(fixture.in_service(), [("acme/seed".to_owned(), "v2".to_owned())]);
}

#[tokio::test]
async fn a_component_that_arrives_after_its_file_is_read_when_it_does() {
    let mut fixture = Fixture::new(&entry("seed", "v1", "acme-1").replace("c.wasm", "later.wasm"));
    let report = fixture.tenants.refresh().await;
    assert_eq!(summary(&report), (true, 0, 1));
    let refusal = fixture.tenants.tenants()[0].refused()[0].to_string();
    assert!(refusal.contains("field 'component'") && refusal.contains("cannot read"), "{refusal}");
    assert!(!fixture.tenants.refresh().await.changed, "still missing: nothing to read again");

    // The component arrives (another volume than the tenant file's, say): no edit of the file.
    std::fs::copy(fixture.path("acme/c.wasm"), fixture.path("acme/later.wasm")).unwrap();
    let report = fixture.tenants.refresh().await;
    assert_eq!((report.components_read, summary(&report)), (1, (true, 1, 0)));
}

#[tokio::test]
async fn a_component_outside_the_tenants_directory_is_refused() {
    let outside = |path: &str| entry("seed", "v1", "acme-1").replace("c.wasm", path);
    let mut fixture = Fixture::new(&outside("../elsewhere.wasm"));
    std::fs::write(fixture.path("elsewhere.wasm"), Builtin::WorkspaceInit.code().bytes).unwrap();
    std::os::unix::fs::symlink(fixture.path("elsewhere.wasm"), fixture.path("acme/link.wasm")).unwrap();
    for component in ["../elsewhere.wasm", "link.wasm"] {
        fixture.write(&outside(component));
        fixture.tenants.reload_handle().request();
        let report = fixture.tenants.refresh().await;
        assert_eq!((report.components_read, summary(&report)), (0, (true, 0, 1)), "{component}");
        let refusal = fixture.tenants.tenants()[0].refused()[0].to_string();
        assert!(refusal.contains("is outside the tenant's directory"), "{refusal}");
    }
}
