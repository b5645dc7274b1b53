"""workspace-setup, in Python: seeds a tenant's workspace with config entries, then starts
its flow.

Parameters (the init-file entry's `params`, as JSON text):
- `workspace` (required): the workspace to seed and start the flow in.
- `blueprint` (required): the blueprint to start the flow from; it must exist in the
  workspace (WorkspaceInit copies the template's).
- `flow_id` (default `"default"`), `description` (default `"Started by workspace-setup"`).
- `seed` (default `{}`): `{type: {key: value}}`; each value is stored as its JSON text.
- `overwrite` (default `false`): on a re-run (the flag changed), `true` rewrites every seed
  entry; `false` adds only the keys the workspace lacks, so an operator's edits survive.

Grants it needs: config read and write on `workspace`, flow on `workspace`.

Built into a component with componentize-py (see build.sh); the runtime calls the three
methods of `Initialiser` below. docs/authoring.md has the contract.
"""

import json
import traceback

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.initialiser import Description
from wit_world.imports import config, flow, log
from wit_world.imports.log import Level
from wit_world.imports.types import (
    ConfigEntry,
    HostError_Denied,
    HostError_InvalidRequest,
    HostError_NotFound,
    HostError_ServiceError,
    HostError_Timeout,
)

KNOWN = ("workspace", "blueprint", "flow_id", "description", "seed", "overwrite")

# How each kind of `host-error` reads in an error message, as the Rust SDK writes them.
HOST_ERROR_KINDS = {
    HostError_Denied: "denied",
    HostError_NotFound: "not found",
    HostError_Timeout: "timed out",
    HostError_ServiceError: "service error",
    HostError_InvalidRequest: "invalid request",
}


class Failure(Exception):
    """A reason `run` or `validate` failed, already worded for the operator."""


def host(what, call, *args):
    """`call(*args)`, a host function; a `host-error` becomes a `Failure` naming `what`.

    A host function that returns `result<T, host-error>` returns `T` or raises
    `componentize_py_types.Err` whose `value` is one of the `HostError_*` classes.
    """
    try:
        return call(*args)
    except Err as error:
        raise Failure(explain(what, error.value)) from None


def explain(what, host_error):
    """`what` failed with `host_error` (a `HostError_*`), as one line for the operator."""
    kind = HOST_ERROR_KINDS.get(type(host_error), "host error")
    hint = " (not in this initialiser's grants)" if isinstance(host_error, HostError_Denied) else ""
    return f"{what}: {kind}: {host_error.value}{hint}"


def settings(params_json):
    """The params, checked: a dict with defaults applied, and warnings for unknown names."""
    try:
        params = json.loads(params_json)
    except ValueError as error:
        raise Failure(f"params are not JSON: {error}") from None
    if not isinstance(params, dict):
        raise Failure("params must be a mapping")

    def text(name, default=None):
        value = params.get(name, default)
        if value is None:
            raise Failure(f"missing required parameter `{name}`")
        if not isinstance(value, str) or not value:
            raise Failure(f"parameter `{name}`: must be a non-empty string")
        return value

    result = {
        "workspace": text("workspace"),
        "blueprint": text("blueprint"),
        "flow_id": text("flow_id", "default"),
        "description": text("description", "Started by workspace-setup"),
        "seed": params.get("seed", {}),
        "overwrite": params.get("overwrite", False),
    }
    if not isinstance(result["overwrite"], bool):
        raise Failure("parameter `overwrite`: must be true or false")
    seed = result["seed"]
    if not isinstance(seed, dict) or not all(isinstance(keys, dict) for keys in seed.values()):
        raise Failure("parameter `seed`: must be a mapping of config types to mappings of keys to values")
    known = ", ".join(KNOWN)
    warnings = [f"unknown parameter `{name}` is ignored (known: {known})" for name in params if name not in KNOWN]
    return result, warnings


def write_seed(workspace, seed, everything):
    """Write the seed entries: all of them, or only the keys `workspace` lacks. Returns the count."""
    if everything:
        entries = [
            ConfigEntry(type=kind, key=key, value=json.dumps(value))
            for kind, keys in seed.items()
            for key, value in keys.items()
        ]
        if entries:
            host(f"writing the seed to workspace '{workspace}'", config.put, workspace, entries)
        return len(entries)
    written = 0
    for kind, keys in seed.items():
        existing = set(host(f"listing '{kind}' keys in workspace '{workspace}'", config.list_keys, workspace, kind))
        missing = [
            ConfigEntry(type=kind, key=key, value=json.dumps(value))
            for key, value in keys.items()
            if key not in existing
        ]
        if missing:
            host(f"writing the seed to workspace '{workspace}'", config.put, workspace, missing)
            written += len(missing)
    return written


def start_flow(settings):
    """Start the flow unless it is running already (the flag may have been lost)."""
    workspace, flow_id, blueprint = settings["workspace"], settings["flow_id"], settings["blueprint"]
    running = host(f"listing the flows of workspace '{workspace}'", flow.list_flows, workspace)
    if flow_id in running:
        log.log(Level.INFO, f"flow '{flow_id}' already running in workspace '{workspace}'")
        return
    # A missing blueprint is the likeliest mistake: say so plainly (a `not-found` error).
    try:
        flow.get_blueprint(workspace, blueprint)
    except Err as error:
        if isinstance(error.value, HostError_NotFound):
            raise Failure(f"blueprint '{blueprint}' is not in workspace '{workspace}' (has WorkspaceInit run?)") from None
        raise Failure(explain(f"reading blueprint '{blueprint}'", error.value)) from None
    host(
        f"starting flow '{flow_id}' from blueprint '{blueprint}'",
        flow.start_flow, workspace, flow_id, blueprint, settings["description"], [],
    )
    log.log(Level.INFO, f"flow '{flow_id}' started from blueprint '{blueprint}' in workspace '{workspace}'")


class Initialiser(exports.Initialiser):
    def describe(self):
        return Description(
            wait_for_services=True,
            summary="Seeds a workspace's config and starts its flow (Python example)",
        )

    def validate(self, params):
        try:
            _, warnings = settings(params)
        except Failure as failure:
            raise Err(str(failure))
        return warnings

    def run(self, params, old_flag, new_flag):
        try:
            checked, _ = settings(params)
            workspace = checked["workspace"]
            # First run, or asked to: write every entry. A re-run after a flag bump adds
            # only what is missing, keeping what an operator changed since.
            everything = old_flag is None or checked["overwrite"]
            written = write_seed(workspace, checked["seed"], everything)
            mode = "all entries" if everything else "missing entries only"
            shown = "none" if old_flag is None else old_flag
            log.log(Level.INFO, f"flag {shown} -> {new_flag}: wrote {written} seed entries to '{workspace}' ({mode})")
            start_flow(checked)
        except Failure as failure:
            raise Err(str(failure))
        except Exception as error:  # a bug: say where, rather than trap with no context
            log.log(Level.ERROR, traceback.format_exc())
            raise Err(f"unexpected {type(error).__name__}: {error}")
