import type { GlueClient, PartitionInput } from "@aws-sdk/client-glue";
import type { Cluster, Redis } from "ioredis";
import { keys } from "../bookmark/keys.js";
import { withScripts } from "../bookmark/scripts.js";
import type { JobConfig, TrancheConfig } from "../config/schema.js";
import type { Logger } from "../log.js";
import { JOB_LABEL, catalogRegistrations } from "../metrics/registry.js";
import { classifyGlueError } from "./glue-errors.js";
import { makeGlueClient, tableName } from "./glue-client.js";
import { getCatalogTable, type CatalogTable } from "./table.js";
import { outputPartitions, retryDelayMs, type OutputPartition, type RegistrationEntry } from "./registration.js";

/**
 * Output partitions registered in a Glue catalog table (`output.catalog`; docs/catalog.md).
 *
 * A partition's commit queues one entry (the output folders it wrote) in the commit script itself,
 * so that a commit never loses its registration. Workers then register it: GetTable of the output
 * table, the folders mapped to its partitions (values from the `k=v` folders in the table's
 * partition-key order, location = the output root + those folders), BatchCreatePartition with the
 * table's storage descriptor at each partition's location. `AlreadyExistsException` entries count
 * as done, so a repeated registration is harmless; an entry is removed only once every partition
 * exists. A failed attempt is retried with backoff until it succeeds, and reported (log, metric,
 * `tranche status`).
 */

/** BatchCreatePartition takes at most 100 partitions a call. */
const BATCH = 100;
/** A claimed registration goes back to the others after this long (its worker died). */
const LEASE_MS = 60_000;

/**
 * Creates the partitions that do not exist yet (BatchCreatePartition, 100 a call), each with the
 * table's storage descriptor at its own location. Existing ones (`AlreadyExistsException`) count as
 * done; any other error throws, classified, naming the table and the partition.
 */
export async function createPartitions(
  client: GlueClient,
  table: CatalogTable,
  partitions: readonly OutputPartition[],
): Promise<{ created: number; existing: number; elsewhere: ElsewherePartition[] }> {
  const { BatchCreatePartitionCommand } = await import("@aws-sdk/client-glue");
  const elsewhere: ElsewherePartition[] = [];
  const name = tableName(table);
  let created = 0;
  let existing = 0;
  for (let i = 0; i < partitions.length; i += BATCH) {
    const chunk = partitions.slice(i, i + BATCH);
    const input: PartitionInput[] = chunk.map((p) => ({
      Values: p.values,
      StorageDescriptor: { ...table.storageDescriptor, Location: p.location },
      Parameters: {},
    }));
    let out;
    try {
      out = await client.send(
        new BatchCreatePartitionCommand({ DatabaseName: table.database, TableName: table.table, PartitionInputList: input }),
      );
    } catch (err) {
      throw classifyGlueError(err, { table: name, op: "BatchCreatePartition" });
    }
    const errors = out.Errors ?? [];
    const failed = errors.filter((e) => e.ErrorDetail?.ErrorCode !== "AlreadyExistsException");
    if (failed.length) {
      const e = failed[0]!;
      throw classifyGlueError(
        Object.assign(new Error(e.ErrorDetail?.ErrorMessage ?? "refused"), { name: e.ErrorDetail?.ErrorCode ?? "Error" }),
        {
          table: name,
          op: `BatchCreatePartition of partition (${(e.PartitionValues ?? []).join(", ")})${failed.length > 1 ? ` and ${failed.length - 1} more` : ""}`,
        },
      );
    }
    existing += errors.length;
    created += chunk.length - errors.length;
    if (errors.length) elsewhere.push(...(await locatedElsewhere(client, table, chunk, errors)));
  }
  return { created, existing, elsewhere };
}

/** An output partition the catalog has already, at another location than the one written. */
export interface ElsewherePartition {
  values: string[];
  /** Where the catalog's partition points. */
  location: string;
  /** Where tranche wrote. */
  written: string;
}

