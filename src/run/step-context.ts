import { FlowProducer, Queue, type ConnectionOptions } from "bullmq";
import type { Cluster, Redis } from "ioredis";
import type { TrancheConfig } from "../config/schema.js";
import type { Logger } from "../log.js";
import type { FilePool } from "../pool/file-pool.js";
import { queueName, type BatchJobData, type StepJobData } from "../queue/batch-job.js";
import { RunRecords } from "./run-record.js";

/** What every step of a run needs: connections, this process's configuration, a logger. */
export interface StepContext {
  redis: Redis | Cluster;
  cfg: TrancheConfig;
  log: Logger;
  queues: QueueSet;
  runs: RunRecords;
  /** A worker's pool (the plan step checks a processor's own output names with it). */
  pool?: FilePool;
}

/** Retention of finished step jobs: the run records and the history keep what a run did. */
export const KEEP_DONE = { removeOnComplete: { age: 3600, count: 20 }, removeOnFail: { age: 7 * 24 * 3600, count: 100 } } as const;

/** The BullMQ queues of the jobs (one per job: plan, batch, commit, finish and timeout steps) and a flow producer, opened on first use. */
export class QueueSet {
  private readonly queues = new Map<string, Queue<BatchJobData | StepJobData>>();
  private flowProducer: FlowProducer | undefined;
  constructor(
    private readonly connection: ConnectionOptions,
    readonly prefix: string,
    private readonly log: Logger,
  ) {}

  queue(job: string): Queue<BatchJobData | StepJobData> {
    let q = this.queues.get(job);
    if (!q) {
      // BullMQ's event stream keeps 10,000 events by default (~1 MB per job): 1,000 is plenty.
      q = new Queue(queueName(job), { connection: this.connection, prefix: this.prefix, streams: { events: { maxLen: 1000 } } });
      q.on("error", (err) => this.log.warn("queue connection error", { queue: queueName(job), reason: err.message }));
      this.queues.set(job, q);
    }
    return q;
  }

  flow(): FlowProducer {
    if (!this.flowProducer) {
      this.flowProducer = new FlowProducer({ connection: this.connection, prefix: this.prefix });
      this.flowProducer.on("error", (err) => this.log.warn("flow producer connection error", { reason: err.message }));
    }
    return this.flowProducer;
  }

  async close(): Promise<void> {
    // A queue closed while its connection is still being set up can emit an error nobody listens to.
    await Promise.all([...this.queues.values()].map((q) => q.waitUntilReady().catch(() => undefined)));
    await Promise.all([...this.queues.values()].map((q) => q.close().catch(() => undefined)));
    await this.flowProducer?.waitUntilReady().catch(() => undefined);
    await this.flowProducer?.close().catch(() => undefined);
    this.queues.clear();
    this.flowProducer = undefined;
  }
}

export function stepContext(o: {
  redis: Redis | Cluster;
  bull: ConnectionOptions;
  cfg: TrancheConfig;
  log: Logger;
  pool?: FilePool;
}): StepContext {
  return {
    redis: o.redis,
    cfg: o.cfg,
    log: o.log,
    pool: o.pool,
    queues: new QueueSet(o.bull, o.cfg.prefix, o.log),
    runs: new RunRecords(o.redis, o.cfg.prefix),
  };
}
