// Interop peer: the tuf-js Updater refreshes from a medsec TUF repository and downloads one
// target, printing what it verified as JSON (used by tests/interop.rs).
// usage: node tuf_js_client.mjs METADATA_URL TARGETS_URL METADATA_DIR DOWNLOAD_DIR TARGET_NAME
// Resolved from tools/tuf-js-client (NODE_PATH is not honoured for ES modules).
import { createRequire } from 'node:module';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const [metadataBaseUrl, targetBaseUrl, metadataDir, targetDir, name] = process.argv.slice(2);
const require = createRequire(join(process.env.TUF_JS_DIR, 'package.json'));
const { Updater } = require('tuf-js');

const updater = new Updater({ metadataBaseUrl, targetBaseUrl, metadataDir, targetDir });
await updater.refresh();
const info = await updater.getTargetInfo(name);
if (!info) {
  console.log(JSON.stringify({ error: `no target ${name}` }));
  process.exit(2);
}
const path = await updater.downloadTarget(info, join(targetDir, name.replaceAll('/', '_')));
const data = readFileSync(path);
console.log(JSON.stringify({
  name: info.path,
  length: data.length,
  sha256: createHash('sha256').update(data).digest('hex'),
  custom: info.custom,
}));
