import { Command, InvalidArgumentError, Option } from "commander";
import { TrancheError } from "../errors.js";
import { demoCommand } from "../demo/demo.js";
import { bookmarkChangeCommand, bookmarkShowCommand, runCommand, statusCommand, workerCommand } from "./commands.js";

function int(name: string) {
  return (v: string) => {
    if (!/^[0-9]+$/.test(v)) throw new InvalidArgumentError(`${name} must be a whole number, got ${JSON.stringify(v)}`);
    return Number(v);
  };
}
const collect = (v: string, prev: string[] = []) => [...prev, v];

const program = new Command("tranche")
  .description("Bounded runs over large file backlogs in S3 or a local folder, with Redis bookmarks")
  .showHelpAfterError()
  .exitOverride();

program
  .command("run <job>")
  .description("plan and execute one bounded run of <job> in this process, then exit")
  .option("-c, --config <file>", "config file (default $TRANCHE_CONFIG or ./tranche.yaml)")
  .option("--drain", "repeat runs until nothing is left")
  .option("--bounded-files <n>", "override the bound for this run: at most N files")
  .option("--bounded-size <bytes>", "override the bound for this run: at most BYTES bytes")
  .addOption(new Option("--bookmark <mode>", "bookmark mode for this run").choices(["enable", "disable", "pause"]))
  .option("--from <runId>", "with --bookmark pause: replay what arrived after this run…")
  .option("--to <runId>", "…up to this run (both or neither)")
  .option("--threads <n>", "worker threads for this run", int("--threads"))
  .option("--metrics-port <port>", "serve /metrics while running", int("--metrics-port"))
  .option("--json", "print one JSON object per run on stdout")
  .action(async (job: string, o) => {
    await runCommand(job, o);
  });

program
  .command("worker")
  .description("consume batches from the queue until SIGTERM (run many, on many hosts)")
  .option("-c, --config <file>", "config file")
  .option("--job <name>", "consume only this job's queue (repeatable; default all jobs)", collect)
  .option("--threads <n>", "worker threads", int("--threads"))
  .option("--max-old-generation-size-mb <mb>", "V8 heap limit per thread", int("--max-old-generation-size-mb"))
  .option("--files-per-thread <n>", "files one thread works on at once (they share its heap)", int("--files-per-thread"))
  .option("--concurrency <n>", "batches at once per queue", int("--concurrency"))
  .option("--metrics-port <port>", "port of /metrics and /healthz (0 = off)", int("--metrics-port"))
  .option("--lock-duration-ms <ms>", "a worker silent this long is presumed dead and its batch retaken", int("--lock-duration-ms"))
  .option("--stalled-interval-ms <ms>", "how often to look for batches of dead workers", int("--stalled-interval-ms"))
  .action(async (o) => {
    await workerCommand(o);
  });

program
  .command("status [job]")
  .description("backlog (files, bytes, oldest), bookmark summary and last runs")
  .option("-c, --config <file>", "config file")
  .option("--json", "print JSON")
  .action(async (job: string | undefined, o) => {
    await statusCommand(job, o);
  });

const bookmark = program.command("bookmark").description("show, reset or rewind a job's bookmark (output is never touched)");
bookmark
  .command("show <job>")
  .description("the bookmark as Glue's JobBookmarkEntry, per-partition detail and run history")
  .option("-c, --config <file>", "config file")
  .option("--json", "print JSON")
  .action(async (job: string, o) => {
    await bookmarkShowCommand(job, o);
  });
bookmark
  .command("reset <job>")
  .description("everything of the job starts over (refused while a run is in progress)")
  .option("-c, --config <file>", "config file")
  .action(async (job: string, o) => {
    await bookmarkChangeCommand(job, "reset", o);
  });
bookmark
  .command("rewind <job>")
  .description("restore the state after an earlier run (refused while a run is in progress)")
  .requiredOption("--to-run <runId>", "the run whose end state to restore")
  .option("-c, --config <file>", "config file")
  .action(async (job: string, o) => {
    await bookmarkChangeCommand(job, "rewind", o);
  });

program
  .command("demo")
  .description("create a sample backlog in a temporary folder and drain it in bounded runs")
  .option("--dir <dir>", "folder for the sample data (default: a new temporary folder)")
  .option("--files <n>", "files to generate", int("--files"), 3000)
  .option("--partitions <n>", "date partitions", int("--partitions"), 6)
  .option("--records <n>", "records per file", int("--records"), 200)
  .option("--bounded-files <n>", "bound of each run", int("--bounded-files"), 500)
  .option("--threads <n>", "worker threads", int("--threads"), 2)
  .option("--json", "print one JSON object per run")
  .action(async (o) => {
    await demoCommand(o);
  });

try {
  await program.parseAsync(process.argv);
  process.exit(0);
} catch (err) {
  const e = err as Error & { code?: string; exitCode?: number };
  if (e.code?.startsWith("commander.")) {
    process.exit(e.exitCode === 0 ? 0 : 2);
  }
  if (err instanceof TrancheError) {
    process.stderr.write(`error [${err.code}]: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  process.stderr.write(`error: ${e.message ?? String(err)}\n`);
  if (process.env.TRANCHE_DEBUG) process.stderr.write(`${e.stack}\n`);
  process.exit(1);
}
