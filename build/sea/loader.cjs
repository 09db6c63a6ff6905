'use strict';
// The single executable's main: runs the bundle (a SEA asset) with a V8 code cache taken AFTER a DEL ran
// (build/sea/warm.cjs). Node's own `useCodeCache` covers only what V8 compiles before running, i.e. the
// bundle's top level; every function a DEL calls was still compiled on each start. A cache V8 rejects
// (another node build) costs nothing but that compile time, so nothing here may fail because of it.
const { getAsset } = require('node:sea');
const { Script } = require('node:vm');

const source = getAsset('bundle.cjs', 'utf8');
// V8 deserialises a whole cache before running: VERSION, which runs next to nothing, takes the small cache of
// the top level alone (what useCodeCache would have made), everything else the one with the DEL path in it.
let cachedData;
try {
  cachedData = Buffer.from(getAsset(process.env.CNI_COMMAND === 'VERSION' ? 'top-level.cache' : 'bundle.cache'));
} catch {
  cachedData = undefined;
}
// Must match warm.cjs byte for byte: V8 checks the cache against the source it was made from.
const wrapped = `(function (exports, require, module, __filename, __dirname) {${source.replace(/^#!.*\n/, '')}\n})`;
new Script(wrapped, { filename: 'masq-janitor', cachedData }).runInThisContext()(exports, require, module, __filename, __dirname);
