import { Redis } from "ioredis";
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
