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
//! - `http-get`: sends a GET to each of `urls`, logging each outcome; fails if any failed;
//! - `remember`: looks for what an earlier call left in its memory: a counter in its data
//!   segment that every call changes, and heap pages that every call scribbles on. Fails
//!   saying what it found if any was left, succeeds otherwise;
//! - `host-calls`: calls `config.get` and `config.put` on `workspace` (default `acme`),
//!   `flow.list-blueprints` and `flow.put-blueprint` on it, `log`, and sends a GET to each of
//!   `urls`; reports each outcome (in `run`, as its failure);
//! - `huge-text`: a text of about `bytes` bytes (default 100 MiB) of lines with control
//!   characters, each starting `FORGED`: as its summary (`describe`), its refusal (`validate`)
//!   or its failure (`run`);
//! - `huge-warnings`: `validate` returns `lines` (default 4) warnings of `bytes` bytes
//!   (default 25 MiB) each; `run` succeeds. Needs `during: validate`;
//! - `workspace-tricks`: for each of `workspaces`, writes its flag at `type` / `key` there and
//!   reads the whole workspace; fails either way, saying which went through;
//! - `separators`: writes one entry per `[type, key]` of `entries` to `workspace` in one put,
//!   each valued with its own `[type, key]` as JSON, and reads them back every way there is
//!   (`get`, `list-keys`, `get-values`, `get-workspace`); then deletes the `[type, key]`s of
//!   `delete` and reads back again. Succeeds only if every read found exactly what was
//!   written (the deleted ones gone, the others intact), fails listing the differences;
//! - `flow-start`: puts blueprint `key` (`{"blueprint": {}, "flow": {}}`) in `workspace` and
//!   starts flow `key` from it;
//! - `flow-calls`: calls every `flow` function on each of `workspaces`, aimed at blueprint and
//!   flow `key` (a put that would change the blueprint, a start of flow `<key>-hijack`, a stop
//!   and a delete); fails either way, saying how many calls went through;
//! - `network`: tries, through Rust's `std::net` and through raw `wasi:sockets` each, to send
//!   a UDP datagram to `address` (or bind a UDP socket), to listen on TCP at `listen`, and to
//!   resolve `host`. Anything that works is held for two seconds (so a test can try to reach
//!   it); fails either way, saying what went through.
//!
//! `describe` gets no params: when one of its preopened directories (there are some only if
//! the entry was granted files) holds a file `describe-mode`, it reads its params from there
//! (JSON, as in the init file) and misbehaves as their `mode` says: `spin`, `panic`, `memory`,
//! `host-calls` (then panics with the outcomes) or `huge-text`. Otherwise it describes itself
//! plainly.
//!
//! `during: validate` moves `spin`, `panic`, `memory`, `host-calls` and `huge-text` from `run`
//! into `validate` (`host-calls` then refuses the params with the outcomes); `run` then
//! succeeds.
//!
//! `key` defaults to `hostile` and `type` to `hostile`; `lines` to 1,000,000 (`many-keys`), 4
//! (`huge-warnings`) or 100,000; `bytes` to 2 MiB (`giant-put`), 100 MiB (`huge-text`), 25 MiB
//! (`huge-warnings`) or 10,000.

use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bootstrap_guest::config::ConfigEntry;
use bootstrap_guest::{Description, Error, HostError, Initialiser, Parameters, Params, ParamsError};
use bootstrap_guest::{bail, config, export_initialiser, flow, http, info, log};

mod network;
mod tricks;

/// The smallest blueprint flow-svc starts a flow from.
const BLUEPRINT: &str = r#"{"blueprint": {}, "flow": {}}"#;
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
    HostCalls,
    HugeText,
    HugeWarnings,
    WorkspaceTricks,
    Separators,
    FlowStart,
    FlowCalls,
    Network,
}

/// Which call a mode misbehaves in (`describe` reads its own mode from a file).
#[derive(Deserialize, Clone, Copy, PartialEq, Default)]
#[serde(rename_all = "kebab-case")]
enum Stage {
    #[default]
    Run,
    Validate,
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
    #[serde(default)]
    during: Stage,
    #[serde(default)]
    workspaces: Vec<String>,
    #[serde(default = "default_key", rename = "type")]
    config_type: String,
    #[serde(default)]
    entries: Vec<(String, String)>,
    #[serde(default)]
    delete: Vec<(String, String)>,
    listen: Option<String>,
    host: Option<String>,
}

