//! `hostile`: a test initialiser that misbehaves on purpose, one way per `mode`, so the tests
//! can show the sandbox stopping or refusing it. It only *tries*: it reports what it saw in its
//! result, and the tests judge the runtime by what the runtime did (log, store, exit code).
//!
//! Parameters: `mode` (required), one of
//! - `spin`: an endless loop that never calls the host;
//! - `spin-host`: an endless loop of `log` calls;
//! - `memory`: allocates 1 MiB after 1 MiB until allocation fails (and the guest aborts);
//! - `stack`: unbounded recursion, through a call the optimiser cannot see through;
//! - `panic`: panics;
//! - `sleep`: sleeps for an hour, blocked in a WASI host call;
//! - `read-file`: reads `path`. `Ok` if it can (logging the text and the names in its
//!   directory), `Err` saying why not otherwise;
//! - `write-file`: overwrites `path`; `Err` saying why if it cannot;
//! - `env`: `Err` listing the environment variables and arguments it sees, `Ok` if there are
//!   none;
//! - `write-system`: stores its flag at `__system__` / `init-state` / `key`, the runtime's own
//!   record of what has converged;
//! - `write-other`: writes `workspace` / `hostile` / `key`.
//!
//! `key` defaults to `hostile`.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use bootstrap_guest::{Description, Error, Initialiser, Parameters, Params, ParamsError};
use bootstrap_guest::{bail, config, export_initialiser, info, log};
use serde::Deserialize;

#[derive(Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "kebab-case")]
enum Mode {
    Spin,
    SpinHost,
    Memory,
    Stack,
    Panic,
    Sleep,
    ReadFile,
    WriteFile,
    Env,
    WriteSystem,
    WriteOther,
}

#[derive(Deserialize)]
struct Settings {
    mode: Mode,
    path: Option<String>,
    workspace: Option<String>,
    #[serde(default = "default_key")]
    key: String,
}

fn default_key() -> String {
    "hostile".into()
}

impl Parameters for Settings {
    fn check(&self) -> Result<(), ParamsError> {
        match self.mode {
            Mode::ReadFile | Mode::WriteFile if self.path.is_none() => Err(ParamsError::new(
                "path",
                "required by read-file and write-file",
            )),
            Mode::WriteOther if self.workspace.is_none() => {
                Err(ParamsError::new("workspace", "required by write-other"))
            }
            _ => Ok(()),
        }
    }
}

struct Hostile;

impl Initialiser for Hostile {
    fn describe() -> Description {
        Description::new("Test guest that misbehaves as its `mode` param says")
    }

    fn validate(params: &Params) -> Result<Vec<String>, String> {
        params.validate_as::<Settings>()
    }

    fn run(params: &Params, _old_flag: Option<&str>, new_flag: &str) -> Result<(), Error> {
        let settings: Settings = params.read()?;
        match settings.mode {
            Mode::Spin => spin(),
            Mode::SpinHost => loop {
                log::trace("still spinning");
            },
            Mode::Memory => hoard_memory(),
            Mode::Stack => {
                recurse(0);
                bail!("recursion ended");
            }
            Mode::Panic => panic!("deliberate panic"),
            Mode::Sleep => {
                std::thread::sleep(Duration::from_secs(3600));
                bail!("woke up after an hour");
            }
            Mode::ReadFile => read_file(settings.path.as_deref().unwrap_or_default()),
            Mode::WriteFile => {
                let path = settings.path.unwrap_or_default();
                match std::fs::write(&path, "overwritten by the hostile guest") {
                    Ok(()) => Ok(()),
                    Err(error) => bail!("cannot write {path}: {error}"),
                }
            }
            Mode::Env => env(),
            Mode::WriteSystem => Ok(config::put_json(
                "__system__",
                "init-state",
                &settings.key,
                new_flag,
            )?),
            Mode::WriteOther => {
                let workspace = settings.workspace.unwrap_or_default();
                Ok(config::put_json(
                    &workspace,
                    "hostile",
                    &settings.key,
                    new_flag,
                )?)
            }
        }
    }
}

fn spin() -> ! {
    let mut counter = 0u64;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

fn hoard_memory() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![0xA5; 1 << 20]);
        black_box(&hoard);
    }
}

/// Never returns: each call makes another through a pointer the optimiser cannot follow, and
/// uses its result, so it can become neither a loop nor a tail call.
fn recurse(depth: u64) -> u64 {
    let next: fn(u64) -> u64 = black_box(recurse);
    next(depth + 1).wrapping_mul(31) ^ depth
}

fn read_file(path: &str) -> Result<(), Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            info!("read {path}: {text}");
            let dir = Path::new(path).parent().unwrap_or(Path::new("/"));
            let mut names: Vec<String> = std::fs::read_dir(dir)?
                .map(|entry| Ok(entry?.file_name().to_string_lossy().into_owned()))
                .collect::<std::io::Result<_>>()?;
            names.sort();
            info!("{} holds {names:?}", dir.display());
            Ok(())
        }
        Err(error) => bail!("cannot read {path}: {error}"),
    }
}

fn env() -> Result<(), Error> {
    let vars: Vec<String> = std::env::vars()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    let args: Vec<String> = std::env::args().collect();
    if !vars.is_empty() || !args.is_empty() {
        bail!("sees environment {vars:?} and arguments {args:?}");
    }
    info!("no environment variables, no arguments");
    Ok(())
}

export_initialiser!(Hostile);
