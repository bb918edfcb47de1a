// Unit tests of the gateway's pure parts: the allow-list, settings, CORS origin matching,
// gRPC-Web text decoding and development tokens. Run with `npm test` (bundled by esbuild).
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { FORBIDDEN_PREFIXES, resolveAllowList, UPSTREAM_OF } from "../src/allowlist.js";
import { originAllowed, parseSettings, SettingsError } from "../src/settings.js";
import { decodeBase64Segments, defaultReason, gatewayError, withErrorInfo } from "../src/gateway.js";
import { Code, ConnectError } from "@connectrpc/connect";
import { mintDevToken, parseTokenRequest, pickDevKey } from "../src/devtoken.js";
import allowListData from "../src/allowlist.json" with { type: "json" };

const paths = () => resolveAllowList().map((m) => m.path);

test("allow-list serves the public unary and server-streaming RPCs", () => {
  const p = paths();
  assert.ok(p.includes("/rogatory.intake.v1.IntakeService/SubmitRequest"));
  assert.ok(p.includes("/rogatory.intake.v1.IntakeService/DownloadDocument"));
  assert.ok(p.includes("/rogatory.notification.v1.NotificationService/Subscribe"));
  assert.ok(p.includes("/rogatory.intake.v1.IntakeService/ListRequests"));
});

test("allow-list never holds the event sink, PublishEvent, admin APIs or client streams", () => {
  const p = paths();
  assert.ok(!p.includes("/rogatory.notification.v1.NotificationService/PublishEvent"));
  assert.ok(!p.includes("/rogatory.intake.v1.IntakeService/UploadDocument"));
  assert.ok(!p.some((x) => x.startsWith("/rogatory.events.") || x.startsWith("/rogatory.admin.")));
});

test("every method of the four public services is either allow-listed or deliberately left out", () => {
  // A new RPC must be a decision: added to allowlist.json, or named here as not for browsers.
  const notForBrowsers = new Set([
    "rogatory.notification.v1.NotificationService/PublishEvent", // service-to-service
    "rogatory.intake.v1.IntakeService/UploadDocument", // client streaming: no browser can
  ]);
  const listed = new Set(paths());
  for (const { service } of UPSTREAM_OF.values()) {
    for (const method of service.methods) {
      const full = `${service.typeName}/${method.name}`;
      assert.ok(listed.has(`/${full}`) !== notForBrowsers.has(full), `${full}: decide whether browsers may call it`);
    }
  }
});

test("allow-list refuses a forbidden entry, an unknown method, a client stream and an unknown service", () => {
  assert.throws(() => resolveAllowList({ "rogatory.notification.v1.NotificationService": ["PublishEvent"] }), /never be reachable/);
  assert.throws(() => resolveAllowList({ "rogatory.intake.v1.IntakeService": ["NoSuchMethod"] }), /has no method/);
  assert.throws(() => resolveAllowList({ "rogatory.intake.v1.IntakeService": ["UploadDocument"] }), /client_streaming/);
  assert.throws(() => resolveAllowList({ "rogatory.admin.v1.TestClockService": ["AdvanceTime"] }), /not one a browser may reach/);
  assert.throws(() => resolveAllowList({ "rogatory.events.v1.EventSinkService": ["DeliverEvents"] }), /not one a browser may reach/);
  assert.ok(FORBIDDEN_PREFIXES.includes("rogatory.admin."));
  assert.equal(typeof allowListData, "object");
});

test("settings: production refuses the development token endpoint", () => {
  assert.throws(() => parseSettings(["--env=production", "--dev-token", "--dev-token-key-file=k"], {}), SettingsError);
  assert.throws(() => parseSettings([], { ROGATORY_ENV: "production", ROGATORY_DEV_TOKEN: "true", ROGATORY_DEV_TOKEN_KEY_FILE: "k" }), /refused with env=production/);
  assert.equal(parseSettings(["--dev-token", "--dev-token-key-file=k"], {}).devToken, true);
});

test("settings: allowed origins default to none in production and localhost in development", () => {
  assert.deepEqual(parseSettings(["--env=production"], {}).allowedOrigins, []);
  const dev = parseSettings([], {}).allowedOrigins;
  assert.ok(originAllowed("http://localhost:5173", dev));
  assert.ok(!originAllowed("https://evil.example", dev));
  assert.throws(() => parseSettings(["--env=production", "--allowed-origins=http://app.example.org"], {}), /https/);
  assert.throws(() => parseSettings(["--allowed-origins=not-an-origin"], {}), SettingsError);
});

