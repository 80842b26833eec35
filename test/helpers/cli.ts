import { spawn, type ChildProcess } from "node:child_process";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { stringify } from "yaml";

export const BIN = path.resolve("bin/tranche.js");

/** Writes a YAML config file and returns its path. */
export async function writeConfig(dir: string, cfg: unknown): Promise<string> {
  const f = path.join(dir, "tranche.yaml");
  await writeFile(f, stringify(cfg));
  return f;
}

/** Runs the CLI to completion. */
export function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, TRANCHE_LOG_LEVEL: "warn", ...env } });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    p.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Starts a long-running `tranche worker` process. */
export function startWorkerProcess(
  config: string,
  extra: string[] = [],
): ChildProcess & { output: () => string; exited: Promise<number | null> } {
  const p = spawn(
    process.execPath,
    [BIN, "worker", "--config", config, "--metrics-port", "0", "--lock-duration-ms", "2000", "--stalled-interval-ms", "1000", ...extra],
    {
      env: { ...process.env, TRANCHE_LOG_LEVEL: "info" },
    },
  ) as ChildProcess & { output: () => string; exited: Promise<number | null> };
  let out = "";
  p.stdout!.on("data", (d) => (out += d));
  p.stderr!.on("data", (d) => (out += d));
  p.output = () => out;
  p.exited = new Promise((r) => p.on("exit", (code) => r(code)));
  return p;
}

export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 20_000, what = "condition"): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
