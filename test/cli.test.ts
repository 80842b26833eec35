import { mkdtemp, readFile, rm } from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli, writeConfig } from "./helpers/cli.js";
import { writeInput } from "./helpers/files.js";
import { cleanPrefix, holdLiveRun, REDIS_URL, redisClient, releaseLiveRun, uniquePrefix } from "./helpers/redis.js";

let dir: string;
let config: string;
const prefix = uniquePrefix("cli");

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "tranche-cli-"));
  for (let i = 0; i < 25; i++)
    await writeInput(path.join(dir, "in"), `dt=2024-01-0${(i % 2) + 1}/f${i}.json`, `{"i":${i}}\n`, Date.UTC(2024, 0, 1) + i * 1000);
  config = await writeConfig(dir, {
    redis: { url: REDIS_URL },
    prefix,
    jobs: {
      events: {
        source: { path: "in", partitionKeys: ["dt"], boundedFiles: "10" },
        processor: "ndjson",
        output: { path: pathToFileURL(path.join(dir, "out")).href },
        worker: { threads: 1 },
      },
    },
  });
});
afterAll(async () => {
  const r = redisClient();
  await cleanPrefix(r, prefix);
  await r.quit();
  await rm(dir, { recursive: true, force: true });
});

describe("tranche CLI", () => {
  it("run --json prints one object per run with the documented fields; --drain runs until nothing is left", async () => {
    const one = await cli(["run", "events", "--config", config, "--json", "--bounded-files", "4"]);
    expect(one.code).toBe(0);
    const first = JSON.parse(one.stdout.trim());
    for (const k of ["runId", "job", "status", "files", "bytes", "remainingFiles", "remainingBytes", "durationMs"])
      expect(first).toHaveProperty(k);
    expect([first.job, first.status, first.files, first.remainingFiles]).toEqual(["events", "succeeded", 4, 21]);

    const drained = await cli(["run", "events", "--config", config, "--json", "--drain"]);
    expect(drained.code).toBe(0);
    const runs = drained.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(runs.map((r) => r.files)).toEqual([10, 10, 1]);

    const again = await cli(["run", "events", "--config", config]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/nothing to do, no unprocessed files/);
  });

  it("status shows backlog, bookmark and last runs", async () => {
    await writeInput(path.join(dir, "in"), "dt=2024-01-01/late.json", "{}\n", Date.UTC(2024, 0, 2));
    // Without --fresh, status shows what the last run's listing left (it does not list the source).
    const cached = await cli(["status", "events", "--config", config, "--json"]);
    expect(JSON.parse(cached.stdout).backlog).toMatchObject({ files: 0, asOfRun: expect.any(String) });
    const s = await cli(["status", "events", "--config", config, "--json", "--fresh"]);
    expect(s.code).toBe(0);
    const st = JSON.parse(s.stdout);
    expect(st.backlog.files).toBe(1);
    expect(st.bookmark.partitions.map((p: { files: number }) => p.files).reduce((a: number, b: number) => a + b)).toBe(25);
    expect(st.lastRuns[0].status).toBe("empty");
    const text = await cli(["status", "--config", config, "--fresh"]);
    expect(text.stdout).toMatch(/backlog: 1 file, /);
    expect(text.stdout).toMatch(/oldest unprocessed \d+d\d\dh old/);
  });

  it("bookmark show --json gives Glue's JobBookmarkEntry fields; rewind and reset work and refuse while a run is in progress", async () => {
    const show = await cli(["bookmark", "show", "events", "--config", config, "--json"]);
    expect(show.code).toBe(0);
    const e = JSON.parse(show.stdout);
    for (const k of ["JobName", "Version", "Run", "Attempt", "PreviousRunId", "RunId", "JobBookmark"]) expect(e).toHaveProperty(k);
    expect(e.JobName).toBe("events");
    expect(typeof e.JobBookmark).toBe("string");
    expect(Object.keys(JSON.parse(e.JobBookmark).partitions).sort()).toEqual(["dt=2024-01-01", "dt=2024-01-02"]);
    const firstCommitted = e.History.filter((h: { committed: boolean }) => h.committed).at(-1).runId;
    expect((await cli(["bookmark", "show", "events", "--config", config])).stdout).toMatch(/bookmark of job events: version \d+/);

    const r = redisClient();
    await r.zadd(`${prefix}:runs:events:active`, Date.now() + 60_000, "someone-else");
    const refused = await cli(["bookmark", "reset", "events", "--config", config]);
    await r.zrem(`${prefix}:runs:events:active`, "someone-else");
    await r.quit();
    expect([refused.code, refused.stderr]).toEqual([3, expect.stringMatching(/E_RUN_IN_PROGRESS.*someone-else/)]);

    const rw = await cli(["bookmark", "rewind", "events", "--config", config, "--to-run", firstCommitted]);
    expect(rw.code).toBe(0);
    const after = await cli(["run", "events", "--config", config, "--json", "--bounded-files", "100"]);
    expect(JSON.parse(after.stdout).files).toBe(21 + 1); // committed after the first run, plus the late file
    const missing = await cli(["bookmark", "rewind", "events", "--config", config, "--to-run", "nope"]);
    expect([missing.code, missing.stderr]).toEqual([2, expect.stringMatching(/run nope .* is not in the bookmark history/)]);
    expect((await cli(["bookmark", "reset", "events", "--config", config])).code).toBe(0);
    expect(JSON.parse((await cli(["bookmark", "show", "events", "--config", config, "--json"])).stdout).Version).toBe(0);
  });

  it("fails with a one-line reason and a distinct exit code", async () => {
    const badBound = await cli(["run", "events", "--config", config, "--bounded-files", "1.5"]);
    expect(badBound.code).toBe(2);
    expect(badBound.stderr.trim()).toMatch(/^error \[E_CONFIG\]: run-time override: boundedFiles = "1\.5" is not valid/);
    const both = await cli(["run", "events", "--config", config, "--bounded-files", "1", "--bounded-size", "5"]);
    expect(both.code).toBe(2);
    const unknown = await cli(["run", "nope", "--config", config]);
    expect([unknown.code, unknown.stderr.trim()]).toEqual([2, 'error [E_CONFIG]: unknown job "nope"; configured jobs: events']);
    const missing = await cli(["run", "events", "--config", path.join(dir, "missing.yaml")]);
    expect(missing.code).toBe(2);
    const noRedis = await cli(["run", "events", "--config", config], { TRANCHE_REDIS_URL: "redis://127.0.0.1:1" });
    expect(noRedis.code).toBe(4);
    expect(noRedis.stderr).toMatch(/cannot reach Redis at redis:\/\/127\.0\.0\.1:1/);
    const r = redisClient();
    await holdLiveRun(r, prefix, "events", "someone-else");
    const busy = await cli(["run", "events", "--config", config]);
    await releaseLiveRun(r, prefix, "events", "someone-else");
    await r.quit();
    expect(busy.code).toBe(3);
    expect(busy.stderr).toMatch(/concurrent runs exceeded for job "events"/);
  });

  it("argument errors, --threads 0, a busy metrics port: the documented line and exit 2, naming the option", async () => {
    const unknownOpt = await cli(["run", "events", "--config", config, "--thredas", "2"]);
    expect([unknownOpt.code, unknownOpt.stderr]).toEqual([2, expect.stringMatching(/^error \[E_CONFIG\]: unknown option '--thredas'/)]);
    const zero = await cli(["run", "events", "--config", config, "--threads", "0"]);
    expect([zero.code, zero.stderr]).toEqual([
      2,
      expect.stringMatching(/^error \[E_CONFIG\]: .*--threads must be a whole number of at least 1, got "0"/),
    ]);
    const noArg = await cli(["run"]);
    expect([noArg.code, noArg.stderr]).toEqual([2, expect.stringMatching(/^error \[E_CONFIG\]: missing required argument 'job'/)]);
    const server = http.createServer().listen(0, "0.0.0.0");
    await new Promise((r) => server.once("listening", r));
    const port = (server.address() as { port: number }).port;
    const busy = await cli(["run", "events", "--config", config, "--metrics-port", String(port)]);
    server.close();
    expect([busy.code, busy.stderr]).toEqual([
      2,
      expect.stringMatching(/^error \[E_CONFIG\]: metrics port \d+ on 0\.0\.0\.0 is in use; choose another/),
    ]);
    const level = await cli(["status", "--config", config], { TRANCHE_LOG_LEVEL: "verbose" });
    expect([level.code, level.stderr]).toEqual([2, expect.stringMatching(/TRANCHE_LOG_LEVEL="verbose" is not a level/)]);
  });

  it("--version; -c before or after the command; a closed pipe ends quietly", async () => {
    const v = await cli(["--version"]);
    expect([v.code, v.stdout.trim()]).toEqual([0, JSON.parse(await readFile("package.json", "utf8")).version]);
    const before = await cli(["-c", config, "status", "events", "--json"]);
    expect(before.code).toBe(0);
    expect(JSON.parse(before.stdout).job).toBe("events");
    const { spawn } = await import("node:child_process");
    const p = spawn(`node ${path.resolve("bin/tranche.js")} bookmark show events -c ${config} --json | head -1`, { shell: true });
    let err = "";
    p.stderr.on("data", (d) => (err += d));
    const code = await new Promise((r) => p.on("exit", r));
    expect(code).toBe(0);
    expect(err).not.toMatch(/EPIPE|Error|at /);
  });

  it("a worker serves /metrics and /healthz", async () => {
    const { spawn } = await import("node:child_process");
    const port = 19000 + Math.floor(Math.random() * 1000);
    const p = spawn(process.execPath, [path.resolve("bin/tranche.js"), "worker", "--config", config, "--metrics-port", String(port)], {
      stdio: "ignore",
    });
    try {
      const get = (u: string) =>
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          http
            .get(`http://127.0.0.1:${port}${u}`, (res) => {
              let body = "";
              res.on("data", (d) => (body += d));
              res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
            })
            .on("error", reject);
        });
      let m: { status: number; body: string } | undefined;
      for (let i = 0; i < 100 && !m; i++) {
        m = await get("/metrics").catch(() => undefined);
        if (!m) await new Promise((r) => setTimeout(r, 100));
      }
      expect(m!.status).toBe(200);
      expect(m!.body).toMatch(/tranche_files_processed_total/);
      expect((await get("/healthz")).status).toBe(200);
    } finally {
      p.kill("SIGTERM");
    }
  });
});
