//! `bootstrap-wasm new`: writes a ready-to-build initialiser project, in Rust, Python or
//! JavaScript, for an author to start from.
//!
//! The project builds anywhere, with no checkout of this repository: everything of ours it
//! needs travels in the binary and is written beside the source. That is the WIT it builds
//! against (`wit/bootstrap.wit`) and, for Rust, the guest SDK's source (`bootstrap-guest/`,
//! whose `wit_bindgen::generate!` reads `../wit`, so the project's own `wit/`), with the crate
//! the SDK shares with the runtime inside it (`bootstrap-guest/upstream/`, from
//! `guest-sdk/upstream/`, a path dependency of the SDK there as here). The rest comes
//! from the language's package registry, pinned as this repository's own examples pin it
//! (`initialisers/examples/`).
//!
//! The templates are real files under `runtime/templates/`, embedded at compile time; each
//! `{{name}}`-style placeholder in them is filled when the project is written.

mod name;

pub use name::check_name;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The language of a new initialiser.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust, with the guest SDK (`bootstrap-guest`), built with cargo for wasm32-wasip2.
    Rust,
    /// Python, built with componentize-py.
    Python,
    /// JavaScript, built with componentize-js.
    Js,
}

impl Lang {
    /// How `--lang` spells it.
    pub fn arg(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        }
    }
}

/// Why `new` wrote nothing.
#[derive(Debug)]
pub enum ScaffoldError {
    /// The name is not usable as a crate, package and directory name; the text says why.
    BadName(String),
    /// The project's directory exists already.
    Exists(PathBuf),
    /// Writing the project failed (it may be partly written).
    Io(PathBuf, io::Error),
}

impl fmt::Display for ScaffoldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScaffoldError::BadName(why) => write!(f, "bad initialiser name: {why}"),
            ScaffoldError::Exists(dir) => write!(f, "{} exists already; pick another name or remove it", dir.display()),
            ScaffoldError::Io(path, error) => write!(f, "writing {}: {error}", path.display()),
        }
    }
}

impl std::error::Error for ScaffoldError {}

/// One file of a new project: its path inside the project, its contents, whether to make it
/// executable.
#[derive(Debug)]
pub struct File {
    pub path: String,
    pub contents: String,
    pub executable: bool,
}

const WIT: &str = include_str!("../../wit/bootstrap.wit");
const README: &str = include_str!("../templates/common/README.md");
const DEV_YAML: &str = include_str!("../templates/common/dev.yaml");

/// The guest SDK's source files (`guest-sdk/src/`), copied into a Rust project.
const SDK_SOURCES: &[(&str, &str)] = &[
    ("config.rs", include_str!("../../guest-sdk/src/config.rs")),
    ("error.rs", include_str!("../../guest-sdk/src/error.rs")),
    ("field_names.rs", include_str!("../../guest-sdk/src/field_names.rs")),
    ("flow.rs", include_str!("../../guest-sdk/src/flow.rs")),
    ("http.rs", include_str!("../../guest-sdk/src/http.rs")),
    ("iam.rs", include_str!("../../guest-sdk/src/iam.rs")),
    ("lib.rs", include_str!("../../guest-sdk/src/lib.rs")),
    ("log.rs", include_str!("../../guest-sdk/src/log.rs")),
    ("params.rs", include_str!("../../guest-sdk/src/params.rs")),
    ("seed.rs", include_str!("../../guest-sdk/src/seed.rs")),
];
/// The SDK's manifest, standalone: the workspace's dependency versions made concrete.
const SDK_MANIFEST: &str = include_str!("../templates/rust/bootstrap-guest.Cargo.toml");
/// The source files of the crate the SDK shares with the runtime (`guest-sdk/upstream/`), copied
/// into the project's SDK as `upstream/`.
const UPSTREAM_SOURCES: &[(&str, &str)] = &[
    ("src/builtins.rs", include_str!("../../guest-sdk/upstream/src/builtins.rs")),
    ("src/lib.rs", include_str!("../../guest-sdk/upstream/src/lib.rs")),
    ("src/pyjson/mod.rs", include_str!("../../guest-sdk/upstream/src/pyjson/mod.rs")),
    ("src/pyjson/tests.rs", include_str!("../../guest-sdk/upstream/src/pyjson/tests.rs")),
    ("src/pyjson/text.rs", include_str!("../../guest-sdk/upstream/src/pyjson/text.rs")),
    ("src/pystr.rs", include_str!("../../guest-sdk/upstream/src/pystr.rs")),
];
/// Its manifest, standalone, as [`SDK_MANIFEST`] is.
const UPSTREAM_MANIFEST: &str = include_str!("../templates/rust/bootstrap-upstream.Cargo.toml");

