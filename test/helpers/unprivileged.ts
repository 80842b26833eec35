import { spawn } from "node:child_process";
import { statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const DIST = fileURLToPath(new URL("../../dist/", import.meta.url));
const SYSTEM_NODES = ["/usr/local/bin/node", "/usr/bin/node"];

/** Whether a file and every folder above it let others in (x for folders, x for the file). */
function executableByOthers(file: string): boolean {
  try {
    let p = file;
    if ((statSync(p).mode & 0o001) === 0) return false;
    while (p !== path.dirname(p)) {
      p = path.dirname(p);
      if ((statSync(p).mode & 0o001) === 0) return false;
    }
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs `body` (an async ES-module snippet that may `await`) in a child Node process, as user
 * `nobody` when the tests run as root (root reads and writes through any chmod), else as the
 * current user. `body` imports tranche from `DIST` (so `npm run build` first) and its value is
 * what it `return`s; a thrown error comes back as `{ name, code, message }`.
 */
export function runUnprivileged(body: string): Promise<{ ok: boolean; value?: unknown; name?: string; code?: string; message?: string }> {
  const script = `const DIST = ${JSON.stringify(DIST)};
try {
  const value = await (async () => { ${body} })();
  process.stdout.write(JSON.stringify({ ok: true, value }));
} catch (e) {
  process.stdout.write(JSON.stringify({ ok: false, name: e?.name, code: e?.code, message: e?.message }));
}`;
  const asNobody = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
  // A Node binary `nobody` may run: ours may sit under /root (the registry's node package via npx).
  const node =
    process.getuid?.() === 0 && !executableByOthers(process.execPath)
      ? (SYSTEM_NODES.find(executableByOthers) ?? process.execPath)
      : process.execPath;
  return new Promise((resolve, reject) => {
    const child = spawn(node, ["--input-type=module", "-e", script], { ...asNobody, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => (err += d));
    child.on("error", reject);
    child.on("close", (code) => {
      try {
        resolve(JSON.parse(out) as { ok: boolean });
      } catch {
        reject(new Error(`unprivileged child exited ${code}: ${out}${err}`));
      }
    });
  });
}
