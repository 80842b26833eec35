import type { TypedFailure } from "../failures.js";

/** One file's outcome in a batch attempt. */
export type FileOutcomeOf<F> = { file: F; ok: true } | { file: F; ok: false; failure: TypedFailure };

/** When at least this share of a batch's files… */
export const SAME_CLASS_SHARE = 0.8;
/** …and at least this many fail with one error class, the job is at fault, not the files. */
export const SAME_CLASS_MIN = 5;

export interface BatchVerdict<F> {
  ok: F[];
  /** File errors (count toward dead letters unless the batch is a job failure). */
  fileErrors: { file: F; failure: TypedFailure }[];
  gone: { file: F; failure: TypedFailure }[];
  archived: { file: F; failure: TypedFailure }[];
  /** Set when the batch failed because of the job or its environment: the first reason. */
  jobFailure?: { code: string; message: string; retryable: boolean };
}

/**
 * Sorts a batch attempt's outcomes and decides whether the job is at fault: any job error makes
 * it a job failure; so do file errors of one class (code) on at least 80% and at least 5 of the
 * batch's files (a processor that throws on every file is broken, whatever it blames).
 */
export function judgeBatch<F>(outcomes: readonly FileOutcomeOf<F>[]): BatchVerdict<F> {
  const v: BatchVerdict<F> = { ok: [], fileErrors: [], gone: [], archived: [] };
  let firstJob: TypedFailure | undefined;
  for (const o of outcomes) {
    if (o.ok) v.ok.push(o.file);
    else if (o.failure.kind === "file") v.fileErrors.push({ file: o.file, failure: o.failure });
    else if (o.failure.kind === "gone") v.gone.push({ file: o.file, failure: o.failure });
    else if (o.failure.kind === "archived") v.archived.push({ file: o.file, failure: o.failure });
    else firstJob ??= o.failure;
  }
  if (firstJob) {
    v.jobFailure = { code: firstJob.code, message: firstJob.message, retryable: firstJob.retryable };
    return v;
  }
  const byCode = new Map<string, TypedFailure[]>();
  for (const e of v.fileErrors) byCode.set(e.failure.code, [...(byCode.get(e.failure.code) ?? []), e.failure]);
  for (const [code, list] of byCode) {
    if (list.length >= SAME_CLASS_MIN && list.length >= SAME_CLASS_SHARE * outcomes.length) {
      v.jobFailure = {
        code,
        message: `${list.length} of ${outcomes.length} files of the batch failed with ${code}, so the job (processor, options or data format) is at fault, not the files; first: ${list[0]!.message}`,
        retryable: false,
      };
      break;
    }
  }
  return v;
}
