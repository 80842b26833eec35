import { Redis, type RedisOptions } from "ioredis";
import { RedisUnavailableError } from "./errors.js";

/**
 * Opens a Redis connection and checks it answers (within 3 s). `maxRetriesPerRequest: null` is
 * what BullMQ workers need; commands wait across a Redis restart instead of failing.
 */
export async function connectRedis(url: string, opts: { forBullMQ?: boolean } = {}): Promise<Redis> {
  const redis = new Redis(url, {
    maxRetriesPerRequest: opts.forBullMQ ? null : 20,
    lazyConnect: true,
    connectTimeout: 3000,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  });
  redis.on("error", () => undefined); // reconnects are logged by callers' failures, not per event
  try {
    await redis.connect();
    await Promise.race([redis.ping(), new Promise((_, rej) => setTimeout(() => rej(new Error("no answer to PING in 3 s")), 3000))]);
  } catch (err) {
    redis.disconnect();
    throw new RedisUnavailableError(url, err);
  }
  return redis;
}

/**
 * ioredis options from a `redis://` or `rediss://` URL, for BullMQ, which then opens and closes
 * its own connections (a shared instance would outlive `close()`).
 */
export function redisOptions(url: string): RedisOptions {
  const u = new URL(url);
  if (u.protocol !== "redis:" && u.protocol !== "rediss:")
    throw new Error(`unsupported Redis URL ${url}: use redis://host:port or rediss://`);
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
