import type { ConnectionOptions } from "bullmq";
import { Redis, type RedisOptions } from "ioredis";
import { RedisUnavailableError } from "./errors.js";
import { redactUrl } from "./redact.js";

/** The `redis` section of the config. */
export interface RedisSettings {
  url: string;
}

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

/** BullMQ's connection for these settings. */
export function bullConnection(s: RedisSettings): ConnectionOptions {
  return redisOptions(s.url);
}

/**
 * Opens the command connection and checks it answers (within 3 s). Commands wait across a short
 * Redis outage (about 20 retries) and then fail, so nothing hangs for ever.
 */
export async function connectRedis(s: RedisSettings | string): Promise<Redis> {
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
    await Promise.race([redis.ping(), new Promise((_, rej) => setTimeout(() => rej(new Error("no answer to PING in 3 s")), 3000))]);
  } catch (err) {
    redis.disconnect();
    throw new RedisUnavailableError(url, err);
  }
  return redis;
}