/// A language's own files, as (path in the project, template, executable).
fn templates(lang: Lang) -> &'static [(&'static str, &'static str, bool)] {
    match lang {
        Lang::Rust => &[
            ("Cargo.toml", include_str!("../templates/rust/Cargo.toml"), false),
            ("src/lib.rs", include_str!("../templates/rust/src/lib.rs"), false),
            ("build.sh", include_str!("../templates/rust/build.sh"), true),
            (".gitignore", include_str!("../templates/rust/gitignore"), false),
        ],
        Lang::Python => &[
            ("app.py", include_str!("../templates/python/app.py"), false),
            ("build.sh", include_str!("../templates/python/build.sh"), true),
            (".gitignore", include_str!("../templates/python/gitignore"), false),
        ],
        Lang::Js => &[
            ("{{name}}.js", include_str!("../templates/js/initialiser.js"), false),
            ("package.json", include_str!("../templates/js/package.json"), false),
            ("build.mjs", include_str!("../templates/js/build.mjs"), false),
            ("build.sh", include_str!("../templates/js/build.sh"), true),
            (".gitignore", include_str!("../templates/js/gitignore"), false),
        ],
    }
}

/// `template` with every `{{key}}` of `vars` replaced by its value.
fn fill(template: &str, vars: &[(&str, &str)]) -> String {
    vars.iter().fold(template.to_owned(), |text, (key, value)| text.replace(&format!("{{{{{key}}}}}"), value))
}

/// The placeholders' values for project `name` in `lang`.
fn vars(lang: Lang, name: &str) -> Vec<(&'static str, String)> {
    let (lang_name, source, needs, extra) = match lang {
        Lang::Rust => (
            "Rust",
            "src/lib.rs".to_owned(),
            "cargo (with rustup, it adds the `wasm32-wasip2` target)",
            "- `bootstrap-guest/`: the guest SDK (a copy that travels with the project; its\n  bindings come from `wit/`, and `upstream/` in it is the JSON it shares with the\n  runtime). `cargo doc --open` documents it.\n",
        ),
        Lang::Python => {
            ("Python", "app.py".to_owned(), "python3 with venv (componentize-py 0.25.1 goes into `.venv/`)", "")
        }
        Lang::Js => (
            "JavaScript",
            format!("{name}.js"),
            "node and npm (componentize-js 0.23.0 goes into `node_modules/`)",
            "- `build.mjs`: builds the component with componentize-js' API.\n",
        ),
    };
    vec![
        ("name", name.to_owned()),
        ("crate", name.replace('-', "_")),
        ("lang", lang_name.to_owned()),
        ("lang_arg", lang.arg().to_owned()),
        ("source", source),
        ("needs", needs.to_owned()),
        ("extra", extra.to_owned()),
        ("sdk_version", env!("CARGO_PKG_VERSION").to_owned()),
    ]
}

/// The files of project `name` in `lang`, paths relative to the project's directory.
pub fn files(lang: Lang, name: &str) -> Vec<File> {
    let vars = vars(lang, name);
    let vars: Vec<(&str, &str)> = vars.iter().map(|(key, value)| (*key, value.as_str())).collect();
    let file = |path: &str, template: &str, executable| File {
        path: fill(path, &vars),
        contents: fill(template, &vars),
        executable,
    };
    let mut files = vec![
        file("wit/bootstrap.wit", WIT, false),
        file("dev.yaml", DEV_YAML, false),
        file("README.md", README, false),
    ];
    files.extend(templates(lang).iter().map(|(path, template, executable)| file(path, template, *executable)));
    if lang == Lang::Rust {
        files.push(file("bootstrap-guest/Cargo.toml", SDK_MANIFEST, false));
        files.push(file("bootstrap-guest/upstream/Cargo.toml", UPSTREAM_MANIFEST, false));
        // The sources as they are (no placeholders in them).
        let sdk = SDK_SOURCES.iter().map(|(path, source)| (format!("bootstrap-guest/src/{path}"), source));
        let upstream =
            UPSTREAM_SOURCES.iter().map(|(path, source)| (format!("bootstrap-guest/upstream/{path}"), source));
        files.extend(sdk.chain(upstream).map(|(path, source)| File {
            path,
            contents: (*source).to_owned(),
            executable: false,
        }));
    }
    files
}

/// Writes project `name` in `lang` to `parent/name`; returns that directory. Refuses a bad
/// name or an existing directory before writing anything.
pub fn create(lang: Lang, name: &str, parent: &Path) -> Result<PathBuf, ScaffoldError> {
    check_name(name)?;
    let dir = parent.join(name);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => return Err(ScaffoldError::Exists(dir)),
        Err(error) => return Err(ScaffoldError::Io(dir, error)),
    }
    for file in files(lang, name) {
        let path = dir.join(&file.path);
        let io = |error| ScaffoldError::Io(path.clone(), error);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&path, &file.contents).map_err(io)?;
        if file.executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
        }
    }
    Ok(dir)
}

