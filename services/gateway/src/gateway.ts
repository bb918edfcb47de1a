// rogatory-gateway: browsers speak Connect (JSON or binary) or gRPC-Web (binary or base64
// text) over HTTP/1.1 or HTTP/2; the gateway decodes each call against the generated
// descriptors, and forwards it over native gRPC (HTTP/2) to the service that owns it.
//
// What it guarantees (each one tested in tests/e2e/gateway_e2e_test.py):
// - Only allow-listed methods (allowlist.json) reach a service; any other path answers
//   UNIMPLEMENTED (gRPC-Web) or 404 (Connect) here.
// - A message must decode (malformed JSON or protobuf: INVALID_ARGUMENT, reason
//   MALFORMED_REQUEST) and fit max-message-bytes (RESOURCE_EXHAUSTED, MESSAGE_TOO_LARGE)
//   before it is forwarded.
// - Every error, the gateway's own refusals included, carries google.rpc.ErrorInfo (domain
//   rogatory, a reason from errors.proto), as the services' errors do.
// - `authorization` and trace headers go through untouched; the gateway adds no identity of
//   its own and drops the development identity headers (x-rogatory-authority, -state,
//   -roles) a browser might send.
// - The caller's deadline (grpc-timeout / connect-timeout-ms) and cancellation (the browser
//   closing the request) are forwarded; errors come back with their details
//   (google.rpc.BadRequest, ...), as grpc-status-details-bin or Connect's JSON details.
// - CORS: only configured origins; a request from another origin is refused here.
import * as http from "node:http";
import { readFileSync } from "node:fs";
import { create, createRegistry, fromBinary, fromJson, type DescMethod, type Registry } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createConnectRouter,
  createContextKey,
  createContextValues,
  cors as connectCors,
  type HandlerContext,
  type Transport,
} from "@connectrpc/connect";
import {
  createGrpcTransport,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import type {
  UniversalHandler,
  UniversalServerRequest,
  UniversalServerResponse,
} from "@connectrpc/connect/protocol";
import { codeFromString, codeToHttpStatus, errorFromJsonBytes, errorToJson } from "@connectrpc/connect/protocol-connect";
import { findTrailerError, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { ErrorInfoSchema, file_google_rpc_error_details } from "./gen/google/rpc/error_details_pb.js";
import { file_rogatory_intake_v1_intake } from "./gen/rogatory/intake/v1/intake_pb.js";
import { file_rogatory_routing_v1_routing } from "./gen/rogatory/routing/v1/routing_pb.js";
import { file_rogatory_deadlines_v1_deadlines } from "./gen/rogatory/deadlines/v1/deadlines_pb.js";
import { file_rogatory_notification_v1_notification } from "./gen/rogatory/notification/v1/notification_pb.js";
import { resolveAllowList, UPSTREAMS, type AllowedMethod, type Upstream } from "./allowlist.js";
import { originAllowed, type Settings } from "./settings.js";
import { log, logEnabled } from "./log.js";
import * as metrics from "./metrics.js";
import { loadDevKey, mintDevToken, parseTokenRequest, type DevKey } from "./devtoken.js";

/** Request headers passed to the services as they came. Nothing else is forwarded. */
export const FORWARDED_HEADERS = [
  "authorization",
  "traceparent",
  "tracestate",
  "x-rogatory-trace-id",
  "x-rogatory-justification",
];

const ALLOWED_REQUEST_HEADERS = [...connectCors.allowedHeaders, ...FORWARDED_HEADERS];
const EXPOSED_RESPONSE_HEADERS = [...connectCors.exposedHeaders];
const GRPC_WEB_TEXT = /^application\/grpc-web-text(\+proto)?\s*(;.*)?$/i;
/** What the gateway serves: Connect unary and streaming (JSON or binary), gRPC-Web binary and
 * text. Anything else is refused before dispatch. */
const SUPPORTED_CONTENT_TYPE =
  /^application\/(json|proto|connect\+(json|proto)|grpc-web(\+proto)?|grpc-web-text(\+proto)?)\s*(;.*)?$/i;

/** Per-call state the forwarding code fills in, read when the call ends. */
interface CallState {
  code: Code | 0 | undefined;
}
const callStateKey = createContextKey<CallState | undefined>(undefined);

/** Errors from the services come back with their details decoded where the type is known,
 * so a Connect JSON client also gets a readable `debug` rendering of google.rpc.BadRequest. */
const detailRegistry: Registry = createRegistry(
  file_google_rpc_error_details,
  file_rogatory_intake_v1_intake,
  file_rogatory_routing_v1_routing,
  file_rogatory_deadlines_v1_deadlines,
  file_rogatory_notification_v1_notification,
);

export function codeName(code: Code | 0): string {
  return code === 0 ? "OK" : (Code[code] ?? "Unknown");
}

/** The domain of every google.rpc.ErrorInfo Rogatory sends (errors.proto). */
export const ERROR_DOMAIN = "rogatory";

/** The reason a service gives a code when nothing more specific applies (common/src/status.cc
 * DefaultReason), so a refusal by the gateway carries the reason a native call would get. */
export function defaultReason(code: Code): string {
  switch (code) {
    case Code.Canceled: return "CANCELLED";
    case Code.InvalidArgument: return "INVALID_FIELD";
    case Code.DeadlineExceeded: return "DEADLINE_EXCEEDED";
    case Code.NotFound: return "NOT_FOUND";
    case Code.AlreadyExists: return "ALREADY_EXISTS";
    case Code.PermissionDenied: return "PERMISSION_DENIED";
    case Code.ResourceExhausted: return "RATE_LIMITED";
    case Code.FailedPrecondition: return "FAILED_PRECONDITION";
    case Code.Aborted: return "CONCURRENT_CHANGE";
    case Code.OutOfRange: return "OUT_OF_RANGE";
    case Code.Unimplemented: return "UNIMPLEMENTED";
    case Code.Unavailable: return "STORE_UNAVAILABLE";
    case Code.Unauthenticated: return "UNAUTHENTICATED";
    default: return "INTERNAL";
  }
}

/** An error the gateway answers itself, with google.rpc.ErrorInfo (domain rogatory). */
export function gatewayError(message: string, code: Code, reason: string,
                             metadata: Record<string, string> = {}): ConnectError {
  return new ConnectError(message, code, undefined, [
    { desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { domain: ERROR_DOMAIN, reason, metadata }) },
  ]);
}

/** The error with an ErrorInfo added (the code's default reason) if it carries none: errors
 * raised below the services' status mapping (gRPC's own, a broken connection) get one too. */
export function withErrorInfo(err: ConnectError): ConnectError {
  const has = err.details.some((d) => ("desc" in d ? d.desc.typeName : d.type) === ErrorInfoSchema.typeName);
  if (has) return err;
  return new ConnectError(err.rawMessage, err.code, undefined, [
    ...err.details,
    { desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { domain: ERROR_DOMAIN, reason: defaultReason(err.code) }) },
  ] as any);
}

