import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { stringify } from "yaml";

/** The first executable `name` on PATH, or undefined. */
export function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (!dir) continue;
    const f = path.join(dir, name);
    try {
      accessSync(f, constants.X_OK);
      return f;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** A TCP port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export interface PromSample {
  metric: Record<string, string>;
  value?: [number, string];
  values?: [number, string][];
}
export interface PromQueryData {
  resultType: "vector" | "matrix" | "scalar" | "string";
  result: PromSample[] | [number, string];
}

/** A `prometheus` server run by a test: its output is kept (not printed) for failure messages. */
export interface PrometheusServer {
  url: string;
  /** The last lines Prometheus logged (stdout and stderr). */
  log(lines?: number): string;
  /** GET a Prometheus HTTP API path and return `data` (throws with the API's error and the log tail). */
  api<T = unknown>(pathAndQuery: string): Promise<T>;
  /** An instant query. */
  query(q: string): Promise<PromQueryData>;
  stop(): Promise<void>;
}

/**
 * Writes `config` (an object, dumped as YAML) into `dir` and starts Prometheus on it, with its TSDB
 * under `dir` and its web/API on a free port of 127.0.0.1. Resolves when /-/ready answers.
 */
export async function startPrometheus(bin: string, dir: string, config: unknown, timeoutMs = 30_000): Promise<PrometheusServer> {
  const configFile = path.join(dir, "prometheus.yml");
  await writeFile(configFile, stringify(config));
  await mkdir(path.join(dir, "data"), { recursive: true });
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const p: ChildProcess = spawn(
    bin,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${path.join(dir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      "--log.level=info",
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const out: string[] = [];
  const keep = (d: Buffer) => {
    out.push(...String(d).split("\n").filter(Boolean));
    if (out.length > 2000) out.splice(0, out.length - 2000);
  };
  p.stdout!.on("data", keep);
  p.stderr!.on("data", keep);
  let exited: string | undefined;
  const exit = new Promise<void>((resolve) =>
    p.on("exit", (code, signal) => {
      exited = `prometheus exited (code ${code}, signal ${signal})`;
      resolve();
    }),
  );
  p.on("error", (err) => (exited = `prometheus did not start: ${err.message}`));
  const log = (lines = 40) => out.slice(-lines).join("\n");
  const withLog = (msg: string) => `${msg}\n--- prometheus log (last lines) ---\n${log()}`;

  const server: PrometheusServer = {
    url,
    log,
    async api<T>(pathAndQuery: string): Promise<T> {
      const res = await fetch(url + pathAndQuery, { signal: AbortSignal.timeout(10_000) });
      const body = (await res.json().catch(() => ({}))) as { status?: string; data?: T; error?: string; errorType?: string };
      if (body.status !== "success")
        throw new Error(withLog(`${pathAndQuery}: HTTP ${res.status} ${body.errorType ?? ""} ${body.error ?? ""}`));
      return body.data as T;
    },
    query(q: string) {
      return server.api<PromQueryData>(`/api/v1/query?${new URLSearchParams({ query: q })}`);
    },
    async stop() {
      if (p.exitCode !== null || p.signalCode !== null) return;
      p.kill("SIGTERM");
      const killer = setTimeout(() => p.kill("SIGKILL"), 10_000);
      await exit;
      clearTimeout(killer);
    },
  };

  const end = Date.now() + timeoutMs;
  for (;;) {
    if (exited) throw new Error(withLog(exited));
    const ready = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(2_000) }).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) return server;
    if (Date.now() > end) {
      await server.stop();
      throw new Error(withLog(`prometheus was not ready at ${url} within ${timeoutMs} ms`));
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
