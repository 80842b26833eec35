import { spawn, type ChildProcess } from "node:child_process";
import path from "node:path";

export const BIN = path.resolve("bin/tranche.js");

export interface Proc {
  child: ChildProcess;
  /** The last 64 KB of stdout + stderr. */
  output(): string;
  exited: Promise<number | null>;
  alive(): boolean;
}

/** Starts a tranche command as its own process (output kept, bounded). */
export function tranche(args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, TRANCHE_LOG_LEVEL: "warn", TRANCHE_LOG_FORMAT: "json", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const keep = (d: Buffer) => {
    out += d.toString();
    if (out.length > 65_536) out = out.slice(-65_536);
  };
  child.stdout!.on("data", keep);
  child.stderr!.on("data", keep);
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  return { child, output: () => out, exited, alive: () => child.exitCode === null && child.signalCode === null };
}

export async function kill(p: Proc, signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
  if (!p.alive()) return;
  p.child.kill(signal);
  await p.exited;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const between = (a: number, b: number) => a + Math.random() * (b - a);

/** Runs a command to completion. */
export async function runToEnd(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; out: string }> {
  const p = tranche(args, env);
  const code = await p.exited;
  return { code, out: p.output() };
}
