import { ArchivedError, FileError, GoneError, JobError, isTypedFailure, messageOf, type TypedFailure } from "../failures.js";
import { noCredentialsMessage } from "./types.js";

/** The parts of an AWS SDK v3 error tranche looks at: the S3 error code (`name`) and HTTP status. */
interface SdkError {
  name?: string;
  code?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
}

const THROTTLED = new Set(["SlowDown", "Throttling", "ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"]);
const CREDENTIALS = new Set([
  "AccessDenied",
  "AllAccessDisabled",
  "InvalidAccessKeyId",
  "SignatureDoesNotMatch",
  "ExpiredToken",
  "InvalidToken",
  "TokenRefreshRequired",
  "AccountProblem",
  "Forbidden",
]);
const NETWORK = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH"]);
const TIMEOUTS = new Set(["TimeoutError", "RequestTimeout", "RequestTimeoutException"]);

/** The S3 error code of an SDK error (`NoSuchKey`, `SlowDown`, …), or the network errno. */
export function s3ErrorCode(err: unknown): string | undefined {
  const e = err as SdkError;
  return e?.name && e.name !== "Error" ? e.name : (e?.Code ?? e?.code);
}

/**
 * Classifies an S3 error of one operation (typed by the S3 error code the SDK puts in `name`,
 * never by message text):
 * - a missing object on read → {@link GoneError};
 * - an archived object (`InvalidObjectState`) → {@link ArchivedError};
 * - throttling (`SlowDown`, 503) → a retryable {@link JobError} `E_THROTTLED` (the batch backs off);
 * - credentials or permissions → {@link JobError} `E_ACCESS`;
 * - a missing bucket → {@link JobError} `E_UNREACHABLE`;
 * - network errors and timeouts → retryable {@link JobError} `E_UNREACHABLE` / `E_TIMEOUT`;
 * - anything else: a {@link JobError} (`E_SOURCE` on read, `E_SINK` on write): an unknown store
 *   error is never blamed on the file.
 */
export function classifyS3Error(err: unknown, o: { bucket: string; key?: string; op: "read" | "write" | "list" }): TypedFailure {
  if (isTypedFailure(err)) return err;
  const code = s3ErrorCode(err) ?? "";
  const status = (err as SdkError)?.$metadata?.httpStatusCode;
  const where = o.key === undefined ? `s3://${o.bucket}/` : `s3://${o.bucket}/${o.key}`;
  const msg = `${code ? `${code}: ` : ""}${messageOf(err)}`;
  if (o.op === "read" && (code === "NoSuchKey" || code === "NotFound" || (status === 404 && code !== "NoSuchBucket"))) {
    return new GoneError(`input no longer exists: ${where}`, { cause: err });
  }
  if (code === "InvalidObjectState") {
    return new ArchivedError(`input is in an archive storage class and must be restored first: ${where}`, { cause: err });
  }
  if (THROTTLED.has(code) || status === 503 || status === 429) {
    return new JobError("E_THROTTLED", `S3 is throttling requests (${msg}) at ${where}; tranche backs off and retries`, { cause: err });
  }
  if (code === "CredentialsProviderError")
    return new JobError("E_ACCESS", noCredentialsMessage(`S3 at ${where}`, msg), { cause: err, retryable: false });
  if (CREDENTIALS.has(code) || status === 403) {
    return new JobError(
      "E_ACCESS",
      `S3 refused access to ${where} (${msg}); check the credentials (s3.accessKeyId, AWS_* variables, the role) and the bucket policy`,
      { cause: err, retryable: false },
    );
  }
  if (code === "NoSuchBucket") {
    return new JobError("E_UNREACHABLE", `bucket ${o.bucket} does not exist (${where}); create it or fix the path`, {
      cause: err,
      retryable: false,
    });
  }
  if (TIMEOUTS.has(code)) {
    return new JobError("E_TIMEOUT", `S3 request timed out at ${where} (${msg}); check the endpoint and network`, { cause: err });
  }
  if (NETWORK.has(code) || NETWORK.has((err as SdkError)?.code ?? "")) {
    return new JobError("E_UNREACHABLE", `cannot reach S3 for ${where} (${msg}); check s3.endpoint and the network`, { cause: err });
  }
  if (o.op === "read" && code === "InvalidRange") return new FileError("E_READ", `cannot read ${where}: ${msg}`, { cause: err });
  return new JobError(o.op === "write" ? "E_SINK" : "E_SOURCE", `S3 ${o.op} of ${where} failed: ${msg}`, { cause: err });
}
