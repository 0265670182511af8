// Every text file of the built app also as .br and .gz, compressed once at build time at
// the highest levels (too slow per request); the hub sends the one the browser accepts
// (aiohttp's FileResponse picks the sibling file; docs/web.md). Run by scripts/build-web.sh.
import { readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";

const walk = (dir) =>
  readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });

for (const path of walk(process.argv[2])) {
  if (!/\.(js|css|html|svg|json|txt|wasm)$/.test(path)) continue;
  const raw = readFileSync(path);
  if (raw.length < 1024) continue; // a header's worth: not worth a second file
  writeFileSync(`${path}.gz`, gzipSync(raw, { level: 9 }));
  const params = { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: raw.length };
  writeFileSync(`${path}.br`, brotliCompressSync(raw, { params }));
}
