import type { Writable } from "node:stream";

/** An open output object: write to `stream`, then `commit()` makes it visible (atomically where possible). */
export interface SinkWriter {
  readonly stream: Writable;
  /**
   * Finishes the object; after this resolves the output is durable and visible under its final
   * name. `key` is the key actually written, relative to the sink root: the one given to `create`,
   * or its shortened form when it was too long for the store (see `output-name.ts`). Rejects with
   * a typed failure (`src/failures.ts`), e.g. a `JobError` `E_DISK_FULL`, leaving no temp file.
   */
  commit(): Promise<{ bytes: number; location: string; key: string }>;
  /** Discards a partial object (best effort). */
  abort(err?: Error): Promise<void>;
}

/** Where processors write. Output names are relative to the sink root. */
export interface Sink {
  readonly uri: string;
  /**
   * Opens an output object. Rejects with a `FileError` `E_OUTPUT_NAME` for a key no store should get
   * (`checkOutputKey`; `internal` allows tranche's own `_tranche/` files); a key too long for the
   * store is shortened injectively (`fitOutputKey`).
   */
  create(key: string, contentType?: string, o?: { internal?: boolean }): Promise<SinkWriter>;
  /**
   * Checks, before a run leases anything, that the output can be written: writes and removes a
   * small object under `<root>/_tranche/`. Rejects with the CLI-level error naming the location
   * (`AccessDeniedError` or `UnreachableError`); a probe that could be written but not removed
   * is only a `warning` (deleting needs a permission a sink does not otherwise use).
   */
  probe(): Promise<{ warning?: string }>;
  /**
   * Removes temp files that writers abandoned (crashed processes), where the sink has any; returns
   * how many. Never removes a temp file of a live process.
   */
  sweepTempFiles?(opts?: { maxAgeMs?: number }): Promise<number>;
}

/** How outputs are stored on S3 (config `output.s3`; see src/config/schema.ts). */
export interface OutputS3Settings {
  serverSideEncryption?: "AES256" | "aws:kms" | "aws:kms:dsse";
  kmsKeyId?: string;
  bucketKeyEnabled?: boolean;
  storageClass?: string;
  acl?: string;
  contentType?: string;
}
