import type { ConnectionOptions } from "bullmq";
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from "ioredis";
import { RedisUnavailableError } from "./errors.js";
import { redactUrl } from "./redact.js";

/** The `redis` section of the config: one Redis (`url`) or a Redis Cluster (`cluster.nodes`). */
export type RedisSettings = { url: string; cluster?: undefined } | { cluster: { nodes: string[] }; url?: undefined };

/**
 * ioredis options from a `redis://` or `rediss://` URL (validated by the config schema). BullMQ
 * gets options, not an instance, so that it opens and closes its own connections.
 */
export function redisOptions(url: string): RedisOptions {
  const u = new URL(url);
  if (u.protocol !== "redis:" && u.protocol !== "rediss:")
    throw new Error(`unsupported Redis URL ${redactUrl(url)}: use redis://host:port or rediss://`);
  return {
    host: u.hostname || "127.0.0.1",
    port: u.port ? Number(u.port) : 6379,
    username: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    db: u.pathname.length > 1 ? Number(u.pathname.slice(1)) : undefined,
    tls: u.protocol === "rediss:" ? {} : undefined,
    maxRetriesPerRequest: null,
  };
}

/**
 * The seed nodes of a cluster and the options every node connection gets: the user, password and
 * TLS of the node URLs (the schema makes them agree; a URL without credentials takes the others').
 */
export function clusterOptions(nodes: readonly string[]): { startupNodes: { host: string; port: number }[]; redisOptions: RedisOptions } {
  const startupNodes = nodes.map((n) => {
    const o = redisOptions(n);
    return { host: o.host!, port: o.port! };
  });
  const withAuth = nodes.map(redisOptions).find((o) => o.username !== undefined || o.password !== undefined);
  const first = redisOptions(nodes[0]!);
  return {
    startupNodes,
    redisOptions: { username: withAuth?.username, password: withAuth?.password, tls: first.tls, maxRetriesPerRequest: null },
  };
}

/**
 * BullMQ's connection for these settings. One Redis: options (BullMQ opens and closes its own
 * connections). A cluster: a connected ioredis `Cluster` (BullMQ cannot build one from options).
 * BullMQ uses a passed instance as a shared connection and never closes it; for the workers'
 * blocking commands it opens duplicates of it, which it closes. So the caller closes the cluster
 * with {@link closeBullConnection}, after every Queue and Worker using it has closed. It is
 * connected here (E_REDIS when it does not get ready in 5 s), so that Queues and Workers created
 * at once do not race to connect it. Its commands wait for Redis however long it takes
 * (`maxRetriesPerRequest: null`, reconnecting for ever), as BullMQ requires.
 */
export async function bullConnection(s: RedisSettings): Promise<ConnectionOptions> {
  if (!s.cluster) return redisOptions(s.url);
  const { startupNodes, redisOptions: nodeOptions } = clusterOptions(s.cluster.nodes);
  const cluster = new Cluster(startupNodes, { redisOptions: nodeOptions, lazyConnect: true });
  // BullMQ forwards errors to its queues' and workers' `error` handlers; this keeps ioredis from
  // printing them while no BullMQ object is attached (before the first and after the last).
  cluster.on("error", () => undefined);
  await ready(cluster, s.cluster.nodes);
  return cluster;
}

/** Closes what {@link bullConnection} opened (a cluster instance; options hold nothing). */
export async function closeBullConnection(c: ConnectionOptions): Promise<void> {
  if (c instanceof Cluster || c instanceof Redis) await c.quit().catch(() => c.disconnect());
}

/** A PING with a deadline: a cluster or node that does not answer fails instead of waiting. */
async function ping(r: Redis | Cluster, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      r.ping(),
      new Promise((_, rej) => {
        timer = setTimeout(() => rej(new Error(`no answer to PING in ${ms / 1000} s`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Opens the command connection and checks it answers (within 3 s; a cluster within 5 s, as it
 * first learns the slots). Commands wait across a short Redis outage (about 20 retries) and then
 * fail, so nothing hangs for ever.
 */
export async function connectRedis(s: string | { url: string; cluster?: undefined }): Promise<Redis>;
export async function connectRedis(s: RedisSettings | string): Promise<Redis | Cluster>;
export async function connectRedis(s: RedisSettings | string): Promise<Redis | Cluster> {
  if (typeof s !== "string" && s.cluster) return connectCluster(s.cluster.nodes);
  const url = typeof s === "string" ? s : s.url;
  const redis = new Redis({
    ...redisOptions(url),
    maxRetriesPerRequest: 20,
    lazyConnect: true,
    connectTimeout: 3000,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  });
  redis.on("error", () => undefined); // reconnects are reported by callers' failures, not per event
  try {
    await redis.connect();
    await ping(redis, 3000);
  } catch (err) {
    redis.disconnect();
    throw new RedisUnavailableError(url, err);
  }
  return redis;
}

/** Reconnect attempts of the command connection to a cluster after which waiting commands fail (~35 s). */
const CLUSTER_RETRIES = 20;

/**
 * The command connection to a cluster. While the whole cluster is unreachable, commands wait in
 * ioredis' queue and the connection retries for ever; from the 20th failed attempt on (~35 s),
 * each failed attempt fails the commands waiting, as `maxRetriesPerRequest` does on one Redis, so
 * nothing hangs for ever and a long-lived worker recovers once the cluster is back.
 */
async function connectCluster(nodes: string[]): Promise<Cluster> {
  const { startupNodes, redisOptions: nodeOptions } = clusterOptions(nodes);
  const options: ClusterOptions = {
    redisOptions: { ...nodeOptions, maxRetriesPerRequest: 20, connectTimeout: 3000 },
    lazyConnect: true,
    slotsRefreshTimeout: 3000,
    clusterRetryStrategy(this: Cluster, times) {
      if (times >= CLUSTER_RETRIES) {
        // ioredis' own queue of commands waiting for the cluster (no public API for this).
        const self = this as unknown as { flushQueue?: (e: Error) => void };
        self.flushQueue?.(new Error(`the Redis Cluster is unreachable (${times} reconnect attempts)`));
      }
      return Math.min(times * 200, 2000);
    },
  };
  const cluster = new Cluster(startupNodes, options);
  cluster.on("error", () => undefined); // as above
  await ready(cluster, nodes);
  return cluster;
}

/** Connects a (lazy) cluster and checks it answers a PING, within 5 s each; else E_REDIS naming the nodes. */
async function ready(cluster: Cluster, nodes: readonly string[]): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      cluster.connect(),
      new Promise((_, rej) => {
        timer = setTimeout(() => rej(new Error("the cluster did not get ready in 5 s")), 5000);
      }),
    ]);
    await ping(cluster, 5000);
  } catch (err) {
    cluster.disconnect();
    throw new RedisUnavailableError(nodes, err);
  } finally {
    clearTimeout(timer);
  }
}
