import { Command, InvalidArgumentError, Option } from "commander";
import { TrancheError } from "../errors.js";
import { checkLogEnv } from "../log.js";
import { packageVersion } from "../package-root.js";
import { redactText } from "../redact.js";
import { demoCommand } from "../demo/demo.js";
import { bookmarkChangeCommand, bookmarkShowCommand } from "./bookmark-commands.js";
import { deadLettersCommand } from "./dead-letters-command.js";
import { migrateCommand } from "./migrate-command.js";
import { assertNoDeadLetters, runCommand } from "./run-command.js";
import { planCommand } from "./plan-command.js";
import { runsCommand, stopCommand } from "./runs-command.js";
import { reprocessCommand } from "./reprocess-command.js";
import { schedulerCommand, triggersCommand } from "./scheduler-command.js";
import { statusCommand } from "./status-command.js";
import { workerCommand } from "./worker-command.js";

// `tranche … | head -1`: a closed pipe ends the output quietly, not with a stack trace.
for (const s of [process.stdout, process.stderr]) {
  s.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(0);
    throw err;
  });
}

/** A whole-number option value; `min` 1 refuses 0 (`--threads 0`), naming the option. */
function int(name: string, min = 0, max = Number.MAX_SAFE_INTEGER) {
  return (v: string) => {
    if (!/^[0-9]+$/.test(v) || Number(v) < min || Number(v) > max)
      throw new InvalidArgumentError(
        `${name} must be a whole number${min > 0 ? ` of at least ${min}` : ""}${max < Number.MAX_SAFE_INTEGER ? ` up to ${max}` : ""}, got ${JSON.stringify(v)}`,
      );
    return Number(v);
  };
}
const collect = (v: string, prev: string[] = []) => [...prev, v];

const program = new Command("tranche")
  .description("Bounded runs over large file backlogs in S3 or a local folder, with Redis bookmarks")
  .version(packageVersion(), "-V, --version", "print tranche's version")
  .option("-c, --config <file>", "config file (default $TRANCHE_CONFIG or ./tranche.yaml); also accepted after the command")
  .showHelpAfterError("(run with --help for the options)")
  .configureOutput({
    // Argument-parser errors get the documented one-line form (exit 2, see below).
    outputError: (str, write) => write(`error [E_CONFIG]: ${str.replace(/^error: /, "").trim()}\n`),
  })
  .exitOverride();

/** `-c` given before the command (`tranche -c x.yaml run job`) or after it. */
function withConfig<T extends { config?: string }>(o: T): T {
  return { ...o, config: o.config ?? (program.opts().config as string | undefined) };
}
const configOption = () => new Option("-c, --config <file>", "config file (default $TRANCHE_CONFIG or ./tranche.yaml)");

program
  .command("run <job>")
  .description("check the job, enqueue one bounded run of <job>, work on it in this process and exit with its outcome")
  .addOption(configOption())
  .option("--drain", "repeat runs until nothing is left (stops on a job error)")
  .option("--bounded-files <n>", "override the bound for this run: at most N files")
  .option("--bounded-size <bytes>", "override the bound for this run: at most BYTES bytes")
  .addOption(new Option("--bookmark <mode>", "bookmark mode for this run").choices(["enable", "disable", "pause"]))
  .option("--from <runId>", "with --bookmark pause: replay what arrived after this run…")
  .option("--to <runId>", "…up to this run (both or neither)")
  .option("--threads <n>", "worker threads for this run", int("--threads", 1))
  .option("--metrics-port <port>", "serve /metrics while running", int("--metrics-port", 0, 65535))
  .option("--json", "print one JSON object per run on stdout")
  .option("--detach", "enqueue the run, print its id and exit (workers execute it; see 'tranche runs')")
  .action(async (job: string, o) => {
    assertNoDeadLetters(job, await runCommand(job, withConfig(o)));
  });

