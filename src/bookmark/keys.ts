/** Every Redis key tranche writes, in one place. With a `{tag}` prefix all keys share one Cluster slot. */
export function keys(prefix: string, job: string) {
  const j = `${prefix}:bm:${job}`;
  return {
    /** Set of partition ids that have bookmark state. */
    parts: `${j}:parts`,
    /** Hash: version, lastRunId, updatedAt of the job's bookmark. */
    jobMeta: `${j}:meta`,
    meta: (p: string) => `${j}:p:${p}:meta`,
    done: (p: string) => `${j}:p:${p}:done`,
    lease: (p: string) => `${j}:p:${p}:lease`,
    leaseRun: (p: string) => `${j}:p:${p}:leaserun`,
    /** Hash: "key@lastModified" → runs in which that file failed for good. */
    failures: `${j}:failures`,
    /** List of dead-lettered files (JSON: key, lastModified, reason, runId), newest first, at most 10,000. */
    deadLetters: `${j}:deadletters`,
    /** Zset of live runs of the job: run id → expiry (epoch ms). */
    active: `${prefix}:runs:${job}:active`,
    /** Held by the run that is planning and leasing (runs of one job plan one at a time). */
    planLock: `${prefix}:runs:${job}:planlock`,
    /** List of run summaries (JSON), newest first, trimmed to historySize. */
    history: `${prefix}:runs:${job}:history`,
    run: (runId: string) => `${prefix}:run:${runId}`,
    runErrors: (runId: string) => `${prefix}:run:${runId}:errors`,
    /** Zset of the files a run's batches wrote in one partition (key → last-modified), awaiting the run's commit. */
    staged: (runId: string, p: string) => `${prefix}:run:${runId}:staged:${p}`,
    /** Set of the partitions a run leased files in. */
    leasedParts: (runId: string) => `${prefix}:run:${runId}:leasedparts`,
    /** Set of the partitions a run staged files in. */
    stagedParts: (runId: string) => `${prefix}:run:${runId}:stagedparts`,
  };
}
export type Keys = ReturnType<typeof keys>;
