// Drives pages in headless Chromium (Debian's /usr/bin/chromium) for
// tests/e2e/browser_e2e_test.py, which holds the assertions: this driver only performs the
// steps it is told, one JSON command per stdin line, and answers one JSON line each on stdout
// ({"ok":true,"value":...} or {"ok":false,"error":"..."}). Browser console output and page
// errors go to stderr, for the test's log.
//
//   {"cmd":"open","page":"issuer","url":"http://127.0.0.1:PORT/?gateway=..."}
//   {"cmd":"fill","page":"issuer","selector":"#sub","value":"FR-TJ-PARIS-JI"}
//   {"cmd":"select","page":"issuer","selector":"#role","value":"issuing"}
//   {"cmd":"click","page":"issuer","selector":"#submit-button"}
//   {"cmd":"wait_text","page":"issuer","selector":"#worklist tr","contains":"ACKNOWLEDGED","timeout_ms":20000}
//     (or "pattern": a regular expression instead of "contains")
//   {"cmd":"texts","page":"issuer","selector":"#notifications li"}
//   {"cmd":"attr","page":"issuer","selector":"#submit-result","name":"data-request-id"}
//   {"cmd":"quit"}
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const userDataDir = mkdtempSync(join(tmpdir(), "rogatory-chromium-"));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const pages = new Map();

async function page(name) {
  const p = pages.get(name);
  if (!p) throw new Error(`no page named ${name}`);
  return p;
}

const commands = {
  async open({ page: name, url }) {
    const p = await context.newPage();
    p.on("console", (m) => process.stderr.write(`[${name} console] ${m.type()}: ${m.text()}\n`));
    p.on("pageerror", (e) => process.stderr.write(`[${name} pageerror] ${e.message}\n`));
    await p.goto(url);
    pages.set(name, p);
    return p.url();
  },
  async fill({ page: name, selector, value }) {
    await (await page(name)).locator(selector).fill(value);
  },
  async select({ page: name, selector, value }) {
    await (await page(name)).locator(selector).first().selectOption({ label: value });
  },
  async click({ page: name, selector }) {
    await (await page(name)).locator(selector).first().click();
  },
  async wait_text({ page: name, selector, contains, pattern, timeout_ms }) {
    const hasText = pattern !== undefined ? new RegExp(pattern) : contains;
    const locator = (await page(name)).locator(selector).filter({ hasText }).first();
    await locator.waitFor({ state: "visible", timeout: timeout_ms ?? 15000 });
    return locator.textContent();
  },
  async texts({ page: name, selector }) {
    return (await page(name)).locator(selector).allTextContents();
  },
  async attr({ page: name, selector, name: attribute }) {
    return (await page(name)).locator(selector).first().getAttribute(attribute);
  },
  async quit() {
    await context.close();
    rmSync(userDataDir, { recursive: true, force: true });
    process.exit(0);
  },
};

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  let reply;
  try {
    const command = JSON.parse(line);
    const fn = commands[command.cmd];
    if (!fn) throw new Error(`unknown command ${command.cmd}`);
    reply = { ok: true, value: (await fn(command)) ?? null };
  } catch (e) {
    reply = { ok: false, error: e instanceof Error ? e.message.split("\n")[0] : String(e) };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
}
await commands.quit();
