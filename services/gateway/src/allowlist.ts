// The allow-list (allowlist.json) resolved against the generated service descriptors.
//
// Which upstream serves a service is fixed here (UPSTREAM_OF); which of its methods a browser
// may call is data. resolveAllowList() fails (throws) on anything a browser must never reach
// or cannot call, so a bad edit stops the gateway at start-up instead of opening a hole.
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { IntakeService } from "./gen/rogatory/intake/v1/intake_pb.js";
import { TranslationRoutingService } from "./gen/rogatory/routing/v1/routing_pb.js";
import { DeadlineService } from "./gen/rogatory/deadlines/v1/deadlines_pb.js";
import {
  NotificationService,
} from "./gen/rogatory/notification/v1/notification_pb.js";
import allowListData from "./allowlist.json" with { type: "json" };

/** The upstream (a key of the `upstreams` setting) of each service a browser may reach. */
export const UPSTREAM_OF: ReadonlyMap<string, { upstream: Upstream; service: DescService }> =
  new Map([
    [IntakeService.typeName, { upstream: "intake", service: IntakeService }],
    [TranslationRoutingService.typeName, { upstream: "routing", service: TranslationRoutingService }],
    [DeadlineService.typeName, { upstream: "deadlines", service: DeadlineService }],
    [NotificationService.typeName, { upstream: "notification", service: NotificationService }],
  ] as const);

export type Upstream = "intake" | "routing" | "deadlines" | "notification";
export const UPSTREAMS: readonly Upstream[] = ["intake", "routing", "deadlines", "notification"];

/**
 * Never callable from a browser, whatever the allow-list says: service-to-service and
 * development-only APIs. Matched against "package.Service/Method" as prefixes.
 */
export const FORBIDDEN_PREFIXES: readonly string[] = [
  "rogatory.events.", // the event sink: only services deliver events
  "rogatory.admin.", // the test clock and the audit chain: operators use native gRPC
  "rogatory.notification.v1.NotificationService/PublishEvent", // role `service` only
  "grpc.", // health and reflection
];

export interface AllowedMethod {
  /** "/rogatory.intake.v1.IntakeService/SubmitRequest" */
  path: string;
  upstream: Upstream;
  method: DescMethod;
}

export function resolveAllowList(data: Record<string, unknown> = allowListData): AllowedMethod[] {
  const out: AllowedMethod[] = [];
  for (const [serviceName, methods] of Object.entries(data)) {
    if (serviceName.startsWith("_")) continue; // comments
    const entry = UPSTREAM_OF.get(serviceName);
    if (entry === undefined) {
      throw new Error(`allow-list: service ${serviceName} is not one a browser may reach`);
    }
    if (!Array.isArray(methods)) {
      throw new Error(`allow-list: ${serviceName} must list method names`);
    }
    for (const name of methods) {
      const method = entry.service.methods.find((m) => m.name === name);
      if (method === undefined) {
        throw new Error(`allow-list: ${serviceName} has no method ${String(name)}`);
      }
      const full = `${serviceName}/${name}`;
      if (FORBIDDEN_PREFIXES.some((p) => full.startsWith(p))) {
        throw new Error(`allow-list: ${full} must never be reachable from a browser`);
      }
      if (method.methodKind !== "unary" && method.methodKind !== "server_streaming") {
        throw new Error(`allow-list: ${full} is ${method.methodKind}; browsers can call only ` +
          "unary and server-streaming methods");
      }
      if (out.some((m) => m.path === `/${full}`)) {
        throw new Error(`allow-list: ${full} is listed twice`);
      }
      out.push({ path: `/${full}`, upstream: entry.upstream, method });
    }
  }
  return out;
}
