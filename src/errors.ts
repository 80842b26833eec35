import { redactText, redactUrl } from "./redact.js";

/**
 * Typed errors with stable codes. The CLI prints `error [CODE]: message` and exits with `exitCode`.
 * Codes are documented in README.md ("Errors and exit codes").
 */
export class TrancheError extends Error {
  readonly code: string;
  readonly exitCode: number;
  constructor(code: string, message: string, exitCode = 1, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TrancheError";
    this.code = code;
    this.exitCode = exitCode;
  }
}

/** Bad configuration or arguments: nothing was read or written. Exit code 2. */
export class ConfigError extends TrancheError {
  constructor(message: string) {
    super("E_CONFIG", message, 2);
    this.name = "ConfigError";
  }
}

/** Another run of the job holds the run slot. Exit code 3. */
export class ConcurrentRunsExceededError extends TrancheError {
  constructor(job: string, limit: number, running: string[]) {
    super(
      "E_CONCURRENT_RUNS",
      `concurrent runs exceeded for job "${job}": ${running.length} running (${running.join(", ")}), maxConcurrentRuns is ${limit}; wait for it to finish or raise maxConcurrentRuns`,
      3,
    );
    this.name = "ConcurrentRunsExceededError";
  }
}

/** Redis (a URL) or a Redis Cluster (its node URLs) did not answer. Exit code 4. */
export class RedisUnavailableError extends TrancheError {
  constructor(target: string | readonly string[], cause: unknown) {
    const why = redactText(cause instanceof Error ? cause.message : String(cause)).replace(/[.\s]+$/, "");
    super(
      "E_REDIS",
      typeof target === "string"
        ? `cannot reach Redis at ${redactUrl(target)}: ${why}; start redis-server or set TRANCHE_REDIS_URL`
        : `cannot reach the Redis Cluster at nodes ${target.map(redactUrl).join(", ")}: ${why}; check redis.cluster.nodes (or TRANCHE_REDIS_CLUSTER_NODES) and that the cluster is up (CLUSTER INFO says cluster_state:ok)`,
      4,
      { cause },
    );
    this.name = "RedisUnavailableError";
  }
}

/** A run finished with failed batches. Exit code 5. */
export class RunFailedError extends TrancheError {
  constructor(message: string) {
    super("E_RUN_FAILED", message, 5);
    this.name = "RunFailedError";
  }
}

/** A bookmark operation that needs the job idle found a run in progress. Exit code 3. */
export class RunInProgressError extends TrancheError {
  constructor(job: string, running: string[]) {
    super("E_RUN_IN_PROGRESS", `job "${job}" has a run in progress (${running.join(", ")}); wait for it to finish, then try again`, 3);
    this.name = "RunInProgressError";
  }
}

/** A run that may not commit any more: nothing of it was committed. Exit code 5. */
export class RunLostError extends TrancheError {
  constructor(job: string, runId: string, why: string) {
    super(
      "E_RUN_LOST",
      `run ${runId} of job "${job}" did not commit: ${why}; nothing of it is in the bookmark, the next run takes its files again`,
      5,
    );
    this.name = "RunLostError";
  }
}

/** A source, output or service that cannot be reached (endpoint down, bucket or folder missing). Exit code 4. */
export class UnreachableError extends TrancheError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("E_UNREACHABLE", message, 4, options);
    this.name = "UnreachableError";
  }
}

/** Credentials refused or permission denied on a source or output. Exit code 4. */
export class AccessDeniedError extends TrancheError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("E_ACCESS", message, 4, options);
    this.name = "AccessDeniedError";
  }
}

/** A run set files aside as dead letters (it succeeded otherwise). Exit code 6. */
export class DeadLetteredError extends TrancheError {
  constructor(job: string, count: number, keys: string[]) {
    super(
      "E_DEAD_LETTERED",
      `job "${job}": ${count} file${count === 1 ? " was" : "s were"} set aside as dead letters (${keys.slice(0, 3).join(", ")}${keys.length > 3 ? ", …" : ""}); see 'tranche dead-letters list ${job}', fix them and 'tranche dead-letters retry ${job}'`,
      6,
    );
    this.name = "DeadLetteredError";
  }
}