fn default_key() -> String {
    "hostile".into()
}

impl Parameters for Settings {
    fn check(&self) -> Result<(), ParamsError> {
        match self.mode {
            Mode::ReadFile | Mode::WriteFile if self.path.is_none() => {
                Err(ParamsError::new("path", "required by read-file and write-file"))
            }
            Mode::WriteOther | Mode::GiantPut | Mode::ManyKeys | Mode::PutLoop | Mode::Separators | Mode::FlowStart
                if self.workspace.is_none() =>
            {
                Err(ParamsError::new(
                    "workspace",
                    "required by write-other, giant-put, many-keys, put-loop, separators \
                     and flow-start",
                ))
            }
            Mode::Connect if self.address.is_none() => Err(ParamsError::new("address", "required by connect")),
            Mode::Network => {
                let needed = [("address", &self.address), ("listen", &self.listen), ("host", &self.host)];
                match needed.iter().find(|(_, value)| value.is_none()) {
                    Some((name, _)) => Err(ParamsError::new(*name, "required by network")),
                    None => Ok(()),
                }
            }
            Mode::HugeWarnings if self.during != Stage::Validate => {
                Err(ParamsError::new("during", "huge-warnings happens in validate only"))
            }
            _ => Ok(()),
        }
    }
}

struct Hostile;

impl Initialiser for Hostile {
    fn describe() -> Description {
        let plain = Description::new("Test guest that misbehaves as its `mode` param says");
        let Some(settings) = describe_settings() else {
            return plain;
        };
        match settings.mode {
            Mode::Spin => spin(),
            Mode::Panic => panic!("deliberate panic in describe"),
            Mode::Memory => hoard_memory(),
            Mode::HostCalls => panic!("describe made host calls: {}", host_calls(&settings)),
            Mode::HugeText => Description::new(huge_text(settings.bytes.unwrap_or(HUGE))),
            _ => plain,
        }
    }

    fn validate(params: &Params) -> Result<Vec<String>, String> {
        let warnings = params.validate_as::<Settings>()?;
        let settings: Settings = params.read().map_err(|error| error.to_string())?;
        if settings.during != Stage::Validate {
            return Ok(warnings);
        }
        match settings.mode {
            Mode::Spin => spin(),
            Mode::Panic => panic!("deliberate panic in validate"),
            Mode::Memory => hoard_memory(),
            Mode::HostCalls => Err(format!("validate made host calls: {}", host_calls(&settings))),
            Mode::HugeText => Err(huge_text(settings.bytes.unwrap_or(HUGE))),
            Mode::HugeWarnings => {
                let warning = huge_text(settings.bytes.unwrap_or(25 << 20));
                Ok(vec![warning; settings.lines.unwrap_or(4)])
            }
            _ => Ok(warnings),
        }
    }

    fn run(params: &Params, _old_flag: Option<&str>, new_flag: &str) -> Result<(), Error> {
        let settings: Settings = params.read()?;
        if settings.during == Stage::Validate {
            // The misbehaviour happened in validate (or start-up stopped there).
            return Ok(());
        }
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
            Mode::WriteSystem => Ok(config::put_json("__system__", "init-state", &settings.key, new_flag)?),
            Mode::WriteOther => {
                let workspace = settings.workspace.unwrap_or_default();
                Ok(config::put_json(&workspace, "hostile", &settings.key, new_flag)?)
            }
            Mode::LogFlood => flood_log(settings.lines.unwrap_or(100_000), settings.bytes.unwrap_or(10_000)),
            Mode::GiantPut => {
                let value = "x".repeat(settings.bytes.unwrap_or(2 << 20));
                let workspace = settings.workspace.unwrap_or_default();
                Ok(config::put(&workspace, &[ConfigEntry::new("hostile", &settings.key, value)])?)
            }
            Mode::ManyKeys => {
                put_many_keys(&settings.workspace.unwrap_or_default(), settings.lines.unwrap_or(1_000_000))
            }
            Mode::PutLoop => put_loop(&settings.workspace.unwrap_or_default(), settings.bytes.unwrap_or(10_000)),
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
            Mode::HostCalls => bail!("{}", host_calls(&settings)),
            Mode::HugeText => bail!("{}", huge_text(settings.bytes.unwrap_or(HUGE))),
            Mode::HugeWarnings => Ok(()),
            Mode::WorkspaceTricks => tricks::workspace_tricks(&settings, new_flag),
            Mode::Separators => tricks::separators(&settings),
            Mode::FlowStart => tricks::flow_start(&settings),
            Mode::FlowCalls => tricks::flow_calls(&settings),
            Mode::Network => network::network(&settings),
        }
    }
}