function upstreamError(e: unknown, callerSignal: AbortSignal): ConnectError {
  const err = ConnectError.from(e);
  if (err.code === Code.Canceled && !callerSignal.aborted) {
    // The browser did not cancel: the connection to the service broke (a refused TLS
    // handshake, a reset). That is the service being unavailable, which a client may retry.
    return gatewayError(`upstream connection failed: ${err.rawMessage}`, Code.Unavailable, "STORE_UNAVAILABLE");
  }
  const details = err.details.map((d) => {
    if ("desc" in d) return d;
    const desc = detailRegistry.getMessage(d.type);
    if (!desc) return d;
    try {
      return { desc, value: fromBinary(desc, d.value) };
    } catch {
      return d;
    }
  });
  // A fresh error: the upstream's response metadata (its HTTP/2 headers) must not leak into
  // the browser's response.
  return withErrorInfo(new ConnectError(err.rawMessage, err.code, undefined, details as any));
}

function forwardedHeaders(ctx: HandlerContext): Headers {
  const out = new Headers();
  for (const name of FORWARDED_HEADERS) {
    const value = ctx.requestHeader.get(name);
    if (value !== null) out.set(name, value);
  }
  return out;
}

async function* single<T>(value: T): AsyncIterable<T> {
  yield value;
}

