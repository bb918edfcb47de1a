// The development token endpoint's minting: an HS256 JWT shaped like
// tools/pyclient/rogatory_client.py's mint_dev_token (iss rogatory-dev, aud rogatory, sub,
// state, roles, iat, exp). The development key's secret is public: settings.ts refuses this
// endpoint with env=production.
import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";

export interface DevKey {
  kid: string;
  secret: Buffer;
}

/** The key of a key set that signs callers' tokens: the HS256 key declared for
 * `"subjects": "authorities"` (keys are bound to what they sign; the endpoint never mints a
 * service token), or the set's one HS256 key if it declares no subjects at all. */
export function pickDevKey(data: any, path: string): DevKey {
  const keys: unknown[] = Array.isArray(data?.keys) ? data.keys : [data];
  const hs = keys.filter((k: any) => k && k.alg === "HS256" && typeof k.secret === "string") as any[];
  const authorities = hs.filter((k) => k.subjects === "authorities");
  const chosen = authorities.length > 0 ? authorities : hs.every((k) => k.subjects === undefined) ? hs : [];
  if (chosen.length !== 1) {
    throw new Error(`${path}: expected one HS256 key for "subjects": "authorities", found ${chosen.length}`);
  }
  return { kid: String(chosen[0].kid), secret: Buffer.from(chosen[0].secret, "base64") };
}

export function loadDevKey(path: string): DevKey {
  return pickDevKey(JSON.parse(readFileSync(path, "utf8")), path);
}

const b64url = (data: Buffer | string) => Buffer.from(data).toString("base64url");

export const ROLES = ["issuing", "executing", "central", "translator", "operator", "auditor"];

export interface TokenRequest {
  sub: string;
  state: string;
  roles: string[];
  ttlSeconds: number;
}

/** Validates a POST /dev/token body; returns an error text or the request. */
export function parseTokenRequest(body: unknown): TokenRequest | string {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return "body must be a JSON object";
  const b = body as Record<string, unknown>;
  if (typeof b.sub !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(b.sub)) {
    return "sub: an authority id (letters, digits, '.', '_', '-'; at most 128)";
  }
  if (b.sub.startsWith("rogatory-")) return "sub: service identities are not minted here";
  const state = b.state ?? "";
  if (typeof state !== "string" || !/^([A-Z]{2})?$/.test(state)) return "state: ISO 3166-1 alpha-2, upper case";
  const roles = b.roles ?? [];
  if (!Array.isArray(roles) || roles.some((r) => typeof r !== "string" || !ROLES.includes(r))) {
    return `roles: a list among ${ROLES.join(", ")}`;
  }
  // The services accept callers' tokens living at most auth-max-token-lifetime (1 h).
  const ttl = b.ttl_seconds ?? 3600;
  if (typeof ttl !== "number" || !Number.isInteger(ttl) || ttl < 60 || ttl > 3600) {
    return "ttl_seconds: an integer in [60, 3600]";
  }
  return { sub: b.sub, state, roles: roles as string[], ttlSeconds: ttl };
}

export function mintDevToken(key: DevKey, req: TokenRequest, nowSeconds: number): string {
  const header = { alg: "HS256", kid: key.kid, typ: "JWT" };
  const claims: Record<string, unknown> = {
    iss: "rogatory-dev", sub: req.sub, aud: "rogatory", iat: nowSeconds,
    exp: nowSeconds + req.ttlSeconds, roles: req.roles,
  };
  if (req.state) claims.state = req.state;
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${createHmac("sha256", key.secret).update(input).digest("base64url")}`;
}
