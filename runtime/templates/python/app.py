"""{{name}}: stores a greeting in a workspace's config.

Parameters (the init-file entry's `params`, as JSON text):
- `workspace` (required): the workspace to write to;
- `greeting` (default `"Hello!"`): the text stored at type `greeting`, key `text`.

Grants it needs: config write (and read) on `workspace`.

Built into a component with componentize-py (see build.sh); the runtime calls the three
methods of `Initialiser` below.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.initialiser import Description
from wit_world.imports import config, log
from wit_world.imports.log import Level
from wit_world.imports.types import ConfigEntry

KNOWN = ("workspace", "greeting")


class Failure(Exception):
    """A reason `run` or `validate` failed, worded for the operator."""


def settings(params_json):
    """The params, checked: (workspace, greeting) and warnings for unknown names."""
    try:
        params = json.loads(params_json)
    except ValueError as error:
        raise Failure(f"params are not JSON: {error}") from None
    if not isinstance(params, dict):
        raise Failure("params must be a mapping")
    workspace = params.get("workspace")
    if workspace is None:
        raise Failure("missing required parameter `workspace`")
    if not isinstance(workspace, str) or not workspace:
        raise Failure("parameter `workspace`: must be a non-empty string")
    greeting = params.get("greeting", "Hello!")
    if not isinstance(greeting, str):
        raise Failure("parameter `greeting`: must be a string")
    warnings = [f"unknown parameter `{name}` is ignored (known: {', '.join(KNOWN)})" for name in params if name not in KNOWN]
    return workspace, greeting, warnings


class Initialiser(exports.Initialiser):
    def describe(self):
        return Description(wait_for_services=True, summary="Stores a greeting in a workspace's config ({{name}})")

    def validate(self, params):
        try:
            return settings(params)[2]
        except Failure as failure:
            raise Err(str(failure))

    def run(self, params, old_flag, new_flag):
        try:
            workspace, greeting, _ = settings(params)
        except Failure as failure:
            raise Err(str(failure))
        # Safe to repeat: `put` replaces the value. A host error arrives as `Err(host-error)`.
        try:
            config.put(workspace, [ConfigEntry(type="greeting", key="text", value=json.dumps(greeting))])
        except Err as error:
            raise Err(f"writing the greeting to workspace '{workspace}': {error.value}")
        shown = "none" if old_flag is None else old_flag
        log.log(Level.INFO, f"flag {shown} -> {new_flag}: greeting stored in workspace '{workspace}'")
