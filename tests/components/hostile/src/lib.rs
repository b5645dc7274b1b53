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
//! - `write-other`: writes `workspace` / `hostile` / `key`;
//! - `log-flood`: sends `lines` lines of `bytes` bytes to the log, alternately through `log`,
//!   stdout and stderr, then fails;
//! - `giant-put`: writes one value of `bytes` bytes to `workspace`;
//! - `many-keys`: writes `lines` tiny entries to `workspace` in one `config.put`;
//! - `put-loop`: writes values of `bytes` bytes to `workspace`, one `config.put` each, until
//!   one fails, and fails saying how many went through;
//! - `read-system`: reads `__system__` with `config.get`, `get-values` and `get-workspace`;
//!   fails either way, saying what it read or why it could not;
//! - `connect`: opens a TCP connection to `address` (`host:port`); fails either way;
//! - `http-get`: sends a GET to each of `urls`, logging each outcome; fails if any failed.
//! - `remember`: looks for what an earlier call left in its memory: a counter in its data
//!   segment that every call changes, and heap pages that every call scribbles on. Fails
//!   saying what it found if any was left, succeeds otherwise.
//!
//! `key` defaults to `hostile`; `lines` to 1,000,000 (`many-keys`) or 100,000; `bytes` to 2 MiB
//! (`giant-put`) or 10,000.

use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bootstrap_guest::config::ConfigEntry;
use bootstrap_guest::{
    Description, Error, HostError, Initialiser, Parameters, Params, ParamsError,
};
use bootstrap_guest::{bail, config, export_initialiser, http, info, log};
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
    LogFlood,
    GiantPut,
    ManyKeys,
    PutLoop,
    ReadSystem,
    Connect,
    HttpGet,
    Remember,
}

#[derive(Deserialize)]
struct Settings {
    mode: Mode,
    path: Option<String>,
    workspace: Option<String>,
    #[serde(default = "default_key")]
    key: String,
    lines: Option<usize>,
    bytes: Option<usize>,
    address: Option<String>,
    #[serde(default)]
    urls: Vec<String>,
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
            Mode::WriteOther | Mode::GiantPut | Mode::ManyKeys | Mode::PutLoop
                if self.workspace.is_none() =>
            {
                Err(ParamsError::new(
                    "workspace",
                    "required by write-other, giant-put, many-keys and put-loop",
                ))
            }
            Mode::Connect if self.address.is_none() => {
                Err(ParamsError::new("address", "required by connect"))
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
            Mode::LogFlood => flood_log(
                settings.lines.unwrap_or(100_000),
                settings.bytes.unwrap_or(10_000),
            ),
            Mode::GiantPut => {
                let value = "x".repeat(settings.bytes.unwrap_or(2 << 20));
                let workspace = settings.workspace.unwrap_or_default();
                Ok(config::put(
                    &workspace,
                    &[ConfigEntry::new("hostile", &settings.key, value)],
                )?)
            }
            Mode::ManyKeys => put_many_keys(
                &settings.workspace.unwrap_or_default(),
                settings.lines.unwrap_or(1_000_000),
            ),
            Mode::PutLoop => put_loop(
                &settings.workspace.unwrap_or_default(),
                settings.bytes.unwrap_or(10_000),
            ),
            Mode::ReadSystem => read_system(),
            Mode::Connect => {
                let address = settings.address.unwrap_or_default();
                match std::net::TcpStream::connect(&address) {
                    Ok(_) => bail!("connected to {address}"),
                    Err(error) => bail!("cannot connect to {address}: {error}"),
                }
            }
            Mode::HttpGet => http_get(&settings.urls),
            Mode::Remember => remember(),
        }
    }
}

fn flood_log(lines: usize, bytes: usize) -> Result<(), Error> {
    let padding = "x".repeat(bytes);
    for i in 0..lines {
        let line = format!("flood line {i} {padding}");
        match i % 3 {
            0 => log::info(&line),
            1 => println!("{line}"),
            _ => eprintln!("{line}"),
        }
    }
    bail!("sent {lines} lines of {bytes} bytes to the log")
}

