// rogatory-gateway's entry point: reads settings, starts, stops on SIGTERM/SIGINT.
// Exit codes: 0 after a clean shutdown, 2 for bad settings, 1 when it cannot start.
import { createGateway } from "./gateway.js";
import { helpText, parseSettings, SettingsError } from "./settings.js";
import { log, setLogLevel } from "./log.js";

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(helpText() + "\n");
    return 0;
  }
  let settings;
  try {
    settings = parseSettings(argv, process.env);
  } catch (e) {
    if (e instanceof SettingsError) {
      log("error", "bad settings", { error: e.message });
      return 2;
    }
    throw e;
  }
  setLogLevel(settings.logLevel);
  const gateway = createGateway(settings);
  let addresses;
  try {
    addresses = await gateway.listening;
  } catch (e) {
    log("error", "cannot listen", { error: e instanceof Error ? e.message : String(e) });
    return 1;
  }
  log("info", "serving", {
    env: settings.env,
    listen: `${settings.listen.host}:${addresses.port}`,
    metrics_listen: `${settings.metricsListen.host}:${addresses.metricsPort}`,
    allowed_origins: settings.allowedOrigins.join(","),
    upstream_tls: settings.tlsCaFile !== "",
    dev_token: settings.devToken,
    max_message_bytes: settings.maxMessageBytes,
  });
  if (settings.devToken) {
    log("warn", "development token endpoint enabled: POST /dev/token mints tokens with a public key");
  }
  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      log("info", "shutting down", { signal });
      resolve();
    };
    process.once("SIGTERM", () => stop("SIGTERM"));
    process.once("SIGINT", () => stop("SIGINT"));
  });
  await gateway.shutdown();
  log("info", "stopped");
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    log("error", "fatal", { error: e instanceof Error ? e.message : String(e) });
    process.exit(1);
  },
);
