// Operations panels over every service's OperationsService (sagasuite.ops.v1):
// outbox backlog and relay, consumer groups with lag and open dead letters,
// and a dead-letter list per group with Redrive/Drop, each asking for a reason
// in a modal dialog (keyboard: Tab to the button, Enter, type, Enter; Escape cancels).
import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { bearer, serviceNames, type ConsoleConfig, type ServiceName } from "./api.js";
import { clearFieldErrors, field, h, setFieldError } from "./dom.js";
import type { Problem } from "./errors.js";
import { formatDurationSeconds, formatTime, toDate } from "./format.js";
import {
  OperationsService,
  type DeadLetter,
  type GetDeliveryStatusResponse,
} from "./gen/sagasuite/ops/v1/ops_service_pb.js";

type OpsClient = Client<typeof OperationsService>;

export type OpsDeps = {
  config: ConsoleConfig;
  signal: AbortSignal;
  status: HTMLElement;
  showProblem: (where: HTMLElement, err: unknown, service: string, fieldIds?: (path: string) => string | undefined) => Problem;
  isAbort: (err: unknown) => boolean;
};

function opsClients(cfg: ConsoleConfig): Record<ServiceName, OpsClient> {
  const out = {} as Record<ServiceName, OpsClient>;
  for (const name of serviceNames) {
    out[name] = createClient(OperationsService, createConnectTransport({ baseUrl: cfg.services[name], useBinaryFormat: true, interceptors: [bearer] }));
  }
  return out;
}

// A dead letter's identity for the actions and for element ids.
const refId = (service: string, d: DeadLetter) => `dl-${service}-${d.group}-${d.partition}-${d.offset}`.replace(/[^A-Za-z0-9_-]/g, "_");