export interface Gateway {
  server: http.Server;
  metricsServer: http.Server;
  /** Resolves when both servers listen; the addresses they listen on. */
  listening: Promise<{ port: number; metricsPort: number }>;
  /** Stops taking calls, ends streams, gives unary calls the grace period, closes. */
  shutdown(): Promise<void>;
}

export function createGateway(settings: Settings): Gateway {
  const allowList = resolveAllowList();
  const shutdownController = new AbortController();
  // Streams end as soon as shutdown begins: a Subscribe never ends by itself, and its client
  // resumes from its last cursor on another replica.
  const streamsController = new AbortController();
  let draining = false;
  let inFlight = 0;
  let idleWaiter: (() => void) | undefined;

  const tls = settings.tlsCaFile !== "";
  const nodeOptions = tls
    ? {
        ca: readFileSync(settings.tlsCaFile),
        ...(settings.tlsClientCertFile
          ? { cert: readFileSync(settings.tlsClientCertFile), key: readFileSync(settings.tlsClientKeyFile) }
          : {}),
      }
    : undefined;
  const transports = new Map<Upstream, Transport>();
  for (const upstream of UPSTREAMS) {
    transports.set(
      upstream,
      createGrpcTransport({
        baseUrl: `${tls ? "https" : "http"}://${settings.upstreams[upstream]}`,
        httpVersion: "2",
        nodeOptions,
        readMaxBytes: settings.maxMessageBytes,
        writeMaxBytes: settings.maxMessageBytes,
        pingIntervalMs: 30_000,
        idleConnectionTimeoutMs: 15 * 60_000,
      } as any),
    );
  }

  const router = createConnectRouter({
    grpc: false, // browsers cannot speak native gRPC; native clients go to the services
    grpcWeb: true,
    connect: true,
    readMaxBytes: settings.maxMessageBytes,
    writeMaxBytes: settings.maxMessageBytes,
    shutdownSignal: shutdownController.signal,
    jsonOptions: { registry: detailRegistry },
  });
  for (const allowed of allowList) {
    router.rpc(allowed.method as any, forwarder(allowed, transports.get(allowed.upstream)!, streamsController.signal) as any);
  }
  const handlers = new Map<string, { handler: UniversalHandler; allowed: AllowedMethod }>();
  for (const handler of router.handlers) {
    const allowed = allowList.find((m) => m.path === handler.requestPath);
    if (allowed) handlers.set(handler.requestPath, { handler, allowed });
  }

  const devKey: DevKey | undefined =
    settings.devToken && settings.env === "development" ? loadDevKey(settings.devTokenKeyFile) : undefined;

  const server = http.createServer({ requestTimeout: 0, keepAliveTimeout: 65_000 }, (req, res) => {
    handle(req, res).catch((e) => {
      log("error", "unhandled gateway error", { error: String(e instanceof Error ? e.message : e).slice(0, 200) });
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://gateway");
    const path = url.pathname;

    if (path === "/healthz" && (req.method === "GET" || req.method === "HEAD")) {
      return plain(res, 200, "ok\n");
    }
    if (path === "/readyz" && (req.method === "GET" || req.method === "HEAD")) {
      return draining ? plain(res, 503, "draining\n") : plain(res, 200, "ready\n");
    }

    const origin = req.headers.origin;
    if (origin !== undefined) {
      if (!originAllowed(origin, settings.allowedOrigins)) {
        metrics.rejected.inc({ reason: "origin" });
        // No CORS headers: the browser reports the refusal to the page. Nothing is forwarded.
        return connectError(res, 403, gatewayError("origin not allowed", Code.PermissionDenied, "PERMISSION_DENIED"));
      }
      res.setHeader("Access-Control-Allow-Origin", origin);
      res.setHeader("Vary", "Origin");
      res.setHeader("Access-Control-Expose-Headers", EXPOSED_RESPONSE_HEADERS.join(", "));
      if (req.method === "OPTIONS") {
        res.setHeader("Access-Control-Allow-Methods", "POST, GET, OPTIONS");
        res.setHeader("Access-Control-Allow-Headers", ALLOWED_REQUEST_HEADERS.join(", "));
        res.setHeader("Access-Control-Max-Age", "7200");
        res.writeHead(204);
        res.end();
        return;
      }
    } else if (req.method === "OPTIONS") {
      return plain(res, 204, "");
    }

    if (path === "/dev/token") {
      if (!devKey || req.method !== "POST") {
        metrics.rejected.inc({ reason: "dev_token" });
        return plain(res, 404, "not found\n");
      }
      return devToken(req, res, devKey);
    }

    const entry = handlers.get(path);
    const contentType = req.headers["content-type"] ?? "";
    const isGrpcWeb = /^application\/grpc-web/i.test(contentType);
    if (!entry) {
      metrics.rejected.inc({ reason: "method" });
      countCall("unknown", "unknown", "unknown", Code.Unimplemented, 0);
      if (logEnabled("debug")) log("debug", "call refused: method not served", { code: "Unimplemented" });
      req.resume();
      const err = gatewayError("method not found", Code.Unimplemented, "UNIMPLEMENTED");
      if (isGrpcWeb) {
        // gRPC-Web: a trailers-only response, as a native gRPC server answers.
        res.writeHead(200, grpcWebTrailers(err, GRPC_WEB_TEXT.test(contentType)));
        res.end();
        return;
      }
      return connectError(res, 404, err);
    }
    if (req.method !== "GET" && !SUPPORTED_CONTENT_TYPE.test(contentType)) {
      // Connect-es would answer 415 with no body; the body says why, with its reason.
      metrics.rejected.inc({ reason: "content_type" });
      req.resume();
      res.setHeader("connection", "close");
      return connectError(res, 415, gatewayError(
        "unsupported content type: use application/json or application/proto (Connect), or application/grpc-web[-text][+proto]",
        Code.InvalidArgument, "MALFORMED_REQUEST", { field: "content-type" }));
    }
    if (draining) {
      res.setHeader("connection", "close");
    }
    await call(req, res, entry.handler, entry.allowed, contentType);
  }

  async function call(req: http.IncomingMessage, res: http.ServerResponse, handler: UniversalHandler,
                      allowed: AllowedMethod, contentType: string): Promise<void> {
    const started = process.hrtime.bigint();
    const service = allowed.method.parent.typeName;
    const method = allowed.method.name;
    const type = allowed.method.methodKind === "unary" ? "unary" : "server_stream";
    const text = GRPC_WEB_TEXT.test(contentType);
    const protocol = text ? "grpc-web-text" : /^application\/grpc-web/i.test(contentType) ? "grpc-web" : "connect";
    metrics.started.inc({ grpc_service: service, grpc_method: method, grpc_type: type });
    metrics.protocolCalls.inc({ protocol });
    if (type === "server_stream") metrics.inFlight.inc({ grpc_method: method });
    inFlight++;
    const state: CallState = { code: undefined };
    let httpStatus = 0;
    try {
      const values = createContextValues().set(callStateKey, state);
      let ureq: UniversalServerRequest = universalRequestFromNodeRequest(req, res as any, undefined, values);
      try {
        ureq = await checkedBinaryRequest(ureq, contentType, allowed.method, settings.maxMessageBytes);
      } catch (e) {
        const err = ConnectError.from(e);
        state.code = err.code;
        httpStatus = writeEarlyError(res, err, protocol, contentType);
        return;
      }
      let ures: UniversalServerResponse = await handler(ureq);
      if (text) ures = toGrpcWebText(ures);
      httpStatus = ures.status;
      if (state.code === undefined) [state.code, ures] = await codeOfEarlyResponse(ures);
      // The call ends when the response is sent or the browser goes away ('close'); with
      // node:http, connect-node's writer settles only on an 'end' event that never comes.
      const closed = new Promise<void>((resolve) => {
        if (res.closed) resolve();
        else res.once("close", () => resolve());
      });
      universalResponseToNodeResponse(ures, res as any).catch(() => {
        if (!res.writableEnded) res.destroy();
      });
      await closed;
    } catch (e) {
      state.code = ConnectError.from(e).code;
      if (!res.headersSent) {
        res.writeHead(500);
      }
      res.end();
    } finally {
      inFlight--;
      if (inFlight === 0 && idleWaiter) idleWaiter();
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const code = state.code ?? Code.Unknown;
      countCall(service, method, type, code, seconds);
      const level = [Code.Unknown, Code.Internal, Code.Unavailable, Code.DataLoss].includes(code as Code) ? "warn" : "debug";
      if (logEnabled(level)) {
        log(level, "call", {
          grpc_service: service, grpc_method: method, grpc_code: codeName(code), protocol,
          http_status: httpStatus, duration_ms: Math.round(seconds * 1e4) / 10,
        });
      }
    }
  }

  function countCall(service: string, method: string, type: string, code: Code | 0, seconds: number): void {
    const labels = { grpc_service: service, grpc_method: method, grpc_type: type };
    metrics.handled.inc({ ...labels, grpc_code: codeName(code) });
    metrics.handlingSeconds.observe(labels, seconds);
  }

  async function devToken(req: http.IncomingMessage, res: http.ServerResponse, key: DevKey): Promise<void> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += chunk.length;
      if (size > 4096) return plain(res, 413, "body too large\n");
      chunks.push(chunk);
    }
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      return json(res, 400, { error: "body must be JSON" });
    }
    const parsed = parseTokenRequest(body);
    if (typeof parsed === "string") return json(res, 400, { error: parsed });
    const now = Math.floor(Date.now() / 1000);
    // Neither the subject nor the token (a credential) is logged: roles and lifetime only.
    log("info", "development token minted", { roles: parsed.roles.join(","), ttl_seconds: parsed.ttlSeconds });
    return json(res, 200, { token: mintDevToken(key, parsed, now), expires_at: new Date((now + parsed.ttlSeconds) * 1000).toISOString() });
  }

  // ---- metrics server: /metrics only, on its own port (never exposed to browsers).
  const metricsServer = http.createServer(async (req, res) => {
    if (req.url === "/metrics") {
      res.writeHead(200, { "content-type": metrics.registry.contentType });
      res.end(await metrics.registry.metrics());
      return;
    }
    if (req.url === "/healthz") return plain(res, 200, "ok\n");
    plain(res, 404, "not found\n");
  });

  const listening = Promise.all([
    listen(server, settings.listen.host, settings.listen.port),
    listen(metricsServer, settings.metricsListen.host, settings.metricsListen.port),
  ]).then(([port, metricsPort]) => ({ port, metricsPort }));

  async function shutdown(): Promise<void> {
    if (draining) return;
    draining = true;
    server.close(); // stop accepting; keep-alive connections close after their call
    server.closeIdleConnections();
    streamsController.abort(gatewayError("the gateway is shutting down; reconnect", Code.Unavailable, "STORE_UNAVAILABLE"));
    if (inFlight > 0) {
      await new Promise<void>((resolve) => {
        idleWaiter = resolve;
        setTimeout(resolve, settings.shutdownGraceMs).unref();
      });
    }
    shutdownController.abort();
    server.closeAllConnections();
    // The upstream HTTP/2 sessions need no closing: main() exits the process after this.
    await new Promise<void>((resolve) => metricsServer.close(() => resolve()));
  }

  return { server, metricsServer, listening, shutdown };
}

