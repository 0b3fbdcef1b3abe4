// Operations → Orders: every customer's orders (or one customer's), newest
// first, filtered by the order service (status, cancel reason, creation time)
// and paged with its page tokens.
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { clearFieldErrors, field, h, setFieldError } from "./dom.js";
import { enumLabel, formatMoney, formatTime, toDate } from "./format.js";
import { statusName } from "./labels.js";
import { cancelReasonName } from "./timeline.js";
import { isAbort, showProblem, type ViewContext } from "./view.js";
import { OrderStatus, type ListOrdersRequestSchema, type Order } from "./gen/sagasuite/order/v1/order_service_pb.js";
import { CancelReason, CancelReasonSchema } from "./gen/sagasuite/events/v1/order_events_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";

const pageSize = 50;

// The request fields the form's inputs stand for, to put a server's
// validation error next to its input.
const inputOf: Record<string, string> = {
  customer_id: "ops-customer",
  status: "ops-status",
  cancel_reason: "ops-reason",
  created_after: "ops-since",
  created_before: "ops-until",
};

export function ordersSection(v: ViewContext): HTMLElement {
  const { clients, signal } = v;
  const out = h("div");
  const customer = h("input", { autocomplete: "off", spellcheck: "false", placeholder: "any customer" }) as HTMLInputElement;
  const statusSel = h("select", {}, h("option", { value: "" }, "any"),
    ...[OrderStatus.PENDING, OrderStatus.COMPLETED, OrderStatus.CANCELLED].map((s) => h("option", { value: String(s) }, statusName(s)))) as HTMLSelectElement;
  const reasonSel = h("select", {}, h("option", { value: "" }, "any"),
    ...CancelReasonSchema.values.filter((x) => x.number !== CancelReason.UNSPECIFIED).map((x) => h("option", { value: String(x.number) }, enumLabel(x.name, "CANCEL_REASON_")))) as HTMLSelectElement;
  const since = h("input", { type: "datetime-local" }) as HTMLInputElement;
  const until = h("input", { type: "datetime-local" }) as HTMLInputElement;

  const body = h("tbody");
  const caption = h("caption");
  const more = h("button", { type: "button", id: "ops-more", hidden: true }, "More orders");
  let request: MessageInitShape<typeof ListOrdersRequestSchema> | undefined;
  let shown = 0;

  const row = (o: Order) => h("tr", { "data-order-id": o.orderId },
    h("th", { scope: "row" }, h("a", { href: `#/orders/${o.orderId}` }, o.orderId)),
    h("td", {}, h("code", {}, o.customerId)),
    h("td", {}, formatTime(toDate(o.createTime))),
    h("td", { class: "num" }, o.total ? formatMoney(o.total.amountMinor, o.total.currency) : "—"),
    h("td", {}, statusName(o.status)), h("td", {}, o.status === OrderStatus.CANCELLED ? cancelReasonName(o) : ""),
    h("td", {}, formatTime(toDate(o.updateTime))));

  // page reads the next page of the current request and appends it.
  const page = async (pageToken: string) => {
    if (!request) return;
    more.disabled = true;
    try {
      const res = await clients.order.listOrders({ ...request, pageSize, pageToken }, { signal });
      if (!pageToken) {
        body.replaceChildren();
        shown = 0;
        out.replaceChildren(h("table", { class: "ops-orders" }, caption,
          h("thead", {}, h("tr", {}, ...["Order", "Customer", "Placed", "Total", "Status", "Reason", "Last change"].map((t) => h("th", { scope: "col" }, t)))),
          body), more);
      }
      body.append(...res.orders.map(row));
      shown += res.orders.length;
      caption.textContent = `${shown} order${shown === 1 ? "" : "s"}, newest first${res.nextPageToken ? " (more exist)" : ""}`;
      more.hidden = !res.nextPageToken;
      more.onclick = () => void page(res.nextPageToken);
    } catch (err) {
      if (!isAbort(signal, err)) showProblem(out, err, "order", (p) => inputOf[p]);
    } finally {
      more.disabled = false;
    }
  };

  // A datetime-local value is the viewer's local time; "" is no bound.
  const instant = (input: HTMLInputElement, id: string): number | null | undefined => {
    if (!input.value) return undefined;
    const ms = new Date(input.value).getTime();
    if (Number.isNaN(ms)) {
      setFieldError(id, "a date and time");
      return null;
    }
    return ms;
  };

  const form = h("form", { novalidate: true, onsubmit: (ev: Event) => {
    ev.preventDefault();
    clearFieldErrors(form);
    const from = instant(since, "ops-since");
    const to = instant(until, "ops-until");
    if (from === null || to === null) return;
    const id = customer.value.trim();
    if (id && !/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/.test(id)) {
      setFieldError("ops-customer", "a customer id (UUID), or empty for every customer");
      return;
    }
    request = {
      customerId: id,
      status: statusSel.value ? (Number(statusSel.value) as OrderStatus) : OrderStatus.UNSPECIFIED,
      cancelReason: reasonSel.value ? (Number(reasonSel.value) as CancelReason) : CancelReason.UNSPECIFIED,
      createdAfter: from === undefined ? undefined : timestampFromMs(from),
      createdBefore: to === undefined ? undefined : timestampFromMs(to),
    };
    void page("");
  } },
    field("ops-customer", "Customer id (optional)", customer), field("ops-status", "Status", statusSel), field("ops-reason", "Cancel reason", reasonSel),
    field("ops-since", "Placed from", since), field("ops-until", "Placed before", until), h("button", { type: "submit", id: "ops-list" }, "List orders"));

  return h("section", { "aria-labelledby": "orders-h" }, h("h3", { id: "orders-h" }, "Orders"),
    h("p", { class: "help" }, "Every customer's orders, newest first; filtered and paged by the order service (ListOrders)."), form, out);
}
