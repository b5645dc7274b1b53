// workspace-setup, in JavaScript: seeds a tenant's workspace with config entries, then starts
// its flow. The same initialiser as the Python example (../python/app.py).
//
// Parameters (the init-file entry's `params`, as JSON text):
// - `workspace` (required): the workspace to seed and start the flow in.
// - `blueprint` (required): the blueprint to start the flow from; it must exist in the
//   workspace (WorkspaceInit copies the template's).
// - `flow_id` (default "default"), `description` (default "Started by workspace-setup").
// - `seed` (default {}): {type: {key: value}}; each value is stored as its JSON text, written
//   as Python's json.dumps writes it (as TrustGraph's own initialisers store values).
// - `overwrite` (default false): on a re-run (the flag changed), true rewrites every seed
//   entry; false adds only the keys the workspace lacks, so an operator's edits survive.
//
// Grants it needs: config read and write on `workspace`, flow on `workspace`.
//
// Built into a component with componentize-js (see build.mjs); the runtime calls the three
// functions of the exported `initialiser` object. docs/authoring.md has the contract.

import * as config from 'trustgraph:bootstrap/config@0.1.1';
import * as flow from 'trustgraph:bootstrap/flow@0.1.1';
import { log } from 'trustgraph:bootstrap/log@0.1.1';

const KNOWN = ['workspace', 'blueprint', 'flow_id', 'description', 'seed', 'overwrite'];

// How each kind of `host-error` reads in an error message, as the Rust SDK writes them.
const HOST_ERROR_KINDS = {
  'denied': 'denied',
  'not-found': 'not found',
  'timeout': 'timed out',
  'service-error': 'service error',
  'invalid-request': 'invalid request',
};

/** A reason `run` or `validate` failed, already worded for the operator. */
class Failure extends Error {}

/**
 * `call(...args)`, a host function; a `host-error` becomes a Failure naming `what`.
 *
 * A host function that returns `result<T, host-error>` returns `T` or throws an error whose
 * `payload` is the host-error variant: `{tag: 'denied', val: 'config.put on ...'}`.
 */
function host(what, call, ...args) {
  try {
    return call(...args);
  } catch (error) {
    if (!isHostError(error)) throw error;
    throw new Failure(explain(what, error.payload));
  }
}

/** Whether `error`, thrown by a host function, carries a `host-error`. */
const isHostError = (error) => typeof error?.payload?.tag === 'string';

/** `what` failed with `hostError` ({tag, val}), as one line for the operator. */
function explain(what, hostError) {
  const kind = HOST_ERROR_KINDS[hostError.tag] ?? hostError.tag;
  const hint = hostError.tag === 'denied' ? " (not in this initialiser's grants)" : '';
  return `${what}: ${kind}: ${hostError.val}${hint}`;
}

/** `value` as Python's json.dumps writes it: ", " and ": " separators, non-ASCII escaped. */
function pyDumps(value) {
  if (Array.isArray(value)) return `[${value.map(pyDumps).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    const items = Object.entries(value).map(([key, item]) => `${pyDumps(key)}: ${pyDumps(item)}`);
    return `{${items.join(', ')}}`;
  }
  if (typeof value === 'string') {
    return JSON.stringify(value).replace(/[\u007f-\uffff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  }
  return JSON.stringify(value);
}

const isMapping = (value) => value !== null && typeof value === 'object' && !Array.isArray(value);

/** The params, checked: an object with defaults applied, and warnings for unknown names. */
function settings(paramsJson) {
  let params;
  try {
    params = JSON.parse(paramsJson);
  } catch (error) {
    throw new Failure(`params are not JSON: ${error.message}`);
  }
  if (!isMapping(params)) throw new Failure('params must be a mapping');

  const text = (name, fallback) => {
    const value = params[name] ?? fallback;
    if (value === undefined) throw new Failure(`missing required parameter \`${name}\``);
    if (typeof value !== 'string' || value === '') {
      throw new Failure(`parameter \`${name}\`: must be a non-empty string`);
    }
    return value;
  };
  const checked = {
    workspace: text('workspace'),
    blueprint: text('blueprint'),
    flowId: text('flow_id', 'default'),
    description: text('description', 'Started by workspace-setup'),
    seed: params.seed ?? {},
    overwrite: params.overwrite ?? false,
  };
  if (typeof checked.overwrite !== 'boolean') {
    throw new Failure('parameter `overwrite`: must be true or false');
  }
  if (!isMapping(checked.seed) || !Object.values(checked.seed).every(isMapping)) {
    throw new Failure('parameter `seed`: must be a mapping of config types to mappings of keys to values');
  }
  const warnings = Object.keys(params)
    .filter((name) => !KNOWN.includes(name))
    .map((name) => `unknown parameter \`${name}\` is ignored (known: ${KNOWN.join(', ')})`);
  return { checked, warnings };
}