/** The handler implementation that forwards one allow-listed method to its service. */
function forwarder(allowed: AllowedMethod, transport: Transport, streamsSignal: AbortSignal) {
  const method = allowed.method as DescMethod;
  if (method.methodKind === "unary") {
    return async (request: any, ctx: HandlerContext) => {
      const state = ctx.values.get(callStateKey);
      try {
        const response = await transport.unary(method as any, ctx.signal, ctx.timeoutMs(),
                                               forwardedHeaders(ctx), request);
        if (state) state.code = 0;
        return response.message;
      } catch (e) {
        const err = upstreamError(e, ctx.signal);
        if (state) state.code = err.code;
        throw err;
      }
    };
  }
  return async function* (request: any, ctx: HandlerContext) {
    const state = ctx.values.get(callStateKey);
    // AbortSignal.any is Node 20; Debian 12's nodejs is 18.
    const controller = new AbortController();
    const abort = () => controller.abort(ctx.signal.aborted ? ctx.signal.reason : streamsSignal.reason);
    if (ctx.signal.aborted || streamsSignal.aborted) abort();
    ctx.signal.addEventListener("abort", abort, { once: true });
    streamsSignal.addEventListener("abort", abort, { once: true });
    const signal = controller.signal;
    try {
      const response = await transport.stream(method as any, signal, ctx.timeoutMs(),
                                              forwardedHeaders(ctx), single(request));
      for await (const message of response.message) {
        yield message;
      }
      if (state) state.code = 0;
    } catch (e) {
      const err = streamsSignal.aborted
        ? gatewayError("the gateway is shutting down; reconnect", Code.Unavailable, "STORE_UNAVAILABLE")
        : upstreamError(e, ctx.signal);
      if (state) state.code = ctx.signal.aborted && !streamsSignal.aborted && err.code !== Code.DeadlineExceeded ? Code.Canceled : err.code;
      throw err;
    } finally {
      ctx.signal.removeEventListener("abort", abort);
      streamsSignal.removeEventListener("abort", abort);
    }
  };
}

