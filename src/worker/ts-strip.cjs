// @ts-check
// Preloaded (`--require`, after bootstrap.cjs) into the workers of a TypeScript app when their Node
// strips types itself. Node keeps loading every file its own way; the in-thread load hook only
// takes over a file Node would refuse, and loads sucrase only then.
'use strict';

const hooks = require('./ts-hooks.cjs');

hooks.setMode('node');
/** @type {any} */ (require('node:module')).registerHooks({ load: hooks.load });
