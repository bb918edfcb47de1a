// The example page: a development sign-in, a submission, the caller's worklist (its open
// requests, soonest next deadline first, with that deadline and an at-risk marker), live
// notifications (Subscribe) and the actions the caller may take now, each button made from
// the request's `allowed_actions` (nothing is hard-coded), all through rogatory-gateway with
// the typed client. The gateway address comes from ?gateway=..., else http://127.0.0.1:8080.
import {
  Code,
  ConnectError,
  createRogatoryClients,
  errorDetails,
  events,
  fieldViolations,
  fromJson,
  intake,
  notification,
  types,
} from "../../../clients/typescript/src/index.js";
import sample from "../../../samples/requests/eio-fr-de.json";

const gateway = new URLSearchParams(location.search).get("gateway") ?? "http://127.0.0.1:8080";
let token: string | undefined;
let subject = "";
let roles: string[] = [];
let stream: AbortController | undefined;

const rogatory = createRogatoryClients({ baseUrl: gateway, token: () => token, defaultTimeoutMs: 10_000 });

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
$("gateway").textContent = gateway;

const statusName = (s: types.RequestStatus) => types.RequestStatus[s]?.replace("REQUEST_STATUS_", "") ?? String(s);
const instrumentName = (i: types.Instrument) => types.Instrument[i]?.replace("INSTRUMENT_", "") ?? String(i);
const eventName = (t: events.EventType) => events.EventType[t] ?? String(t);

function showError(error: unknown): void {
  const err = ConnectError.from(error);
  // The reason (errors.proto) is what a UI switches on; the message is for people.
  const reason = err.findDetails(errorDetails.ErrorInfoSchema)[0]?.reason;
  const lines = [`${Code[err.code]}${reason ? ` (${reason})` : ""}: ${err.rawMessage}`];
  for (const v of fieldViolations(err)) lines.push(`  ${v.field}: ${v.description}`);
  $("error").textContent = lines.join("\n");
}

function clearError(): void {
  $("error").textContent = "";
}