test("settings: flags win over environment variables; unknown flags are refused", () => {
  const s = parseSettings(["--max-message-bytes=1048576"], { ROGATORY_MAX_MESSAGE_BYTES: "4194304" });
  assert.equal(s.maxMessageBytes, 1048576);
  assert.equal(parseSettings([], { ROGATORY_MAX_MESSAGE_BYTES: "4194304" }).maxMessageBytes, 4194304);
  assert.throws(() => parseSettings(["--no-such-setting=1"], {}), /unknown argument/);
  assert.throws(() => parseSettings(["--upstreams=intake=127.0.0.1:1"], {}), /no address for routing/);
});

test("origin matching: exact origins, ':*' for any port, nothing else", () => {
  const allowed = ["https://app.example.org", "http://localhost:*"];
  assert.ok(originAllowed("https://app.example.org", allowed));
  assert.ok(!originAllowed("https://app.example.org:8443", allowed));
  assert.ok(!originAllowed("https://app.example.org.evil.example", allowed));
  assert.ok(originAllowed("http://localhost:3000", allowed));
  assert.ok(!originAllowed("http://localhost.evil.example:3000", allowed));
  assert.ok(!originAllowed("null", allowed));
});

test("gRPC-Web text: concatenated padded base64 segments decode to the bytes sent", () => {
  const a = Buffer.from([0, 0, 0, 0, 1, 7]);
  const b = Buffer.from([128, 0, 0, 0, 0]);
  const text = a.toString("base64") + b.toString("base64");
  assert.deepEqual(Buffer.from(decodeBase64Segments(text)!), Buffer.concat([a, b]));
  assert.equal(decodeBase64Segments("%%%"), undefined);
});

test("development token: HS256 over header.claims with the key, carrying sub, state and roles", () => {
  const key = { kid: "dev", secret: Buffer.from("secret") };
  const req = parseTokenRequest({ sub: "DE-GStA-BERLIN", state: "DE", roles: ["executing"] });
  assert.ok(typeof req !== "string");
  const token = mintDevToken(key, req, 1000);
  const [h, c, sig] = token.split(".");
  assert.equal(createHmac("sha256", key.secret).update(`${h}.${c}`).digest("base64url"), sig);
  const claims = JSON.parse(Buffer.from(c, "base64url").toString());
  assert.deepEqual([claims.sub, claims.state, claims.roles, claims.exp, claims.aud], ["DE-GStA-BERLIN", "DE", ["executing"], 4600, "rogatory"]);
  assert.match(String(parseTokenRequest({ sub: "rogatory-intake", roles: ["service"] })), /service identities|roles/);
  assert.match(String(parseTokenRequest({ sub: "X", roles: ["service"] })), /roles/);
});

test("development token key: the key set's key for authorities, never the services' key", () => {
  const authorities = { kid: "dev", alg: "HS256", subjects: "authorities", secret: "YQ==" };
  const services = { kid: "dev-services", alg: "HS256", subjects: "services", secret: "Yg==" };
  assert.equal(pickDevKey({ keys: [services, authorities] }, "k").kid, "dev");
  assert.throws(() => pickDevKey({ keys: [services] }, "k"), /authorities/);
  const legacy = { kid: "old", alg: "HS256", secret: "YQ==" };
  assert.equal(pickDevKey({ keys: [legacy] }, "k").kid, "old");
  assert.throws(() => pickDevKey({ keys: [legacy, services] }, "k"), /authorities/);
  assert.match(String(parseTokenRequest({ sub: "X", ttl_seconds: 7200 })), /ttl_seconds/);
});

test("every error gets an ErrorInfo: the gateway's own reason, else the code's default", () => {
  const reasonOf = (e: ConnectError) =>
    e.details.filter((d) => "desc" in d && d.desc.typeName === "google.rpc.ErrorInfo")
      .map((d) => ("desc" in d ? (d.value as { domain: string; reason: string }) : undefined));
  const own = withErrorInfo(gatewayError("bad", Code.InvalidArgument, "MALFORMED_REQUEST"));
  assert.deepEqual(reasonOf(own).map((i) => [i?.domain, i?.reason]), [["rogatory", "MALFORMED_REQUEST"]]);
  const bare = withErrorInfo(new ConnectError("gone", Code.Unavailable));
  assert.deepEqual(reasonOf(bare).map((i) => [i?.domain, i?.reason]), [["rogatory", "STORE_UNAVAILABLE"]]);
  assert.equal(defaultReason(Code.Unauthenticated), "UNAUTHENTICATED");
  assert.equal(defaultReason(Code.Unimplemented), "UNIMPLEMENTED");
  assert.equal(defaultReason(Code.DataLoss), "INTERNAL");
});
