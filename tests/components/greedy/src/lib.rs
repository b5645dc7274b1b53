//! `greedy`: a test initialiser that tries to make the *runtime* hold memory, outside its own
//! linear memory, one way per `mode`, so the tests can show the run's memory budget
//! (`limits.memory`) covering what the host holds for it. Like `hostile`, it only tries and
//! reports what it got; the tests judge the runtime by its log, its store and its peak memory.
//!
//! Parameters: `mode` (required), one of
//! - `header-bomb`: makes `count` wasi:http header objects (`fields`) of one `bytes`-long
//!   value each and keeps them all alive;
//! - `handle-bomb`: makes `count` pollables (wasi:clocks) and keeps them all alive: entries of
//!   the runtime's resource table;
//! - `read-amplify`: writes `bytes` of 1 MiB values to `workspace`, then reads the whole
//!   workspace `count` times, keeping nothing between reads;
//! - `memory-then-ok`: grows its memory until the runtime refuses, then succeeds anyway.
//!
//! `count` defaults to 100,000, `bytes` to 16 KiB.

use std::hint::black_box;

use bootstrap_guest::config::ConfigEntry;
use bootstrap_guest::{Description, Error, Initialiser, Params, bail, config, export_initialiser, info};
use serde::Deserialize;

#[derive(Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "kebab-case")]
enum Mode {
    HeaderBomb,
    HandleBomb,
    ReadAmplify,
    MemoryThenOk,
}

#[derive(Deserialize)]
struct Settings {
    mode: Mode,
    #[serde(default = "default_count")]
    count: usize,
    #[serde(default = "default_bytes")]
    bytes: usize,
    #[serde(default)]
    workspace: String,
}

fn default_count() -> usize {
    100_000
}

fn default_bytes() -> usize {
    16 << 10
}

impl bootstrap_guest::Parameters for Settings {}

struct Greedy;

impl Initialiser for Greedy {
    fn describe() -> Description {
        Description::new("Test guest that tries to make the runtime hold memory, as its `mode` param says")
    }

    fn validate(params: &Params) -> Result<Vec<String>, String> {
        params.validate_as::<Settings>()
    }

    fn run(params: &Params, _old_flag: Option<&str>, _new_flag: &str) -> Result<(), Error> {
        let settings: Settings = params.read()?;
        match settings.mode {
            Mode::HeaderBomb => header_bomb(settings.count, settings.bytes),
            Mode::HandleBomb => handle_bomb(settings.count),
            Mode::ReadAmplify => read_amplify(&settings.workspace, settings.bytes, settings.count),
            Mode::MemoryThenOk => memory_then_ok(),
        }
    }
}

fn header_bomb(count: usize, bytes: usize) -> Result<(), Error> {
    use wasi::http::types::Fields;
    let value = vec![b'x'; bytes];
    let mut kept = Vec::with_capacity(count.min(1 << 20));
    for i in 0..count {
        let fields = Fields::new();
        if let Err(error) = fields.append("x-bomb", &value) {
            bail!("header object {i}: the host refused its value: {error:?}");
        }
        kept.push(fields);
    }
    black_box(&kept);
    bail!("the host holds {count} header objects of {bytes} bytes")
}

fn handle_bomb(count: usize) -> Result<(), Error> {
    let mut kept = Vec::with_capacity(count.min(1 << 20));
    for _ in 0..count {
        kept.push(wasi::clocks::monotonic_clock::subscribe_duration(3_600_000_000_000));
    }
    black_box(&kept);
    bail!("the host holds {count} pollables")
}

fn read_amplify(workspace: &str, bytes: usize, reads: usize) -> Result<(), Error> {
    let value = "x".repeat(1 << 20);
    for i in 0..bytes.div_ceil(1 << 20) {
        config::put(workspace, &[ConfigEntry::new("bulk", format!("k{i}"), value.as_str())])?;
    }
    drop(value);
    for i in 0..reads {
        match config::get_workspace_entries(workspace) {
            Ok(entries) => black_box(entries),
            Err(error) => bail!("read {i}: {error}"),
        };
    }
    bail!("read {bytes} bytes {reads} times")
}

fn memory_then_ok() -> Result<(), Error> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut chunk = Vec::new();
        if chunk.try_reserve_exact(1 << 20).is_err() {
            break;
        }
        chunk.resize(1 << 20, 0xA5);
        hoard.push(chunk);
    }
    info!("refused after {} MiB; carrying on", hoard.len());
    Ok(())
}

export_initialiser!(Greedy);
