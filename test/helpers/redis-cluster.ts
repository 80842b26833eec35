import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { onPath } from "./prometheus.js";

const run = promisify(execFile);

export interface RedisClusterServer {
  /** `redis://127.0.0.1:P` of each master. */
  nodes: string[];
  ports: number[];
  /** What the servers and redis-cli printed (for failure messages). */
  output(): string;
  stop(): Promise<void>;
}

/** Why a cluster cannot be started here (`redis-server` or `redis-cli` missing), or null. */
export function clusterUnavailable(): string | null {
  const missing = ["redis-server", "redis-cli"].filter((b) => !onPath(b));
  return missing.length ? `${missing.join(" and ")} not on PATH (apt-get install redis-server)` : null;
}

/** Whether a TCP port on 127.0.0.1 is free now. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

/** A free port P whose cluster bus port P + 10000 is free too. */
async function freeClusterPort(taken: Set<number>): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const p = 20000 + Math.floor(Math.random() * 30000);
    if (taken.has(p) || taken.has(p + 10000) || taken.has(p - 10000)) continue;
    if ((await portFree(p)) && (await portFree(p + 10000))) return p;
  }
  throw new Error("no free port pair for a Redis Cluster node");
}

/**
 * Starts a real Redis Cluster of `size` masters (no replicas) on free ports in a temp folder:
 * `redis-server --cluster-enabled yes` per node, `redis-cli --cluster create`, then waits until
 * every node reports `cluster_state:ok`. Quiet: the servers' output is kept, shown only on failure.
 */
export async function startRedisCluster(size = 3): Promise<RedisClusterServer> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "tranche-redis-cluster-"));
  const taken = new Set<number>();
  const ports: number[] = [];
  for (let i = 0; i < size; i++) {
    const p = await freeClusterPort(taken);
    taken.add(p);
    ports.push(p);
  }
  let out = "";
  const procs: ChildProcess[] = [];
  const stop = async () => {
    await Promise.all(
      procs.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null || p.signalCode !== null) return resolve();
            p.once("exit", () => resolve());
            p.kill("SIGTERM");
            setTimeout(() => p.kill("SIGKILL"), 5000).unref();
          }),
      ),
    );
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (const p of ports) {
      const proc = spawn(
        "redis-server",
        [
          "--port",
          String(p),
          "--cluster-enabled",
          "yes",
          "--cluster-config-file",
          path.join(dir, `nodes-${p}.conf`),
          "--cluster-node-timeout",
          "5000",
          "--dir",
          dir,
          "--save",
          "",
          "--appendonly",
          "no",
          "--bind",
          "127.0.0.1",
        ],
        { stdio: ["ignore", "pipe", "pipe"] },
      );
      proc.stdout.on("data", (d) => (out += `[${p}] ${d}`));
      proc.stderr.on("data", (d) => (out += `[${p}] ${d}`));
      procs.push(proc);
    }
    await waitUntil(async () => (await Promise.all(ports.map(answers))).every(Boolean), 10_000, "the redis-servers to answer");
    const created = await run("redis-cli", [
      "--cluster",
      "create",
      ...ports.map((p) => `127.0.0.1:${p}`),
      "--cluster-replicas",
      "0",
      "--cluster-yes",
    ]).catch((e: { stdout?: string; stderr?: string; message: string }) => {
      throw new Error(`redis-cli --cluster create failed: ${e.message}\n${e.stdout ?? ""}${e.stderr ?? ""}`, { cause: e });
    });
    out += created.stdout + created.stderr;
    await waitUntil(async () => (await Promise.all(ports.map(clusterOk))).every(Boolean), 20_000, "cluster_state:ok on every node");
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}\n--- redis output ---\n${out}`, { cause: err });
  }
  return { nodes: ports.map((p) => `redis://127.0.0.1:${p}`), ports, output: () => out, stop };
}

async function withNode<T>(port: number, f: (r: Redis) => Promise<T>): Promise<T | undefined> {
  const r = new Redis({ port, host: "127.0.0.1", lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on("error", () => undefined);
  try {
    await r.connect();
    return await f(r);
  } catch {
    return undefined;
  } finally {
    r.disconnect();
  }
}

const answers = async (port: number) => (await withNode(port, (r) => r.ping())) === "PONG";
const clusterOk = async (port: number) =>
  ((await withNode(port, (r) => r.cluster("INFO") as Promise<string>)) ?? "").includes("cluster_state:ok");

async function waitUntil(cond: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Keys on every master (a fresh cluster has none). */
export async function clusterKeyCount(ports: readonly number[]): Promise<number> {
  let n = 0;
  for (const p of ports) n += (await withNode(p, (r) => r.dbsize())) ?? Number.NaN;
  return n;
}