program
  .command("plan <job>")
  .description("show what the next run of <job> would take (files, partitions, backlog, runs needed); leases and writes nothing")
  .addOption(configOption())
  .option("--bounded-files <n>", "plan with this bound: at most N files")
  .option("--bounded-size <bytes>", "plan with this bound: at most BYTES bytes")
  .addOption(new Option("--bookmark <mode>", "bookmark mode to plan with").choices(["enable", "disable", "pause"]))
  .option("--json", "print JSON")
  .action(async (job: string, o) => {
    await planCommand(job, withConfig(o));
  });

program
  .command("reprocess <job>")
  .description("reprocess exactly the files named, in bounded runs through the queue; outputs are overwritten, the bookmark does not move")
  .addOption(configOption())
  .option("--partition <k=v>", "only this partition value (repeatable: values of one key are alternatives, keys narrow)", collect)
  .option("--since <time>", "only files last modified at or after this time (ISO 8601 or epoch ms)")
  .option("--until <time>", "only files last modified before this time")
  .option("--keys-from <file>", "only the keys listed in FILE, one per line (- = standard input)")
  .option("--threads <n>", "worker threads", int("--threads", 1))
  .option("--detach", "enqueue the runs and exit (workers execute them; see 'tranche runs')")
  .option("--json", "print JSON")
  .action(async (job: string, o) => {
    await reprocessCommand(job, withConfig(o));
  });

program
  .command("runs <job>")
  .description("list the job's runs: state (Glue's), trigger, files, partitions committed")
  .addOption(configOption())
  .option("--limit <n>", "newest runs to show", int("--limit", 1), 20)
  .option("--json", "print JSON")
  .action(async (job: string, o) => {
    await runsCommand(job, withConfig(o));
  });

program
  .command("stop <runId>")
  .description("stop a run: files in flight finish, the rest goes to the next run; it ends STOPPED")
  .addOption(configOption())
  .action(async (runId: string, o) => {
    await stopCommand(runId, withConfig(o));
  });

program
  .command("scheduler")
  .description("fire the jobs' triggers (schedule, after, drain); run any number, one leads at a time")
  .addOption(configOption())
  .option("--metrics-port <port>", "port of /metrics and /healthz (0 = off)", int("--metrics-port", 0, 65535))
  .option("--api-port <port>", "serve the HTTP API (docs/api.md) on this port (0 = off)", int("--api-port", 0, 65535))
  .action(async (o) => {
    await schedulerCommand(withConfig(o));
  });

program
  .command("triggers [job]")
  .description("list the jobs' triggers with their next firing times")
  .addOption(configOption())
  .option("--json", "print JSON")
  .action(async (job: string | undefined, o) => {
    await triggersCommand(job, withConfig(o));
  });

program
  .command("worker")
  .description("consume batches from the queue until SIGTERM (run many, on many hosts)")
  .addOption(configOption())
  .option("--job <name>", "consume only this job's queue (repeatable; default all jobs)", collect)
  .option("--threads <n>", "worker threads", int("--threads", 1))
  .option("--max-old-generation-size-mb <mb>", "V8 heap limit per thread", int("--max-old-generation-size-mb", 16))
  .option("--native-memory-mb <mb>", "native memory per thread for the sql processor's DuckDB", int("--native-memory-mb", 64))
  .option("--files-per-thread <n>", "files one thread works on at once (they share its heap)", int("--files-per-thread", 1))
  .option("--concurrency <n>", "batches at once per queue", int("--concurrency", 1))
  .option("--metrics-port <port>", "port of /metrics and /healthz (0 = off)", int("--metrics-port", 0, 65535))
  .option("--lock-duration-ms <ms>", "a worker silent this long is presumed dead and its batch retaken", int("--lock-duration-ms", 500))
  .option("--stalled-interval-ms <ms>", "how often to look for batches of dead workers", int("--stalled-interval-ms", 100))
  .action(async (o) => {
    await workerCommand(withConfig(o));
  });

program
  .command("status [job]")
  .description("backlog (files, bytes, oldest), bookmark summary, dead letters and last runs")
  .addOption(configOption())
  .option("--json", "print JSON")
  .option("--fresh", "list the source now for the backlog (default: the figures the last run's listing left)")
  .action(async (job: string | undefined, o) => {
    await statusCommand(job, withConfig(o));
  });

