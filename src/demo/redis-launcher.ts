import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import net from "node:net";
import { Redis } from "ioredis";
import { TrancheError } from "../errors.js";

async function answers(url: string): Promise<boolean> {
  const r = new Redis(url, { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on("error", () => undefined);
  try {
    await r.connect();
    return (await r.ping()) === "PONG";
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * A Redis for the demo: `TRANCHE_REDIS_URL`, else 127.0.0.1:6379 when it answers, else a private
 * `redis-server` from PATH on a free port, stopped by `stop()`. With `dataDir` the private one
 * keeps its data there (append-only file), so a second demo finds the first one's bookmark;
 * without, it keeps nothing.
 */
export async function demoRedis(
  env = process.env,
  defaultUrl = "redis://127.0.0.1:6379",
  dataDir?: string,
): Promise<{ url: string; started: boolean; stop(): Promise<void> }> {
  const url = env.TRANCHE_REDIS_URL ?? defaultUrl;
  if (await answers(url)) return { url, started: false, stop: async () => undefined };
  if (env.TRANCHE_REDIS_URL) {
    throw new TrancheError(
      "E_REDIS",
      `TRANCHE_REDIS_URL=${url} does not answer; start that Redis or unset TRANCHE_REDIS_URL to let the demo start its own`,
      4,
    );
  }
  if (spawnSync("redis-server", ["--version"]).error) {
    throw new TrancheError(
      "E_REDIS",
      `no Redis answers at ${defaultUrl} and redis-server is not on PATH; install Redis (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) or set TRANCHE_REDIS_URL`,
      4,
    );
  }
  const port = await freePort();
  const persist = dataDir ? ["--dir", dataDir, "--appendonly", "yes", "--appendfsync", "everysec"] : ["--appendonly", "no"];
  if (dataDir) mkdirSync(dataDir, { recursive: true });
  const child: ChildProcess = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", ...persist], {
    stdio: "ignore",
  });
  const privateUrl = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 50 && !(await answers(privateUrl)); i++) await new Promise((r) => setTimeout(r, 100));
  if (!(await answers(privateUrl))) {
    child.kill("SIGKILL");
    throw new TrancheError("E_REDIS", `started redis-server on port ${port} but it does not answer`, 4);
  }
  return {
    url: privateUrl,
    started: true,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}