/** The gRPC status of a response the forwarder never saw (connect-es refused the call
 * itself: a bad header, an unsupported protocol version), with an ErrorInfo added to the
 * error it carries (its code's default reason) so that every refusal has one. */
async function codeOfEarlyResponse(ures: UniversalServerResponse): Promise<[Code | 0 | undefined, UniversalServerResponse]> {
  const header = new Headers(ures.header);
  const grpcStatus = header.get("grpc-status");
  if (grpcStatus !== null) {
    const err = findTrailerError(header);
    if (err) setTrailerStatus(header, withErrorInfo(err));
    return [Number(grpcStatus) as Code, { ...ures, header }];
  }
  if (ures.status !== 200 && ures.body !== undefined) {
    // A Connect error: a small JSON body naming the code. Read it, then hand it on.
    const chunks: Uint8Array[] = [];
    const body = ures.body as unknown;
    if (body instanceof Uint8Array) chunks.push(body);
    else for await (const chunk of body as AsyncIterable<Uint8Array>) chunks.push(chunk);
    let bytes = new Uint8Array(Buffer.concat(chunks));
    let code: Code = Code.Unknown;
    try {
      code = codeFromString(String(JSON.parse(new TextDecoder().decode(bytes)).code)) ?? Code.Unknown;
      const err = withErrorInfo(errorFromJsonBytes(bytes, undefined, new ConnectError("", code)));
      bytes = new TextEncoder().encode(JSON.stringify(connectErrorJson(err)));
      header.delete("content-length");
    } catch {
      // not JSON: leave Unknown, and the body as it came
    }
    return [code, { ...ures, header, body: single(bytes) }];
  }
  return [undefined, ures];
}

