'use strict';
// Build step of `make standalone`: `node build/sea/warm.cjs BUNDLE CACHE_OUT TOP_LEVEL_CACHE_OUT`.
// Runs the bundle's DEL with nothing to clean, the common DEL, once, and writes V8's code cache of
// everything compiled by then (build/sea/loader.cjs feeds it back at run time), and the cache of the top
// level alone, taken before anything ran (for VERSION). The DEL runs against
// fake iptables/nft tools that answer like an empty netns: the build never touches a real table.
const { spawnSync } = require('node:child_process');
const { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { Script } = require('node:vm');

const [bundle, cacheOut, topLevelOut] = process.argv.slice(2);
if (!bundle || !cacheOut || !topLevelOut) {
  process.stderr.write('usage: node build/sea/warm.cjs BUNDLE CACHE_OUT TOP_LEVEL_CACHE_OUT\n');
  process.exit(2);
}

if (process.env.MJ_WARM_CHILD) {
  // The child: compile exactly as loader.cjs does, run, and dump the cache when the bundle exits.
  const source = readFileSync(bundle, 'utf8');
  const wrapped = `(function (exports, require, module, __filename, __dirname) {${source.replace(/^#!.*\n/, '')}\n})`;
  const script = new Script(wrapped, { filename: 'masq-janitor' });
  writeFileSync(topLevelOut, script.createCachedData());
  const exit = process.exit.bind(process);
  process.exit = (code) => {
    writeFileSync(cacheOut, script.createCachedData());
    exit(code);
  };
  script.runInThisContext()(exports, require, module, __filename, __dirname);
} else {
  const fake = mkdtempSync(join(tmpdir(), 'mj-warm-'));
  try {
    // What the tools print in a netns with no masquerade state (iptables 1.8.9 nft variant, nft 1.0.6).
    const tools = {
      // `-j -i`: DEL's batched listings (src/backends/nft/listings.ts), one error block per command.
      nft: 'if [ "$2" = -i ]; then while read -r l; do printf "Error: No such file or directory\\n%s\\n  ^^^\\n" "$l"; done >&2; exit 0; fi; echo "Error: No such file or directory" >&2; exit 1',
      iptables: 'case "$*" in --version) echo "iptables v1.8.9 (nf_tables)";; *" -S POSTROUTING") echo "-P POSTROUTING ACCEPT";; *" -S "*) echo "iptables: No chain/target/match by that name." >&2; exit 1;; *) exit 0;; esac',
      'iptables-restore': 'cat >/dev/null; echo "iptables-restore: line 3 failed: Bad rule (does a matching rule exist in that chain?)." >&2; exit 1',
      'iptables-save': 'printf "*nat\\n:PREROUTING ACCEPT [0:0]\\n:INPUT ACCEPT [0:0]\\n:OUTPUT ACCEPT [0:0]\\n:POSTROUTING ACCEPT [0:0]\\nCOMMIT\\n"',
    };
    for (const [name, body] of Object.entries(tools)) {
      for (const n of [name, name.replace('iptables', 'ip6tables')]) {
        writeFileSync(join(fake, n), `#!/bin/sh\n${body}\n`);
        chmodSync(join(fake, n), 0o755);
      }
    }
    const prevResult = { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', sandbox: '' }], ips: [{ address: '10.4.0.7/24', gateway: '10.4.0.1', interface: 0 }], routes: [{ dst: '0.0.0.0/0' }], dns: {} };
    const r = spawnSync(process.execPath, [__filename, bundle, cacheOut, topLevelOut], {
      env: { MJ_WARM_CHILD: '1', PATH: fake, CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'warm-up', CNI_IFNAME: 'eth0', CNI_NETNS: '', CNI_PATH: fake },
      input: JSON.stringify({ cniVersion: '1.0.0', name: 'warm-up', type: 'masq-janitor', prevResult }),
      encoding: 'utf8',
    });
    if (r.status !== 0 || r.stdout !== '') throw new Error(`warm-up DEL exited ${r.status}: ${r.stdout}${r.stderr}`);
    const size = readFileSync(cacheOut).length;
    if (size === 0) throw new Error('empty code cache');
    process.stderr.write(`code cache after a DEL: ${size} bytes${r.stderr ? ` (the DEL logged: ${r.stderr.trim().slice(0, 200)})` : ''}\n`);
  } finally {
    rmSync(fake, { recursive: true, force: true });
  }
}
