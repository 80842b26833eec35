import { spawn, type ChildProcess } from "node:child_process";
import { mkdir } from "node:fs/promises";
import net from "node:net";
import { Redis } from "ioredis";

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function answers(url: string): Promise<boolean> {
  const r = new Redis(url, { lazyConnect: true, connectTimeout: 500, maxRetriesPerRequest: 0, retryStrategy: () => null });
  r.on("error", () => undefined);
  try {
    await r.connect();
    return (await r.ping()) === "PONG";
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

/**
 * A private `redis-server` on its own port, with an append-only file (fsync on every write) in
 * `dir`, that a test can SIGKILL and restart from its AOF.
 */
export class PrivateRedis {
  private child: ChildProcess | undefined;
  constructor(
    readonly port: number,
    readonly dir: string,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(dir: string): Promise<PrivateRedis> {
    const r = new PrivateRedis(await freePort(), dir);
    await r.restart();
    return r;
  }

  async restart(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    this.child = spawn(
      "redis-server",
      [
        "--port",
        String(this.port),
        "--bind",
        "127.0.0.1",
        "--dir",
        this.dir,
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
      ],
      { stdio: "ignore" },
    );
    for (let i = 0; i < 100; i++) {
      if (await answers(this.url)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`private redis-server on port ${this.port} did not answer`);
  }

  /** SIGKILL: no shutdown, no final save; what the AOF holds is what comes back. */
  async kill(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once("exit", r));
    c.kill("SIGKILL");
    await exited;
  }

  async stop(): Promise<void> {
    await this.kill();
  }
}
