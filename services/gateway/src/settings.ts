// Settings: each one a flag (--name=value) or an environment variable ROGATORY_NAME (upper
// case, '-' as '_'), the flag winning, as for the C++ services (common/src/config.cc).
// Bad values stop the gateway at start-up with a message naming the setting.

export interface Settings {
  env: "development" | "production";
  listen: HostPort;
  metricsListen: HostPort;
  logLevel: "debug" | "info" | "warn" | "error";
  upstreams: Record<"intake" | "routing" | "deadlines" | "notification", string>;
  tlsCaFile: string;
  tlsClientCertFile: string;
  tlsClientKeyFile: string;
  allowedOrigins: string[];
  maxMessageBytes: number;
  shutdownGraceMs: number;
  devToken: boolean;
  devTokenKeyFile: string;
}

export interface HostPort {
  host: string;
  port: number;
}

interface Spec {
  default: string;
  help: string;
}

export const SPECS: Record<string, Spec> = {
  env: { default: "development", help: "development | production; production refuses development-only features." },
  listen: { default: "127.0.0.1:8080", help: "HTTP listen address (host:port) for browsers: Connect, gRPC-Web, /healthz, /readyz." },
  "metrics-listen": { default: "127.0.0.1:9105", help: "Prometheus /metrics listen address (host:port)." },
  "log-level": { default: "info", help: "Lowest level of log lines written: debug | info | warn | error." },
  upstreams: {
    default: "intake=127.0.0.1:50051,routing=127.0.0.1:50052,deadlines=127.0.0.1:50053,notification=127.0.0.1:50054",
    help: "Native gRPC address of each service: <service>=<host:port>,... (as event-receivers).",
  },
  "tls-ca-file": { default: "", help: "CA bundle (PEM) that upstream server certificates must chain to; set: TLS to the services, empty: plaintext." },
  "tls-client-cert-file": { default: "", help: "Client certificate (PEM) presented to the services (mutual TLS); needs tls-ca-file." },
  "tls-client-key-file": { default: "", help: "Private key (PEM) of tls-client-cert-file." },
  "allowed-origins": {
    default: "",
    help: "Browser origins allowed to call (CORS), comma-separated, e.g. https://app.example.org; " +
      "a trailing ':*' allows any port. Empty: none in production; http://localhost:*, " +
      "http://127.0.0.1:* and http://[::1]:* in development.",
  },
  "max-message-bytes": { default: String(2 << 20), help: "Largest request or response message, as the services' max-message-bytes." },
  "shutdown-grace": { default: "10s", help: "Time in-flight unary calls get to finish after SIGTERM (streams end at once)." },
  "dev-token": { default: "false", help: "Serve POST /dev/token, minting development tokens. Development only: refused with env=production." },
  "dev-token-key-file": { default: "", help: "Development key set (deploy/dev-auth/keys.json) the /dev/token endpoint signs with." },
};

export class SettingsError extends Error {}

export function helpText(): string {
  const lines = ["usage: rogatory-gateway [--name=value ...]", ""];
  for (const [name, spec] of Object.entries(SPECS)) {
    lines.push(`  --${name} (${envName(name)}; default "${spec.default}")`, `      ${spec.help}`);
  }
  return lines.join("\n");
}

export function envName(setting: string): string {
  return "ROGATORY_" + setting.toUpperCase().replaceAll("-", "_");
}

export function parseHostPort(name: string, value: string): HostPort {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) throw new SettingsError(`${name}: expected host:port, got "${value}"`);
  const host = m[1].startsWith("[") ? m[1].slice(1, -1) : m[1] || "0.0.0.0";
  return { host, port };
}

function parseDurationMs(name: string, value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(value);
  if (!m) throw new SettingsError(`${name}: expected a duration like 500ms, 10s or 1m, got "${value}"`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60000 }[m[2] as "ms" | "s" | "m"];
}

function parseBool(name: string, value: string): boolean {
  if (["true", "1", "yes"].includes(value)) return true;
  if (["false", "0", "no"].includes(value)) return false;
  throw new SettingsError(`${name}: expected true or false, got "${value}"`);
}

const ORIGIN = /^https?:\/\/(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:(\d{1,5}|\*))?$/;

export const DEVELOPMENT_ORIGINS = ["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"];

