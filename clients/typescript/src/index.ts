// @rogatory/client: typed clients for Rogatory's public APIs in the browser (or any fetch
// runtime), through rogatory-gateway. Messages, enums and service descriptors are generated
// from protos/ at build (protoc-gen-es v2; see scripts/generate.mjs); calls go over the
// Connect protocol (JSON by default) or gRPC-Web, with @connectrpc/connect-web.
//
//   const rogatory = createRogatoryClients({ baseUrl: "https://gateway.example.org", token: () => token });
//   const { request } = await rogatory.intake.submitRequest({ requestId: crypto.randomUUID(), content });
//   for await (const item of rogatory.notification.subscribe({})) { ... }
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-web";
import { IntakeService, type Document, type DocumentKind } from "./gen/rogatory/intake/v1/intake_pb.js";
import { TranslationRoutingService } from "./gen/rogatory/routing/v1/routing_pb.js";
import { DeadlineService } from "./gen/rogatory/deadlines/v1/deadlines_pb.js";
import { NotificationService } from "./gen/rogatory/notification/v1/notification_pb.js";
import { BadRequestSchema } from "./gen/google/rpc/error_details_pb.js";
import { Code, ConnectError } from "@connectrpc/connect";

export * as intake from "./gen/rogatory/intake/v1/intake_pb.js";
export * as routing from "./gen/rogatory/routing/v1/routing_pb.js";
export * as deadlines from "./gen/rogatory/deadlines/v1/deadlines_pb.js";
export * as notification from "./gen/rogatory/notification/v1/notification_pb.js";
export * as types from "./gen/rogatory/common/v1/types_pb.js";
export * as events from "./gen/rogatory/common/v1/events_pb.js";
export * as errorDetails from "./gen/google/rpc/error_details_pb.js";
export { IntakeService, TranslationRoutingService, DeadlineService, NotificationService };
export { Code, ConnectError } from "@connectrpc/connect";
export { create, fromJson, toJson } from "@bufbuild/protobuf";
export { timestampDate } from "@bufbuild/protobuf/wkt";

export interface RogatoryClientOptions {
  /** The gateway's URL, e.g. "https://rogatory-gateway.example.org". */
  baseUrl: string;
  /** The caller's bearer token (from your identity provider), read for every call. */
  token: () => string | undefined;
  /** "connect" (the default: JSON, readable in the browser's network tab) or "grpc-web". */
  protocol?: "connect" | "grpc-web";
  /** Binary protobuf instead of JSON on the wire (always binary for gRPC-Web). */
  binary?: boolean;
  /** Default timeout of unary calls in milliseconds (sent as connect-timeout-ms/grpc-timeout). */
  defaultTimeoutMs?: number;
}

export interface RogatoryClients {
  intake: Client<typeof IntakeService>;
  routing: Client<typeof TranslationRoutingService>;
  deadlines: Client<typeof DeadlineService>;
  notification: Client<typeof NotificationService>;
  transport: Transport;
}

export function createRogatoryClients(options: RogatoryClientOptions): RogatoryClients {
  const bearer: Interceptor = (next) => async (req) => {
    const token = options.token();
    if (token) req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  const transport =
    options.protocol === "grpc-web"
      ? createGrpcWebTransport({ baseUrl: options.baseUrl, interceptors: [bearer], defaultTimeoutMs: options.defaultTimeoutMs })
      : createConnectTransport({
          baseUrl: options.baseUrl,
          useBinaryFormat: options.binary ?? false,
          interceptors: [bearer],
          defaultTimeoutMs: options.defaultTimeoutMs,
        });
  return {
    intake: createClient(IntakeService, transport),
    routing: createClient(TranslationRoutingService, transport),
    deadlines: createClient(DeadlineService, transport),
    notification: createClient(NotificationService, transport),
    transport,
  };
}

/** The field violations (google.rpc.BadRequest) an INVALID_ARGUMENT error carries. */
export function fieldViolations(error: unknown): { field: string; description: string }[] {
  const err = ConnectError.from(error);
  return err.findDetails(BadRequestSchema).flatMap((d) =>
    d.fieldViolations.map((v) => ({ field: v.field, description: v.description })));
}

/** An upload's metadata (intake.v1.DocumentUpload) without `sha256`, which uploadDocument computes. */
export interface DocumentUploadFields {
  /** Idempotency key: retrying the upload with it cannot store the document twice. */
  requestId?: string;
  /** The request to attach to. */
  id: string;
  kind: DocumentKind;
  /** BCP 47, e.g. "fr". */
  language: string;
  /** e.g. "application/pdf". */
  mediaType: string;
  title?: string;
  /** For a translation: the document it translates. */
  translationOfDocumentId?: string;
}

/** The largest chunk UploadDocumentChunk takes (1 MiB; within the gateway's body bound as base64). */
export const MAX_UPLOAD_CHUNK_BYTES = 1 << 20;

/**
 * Uploads a document from the browser with the chunked-unary methods (StartDocumentUpload,
 * UploadDocumentChunk, CommitDocumentUpload): hashes the bytes (SHA-256, Web Crypto), sends
 * them in chunks of at most 1 MiB, resending a chunk whose call failed with UNAVAILABLE or
 * DEADLINE_EXCEEDED (harmless: chunks are idempotent by offset), and commits. Returns the
 * stored document. `metadata.sha256` is computed here; pass a `requestId` (idempotency key)
 * so that retrying the whole upload cannot store it twice.
 */
export async function uploadDocument(
  intake: Client<typeof IntakeService>,
  metadata: DocumentUploadFields,
  bytes: Uint8Array<ArrayBuffer>,
  options: { chunkBytes?: number; retries?: number } = {},
): Promise<Document> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const sha256 = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  const started = await intake.startDocumentUpload({ metadata: { ...metadata, sha256 } });
  if (started.document) return started.document;
  const size = Math.min(options.chunkBytes ?? MAX_UPLOAD_CHUNK_BYTES, MAX_UPLOAD_CHUNK_BYTES);
  for (let offset = 0; offset < bytes.length; offset += size) {
    const chunk = bytes.subarray(offset, Math.min(offset + size, bytes.length));
    for (let attempt = 0; ; attempt++) {
      try {
        await intake.uploadDocumentChunk({ uploadId: started.uploadId, offset: BigInt(offset), chunk });
        break;
      } catch (e) {
        const code = ConnectError.from(e).code;
        if (attempt >= (options.retries ?? 3) || (code !== Code.Unavailable && code !== Code.DeadlineExceeded)) throw e;
      }
    }
  }
  const { document } = await intake.commitDocumentUpload({ uploadId: started.uploadId });
  if (!document) throw new ConnectError("the commit answered no document", Code.Internal);
  return document;
}