async function signIn(): Promise<void> {
  clearError();
  subject = $<HTMLInputElement>("sub").value.trim();
  const state = $<HTMLInputElement>("state").value.trim();
  roles = [$<HTMLSelectElement>("role").value];
  const response = await fetch(`${gateway}/dev/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ sub: subject, state, roles }),
  });
  if (!response.ok) {
    $("error").textContent = `sign-in refused: HTTP ${response.status} ${await response.text()}`;
    return;
  }
  token = (await response.json()).token;
  $("whoami").textContent = `Signed in as ${subject} (${roles.join(", ")})`;
  $<HTMLButtonElement>("submit-button").disabled = !roles.includes("issuing");
  $<HTMLButtonElement>("refresh-button").disabled = false;
  void watchNotifications();
  await refreshWorklist();
}

async function submitSample(): Promise<void> {
  clearError();
  try {
    const content = fromJson(intake.RequestContentSchema, sample as any);
    const { request } = await rogatory.intake.submitRequest({ requestId: crypto.randomUUID(), content });
    if (!request) return;
    const result = $("submit-result");
    result.textContent = `Submitted ${request.id} (${statusName(request.status)})`;
    result.dataset.requestId = request.id;
    await refreshWorklist();
  } catch (e) {
    showError(e);
  }
}

async function refreshWorklist(): Promise<void> {
  try {
    // The worklist: open requests, soonest next deadline first; the FULL view carries each
    // request's allowed_actions for this caller.
    const { requests } = await rogatory.intake.listRequests({
      pageSize: 50, view: intake.RequestView.FULL, openOnly: true,
      orderBy: intake.RequestOrder.NEXT_DUE_TIME,
    });
    const body = $("worklist");
    body.replaceChildren(...requests.map(row));
  } catch (e) {
    showError(e);
  }
}

function deadlineCell(request: intake.Request): HTMLTableCellElement {
  const td = document.createElement("td");
  td.className = "deadline";
  const next = request.nextDeadline;
  if (!next?.dueTime) return td;
  const due = new Date(Number(next.dueTime.seconds) * 1000).toISOString().slice(0, 16).replace("T", " ");
  td.textContent = `${next.ruleId} due ${due} UTC`;
  if (next.atRisk || next.missed) {
    const mark = document.createElement("strong");
    mark.className = "at-risk";
    mark.textContent = next.missed ? " MISSED" : " AT RISK";
    td.append(mark);
  }
  return td;
}

function row(request: intake.Request): HTMLTableRowElement {
  const tr = document.createElement("tr");
  tr.dataset.requestId = request.id;
  const cells = [
    request.id,
    instrumentName(request.content?.instrument ?? 0),
    request.content?.issuingAuthority?.state ?? "",
    request.content?.requestedState ?? "",
    statusName(request.status),
  ];
  for (const [i, text] of cells.entries()) {
    const td = document.createElement("td");
    td.textContent = text;
    if (i === 4) td.className = "status";
    tr.append(td);
  }
  tr.append(deadlineCell(request));
  // One control per action the service says this caller may take now; no others.
  const actions = document.createElement("td");
  const allowed = request.allowedActions;
  const common = () => ({ requestId: crypto.randomUUID(), id: request.id, etag: request.etag });
  const button = (label: string, className: string, call: () => Promise<unknown>) => {
    const b = document.createElement("button");
    b.textContent = label;
    b.className = className;
    b.onclick = () => act(call);
    actions.append(b);
  };
  if (allowed.some((a) => a.action === intake.RequestAction.ACKNOWLEDGE)) {
    button("Acknowledge", "acknowledge", () => rogatory.intake.acknowledgeRequest(common()));
  }
  const targets = allowed.filter((a) => a.action === intake.RequestAction.TRANSITION).map((a) => a.targetStatus);
  if (targets.length > 0) {
    const select = document.createElement("select");
    select.className = "target";
    for (const target of targets) {
      const option = document.createElement("option");
      option.value = String(target);
      option.textContent = statusName(target);
      select.append(option);
    }
    actions.append(select);
    button("Move", "transition", () => rogatory.intake.transitionRequest({
      ...common(), targetStatus: Number(select.value), reasonCode: "BROWSER_EXAMPLE" }));
  }
  if (allowed.some((a) => a.action === intake.RequestAction.WITHDRAW)) {
    button("Withdraw", "withdraw", () => rogatory.intake.withdrawRequest({
      ...common(), reasonCode: "BROWSER_EXAMPLE" }));
  }
  tr.append(actions);
  return tr;
}

async function act(call: () => Promise<unknown>): Promise<void> {
  clearError();
  try {
    await call();
  } catch (e) {
    showError(e);
  }
  await refreshWorklist();
}

// Notifications: the caller's inbox from its oldest retained entry, then live as they
// arrive, resuming from the last cursor after a break.
async function watchNotifications(): Promise<void> {
  stream?.abort();
  const controller = new AbortController();
  stream = controller;
  let cursor = "";
  while (!controller.signal.aborted) {
    try {
      $("stream-status").textContent = "connecting";
      const items = rogatory.notification.subscribe(
        cursor ? { cursor } : { startPosition: notification.StartPosition.OLDEST },
        { signal: controller.signal, timeoutMs: 0 });
      $("stream-status").textContent = "connected";
      for await (const item of items) {
        $("stream-status").textContent = "live";
        if (item.item.case !== "notification") continue;
        const n = item.item.value;
        cursor = n.cursor;
        const li = document.createElement("li");
        li.dataset.type = eventName(n.event?.type ?? 0);
        li.dataset.requestId = n.event?.requestId ?? "";
        li.textContent = `${li.dataset.type} ${li.dataset.requestId}`;
        $("notifications").prepend(li);
        void refreshWorklist();
      }
    } catch (e) {
      if (controller.signal.aborted) return;
      $("stream-status").textContent = "reconnecting";
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

$("signin-button").onclick = () => void signIn();
$("submit-button").onclick = () => void submitSample();
$("refresh-button").onclick = () => void refreshWorklist();