const sameLocation = (a: string, b: string) => a.replace(/\/+$/, "") === b.replace(/\/+$/, "");

/**
 * Of the partitions BatchCreatePartition found existing, those whose location is not where the
 * outputs were written (readers of the table do not see them there): one BatchGetPartition.
 */
async function locatedElsewhere(
  client: GlueClient,
  table: CatalogTable,
  chunk: readonly OutputPartition[],
  errors: readonly { PartitionValues?: string[] }[],
): Promise<ElsewherePartition[]> {
  const { BatchGetPartitionCommand } = await import("@aws-sdk/client-glue");
  const wanted = new Map(chunk.map((p) => [p.values.join("\u0000"), p]));
  const asked = errors.map((e) => ({ Values: e.PartitionValues ?? [] })).filter((v) => wanted.has(v.Values.join("\u0000")));
  if (asked.length === 0) return [];
  let out;
  try {
    out = await client.send(new BatchGetPartitionCommand({ DatabaseName: table.database, TableName: table.table, PartitionsToGet: asked }));
  } catch (err) {
    throw classifyGlueError(err, { table: tableName(table), op: "BatchGetPartition" });
  }
  const found: ElsewherePartition[] = [];
  for (const p of out.Partitions ?? []) {
    const mine = wanted.get((p.Values ?? []).join("\u0000"));
    const location = p.StorageDescriptor?.Location ?? "";
    if (mine && !sameLocation(location, mine.location)) found.push({ values: mine.values, location, written: mine.location });
  }
  return found;
}

/** GetTable of a job's output catalog table (preflight: E_CONFIG naming it when it does not exist). */
export async function checkOutputTable(cfg: Pick<TrancheConfig, "s3">, jc: JobConfig): Promise<{ table: CatalogTable; warning?: string }> {
  const ref = jc.output.catalog!;
  const client = makeGlueClient(cfg.s3, ref);
  try {
    const table = await getCatalogTable(client, ref);
    return table.partitionKeys.length
      ? { table }
      : {
          table,
          warning: `output.catalog: table ${tableName(table)} has no partition keys: there is nothing to register (new files under its location are seen as they are)`,
        };
  } finally {
    client.destroy();
  }
}

/**
 * Registers a job's queued output partitions: claims due entries (a lease, so a dead worker's
 * entry goes to another), registers each, removes it when done or puts it back with backoff.
 * `start()` drains every `intervalMs` (workers run one per job with output.catalog);
 * `registerNow(runId, partition)` is the commit step's immediate attempt.
 */
