/**
 * The pre-flight checks' errors (source listable, output writable): a failure found before a run
 * leases anything is the CLI-level error of `src/errors.ts`, exit code 4, naming the location.
 */
import { AccessDeniedError, UnreachableError } from "../errors.js";
import { messageOf } from "../failures.js";
import { classifyS3Error } from "./s3-errors.js";

/** errno codes that mean "not allowed" rather than "not there". */
const FS_DENIED = new Set(["EACCES", "EPERM", "EROFS"]);

/**
 * A local-folder check failure: permission codes (EACCES, EPERM, EROFS) → {@link AccessDeniedError},
 * anything else (a missing folder, a path through a file, an I/O error) → {@link UnreachableError}.
 * `what` says what failed, e.g. `cannot write to output folder /data/out`.
 */
export function fsCheckError(err: unknown, what: string): AccessDeniedError | UnreachableError {
  const code = (err as NodeJS.ErrnoException)?.code ?? "";
  if (FS_DENIED.has(code)) return new AccessDeniedError(`${what}: ${messageOf(err)}; check the folder's permissions`, { cause: err });
  return new UnreachableError(`${what}: ${messageOf(err)}`, { cause: err });
}

/**
 * An S3 check failure, classified by {@link classifyS3Error}: `E_ACCESS` (credentials,
 * permissions) → {@link AccessDeniedError}; anything else (a missing bucket, the endpoint down, a
 * timeout, throttling) → {@link UnreachableError}. The message names the bucket and prefix, and the
 * endpoint when one is set.
 */
export function s3CheckError(
  err: unknown,
  o: { bucket: string; prefix: string; key?: string; op: "list" | "write"; what: string; endpoint?: string },
): AccessDeniedError | UnreachableError {
  const failure = classifyS3Error(err, { bucket: o.bucket, key: o.key ?? o.prefix, op: o.op });
  const at = o.endpoint ? ` (endpoint ${o.endpoint})` : "";
  const message = `${o.what} s3://${o.bucket}/${o.prefix}${at}: ${failure.message}`;
  return failure.code === "E_ACCESS" ? new AccessDeniedError(message, { cause: err }) : new UnreachableError(message, { cause: err });
}
