// Runs a real s3rver in its own process (it needs `--openssl-legacy-provider`
// for the DES continuation tokens used by paginated ListObjectsV2).
// Prints one JSON line {"port":N} to stdout when ready; exits on SIGTERM/SIGINT.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import S3rver from "s3rver";

const directory = mkdtempSync(join(tmpdir(), "tranche-s3rver-"));
const server = new S3rver({
  address: "127.0.0.1",
  port: 0,
  directory,
  silent: true,
  resetOnClose: true,
});

let stopping = false;
async function shutdown(code) {
  if (stopping) return;
  stopping = true;
  try {
    await server.close();
  } catch {
    // not running
  }
  rmSync(directory, { recursive: true, force: true });
  process.exit(code);
}

process.on("SIGTERM", () => void shutdown(0));
process.on("SIGINT", () => void shutdown(0));
// If the parent dies, stdin closes (the parent spawns us with a pipe there).
process.stdin.on("end", () => void shutdown(0));
process.stdin.on("error", () => void shutdown(0));
process.stdin.resume();

try {
  const addr = await server.run();
  process.stdout.write(JSON.stringify({ port: addr.port }) + "\n");
} catch (err) {
  process.stderr.write(`s3rver failed to start: ${err?.stack ?? err}\n`);
  rmSync(directory, { recursive: true, force: true });
  process.exit(1);
}
