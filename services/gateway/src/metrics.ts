// Prometheus metrics with the names the services' dashboards use for servers
// (grpc_server_*), and bounded labels: a method outside the allow-list is counted under
// grpc_service="unknown", grpc_method="unknown", never under the path a caller sent.
import { Counter, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export const registry = new Registry();
collectDefaultMetrics({ register: registry });

const labels = ["grpc_service", "grpc_method", "grpc_type"] as const;

export const started = new Counter({
  name: "grpc_server_started_total",
  help: "RPCs started at the gateway.",
  labelNames: labels,
  registers: [registry],
});
export const handled = new Counter({
  name: "grpc_server_handled_total",
  help: "RPCs completed at the gateway, by gRPC status code.",
  labelNames: [...labels, "grpc_code"],
  registers: [registry],
});
export const handlingSeconds = new Histogram({
  name: "grpc_server_handling_seconds",
  help: "Time from a call's arrival at the gateway to its end (for streams, the stream's life).",
  labelNames: labels,
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
  registers: [registry],
});
export const protocolCalls = new Counter({
  name: "rogatory_gateway_calls_total",
  help: "Calls by browser protocol (connect, grpc-web, grpc-web-text).",
  labelNames: ["protocol"],
  registers: [registry],
});
export const rejected = new Counter({
  name: "rogatory_gateway_rejected_total",
  help: "HTTP requests refused before any service saw them: origin (CORS), method (not allow-listed or unknown), dev_token.",
  labelNames: ["reason"],
  registers: [registry],
});
export const inFlight = new Counter({
  name: "rogatory_gateway_streams_opened_total",
  help: "Server streams (Subscribe, DownloadDocument) opened.",
  labelNames: ["grpc_method"],
  registers: [registry],
});