/// One `config.put` of `count` entries, built as cheaply as the guest can (straight into the
/// WIT's own records, empty types and values), so that the guest itself stays small.
fn put_many_keys(workspace: &str, count: usize) -> Result<(), Error> {
    use bootstrap_guest::bindings::trustgraph::bootstrap::{config as host, types};
    let entries: Vec<types::ConfigEntry> = (0..count)
        .map(|i| types::ConfigEntry {
            type_: String::new(),
            key: i.to_string(),
            value: String::new(),
        })
        .collect();
    host::put(workspace, &entries).map_err(HostError::from)?;
    bail!("the host took {count} entries in one put")
}

fn put_loop(workspace: &str, bytes: usize) -> Result<(), Error> {
    let value = "x".repeat(bytes);
    for i in 0usize.. {
        let entry = ConfigEntry::new("hostile", format!("k{i}"), value.as_str());
        if let Err(error) = config::put(workspace, &[entry]) {
            bail!("put {i} values of {bytes} bytes, then: {error}");
        }
    }
    unreachable!()
}

fn read_system() -> Result<(), Error> {
    let outcomes = [
        (
            "config.get",
            config::get("__system__", "init-state", "probe").map(|v| format!("{v:?}")),
        ),
        (
            "config.get-values",
            config::get_values("__system__", "init-state").map(|v| format!("{v:?}")),
        ),
        (
            "config.get-workspace",
            config::get_workspace("__system__").map(|v| format!("{v:?}")),
        ),
    ];
    let read: Vec<String> = outcomes
        .iter()
        .filter_map(|(call, outcome)| Some(format!("{call} read {}", outcome.as_ref().ok()?)))
        .collect();
    if !read.is_empty() {
        bail!("{}", read.join("; "));
    }
    let errors: Vec<String> = outcomes
        .iter()
        .filter_map(|(call, outcome)| Some(format!("{call}: {}", outcome.as_ref().err()?)))
        .collect();
    bail!("could not read __system__: {}", errors.join("; "))
}

fn http_get(urls: &[String]) -> Result<(), Error> {
    let mut failed = 0;
    for url in urls {
        match http::get(url, Duration::from_secs(5)) {
            Ok(response) => info!("GET {url}: {} {}", response.status, response.text()),
            Err(error) => {
                failed += 1;
                info!("GET {url}: {error}");
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} requests failed", urls.len());
    }
    Ok(())
}

/// What `remember` finds in its data segment: 1 in the component's image, changed by every call.
static CALLS: AtomicU32 = AtomicU32::new(1);

/// How many WebAssembly pages (64 KiB) `remember` adds to its memory and scribbles on: more
/// than the runtime's pool keeps resident between calls, so both of its ways of resetting a
/// slot (clearing a page, handing it back to the system) are looked through.
const SCRIBBLE_PAGES: usize = 64;

fn remember() -> Result<(), Error> {
    let calls = CALLS.fetch_add(1, Ordering::Relaxed);
    // Grown here, outside the allocator's reach: WebAssembly promises that new pages read as
    // zero, so anything else was left by an earlier call.
    let first = core::arch::wasm32::memory_grow(0, SCRIBBLE_PAGES);
    if first == usize::MAX {
        bail!("cannot grow memory by {SCRIBBLE_PAGES} pages");
    }
    // SAFETY: the pages were just added to this instance's memory and nothing else uses them.
    let pages = unsafe { std::slice::from_raw_parts_mut((first * 65536) as *mut u8, SCRIBBLE_PAGES * 65536) };
    let dirty = pages.iter().filter(|&&byte| byte != 0).count();
    pages.fill(0xA5);
    black_box(pages);
    if calls != 1 || dirty != 0 {
        bail!("an earlier call left its mark: {calls} calls counted, {dirty} bytes of new memory not zero");
    }
    info!("nothing left by an earlier call");
    Ok(())
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