/** Parses argv (without node and the script) and env into Settings, or throws SettingsError. */
export function parseSettings(argv: string[], env: NodeJS.ProcessEnv): Settings {
  const raw = new Map<string, string>();
  for (const name of Object.keys(SPECS)) {
    const fromEnv = env[envName(name)];
    raw.set(name, fromEnv ?? SPECS[name].default);
  }
  for (const arg of argv) {
    const m = /^--([a-z-]+)(?:=(.*))?$/s.exec(arg);
    if (!m || !(m[1] in SPECS)) throw new SettingsError(`unknown argument "${arg}" (--help lists the settings)`);
    raw.set(m[1], m[2] ?? (m[1] === "dev-token" ? "true" : ""));
  }
  const get = (name: string) => raw.get(name) as string;

  const envValue = get("env");
  if (envValue !== "development" && envValue !== "production") {
    throw new SettingsError(`env: expected development or production, got "${envValue}"`);
  }
  const logLevel = get("log-level");
  if (!["debug", "info", "warn", "error"].includes(logLevel)) {
    throw new SettingsError(`log-level: expected debug, info, warn or error, got "${logLevel}"`);
  }

  const upstreams: Partial<Settings["upstreams"]> = {};
  for (const part of get("upstreams").split(",").map((s) => s.trim()).filter(Boolean)) {
    const [service, addr] = part.split("=", 2);
    if (!["intake", "routing", "deadlines", "notification"].includes(service) || !addr) {
      throw new SettingsError(`upstreams: expected <service>=<host:port> with service one of intake, routing, deadlines, notification; got "${part}"`);
    }
    parseHostPort("upstreams", addr);
    upstreams[service as keyof Settings["upstreams"]] = addr;
  }
  for (const service of ["intake", "routing", "deadlines", "notification"] as const) {
    if (!upstreams[service]) throw new SettingsError(`upstreams: no address for ${service}`);
  }

  const originsText = get("allowed-origins").trim();
  const allowedOrigins = originsText
    ? originsText.split(",").map((s) => s.trim()).filter(Boolean)
    : envValue === "development" ? DEVELOPMENT_ORIGINS : [];
  for (const origin of allowedOrigins) {
    if (!ORIGIN.test(origin)) {
      throw new SettingsError(`allowed-origins: "${origin}" is not an origin (scheme://host[:port], port may be *)`);
    }
  }

  const maxMessageBytes = Number(get("max-message-bytes"));
  if (!Number.isInteger(maxMessageBytes) || maxMessageBytes < 64 << 10 || maxMessageBytes > 64 << 20) {
    throw new SettingsError(`max-message-bytes: expected an integer in [65536, 67108864], got "${get("max-message-bytes")}"`);
  }

  const settings: Settings = {
    env: envValue,
    listen: parseHostPort("listen", get("listen")),
    metricsListen: parseHostPort("metrics-listen", get("metrics-listen")),
    logLevel: logLevel as Settings["logLevel"],
    upstreams: upstreams as Settings["upstreams"],
    tlsCaFile: get("tls-ca-file"),
    tlsClientCertFile: get("tls-client-cert-file"),
    tlsClientKeyFile: get("tls-client-key-file"),
    allowedOrigins,
    maxMessageBytes,
    shutdownGraceMs: parseDurationMs("shutdown-grace", get("shutdown-grace")),
    devToken: parseBool("dev-token", get("dev-token")),
    devTokenKeyFile: get("dev-token-key-file"),
  };
  if (settings.devToken && settings.env !== "development") {
    throw new SettingsError("dev-token: the development token endpoint mints tokens with a public key; it is refused with env=production");
  }
  if (settings.devToken && !settings.devTokenKeyFile) {
    throw new SettingsError("dev-token-key-file: required with dev-token (the development key set, deploy/dev-auth/keys.json)");
  }
  if ((settings.tlsClientCertFile || settings.tlsClientKeyFile) &&
      !(settings.tlsClientCertFile && settings.tlsClientKeyFile && settings.tlsCaFile)) {
    throw new SettingsError("tls-client-cert-file and tls-client-key-file go together, with tls-ca-file");
  }
  if (settings.env === "production" && allowedOrigins.some((o) => /^http:\/\//.test(o) && !/^http:\/\/(localhost|127\.0\.0\.1|\[::1\])(:|$)/.test(o))) {
    throw new SettingsError("allowed-origins: production allows only https origins (plain http only for localhost)");
  }
  return settings;
}

/** Whether `origin` (an Origin header) is one of `allowed` (entries may end in ':*'). */
export function originAllowed(origin: string, allowed: readonly string[]): boolean {
  for (const entry of allowed) {
    if (entry === origin) return true;
    if (entry.endsWith(":*")) {
      const base = entry.slice(0, -2);
      if (origin === base) return true;
      if (origin.startsWith(base + ":") && /^\d{1,5}$/.test(origin.slice(base.length + 1))) return true;
    }
  }
  return false;
}
