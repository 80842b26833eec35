import { AccessDeniedError, ConfigError, TrancheError, UnreachableError } from "../errors.js";
import { JobError, isTypedFailure, messageOf } from "../failures.js";
import { noCredentialsMessage } from "../source/types.js";

interface SdkError {
  name?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
}

const THROTTLED = new Set([
  "ThrottlingException",
  "Throttling",
  "TooManyRequestsException",
  "RequestLimitExceeded",
  "ResourceNumberLimitExceededException",
]);
const DENIED = new Set([
  "AccessDeniedException",
  "AccessDenied",
  "UnrecognizedClientException",
  "InvalidSignatureException",
  "ExpiredTokenException",
  "InvalidClientTokenId",
  "UnauthorizedOperation",
]);
const NETWORK = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH"]);
const TIMEOUTS = new Set(["TimeoutError", "RequestTimeout", "RequestTimeoutException", "OperationTimeoutException"]);

/** The Glue error code of an SDK error (`EntityNotFoundException`, …) or the network errno. */
export function glueErrorCode(err: unknown): string {
  const e = err as SdkError;
  return (e?.name && e.name !== "Error" ? e.name : e?.code) ?? "";
}

/**
 * Classifies a Glue error of one catalog operation (by the error code the SDK puts in `name`,
 * never by message text), naming the table:
 * - `EntityNotFoundException` (no such database or table) and `InvalidInputException` (the
 *   catalog refused the request, e.g. a partition filter it cannot read) → {@link ConfigError} (E_CONFIG, exit 2);
 * - credentials or permissions → {@link AccessDeniedError} (E_ACCESS, exit 4);
 * - throttling, 5xx answers, timeouts, network errors (the SDK has already retried them) →
 *   a retryable {@link JobError} (`E_THROTTLED`, `E_CATALOG`, `E_TIMEOUT`, `E_UNREACHABLE`).
 */
export function classifyGlueError(err: unknown, o: { table: string; op: string; hint?: string }): TrancheError | JobError {
  if (err instanceof TrancheError || isTypedFailure(err)) return err as TrancheError | JobError;
  const code = glueErrorCode(err);
  const status = (err as SdkError)?.$metadata?.httpStatusCode;
  const msg = `${code ? `${code}: ` : ""}${messageOf(err)}`;
  const where = `Glue ${o.op} of catalog table ${o.table}`;
  if (code === "EntityNotFoundException")
    return new ConfigError(`${where}: ${msg}; check the database and table names${o.hint ? ` (${o.hint})` : ""} and the region`);
  if (code === "InvalidInputException" || code === "ValidationException")
    return new ConfigError(`${where} was refused as invalid: ${msg}${o.hint ? ` (${o.hint})` : ""}`);
  if (code === "CredentialsProviderError") return new AccessDeniedError(noCredentialsMessage(where, msg), { cause: err });
  if (DENIED.has(code) || status === 403)
    return new AccessDeniedError(
      `${where}: access denied (${msg}); check the credentials (s3.accessKeyId, AWS_* variables, the role) and its Glue permissions (glue:GetTable, glue:GetPartitions, glue:BatchCreatePartition)`,
      { cause: err },
    );
  if (THROTTLED.has(code) || status === 429)
    return new JobError("E_THROTTLED", `${where}: Glue is throttling requests (${msg}); retried later`, { cause: err });
  if (TIMEOUTS.has(code)) return new JobError("E_TIMEOUT", `${where} timed out (${msg}); check the endpoint and network`, { cause: err });
  if (NETWORK.has(code) || NETWORK.has((err as SdkError)?.code ?? ""))
    return new UnreachableError(`${where}: cannot reach Glue (${msg}); check source.catalog.endpoint / region and the network`, {
      cause: err,
    });
  if (status !== undefined && status >= 500)
    return new JobError("E_CATALOG", `${where} failed on Glue's side (${msg}); retried later`, { cause: err });
  return new JobError("E_CATALOG", `${where} failed: ${msg}`, { cause: err });
}

/** Whether a classified catalog error may pass with another attempt (throttling, 5xx, network). */
export function catalogRetryable(err: unknown): boolean {
  if (err instanceof ConfigError || err instanceof AccessDeniedError) return false;
  if (err instanceof UnreachableError) return true;
  return isTypedFailure(err) ? err.retryable : true;
}
