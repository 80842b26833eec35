import { createHash } from "node:crypto";
import type { JobConfig, TrancheConfig } from "./schema.js";

/** JSON with object keys sorted, so equal configurations give equal text. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (v && typeof v === "object") {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  }
  return JSON.stringify(v ?? null);
}

/**
 * A fingerprint of what decides how a job's files are processed and what becomes of them: source,
 * processor and its options (with `${env:…}` references unresolved: no secret is hashed), output,
 * bad-record ratio, dead-letter rule, the file timeout, and the S3 endpoint and region. Not
 * included: credentials, the bound (it decides what a run selects, not how a file is processed)
 * and pool sizes that may differ per host. Batches carry it; a worker
 * whose own configuration gives another fingerprint refuses the batch (a job error), so a stale
 * ConfigMap never applies old options silently.
 */
export function jobFingerprint(cfg: Pick<TrancheConfig, "prefix" | "s3">, job: JobConfig): string {
  const decisive = {
    prefix: cfg.prefix,
    s3: { endpoint: cfg.s3.endpoint ?? null, region: cfg.s3.region ?? null, forcePathStyle: cfg.s3.forcePathStyle ?? null },
    // The bound is left out: it decides what a run selects, not how a file is processed.
    source: { ...job.source, boundedFiles: undefined, boundedSize: undefined },
    processor: job.processor,
    processorOptions: job.processorOptions,
    output: job.output,
    maxBadRecordRatio: job.maxBadRecordRatio,
    deadLetterAfterRuns: job.bookmark.deadLetterAfterRuns,
    fileTimeoutSeconds: job.worker.fileTimeoutSeconds,
  };
  return createHash("sha256").update(canonical(decisive)).digest("hex").slice(0, 16);
}
