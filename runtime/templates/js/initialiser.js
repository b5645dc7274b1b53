// {{name}}: stores a greeting in a workspace's config.
//
// Parameters (the init-file entry's `params`, as JSON text):
// - `workspace` (required): the workspace to write to;
// - `greeting` (default "Hello!"): the text stored at type `greeting`, key `text`.
//
// Grants it needs: config write (and read) on `workspace`.
//
// Built into a component with componentize-js (see build.mjs); the runtime calls the three
// functions of the exported `initialiser` object.

import * as config from 'trustgraph:bootstrap/config@0.1.1';
import { log } from 'trustgraph:bootstrap/log@0.1.1';

const KNOWN = ['workspace', 'greeting'];

/** The params, checked: {workspace, greeting, warnings}; throws a message on a bad one. */
function settings(paramsJson) {
  let params;
  try {
    params = JSON.parse(paramsJson);
  } catch (error) {
    throw `params are not JSON: ${error.message}`;
  }
  if (params === null || typeof params !== 'object' || Array.isArray(params)) throw 'params must be a mapping';
  const { workspace, greeting = 'Hello!' } = params;
  if (workspace === undefined) throw 'missing required parameter `workspace`';
  if (typeof workspace !== 'string' || workspace === '') throw 'parameter `workspace`: must be a non-empty string';
  if (typeof greeting !== 'string') throw 'parameter `greeting`: must be a string';
  const warnings = Object.keys(params).filter((name) => !KNOWN.includes(name))
    .map((name) => `unknown parameter \`${name}\` is ignored (known: ${KNOWN.join(', ')})`);
  return { workspace, greeting, warnings };
}

// An export returning `result<T, string>` returns `T` for ok; a thrown string is the err.
export const initialiser = {
  describe() {
    return { waitForServices: true, summary: "Stores a greeting in a workspace's config ({{name}})" };
  },

  validate(params) {
    return settings(params).warnings;
  },

  run(params, oldFlag, newFlag) {
    const { workspace, greeting } = settings(params);
    // Safe to repeat: `put` replaces the value. A host error is thrown with `payload` {tag, val}.
    try {
      config.put(workspace, [{ type: 'greeting', key: 'text', value: JSON.stringify(greeting) }]);
    } catch (error) {
      const cause = error?.payload ? `${error.payload.tag}: ${error.payload.val}` : `${error}`;
      throw `writing the greeting to workspace '${workspace}': ${cause}`;
    }
    log('info', `flag ${oldFlag ?? 'none'} -> ${newFlag}: greeting stored in workspace '${workspace}'`);
  },
};