/** Write the seed entries: all of them, or only the keys `workspace` lacks. Returns the count. */
function writeSeed(workspace, seed, everything) {
  const what = `writing the seed to workspace '${workspace}'`;
  if (everything) {
    const entries = Object.entries(seed).flatMap(([type, keys]) =>
      Object.entries(keys).map(([key, value]) => ({ type, key, value: pyDumps(value) })));
    if (entries.length > 0) host(what, config.put, workspace, entries);
    return entries.length;
  }
  let written = 0;
  for (const [type, keys] of Object.entries(seed)) {
    const existing = new Set(host(`listing '${type}' keys in workspace '${workspace}'`,
      config.listKeys, workspace, type));
    const missing = Object.entries(keys)
      .filter(([key]) => !existing.has(key))
      .map(([key, value]) => ({ type, key, value: pyDumps(value) }));
    if (missing.length > 0) {
      host(what, config.put, workspace, missing);
      written += missing.length;
    }
  }
  return written;
}

/** Start the flow unless it is running already (the flag may have been lost). */
function startFlow({ workspace, flowId, blueprint, description }) {
  const running = host(`listing the flows of workspace '${workspace}'`, flow.listFlows, workspace);
  if (running.includes(flowId)) {
    log('info', `flow '${flowId}' already running in workspace '${workspace}'`);
    return;
  }
  // A missing blueprint is the likeliest mistake: say so plainly (a `not-found` error).
  try {
    flow.getBlueprint(workspace, blueprint);
  } catch (error) {
    if (!isHostError(error)) throw error;
    if (error.payload.tag === 'not-found') {
      throw new Failure(`blueprint '${blueprint}' is not in workspace '${workspace}' (has WorkspaceInit run?)`);
    }
    throw new Failure(explain(`reading blueprint '${blueprint}'`, error.payload));
  }
  host(`starting flow '${flowId}' from blueprint '${blueprint}'`,
    flow.startFlow, workspace, flowId, blueprint, description, []);
  log('info', `flow '${flowId}' started from blueprint '${blueprint}' in workspace '${workspace}'`);
}

// An export returning `result<T, string>` returns `T` for ok; a thrown string is the err.
export const initialiser = {
  describe() {
    return {
      waitForServices: true,
      summary: "Seeds a workspace's config and starts its flow (JavaScript example)",
    };
  },

  validate(params) {
    try {
      return settings(params).warnings;
    } catch (error) {
      throw error instanceof Failure ? error.message : `unexpected ${error}`;
    }
  },

  run(params, oldFlag, newFlag) {
    try {
      const { checked } = settings(params);
      // First run, or asked to: write every entry. A re-run after a flag bump adds only what
      // is missing, keeping what an operator changed since.
      const everything = oldFlag == null || checked.overwrite;
      const written = writeSeed(checked.workspace, checked.seed, everything);
      const mode = everything ? 'all entries' : 'missing entries only';
      log('info', `flag ${oldFlag ?? 'none'} -> ${newFlag}: wrote ${written} seed entries ` +
        `to '${checked.workspace}' (${mode})`);
      startFlow(checked);
    } catch (error) {
      if (error instanceof Failure) throw error.message;
      // A bug: say where, rather than trap with no context.
      log('error', `${error?.stack ?? error}`);
      throw `unexpected ${error}`;
    }
  },
};
