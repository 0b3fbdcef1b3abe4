// Order detail: the order's summary and its saga as a timeline, live while the
// saga runs (WatchOrder) and for a while after it ends, since compensations
// (STOCK_RESTORED, PAYMENT_REFUNDED) arrive after the order is CANCELLED.
import { h } from "./dom.js";
import { formatMoney, formatOffset, formatTime, toDate } from "./format.js";
import { statusName } from "./labels.js";
import { followUntilQuiet } from "./settle.js";
import { cancelReasonName, fromOrderSteps, fromSagaLog, type Entry } from "./timeline.js";
import { isAbort, isNotFound, showProblem, type ViewContext } from "./view.js";
import { OrderStatus, type Order } from "./gen/sagasuite/order/v1/order_service_pb.js";

// After the terminal status the saga log is read again every followEveryMs
// until nothing new arrived for followQuietMs (or the user leaves the page).
export const followEveryMs = 3000;
export const followQuietMs = 30000;

export async function orderView(v: ViewContext, orderId: string): Promise<void> {
  const { clients, signal } = v;
  const alerts = h("div", { class: "alerts" });
  const summary = h("div", { class: "summary" });
  const follow = h("p", { id: "follow-state", class: "help", "aria-live": "polite" });
  const timeline = h("div", { class: "timeline" });
  v.main.replaceChildren(h("h2", {}, "Order ", h("code", {}, orderId)), alerts, summary, follow, timeline);

  const renderTimeline = (order: Order, entries: Entry[], source: string) => {
    const created = toDate(order.createTime)?.getTime() ?? 0;
    timeline.replaceChildren(h("table", {},
      h("caption", {}, `Saga timeline (${source})`),
      h("thead", {}, h("tr", {}, ...["Since order", "Event", "Service", "Caused by", "Detail"].map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, ...entries.map((e) => h("tr", { class: `kind-${e.kind}` },
        h("td", { class: "num" }, e.at ? h("time", { datetime: e.at.toISOString(), title: formatTime(e.at) }, formatOffset(e.at.getTime() - created)) : "—"),
        h("th", { scope: "row" }, e.type, e.kind === "compensation" ? h("span", { class: "tag" }, "compensation") : null,
          e.kind === "failure" ? h("span", { class: "tag tag-failure" }, "failure") : null),
        h("td", {}, e.service || "—"),
        h("td", {}, e.causedBy ? h("code", { title: e.causedBy }, e.causedBy) : "—"),
        h("td", { class: "detail" }, e.detail))))));
  };

  const renderSummary = (o: Order) => {
    const cancelled = o.status === OrderStatus.CANCELLED;
    summary.replaceChildren(h("dl", {},
      h("dt", {}, "Status"), h("dd", {}, h("span", { class: `badge badge-${statusName(o.status).toLowerCase()}` }, statusName(o.status)),
        o.status === OrderStatus.PENDING ? " (live)" : ""),
      cancelled ? h("dt", {}, "Cancel reason") : null,
      cancelled ? h("dd", {}, cancelReasonName(o), o.cancelDetail ? ` — ${o.cancelDetail}` : "") : null,
      h("dt", {}, "Customer"), h("dd", {}, h("code", {}, o.customerId)),
      h("dt", {}, "Total"), h("dd", {}, o.total ? formatMoney(o.total.amountMinor, o.total.currency) : "—"),
      h("dt", {}, "Placed"), h("dd", {}, formatTime(toDate(o.createTime))),
      h("dt", {}, "Deadline"), h("dd", {}, formatTime(toDate(o.deadline))),
      h("dt", {}, "Lines"), h("dd", {}, o.lines.map((l) => `${l.quantity} × ${l.sku}`).join(", "))));
  };

  // The saga log has every service's events with producer and causation; the
  // order's own steps are the fallback when notification is down. Returns a
  // fingerprint of what it drew ("" when nothing could be read).
  const refresh = async (o: Order): Promise<string> => {
    renderSummary(o);
    try {
      const log = await clients.notification.getSagaLog({ orderId }, { signal });
      renderTimeline(o, fromSagaLog(log.events), "notification's saga log");
      alerts.replaceChildren();
      return `log:${log.events.length}:${log.events.at(-1)?.eventId ?? ""}`;
    } catch (err) {
      if (isAbort(signal, err)) return "";
      renderTimeline(o, fromOrderSteps(o), "order service steps; the saga log is unavailable");
      showProblem(alerts, err, "notification");
      return `steps:${o.steps.length}`;
    }
  };

  let order: Order | undefined;
  try {
    order = (await clients.order.getOrder({ orderId }, { signal })).order;
  } catch (err) {
    if (isAbort(signal, err)) return;
    if (isNotFound(err)) {
      // Another customer's order is answered as a missing one: say neither.
      alerts.replaceChildren(h("div", { class: "alert alert-notfound", role: "alert" },
        "Order not found: there is no such order, or your token may not see it. Check the link, or open it from your orders."));
      return;
    }
    showProblem(alerts, err, "order");
    return;
  }
  if (!order) return;
  await refresh(order);
  if (order.status === OrderStatus.PENDING) {
    try {
      for await (const res of clients.order.watchOrder({ orderId }, { signal })) {
        if (res.order) {
          order = res.order;
          await refresh(order);
        }
      }
    } catch (err) {
      if (!isAbort(signal, err)) showProblem(alerts, err, "order");
      return;
    }
  }
  if (signal.aborted || order.status === OrderStatus.PENDING) return;

  follow.textContent = "Following late compensations…";
  const current = order;
  const ended = await followUntilQuiet(async () => {
    try {
      const res = await clients.order.getOrder({ orderId }, { signal });
      return await refresh(res.order ?? current);
    } catch (err) {
      if (!isAbort(signal, err)) showProblem(alerts, err, "order");
      return "";
    }
  }, { everyMs: followEveryMs, quietMs: followQuietMs, signal });
  if (ended === "quiet") follow.textContent = `Settled: nothing new for ${followQuietMs / 1000} s.`;
}