const bookmark = program.command("bookmark").description("show, reset or rewind a job's bookmark (output is never touched)");
bookmark
  .command("show <job>")
  .description("the bookmark as Glue's JobBookmarkEntry, per-partition detail and run history")
  .addOption(configOption())
  .option("--json", "print JSON")
  .action(async (job: string, o) => {
    await bookmarkShowCommand(job, withConfig(o));
  });
bookmark
  .command("reset <job>")
  .description("everything of the job starts over, dead letters included (refused while a run is in progress)")
  .addOption(configOption())
  .action(async (job: string, o) => {
    await bookmarkChangeCommand(job, "reset", withConfig(o));
  });
bookmark
  .command("rewind <job>")
  .description("restore the state after an earlier run (refused while a run is in progress)")
  .requiredOption("--to-run <runId>", "the run whose end state to restore")
  .addOption(configOption())
  .action(async (job: string, o) => {
    await bookmarkChangeCommand(job, "rewind", withConfig(o));
  });

const dead = program.command("dead-letters").description("files set aside after failing in repeated runs: list, retry or clear them");
dead
  .command("list <job>")
  .description("every dead letter with its key, time, partition, run and reason (tab-separated, or --json lines)")
  .addOption(configOption())
  .option("--json", "one JSON object per line")
  .option("--skipped", "list the skipped (archived) files instead")
  .action(async (job: string, o) => {
    await deadLettersCommand("list", job, withConfig(o));
  });
dead
  .command("retry <job>")
  .description("put dead letters back in the backlog: the next run takes them")
  .addOption(configOption())
  .option("--key <key>", "only this key (repeatable; default all)", collect)
  .action(async (job: string, o) => {
    await deadLettersCommand("retry", job, withConfig(o));
  });
dead
  .command("clear <job>")
  .description("forget dead letters (they stay done)")
  .addOption(configOption())
  .option("--key <key>", "only this key (repeatable; default all)", collect)
  .action(async (job: string, o) => {
    await deadLettersCommand("clear", job, withConfig(o));
  });

program
  .command("migrate")
  .description("upgrade the Redis state under the prefix to this tranche's format (stop other tranche processes first)")
  .addOption(configOption())
  .action(async (o) => {
    await migrateCommand(withConfig(o));
  });

program
  .command("demo")
  .description("create a sample backlog in ./.tranche-demo and drain it in bounded runs (again: nothing left to do)")
  .option("--dir <dir>", "folder for the sample data, config and output", ".tranche-demo")
  .option("--files <n>", "files to generate", int("--files", 1), 3000)
  .option("--partitions <n>", "date partitions", int("--partitions", 1), 6)
  .option("--records <n>", "records per file", int("--records", 1), 200)
  .option("--bounded-files <n>", "bound of each run", int("--bounded-files", 1), 500)
  .option("--threads <n>", "worker threads", int("--threads", 1), 2)
  .option("--fresh", "start over: delete the demo folder and its bookmark first")
  .option("--clean", "delete the demo folder and its Redis keys, then exit")
  .option("--service", "run it as a service: a scheduler and two worker processes drain the backlog by a drain trigger")
  .option("--verbose", "with --service: show the service processes' log lines")
  .option("--json", "print one JSON object per run")
  .action(async (o) => {
    await demoCommand(o);
  });

try {
  checkLogEnv();
  await program.parseAsync(process.argv);
  process.exit(0);
} catch (err) {
  const e = err as Error & { code?: string; exitCode?: number };
  if (e.code?.startsWith("commander.")) {
    // Help and --version exit 0; parser errors were printed by outputError above.
    process.exit(e.exitCode === 0 ? 0 : 2);
  }
  if (err instanceof TrancheError) {
    process.stderr.write(`error [${err.code}]: ${redactText(err.message)}\n`);
    process.exit(err.exitCode);
  }
  process.stderr.write(`error: ${redactText(e.message ?? String(err))}\n`);
  if (process.env.TRANCHE_DEBUG) process.stderr.write(`${e.stack}\n`);
  process.exit(1);
}
