import { GlueClient, type GlueClientConfig } from "@aws-sdk/client-glue";
import { S3_TIMEOUT_DEFAULTS, staticCredentials, type S3Settings } from "../source/types.js";

/** Where a catalog table is: `source.catalog` or `output.catalog` of a job. */
export interface CatalogRef {
  database: string;
  table: string;
  /** The Glue region; default `s3.region`, then `AWS_REGION` / `AWS_DEFAULT_REGION`, then us-east-1. */
  region?: string;
  /** Another Glue endpoint (a stand-in, a VPC endpoint); default `AWS_ENDPOINT_URL_GLUE`, `AWS_ENDPOINT_URL`, else AWS's. */
  endpoint?: string;
}

/** `database.table`, as errors and `tranche plan` name a catalog table. */
export function tableName(ref: Pick<CatalogRef, "database" | "table">): string {
  return `${ref.database}.${ref.table}`;
}

/**
 * A Glue client for a catalog table, with the credentials and timeouts of the `s3` section (or the
 * standard AWS chain) and the region and endpoint of the table's reference. The SDK retries
 * throttling, 5xx answers and network errors itself (`maxAttempts`, exponential backoff).
 */
export function makeGlueClient(s3: S3Settings, ref: Pick<CatalogRef, "region" | "endpoint">, o: { maxAttempts?: number } = {}): GlueClient {
  const env = process.env;
  const config: GlueClientConfig = {
    region: ref.region || s3.region || env.AWS_REGION || env.AWS_DEFAULT_REGION || "us-east-1",
    maxAttempts: o.maxAttempts ?? 4,
    requestHandler: {
      connectionTimeout: s3.connectTimeoutMs ?? S3_TIMEOUT_DEFAULTS.connectTimeoutMs,
      requestTimeout: s3.requestTimeoutMs ?? S3_TIMEOUT_DEFAULTS.requestTimeoutMs,
      throwOnRequestTimeout: true,
    },
  };
  const endpoint = ref.endpoint || env.AWS_ENDPOINT_URL_GLUE || env.AWS_ENDPOINT_URL || undefined;
  if (endpoint) config.endpoint = endpoint;
  const credentials = staticCredentials(s3);
  if (credentials) config.credentials = credentials;
  return new GlueClient(config);
}