export class CatalogRegistrar {
  private readonly r;
  private readonly k;
  private readonly jc: JobConfig;
  private timer: NodeJS.Timeout | undefined;
  private draining: Promise<unknown> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly o: {
      redis: Redis | Cluster;
      cfg: TrancheConfig;
      job: string;
      log: Logger;
      /** How often due entries are looked for. Default 2000 ms. */
      intervalMs?: number;
      /** SDK attempts per Glue request. Default 4. */
      maxAttempts?: number;
    },
  ) {
    this.r = withScripts(o.redis);
    this.k = keys(o.cfg.prefix, o.job);
    this.jc = o.cfg.jobs[o.job]!;
  }

  /** Registers the due entries (at most `max`, or only one given entry); returns what was done. */
  async drain(o: { max?: number; field?: string } = {}): Promise<{ done: number; failed: number }> {
    if (!this.jc.output.catalog) return { done: 0, failed: 0 };
    const flat = await this.r.trancheClaimRegistrations(this.k.catalogReg, this.k.catalogDue, o.max ?? 50, LEASE_MS, o.field ?? "");
    if (flat.length === 0) return { done: 0, failed: 0 };
    const client = makeGlueClient(this.o.cfg.s3, this.jc.output.catalog, { maxAttempts: this.o.maxAttempts });
    let done = 0;
    let failed = 0;
    try {
      let table: CatalogTable | undefined;
      for (let i = 0; i < flat.length; i += 2) {
        const field = flat[i]!;
        const entry = JSON.parse(flat[i + 1]!) as RegistrationEntry;
        try {
          table ??= await getCatalogTable(client, this.jc.output.catalog);
          const r = await this.register(client, table, entry);
          await this.o.redis.multi().hdel(this.k.catalogReg, field).zrem(this.k.catalogDue, field).exec();
          done++;
          this.o.log.info("output partitions registered in the catalog", {
            job: this.o.job,
            table: tableName(table),
            runId: entry.runId,
            partition: entry.partition,
            created: r.created,
            existing: r.existing,
          });
        } catch (err) {
          failed++;
          const attempts = (entry.attempts ?? 0) + 1;
          const reason = `${(err as { code?: string }).code ?? "E_CATALOG"}: ${(err as Error).message}`;
          const next = { ...entry, attempts, lastError: reason, lastAttemptAt: Date.now() };
          const delay = retryDelayMs(attempts);
          await this.r.trancheRetryRegistration(this.k.catalogReg, this.k.catalogDue, field, JSON.stringify(next), delay);
          catalogRegistrations.inc({ [JOB_LABEL]: this.o.job, outcome: "failed" });
          this.o.log[attempts >= 5 ? "error" : "warn"]("registering output partitions in the catalog failed: retried later", {
            job: this.o.job,
            table: tableName(this.jc.output.catalog),
            runId: entry.runId,
            partition: entry.partition,
            attempts,
            retryInMs: delay,
            reason,
          });
        }
      }
    } finally {
      client.destroy();
    }
    return { done, failed };
  }

  /** The commit step's immediate attempt at its own entry (a failure stays queued for the workers). */
  async registerNow(runId: string, partition: string): Promise<boolean> {
    const r = await this.drain({ field: `${runId}|${partition}` });
    return r.done === 1;
  }

  private async register(
    client: GlueClient,
    table: CatalogTable,
    entry: RegistrationEntry,
  ): Promise<{ created: number; existing: number }> {
    const { partitions, unmatched } = outputPartitions(this.jc.output.path, table.partitionKeys, entry.folders);
    if (unmatched.length && table.partitionKeys.length)
      this.o.log.warn("output folders without a value for every partition key of the output table: not registered", {
        job: this.o.job,
        table: tableName(table),
        partitionKeys: table.partitionKeys,
        folders: unmatched.slice(0, 10),
      });
    if (partitions.length === 0) return { created: 0, existing: 0 };
    const r = await createPartitions(client, table, partitions);
    const labels = { [JOB_LABEL]: this.o.job };
    if (r.created) catalogRegistrations.inc({ ...labels, outcome: "created" }, r.created);
    if (r.existing - r.elsewhere.length) catalogRegistrations.inc({ ...labels, outcome: "existing" }, r.existing - r.elsewhere.length);
    if (r.elsewhere.length) {
      catalogRegistrations.inc({ ...labels, outcome: "elsewhere" }, r.elsewhere.length);
      // Not changed: a partition pointing elsewhere was set so by someone; readers of the table see that location.
      this.o.log.warn(
        "output partitions exist in the catalog at another location: readers of the table do not see what was written; point them at the output or drop them",
        {
          job: this.o.job,
          table: tableName(table),
          partitions: r.elsewhere.slice(0, 10).map((p) => ({ values: p.values, catalogLocation: p.location, written: p.written })),
          count: r.elsewhere.length,
        },
      );
    }
    return { created: r.created, existing: r.existing };
  }

  /** Drains due entries every `intervalMs` until `stop()`. */
  start(): void {
    if (!this.jc.output.catalog || this.timer) return;
    const every = this.o.intervalMs ?? 2000;
    const tick = () => {
      if (this.stopped) return;
      this.draining = this.drain()
        .catch((err: unknown) =>
          this.o.log.warn("catalog registrations: drain failed", { job: this.o.job, reason: (err as Error).message }),
        )
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, every + Math.floor(Math.random() * 250));
        });
    };
    this.timer = setTimeout(tick, Math.floor(Math.random() * 250));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.draining;
  }
}