/// What to do after `new`, for the terminal.
pub fn next_steps(lang: Lang, name: &str, dir: &Path) -> String {
    format!(
        "created {} (a {} initialiser). Next:\n\n  cd {}\n  ./build.sh\n  bootstrap-wasm -c dev.yaml --pubsub-backend embedded --state state.redb --once\n  bootstrap-wasm dump --state state.redb --workspace {name}\n",
        dir.display(),
        lang.arg(),
        dir.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_names_pass() {
        for name in ["a", "greeter", "acme-setup", "acme_setup2", &"x".repeat(64)] {
            assert!(check_name(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn bad_names_are_refused_with_a_reason() {
        for (name, why) in [
            ("", "1 to 64"),
            (&"x".repeat(65), "1 to 64"),
            ("2fast", "start with a lowercase letter"),
            ("-x", "start with a lowercase letter"),
            ("Greeter", "start with a lowercase letter"),
            ("gReeter", "has 'R'"),
            ("a b", "has ' '"),
            ("a/b", "has '/'"),
            ("..", "start with a lowercase letter"),
            ("café", "has 'é'"),
            ("trailing-", "end with a letter or digit"),
            ("fn", "reserved"),
            ("test", "reserved"),
            ("bootstrap-guest", "reserved"),
        ] {
            let error = check_name(name).unwrap_err().to_string();
            assert!(error.contains(why), "{name}: {error}");
        }
    }

    #[test]
    fn placeholders_are_filled() {
        assert_eq!(
            fill("{{name}}/{{crate}} {name} {{other}}", &[("name", "a-b"), ("crate", "a_b")]),
            "a-b/a_b {name} {{other}}"
        );
        for lang in [Lang::Rust, Lang::Python, Lang::Js] {
            for file in files(lang, "my-init") {
                assert!(!file.path.contains("{{"), "{lang:?} {}", file.path);
                // The SDK's sources are copied as they are; every template is fully filled.
                if !(file.path.starts_with("bootstrap-guest/") && file.path.ends_with(".rs")) {
                    assert!(!file.contents.contains("{{"), "{lang:?} {} keeps a placeholder", file.path);
                }
            }
        }
        let rust = files(Lang::Rust, "my-init");
        let build = rust.iter().find(|file| file.path == "build.sh").unwrap();
        assert!(build.executable && build.contents.contains("release/my_init.wasm"));
        let js = files(Lang::Js, "my-init");
        assert!(js.iter().any(|file| file.path == "my-init.js"));
    }

    /// The copy of the SDK is the whole SDK, with the crate it shares with the runtime: every
    /// source file, every dependency.
    #[test]
    fn the_sdk_copy_matches_the_sdk() {
        let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest-sdk");
        assert_copy_matches(&sdk, "src", SDK_SOURCES, SDK_MANIFEST);
        assert_copy_matches(&sdk.join("upstream"), "", UPSTREAM_SOURCES, UPSTREAM_MANIFEST);
    }

    /// The `.rs` files under `crate_dir/under` are `copied` (paths relative to `under`), and
    /// each dependency of the crate's manifest is in `manifest`.
    fn assert_copy_matches(crate_dir: &Path, under: &str, copied: &[(&str, &str)], manifest: &str) {
        let mut sources = Vec::new();
        let mut dirs = vec![crate_dir.join(under)];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|extension| extension == "rs") {
                    let relative = path.strip_prefix(crate_dir.join(under)).unwrap();
                    sources.push(relative.to_str().unwrap().to_owned());
                }
            }
        }
        sources.sort();
        let copied: Vec<&str> = copied.iter().map(|(path, _)| *path).collect();
        assert_eq!(sources, copied, "{} changed: update the copy's source list", crate_dir.display());
        let own_manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
        let dependencies = own_manifest.split("[dependencies]").nth(1).unwrap();
        for line in dependencies.lines().take_while(|line| !line.starts_with('[')) {
            if let Some((dependency, _)) = line.split_once('=') {
                let dependency = dependency.trim().trim_end_matches(".workspace");
                assert!(
                    manifest.contains(&format!("\n{dependency} = ")),
                    "{dependency} is missing from {}'s copied manifest",
                    crate_dir.display()
                );
            }
        }
    }

    #[test]
    fn an_existing_directory_is_refused_and_kept() {
        let parent = tempfile::tempdir().unwrap();
        std::fs::create_dir(parent.path().join("taken")).unwrap();
        let error = create(Lang::Python, "taken", parent.path()).unwrap_err();
        assert!(matches!(error, ScaffoldError::Exists(_)), "{error}");
        assert_eq!(std::fs::read_dir(parent.path().join("taken")).unwrap().count(), 0);
        assert!(matches!(create(Lang::Python, "Bad", parent.path()), Err(ScaffoldError::BadName(_))));
        assert!(!parent.path().join("Bad").exists());
    }
}