/// The default size of `huge-text`: far more than any log line or message should carry.
const HUGE: usize = 100 << 20;

/// The params `describe` acts on: those in a file `describe-mode` in one of its preopened
/// directories, if there is one. `describe` gets no params, and the only way in from the
/// init file is a granted file; its directory is preopened at its own path, which the guest
/// cannot know, so every preopen is looked in.
fn describe_settings() -> Option<Settings> {
    wasi::filesystem::preopens::get_directories()
        .into_iter()
        .find_map(|(_, dir)| std::fs::read_to_string(Path::new(&dir).join("describe-mode")).ok())
        .map(|text| {
            let params = Params::from_json(&text).expect("describe-mode is not JSON params");
            params.read().unwrap_or_else(|error| panic!("describe-mode: {error}"))
        })
}

/// Lines of about `bytes` bytes in all, each with a newline, a terminal escape and a
/// bidirectional override that must not reach the operator's terminal or log as they are.
fn huge_text(bytes: usize) -> String {
    const LINE: &str = "FORGED line\u{1b}[2J\u{202e}\r\n";
    LINE.repeat(bytes / LINE.len() + 1)
}

/// The outcome of a host call, for a report: `went through`, or the host's refusal.
fn outcome<T>(result: Result<T, HostError>) -> String {
    match result {
        Ok(_) => "went through".into(),
        Err(error) => error.to_string(),
    }
}

/// One call of each kind (config, flow, log, HTTP), each outcome reported on one line.
fn host_calls(settings: &Settings) -> String {
    let workspace = settings.workspace.as_deref().unwrap_or("acme");
    let key = &settings.key;
    let forged = ConfigEntry::new("hostile", key, "\"forged\"");
    let mut outcomes = vec![
        format!("config.get: {}", outcome(config::get(workspace, "hostile", key))),
        format!("config.put: {}", outcome(config::put(workspace, &[forged]))),
        format!("flow.list-blueprints: {}", outcome(flow::list_blueprints(workspace))),
        format!("flow.put-blueprint: {}", outcome(flow::put_blueprint(workspace, key, BLUEPRINT))),
    ];
    log::info("host-calls: a log call");
    outcomes.push("log: sent".into());
    for url in &settings.urls {
        let seen = match http::get(url, Duration::from_secs(5)) {
            Ok(response) => format!("{} {}", response.status, response.text()),
            Err(error) => error.to_string(),
        };
        outcomes.push(format!("GET {url}: {seen}"));
    }
    outcomes.join("; ")
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
        .map(|i| types::ConfigEntry { type_: String::new(), key: i.to_string(), value: String::new() })
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
        ("config.get", config::get("__system__", "init-state", "probe").map(|v| format!("{v:?}"))),
        ("config.get-values", config::get_values("__system__", "init-state").map(|v| format!("{v:?}"))),
        ("config.get-workspace", config::get_workspace("__system__").map(|v| format!("{v:?}"))),
    ];
    let read: Vec<String> =
        outcomes.iter().filter_map(|(call, outcome)| Some(format!("{call} read {}", outcome.as_ref().ok()?))).collect();
    if !read.is_empty() {
        bail!("{}", read.join("; "));
    }
    let errors: Vec<String> =
        outcomes.iter().filter_map(|(call, outcome)| Some(format!("{call}: {}", outcome.as_ref().err()?))).collect();
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
    let vars: Vec<String> = std::env::vars().map(|(name, value)| format!("{name}={value}")).collect();
    let args: Vec<String> = std::env::args().collect();
    if !vars.is_empty() || !args.is_empty() {
        bail!("sees environment {vars:?} and arguments {args:?}");
    }
    info!("no environment variables, no arguments");
    Ok(())
}

export_initialiser!(Hostile);