// deliverySection builds the panels; they load at once and on "Refresh".
export function deliverySection(deps: OpsDeps): HTMLElement {
  const clients = opsClients(deps.config);
  const { signal } = deps;
  const perService = new Map<ServiceName, HTMLElement>();
  const services = h("div", { class: "delivery" });
  for (const name of serviceNames) {
    const box = h("section", { class: "delivery-service", "data-service": name, "aria-labelledby": `delivery-${name}-h` },
      h("h4", { id: `delivery-${name}-h` }, name), h("p", {}, "Loading…"));
    perService.set(name, box);
    services.append(box);
  }

  // ---- the dead-letter list of one group ----
  const dlHeading = h("h3", { id: "dead-letters-h" }, "Dead letters");
  const dlOut = h("div", { id: "dead-letters" }, h("p", { class: "help" }, "Choose a consumer group's \u201cDead letters\u201d above."));
  const includeResolved = h("input", { type: "checkbox", id: "dl-include-resolved" }) as HTMLInputElement;
  let current: { service: ServiceName; group: string } | undefined;

  const reason = h("input", { autocomplete: "off", maxlength: 500, required: true }) as HTMLInputElement;
  const dialogTitle = h("h2", { id: "dl-action-h" });
  const dialogWhat = h("p", { class: "help" });
  const dialogAlert = h("div");
  const confirm = h("button", { type: "submit", id: "dl-confirm" }, "Confirm");
  const dialog = h("dialog", { id: "dl-action", "aria-labelledby": "dl-action-h" },
    h("form", { method: "dialog", novalidate: true },
      dialogTitle, dialogWhat, field("dl-reason", "Reason (recorded in the audit with your token's subject)", reason), dialogAlert,
      h("div", { class: "actions" }, confirm, h("button", { type: "button", onclick: () => dialog.close() }, "Cancel")))) as HTMLDialogElement;
  let pending: ((reason: string) => Promise<void>) | undefined;
  dialog.querySelector("form")!.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearFieldErrors(dialog);
    dialogAlert.replaceChildren();
    const text = reason.value.trim();
    if (!text) {
      setFieldError("dl-reason", "say why (a ticket, what was fixed)");
      reason.focus();
      return;
    }
    if (!pending) return;
    confirm.disabled = true;
    try {
      await pending(text);
      dialog.close();
    } catch (err) {
      if (!deps.isAbort(err) && current) {
        deps.showProblem(dialogAlert, err, current.service, (p) => (p === "reason" ? "dl-reason" : undefined));
      }
    } finally {
      confirm.disabled = false;
    }
  });

  const askReason = (title: string, what: string, act: (reason: string) => Promise<void>) => {
    dialogTitle.textContent = title;
    dialogWhat.textContent = what;
    dialogAlert.replaceChildren();
    clearFieldErrors(dialog);
    reason.value = "";
    pending = act;
    dialog.showModal();
    reason.focus();
  };

  const deadLetterRow = (service: ServiceName, d: DeadLetter): HTMLTableRowElement => {
    const r = d.resolution;
    const state = r
      ? h("td", { class: "dl-state" }, h("span", { class: "badge badge-resolved" }, r.action === "redrive" ? "redriven" : "dropped"),
          ` by ${r.operator || "?"} ${formatTime(toDate(r.actionTime))}`, r.reason ? ` \u2014 ${r.reason}` : "")
      : h("td", { class: "dl-state" }, h("span", { class: "badge badge-open" }, "open"));
    const actions = h("td");
    const row = h("tr", { id: refId(service, d), "data-ref": d.ref, "data-state": r ? r.action : "open" },
      h("th", { scope: "row" }, h("code", {}, `${d.partition}/${d.offset}`)),
      h("td", {}, d.orderId ? h("code", {}, d.orderId) : "\u2014"),
      h("td", {}, d.eventType || "\u2014"),
      h("td", { class: "detail" }, d.reason, d.decodeError ? h("span", { class: "tag tag-failure" }, "undecodable") : null),
      h("td", {}, d.sourceTopic || "\u2014"),
      h("td", {}, formatTime(toDate(d.deadLetterTime))),
      state, actions);
    if (!r) {
      const act = (kind: "redrive" | "drop") => () => askReason(
        kind === "redrive" ? "Redrive dead letter" : "Drop dead letter",
        `${kind === "redrive" ? `Re-publish to ${d.sourceTopic}` : "Mark resolved without re-publishing"}: ${d.ref} (${d.eventType || "unreadable record"}).`,
        async (why) => {
          const req = { group: d.group, partition: d.partition, offset: d.offset, reason: why };
          const res = kind === "redrive"
            ? await clients[service].redriveDeadLetter(req, { signal })
            : await clients[service].dropDeadLetter(req, { signal });
          if (res.deadLetter) row.replaceWith(deadLetterRow(service, res.deadLetter));
          deps.status.textContent = `Dead letter ${d.ref} ${kind === "redrive" ? "redriven" : "dropped"}.`;
          void loadStatus(service);
        });
      actions.append(
        h("button", { type: "button", class: "dl-redrive", id: `${refId(service, d)}-redrive`, "aria-label": `Redrive ${d.ref}`, disabled: !d.sourceTopic, onclick: act("redrive") }, "Redrive"),
        " ",
        h("button", { type: "button", class: "dl-drop", id: `${refId(service, d)}-drop`, "aria-label": `Drop ${d.ref}`, onclick: act("drop") }, "Drop"));
    }
    return row;
  };

  const loadDeadLetters = async (service: ServiceName, group: string) => {
    current = { service, group };
    dlHeading.textContent = `Dead letters of ${service} / ${group}`;
    dlOut.replaceChildren(h("p", {}, "Loading…"));
    try {
      const res = await clients[service].listDeadLetters({ group, includeResolved: includeResolved.checked, pageSize: 200 }, { signal });
      dlOut.replaceChildren(res.deadLetters.length === 0
        ? h("p", { class: "dl-none" }, includeResolved.checked ? "No dead letters." : "No open dead letters.")
        : h("table", { class: "dead-letters", "data-service": service, "data-group": group },
          h("caption", {}, `${res.deadLetters.length} of ${res.totalSize} dead letters${res.truncated ? " (narrow the filters to see the rest)" : ""}`),
          h("thead", {}, h("tr", {}, ...["Partition/offset", "Order", "Type", "Reason", "Source topic", "Dead-lettered", "State", "Actions"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, ...res.deadLetters.map((d) => deadLetterRow(service, d)))));
    } catch (err) {
      if (!deps.isAbort(err)) deps.showProblem(dlOut, err, service);
    }
  };
  includeResolved.addEventListener("change", () => { if (current) void loadDeadLetters(current.service, current.group); });

  // ---- one service's delivery status ----
  const renderStatus = (service: ServiceName, box: HTMLElement, st: GetDeliveryStatusResponse) => {
    const parts: (HTMLElement | null)[] = [h("h4", { id: `delivery-${service}-h` }, service)];
    const o = st.outbox;
    if (o) {
      const age = o.oldestPendingAge ? formatDurationSeconds(Number(o.oldestPendingAge.seconds) + o.oldestPendingAge.nanos / 1e9) : "";
      const atLeast = (n: bigint) => (n >= o.countLimit ? `${n}+` : `${n}`);
      parts.push(h("dl", { class: "outbox" },
        h("dt", {}, "Outbox pending"), h("dd", { class: "outbox-pending" }, atLeast(o.pendingRows), age ? ` (oldest waiting ${age})` : ""),
        h("dt", {}, "Outbox parked"), h("dd", { class: "outbox-parked" }, atLeast(o.parkedRows),
          o.parkedRows > 0n ? h("button", { type: "button", class: "retry-parked", "aria-label": `Retry every parked outbox row of ${service}`, onclick: async (ev: Event) => {
            const button = ev.currentTarget as HTMLButtonElement;
            button.disabled = true;
            try {
              const res = await clients[service].retryParkedOutbox({ target: { case: "all", value: true } }, { signal });
              deps.status.textContent = `${service}: ${res.retried} parked outbox rows un-parked.`;
              void loadStatus(service);
            } catch (err) {
              if (!deps.isAbort(err)) deps.showProblem(box, err, service);
              button.disabled = false;
            }
          } }, "Retry parked") : null),
        h("dt", {}, "Relay (this replica)"), h("dd", {}, o.relay?.state ?? "?", o.relay?.lastError ? ` \u2014 ${o.relay.lastError}` : "")));
    } else {
      parts.push(h("p", { class: "help" }, "No outbox."));
    }
    parts.push(h("table", { class: "groups" },
      h("caption", {}, `Consumer groups of ${service}`),
      h("thead", {}, h("tr", {}, ...["Group", "Topics", "Lag", "Open dead letters", ""].map((t, i) => h("th", { scope: "col", class: i === 2 || i === 3 ? "num" : undefined }, t)))),
      h("tbody", {}, ...st.consumerGroups.map((g) => h("tr", { "data-group": g.group },
        h("th", { scope: "row" }, g.group, g.kafkaGroup !== g.group ? h("code", { class: "help", title: "the group on Kafka" }, ` ${g.kafkaGroup}`) : null),
        h("td", {}, g.topics.join(", ")),
        h("td", { class: "num lag", title: g.partitions.map((p) => `${p.topic}/${p.partition}: ${p.lag} (end ${p.highWaterMark}, committed ${p.committedOffset})`).join("\n") }, g.lag.toString()),
        h("td", { class: "num open-dead-letters" }, g.openDeadLetters.toString()),
        h("td", {}, h("button", { type: "button", id: `dl-open-${service}-${g.group}`.replace(/[^A-Za-z0-9_-]/g, "_"),
          "aria-label": `Dead letters of ${service} / ${g.group}`,
          onclick: () => { void loadDeadLetters(service, g.group).then(() => dlHeading.scrollIntoView()); } }, "Dead letters")))))));
    box.replaceChildren(...parts.filter((p): p is HTMLElement => p !== null));
  };

  const loadStatus = async (service: ServiceName) => {
    const box = perService.get(service)!;
    try {
      const st = await clients[service].getDeliveryStatus({}, { signal });
      renderStatus(service, box, st);
    } catch (err) {
      if (deps.isAbort(err)) return;
      box.replaceChildren(h("h4", { id: `delivery-${service}-h` }, service));
      const alert = h("div");
      box.append(alert);
      deps.showProblem(alert, err, service);
    }
  };
  const loadAll = () => Promise.all(serviceNames.map(loadStatus));
  void loadAll();

  return h("section", { "aria-labelledby": "delivery-h" },
    h("h3", { id: "delivery-h" }, "Delivery: outbox, consumer lag, dead letters"),
    h("p", { class: "help" }, "Each service answers for itself (OperationsService on its own port). Lag is the records its group has not committed."),
    h("div", { class: "actions" }, h("button", { type: "button", id: "delivery-refresh", onclick: () => {
      void loadAll();
      if (current) void loadDeadLetters(current.service, current.group);
    } }, "Refresh")),
    services,
    h("section", { "aria-labelledby": "dead-letters-h" }, dlHeading,
      h("div", { class: "field inline" }, includeResolved, h("label", { for: "dl-include-resolved" }, "Also show redriven and dropped")),
      dlOut),
    dialog);
}