// ---- gRPC-Web text (application/grpc-web-text): base64 on the wire, both ways. connect-es
// serves only binary gRPC-Web, so the body is translated here: the request is decoded
// (concatenated base64 segments, each possibly padded) and the response's chunks are each
// encoded separately, as Envoy's grpc_web filter does (gRPC-Web clients decode padded
// segments).

/**
 * Reads a binary request (gRPC-Web binary or text, Connect unary application/proto) whole,
 * within the size limit, and checks that it holds exactly one message of the method's input
 * type before any service sees it. connect-es would answer an undecodable message with
 * INTERNAL (its parse error code is shared with response parsing); a browser sent bad
 * input, which is INVALID_ARGUMENT. JSON is checked by connect-es itself (INVALID_ARGUMENT).
 * Returns the request with its body replayed (and gRPC-Web text turned into binary).
 */
async function checkedBinaryRequest(ureq: UniversalServerRequest, contentType: string,
                                    method: DescMethod, maxMessageBytes: number): Promise<UniversalServerRequest> {
  const text = GRPC_WEB_TEXT.test(contentType);
  // Enveloped: gRPC-Web, and Connect streaming requests (one message for a server stream).
  const grpcWeb = text || /^application\/(grpc-web(\+proto)?|connect\+(proto|json))\s*(;.*)?$/i.test(contentType);
  const connectProto = /^application\/proto\s*(;.*)?$/i.test(contentType);
  const isJson = /^application\/(json|connect\+json)\s*(;.*)?$/i.test(contentType);
  if (!grpcWeb && !connectProto && !isJson) return ureq;
  // Compressed JSON is left to connect-es, which inflates it within the limits (its errors
  // then carry no ErrorInfo). Compressed binary is refused below, as before.
  const encoded = new Headers(ureq.header);
  if (isJson && (encoded.has("content-encoding") || encoded.has("connect-content-encoding"))) return ureq;
  const tooLarge = () => gatewayError(`message larger than max-message-bytes (${maxMessageBytes})`,
                                      Code.ResourceExhausted, "MESSAGE_TOO_LARGE",
                                      { max_message_bytes: String(maxMessageBytes) });
  const malformed = (message: string) => gatewayError(message, Code.InvalidArgument, "MALFORMED_REQUEST");
  const wireLimit = text ? Math.ceil(((maxMessageBytes + 5) * 4) / 3) + 4 : maxMessageBytes + 5;
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of ureq.body as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > wireLimit) throw tooLarge();
    chunks.push(chunk);
  }
  let bytes: Uint8Array = new Uint8Array(Buffer.concat(chunks));
  if (text) {
    const decoded = decodeBase64Segments(Buffer.from(bytes).toString("latin1").replace(/\s+/g, ""));
    if (decoded === undefined) throw malformed("request body is not base64 (gRPC-Web text)");
    bytes = decoded;
  }
  let payload = bytes;
  if (grpcWeb) {
    if (bytes.byteLength < 5) throw malformed("malformed request: no message frame");
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const flags = view.getUint8(0);
    const length = view.getUint32(1);
    if (length > maxMessageBytes) throw tooLarge();
    if (bytes.byteLength !== 5 + length || (flags & ~0x01) !== 0) {
      throw malformed("malformed request: expected exactly one message frame");
    }
    if ((flags & 0x01) !== 0) {
      throw malformed("compressed requests are not accepted");
    }
    payload = bytes.subarray(5);
  } else if (payload.byteLength > maxMessageBytes) {
    throw tooLarge();
  }
  try {
    if (isJson) {
      fromJson(method.input, JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(payload)));
    } else {
      fromBinary(method.input, payload);
    }
  } catch (e) {
    throw malformed(`request does not decode as ${method.input.typeName}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const header = new Headers(ureq.header);
  if (text) header.set("content-type", "application/grpc-web+proto");
  header.delete("content-length");
  return { ...ureq, header, body: single(bytes) };
}

/** gRPC-Web trailers-only headers for an error, details in grpc-status-details-bin. */
function grpcWebTrailers(err: ConnectError, text: boolean): Record<string, string> {
  const out: Record<string, string> = {
    "content-type": text ? "application/grpc-web-text+proto" : "application/grpc-web+proto",
  };
  setTrailerStatus(new Headers(), err).forEach((value, key) => { out[key] = value; });
  return out;
}

/** A Connect unary error body: code, message and details (with their `debug` form). */
function connectErrorJson(err: ConnectError): unknown {
  return errorToJson(err, { registry: detailRegistry });
}

function connectError(res: http.ServerResponse, status: number, err: ConnectError): void {
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
  res.end(JSON.stringify(connectErrorJson(err)));
}

/** Answers a call the gateway refused before dispatch, in the caller's protocol. Returns the
 * HTTP status written. */
function writeEarlyError(res: http.ServerResponse, err: ConnectError, protocol: string,
                         contentType: string): number {
  err = withErrorInfo(err);
  // The rest of an oversized body is not read: the connection cannot be reused.
  res.setHeader("connection", "close");
  if (protocol !== "connect") {
    res.writeHead(200, grpcWebTrailers(err, protocol === "grpc-web-text"));
    res.end();
    return 200;
  }
  if (/^application\/connect\+/i.test(contentType)) {
    // A Connect stream: HTTP 200 and the error in the end-of-stream message (flag 0x02).
    const json = Buffer.from(JSON.stringify({ error: connectErrorJson(err) }));
    const head = Buffer.alloc(5);
    head.writeUInt8(0x02, 0);
    head.writeUInt32BE(json.length, 1);
    res.writeHead(200, { "content-type": contentType.split(";")[0].trim().toLowerCase() });
    res.end(Buffer.concat([head, json]));
    return 200;
  }
  const status = codeToHttpStatus(err.code);
  connectError(res, status, err);
  return status;
}

export function decodeBase64Segments(text: string): Uint8Array | undefined {
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/=]*$/.test(text)) return undefined;
  const parts: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < text.length; i += 4) {
    if (text[i + 3] === "=") {
      parts.push(Buffer.from(text.slice(start, i + 4), "base64"));
      start = i + 4;
    }
  }
  if (start < text.length) parts.push(Buffer.from(text.slice(start), "base64"));
  return new Uint8Array(Buffer.concat(parts));
}

function toGrpcWebText(ures: UniversalServerResponse): UniversalServerResponse {
  const header = new Headers(ures.header);
  if (header.has("content-type")) header.set("content-type", "application/grpc-web-text+proto");
  header.delete("content-length");
  const body = ures.body;
  if (body === undefined) return { ...ures, header };
  if ((body as unknown) instanceof Uint8Array) {
    return { ...ures, header, body: single(new TextEncoder().encode(Buffer.from(body as unknown as Uint8Array).toString("base64"))) };
  }
  async function* encode(): AsyncIterable<Uint8Array> {
    for await (const chunk of body as AsyncIterable<Uint8Array>) {
      yield new TextEncoder().encode(Buffer.from(chunk).toString("base64"));
    }
  }
  return { ...ures, header, body: encode() };
}

function plain(res: http.ServerResponse, status: number, text: string): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
  res.end(text);
}

function json(res: http.ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
  res.end(JSON.stringify(value));
}

function listen(server: http.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      const addr = server.address();
      resolve(typeof addr === "object" && addr ? addr.port : port);
    });
  });
}
