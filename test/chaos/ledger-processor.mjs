// Chaos test processor: copies JSON lines as ndjson (re-serialized), optionally sleeping or burning
// CPU per file, and appends "<epoch ms> <pid> <key>" to options.ledger when a file is done (and to
// options.startLedger when it starts); keys matching the regular expression options.failKeys fail.
import { appendFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

export default {
  async process(ctx) {
    if (ctx.options.startLedger) appendFileSync(String(ctx.options.startLedger), `${Date.now()} ${process.pid} ${ctx.key}\n`);
    if (ctx.options.failKeys && new RegExp(String(ctx.options.failKeys)).test(ctx.key)) throw new Error(`failKeys matches ${ctx.key}`);
    const sleepMs = Number(ctx.options.sleepMs ?? 0);
    const burnMs = Number(ctx.options.burnMs ?? 0);
    if (sleepMs) await sleep(sleepMs);
    if (burnMs) for (const end = Date.now() + burnMs; Date.now() < end;) Math.sqrt(Math.random());
    let records = 0;
    let text = "";
    for await (const chunk of ctx.input) text += chunk;
    for (const line of text.split("\n")) {
      if (!line.trim()) continue;
      if (!ctx.output.write(JSON.stringify(JSON.parse(line)) + "\n")) await new Promise((r) => ctx.output.once("drain", r));
      records++;
    }
    if (ctx.options.ledger) appendFileSync(String(ctx.options.ledger), `${Date.now()} ${process.pid} ${ctx.key}\n`);
    return { records };
  },
  outputName: (key) => `${key}.out`,
};
