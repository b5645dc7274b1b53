//! `old-wit`: an initialiser built against `trustgraph:bootstrap@0.1.0`, the WIT as it was
//! before the `iam` interface (a frozen copy in `tests/components/wit-0.1.0/`), with the raw
//! bindings of that version and not the guest SDK, which follows the current WIT. It shows
//! that a component built for 0.1.0 loads and runs unchanged on a newer runtime.
//!
//! Parameters: `workspace` (required, as a JSON string): where it works (the operator must
//! grant config read and write, and flow). A run puts `workspace` / `old-wit-runs` / `<new
//! flag>` = `{"old": <old flag or null>, "new": <new flag>}`, reads it back, lists the
//! workspace's blueprints, and logs what it found: it uses `config`, `flow` and `log`.

wit_bindgen::generate!({
    path: "../wit-0.1.0",
    world: "initialiser-component",
    generate_all,
});

use exports::trustgraph::bootstrap::initialiser::{Description, Guest};
use trustgraph::bootstrap::types::{ConfigEntry, HostError};
use trustgraph::bootstrap::{config, flow, log};

struct OldWit;

/// The string `"workspace"` in `params`, read without a JSON library to keep the guest small.
fn workspace(params: &str) -> Option<String> {
    let after = params.split_once("\"workspace\"")?.1.trim_start().strip_prefix(':')?.trim_start();
    let value = after.strip_prefix('"')?;
    Some(value[..value.find('"')?].to_owned())
}

fn text(error: HostError) -> String {
    format!("{error:?}")
}

impl Guest for OldWit {
    fn describe() -> Description {
        Description { wait_for_services: true, summary: "Test guest built against trustgraph:bootstrap@0.1.0".into() }
    }

    fn validate(params: String) -> Result<Vec<String>, String> {
        workspace(&params).map(|_| Vec::new()).ok_or_else(|| "missing required parameter `workspace`".into())
    }

    fn run(params: String, old_flag: Option<String>, new_flag: String) -> Result<(), String> {
        let workspace = workspace(&params).ok_or("missing required parameter `workspace`")?;
        let old = old_flag.map_or("null".to_owned(), |flag| format!("\"{flag}\""));
        let record = format!("{{\"old\": {old}, \"new\": \"{new_flag}\"}}");
        let entry = ConfigEntry { type_: "old-wit-runs".into(), key: new_flag.clone(), value: record.clone() };
        config::put(&workspace, &[entry]).map_err(text)?;
        let read = config::get(&workspace, "old-wit-runs", &new_flag).map_err(text)?;
        if read.as_deref() != Some(record.as_str()) {
            return Err(format!("read back {read:?}, not {record}"));
        }
        let blueprints = flow::list_blueprints(&workspace).map_err(text)?;
        log::log(
            log::Level::Info,
            &format!("old-wit ran: wrote and read back {record}; {} blueprints", blueprints.len()),
        );
        Ok(())
    }
}

export!(OldWit);
