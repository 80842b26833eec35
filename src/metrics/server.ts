import http from "node:http";
import type { AddressInfo } from "node:net";
import { ConfigError } from "../errors.js";
import { registry } from "./registry.js";

/** Serves `/metrics` (Prometheus text) and `/healthz` (200 while `healthy()` is true). */
export async function startMetricsServer(
  port: number,
  healthy: () => boolean = () => true,
  host = "0.0.0.0",
  /** How the user set the port, for the error message. */
  option = "--metrics-port",
): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    if (req.url === "/metrics") {
      registry
        .metrics()
        .then((body) => {
          res.writeHead(200, { "content-type": registry.contentType });
          res.end(body);
        })
        .catch((err: Error) => {
          res.writeHead(500);
          res.end(err.message);
        });
    } else if (req.url === "/healthz" || req.url === "/readyz") {
      const ok = healthy();
      res.writeHead(ok ? 200 : 503, { "content-type": "application/json" });
      res.end(JSON.stringify({ ok }));
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) =>
      reject(
        err.code === "EADDRINUSE" || err.code === "EACCES"
          ? new ConfigError(
              `metrics port ${port} on ${host} ${err.code === "EADDRINUSE" ? "is in use" : "needs privileges"}; choose another with ${option}, or 0 to turn metrics off`,
            )
          : err,
      ),
    );
    server.listen(port, host, resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
