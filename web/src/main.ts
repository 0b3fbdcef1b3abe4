// sagasuite console: Token, Shop, Order detail and Operations views over the
// services' Connect APIs. Plain DOM; the URL hash is the route
// (#/shop, #/orders/<id>, #/ops, #/token) so the back button and links work.
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { createClients, loadConfig, type Clients, type ConsoleConfig } from "./api.js";
import { deliverySection } from "./ops.js";
import { clear, clearFieldErrors, field, h, setFieldError } from "./dom.js";
import { formatDurationSeconds, formatMoney, formatTime, toDate } from "./format.js";
import { cancelReasonName, eventTypeName } from "./timeline.js";
import { clearToken, decodeToken, isExpired, loadToken, saveToken, type Claims } from "./token.js";
import { OrderStatus, type Order } from "./gen/sagasuite/order/v1/order_service_pb.js";
import { statusName } from "./labels.js";
import { showProblem, type ViewContext } from "./view.js";
import { orderView } from "./detail.js";
import { ordersSection } from "./orders.js";
import type { Product } from "./gen/sagasuite/inventory/v1/inventory_service_pb.js";

const main = document.getElementById("main") as HTMLElement;
const status = document.getElementById("status") as HTMLElement;
const who = document.getElementById("who") as HTMLElement;

let clients: Clients;
let config: ConsoleConfig;
// Aborted when the view changes, ending its streams and pending calls.
let viewAbort = new AbortController();

function claims(): Claims | undefined {
  const t = loadToken();
  if (!t) return undefined;
  try {
    return decodeToken(t);
  } catch {
    return undefined;
  }
}

function hasRole(role: string): boolean {
  return claims()?.roles.includes(role) ?? false;
}

function isAbort(err: unknown): boolean {
  return viewAbort.signal.aborted || (err instanceof Error && err.name === "AbortError");
}

// view is what a view module needs of the current route.
function view(): ViewContext {
  return { main, status, clients, signal: viewAbort.signal };
}

function renderWho(): void {
  const c = claims();
  if (!c) {
    who.textContent = "No token";
    return;
  }
  const exp = c.expires ? `, expires ${formatTime(c.expires)}` : "";
  const expired = isExpired(c, new Date()) ? " (EXPIRED)" : "";
  who.textContent = `${c.roles.join(", ") || "no role"} · ${c.subject}${exp}${expired}`;
}

// ---- Token ----

function tokenView(): void {
  const input = h("textarea", { id: "token", rows: 5, spellcheck: "false", autocomplete: "off", "aria-describedby": "token-help token-error" }) as HTMLTextAreaElement;
  input.value = loadToken();
  const err = h("p", { class: "field-error", id: "token-error", "aria-live": "polite" });
  const info = h("div", { class: "token-info" });
  const showInfo = () => {
    const c = claims();
    info.replaceChildren(
      c
        ? h("dl", {}, h("dt", {}, "Subject"), h("dd", {}, c.subject || "—"), h("dt", {}, "Roles"), h("dd", {}, c.roles.join(", ") || "—"),
            h("dt", {}, "Issuer"), h("dd", {}, c.issuer || "—"), h("dt", {}, "Expires"),
            h("dd", {}, c.expires ? formatTime(c.expires) + (isExpired(c, new Date()) ? " — expired" : "") : "never"))
        : h("p", {}, "No token stored."),
    );
  };
  const form = h("form", {
    onsubmit: (ev: Event) => {
      ev.preventDefault();
      const t = input.value.trim();
      try {
        const c = decodeToken(t);
        err.textContent = isExpired(c, new Date()) ? "This token has expired; the services will refuse it." : "";
        saveToken(t);
        input.removeAttribute("aria-invalid");
      } catch (e) {
        err.textContent = (e as Error).message;
        input.setAttribute("aria-invalid", "true");
        return;
      }
      renderWho();
      showInfo();
      status.textContent = "Token saved for this browser tab.";
    },
  },
    h("label", { for: "token" }, "Bearer token (JWT)"),
    h("p", { id: "token-help", class: "help" }, "Paste a token printed by `make run` or minted with `sagactl token`. It is kept in this tab's session storage only."),
    input, err,
    h("div", { class: "actions" },
      h("button", { type: "submit" }, "Use token"),
      h("button", { type: "button", onclick: () => { clearToken(); input.value = ""; renderWho(); showInfo(); status.textContent = "Token removed."; } }, "Forget token")),
  );
  showInfo();
  main.replaceChildren(h("h2", {}, "Token"), form, info);
}

// ---- Shop ----

const addressFields: [string, string, string, boolean][] = [
  // [proto field, label, default, required]
  ["name", "Recipient name", "Ada Lovelace", true],
  ["line1", "Street and number", "1 Analytical Street", true],
  ["line2", "Address line 2", "", false],
  ["city", "City", "Berlin", true],
  ["postal_code", "Postal code", "10115", false],
  ["country_code", "Country code (ISO 3166, e.g. DE)", "DE", true],
];

async function shopView(): Promise<void> {
  const c = claims();
  const alerts = h("div", { class: "alerts" });
  const catalogBody = h("tbody");
  const ordersBody = h("tbody");
  const products: Product[] = [];
  main.replaceChildren(
    h("h2", {}, "Shop"), alerts,
    h("form", { id: "order-form", novalidate: true, onsubmit: (ev: Event) => { ev.preventDefault(); void placeOrder(); } },
      h("table", { class: "catalog" }, h("caption", {}, "Catalog"),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Product"), h("th", { scope: "col" }, "SKU"), h("th", { scope: "col", class: "num" }, "Price"),
          h("th", { scope: "col", class: "num" }, "In stock"), h("th", { scope: "col" }, "Quantity"))),
        catalogBody),
      h("fieldset", {}, h("legend", {}, "Shipping address"),
        ...addressFields.map(([f, label, def, req]) => field(`addr-${f}`, label, h("input", { name: f, value: def, required: req, autocomplete: "off" }) as HTMLInputElement))),
      h("fieldset", {}, h("legend", {}, "Payment"),
        field("payment-token", "Payment method token (tok_visa pays; tok_decline is declined)", h("input", { name: "payment_method_token", value: "tok_visa", list: "payment-tokens" }) as HTMLInputElement),
        h("datalist", { id: "payment-tokens" }, h("option", { value: "tok_visa" }), h("option", { value: "tok_decline" }))),
      h("div", { class: "actions" }, h("button", { type: "submit", id: "place-order" }, "Place order"), h("span", { id: "order-total", "aria-live": "polite" }))),
    h("table", { class: "orders" }, h("caption", {}, "My orders"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Order"), h("th", { scope: "col" }, "Placed"), h("th", { scope: "col", class: "num" }, "Total"),
        h("th", { scope: "col" }, "Status"), h("th", { scope: "col" }, "Actions"))),
      ordersBody),
  );
  if (!c) {
    alerts.replaceChildren(h("div", { class: "alert", role: "alert" }, "Paste a customer token under Token to shop."));
    return;
  }
  const signal = viewAbort.signal;

  const qtyId = (i: number) => `qty-${i}`;
  const updateTotal = () => {
    let sum = 0n;
    let currency = "";
    products.forEach((p, i) => {
      const q = Number((document.getElementById(qtyId(i)) as HTMLInputElement | null)?.value ?? 0);
      if (p.unitPrice && Number.isInteger(q) && q > 0) {
        sum += p.unitPrice.amountMinor * BigInt(q);
        currency = p.unitPrice.currency;
      }
    });
    const out = document.getElementById("order-total");
    if (out) out.textContent = currency ? `Total ${formatMoney(sum, currency)}` : "";
  };

  try {
    let pageToken = "";
    do {
      const res = await clients.inventory.listProducts({ pageSize: 100, pageToken }, { signal });
      products.push(...res.products);
      pageToken = res.nextPageToken;
    } while (pageToken);
  } catch (err) {
    if (!isAbort(err)) showProblem(alerts, err, "inventory");
  }
  products.forEach((p, i) => {
    const price = p.unitPrice ? formatMoney(p.unitPrice.amountMinor, p.unitPrice.currency) : "—";
    const avail = p.stock?.available ?? 0n;
    const qty = h("input", { type: "number", min: 0, max: 10000, step: 1, value: 0, inputmode: "numeric", "aria-label": `Quantity of ${p.name}`, oninput: updateTotal }) as HTMLInputElement;
    qty.id = qtyId(i);
    const err = h("span", { class: "field-error", id: `${qty.id}-error`, "aria-live": "polite" });
    qty.setAttribute("aria-describedby", err.id);
    catalogBody.append(h("tr", {}, h("th", { scope: "row" }, p.name), h("td", {}, h("code", {}, p.sku)), h("td", { class: "num" }, price),
      h("td", { class: "num" }, avail > 0n ? avail.toString() : "sold out"), h("td", {}, qty, err)));
  });

  // Maps the server's field paths to this form's inputs.
  const fieldIds = (path: string, lineIndex: number[]): string | undefined => {
    const addr = /^shipping_address\.(\w+)$/.exec(path);
    if (addr) return `addr-${addr[1]}`;
    if (path === "payment_method_token") return "payment-token";
    const line = /^lines\[(\d+)\]/.exec(path);
    if (line) return qtyId(lineIndex[Number(line[1])] ?? -1);
    if (path === "lines") return products.length ? qtyId(0) : undefined;
    return undefined;
  };

  const placeOrder = async () => {
    const form = document.getElementById("order-form") as HTMLFormElement;
    clearFieldErrors(form);
    alerts.replaceChildren();
    const lineIndex: number[] = [];
    const lines = [] as { sku: string; quantity: number; unitPriceMinor: bigint }[];
    let currency = "";
    let bad = false;
    products.forEach((p, i) => {
      const raw = (document.getElementById(qtyId(i)) as HTMLInputElement).value;
      const q = Number(raw);
      if (!Number.isInteger(q) || q < 0) {
        setFieldError(qtyId(i), "a whole number of units, 0 or more");
        bad = true;
      } else if (q > 0) {
        lineIndex.push(i);
        lines.push({ sku: p.sku, quantity: q, unitPriceMinor: p.unitPrice?.amountMinor ?? 0n });
        currency = p.unitPrice?.currency ?? "";
      }
    });
    if (bad) return;
    if (lines.length === 0) {
      alerts.replaceChildren(h("div", { class: "alert alert-invalid", role: "alert" }, "Choose a quantity of at least one product."));
      return;
    }
    const val = (id: string) => (document.getElementById(id) as HTMLInputElement).value.trim();
    const button = document.getElementById("place-order") as HTMLButtonElement;
    button.disabled = true;
    try {
      const res = await clients.order.createOrder({
        customerId: c.subject,
        currency,
        lines,
        shippingAddress: {
          name: val("addr-name"), line1: val("addr-line1"), line2: val("addr-line2"), city: val("addr-city"),
          postalCode: val("addr-postal_code"), countryCode: val("addr-country_code"),
        },
        paymentMethodToken: val("payment-token"),
        requestId: crypto.randomUUID(),
      }, { signal });
      status.textContent = `Order ${res.order?.orderId ?? ""} placed.`;
      if (res.order) addOrderRow(res.order, true);
    } catch (err) {
      if (!isAbort(err)) showProblem(alerts, err, "order", (p) => fieldIds(p, lineIndex));
    } finally {
      button.disabled = false;
    }
  };

  const rows = new Map<string, HTMLTableRowElement>();
  const addOrderRow = (o: Order, first: boolean) => {
    const statusCell = h("td", { class: "status" });
    const actions = h("td");
    const row = h("tr", { "data-order-id": o.orderId },
      h("th", { scope: "row" }, h("a", { href: `#/orders/${o.orderId}` }, o.orderId)),
      h("td", {}, formatTime(toDate(o.createTime))),
      h("td", { class: "num" }, o.total ? formatMoney(o.total.amountMinor, o.total.currency) : "—"),
      statusCell, actions);
    const render = (cur: Order) => {
      statusCell.replaceChildren(h("span", { class: `badge badge-${statusName(cur.status).toLowerCase()}` }, statusName(cur.status)),
        cur.status === OrderStatus.CANCELLED ? ` ${cancelReasonName(cur)}${cur.cancelDetail ? ": " + cur.cancelDetail : ""}` : "");
      actions.replaceChildren();
      if (cur.status === OrderStatus.PENDING) {
        actions.append(h("button", { type: "button", "aria-label": `Cancel order ${cur.orderId}`, onclick: async (ev: Event) => {
          // currentTarget is gone once the handler awaits: keep the button.
          const button = ev.currentTarget as HTMLButtonElement;
          button.disabled = true;
          try {
            const res = await clients.order.cancelOrder({ orderId: cur.orderId, reason: "cancelled in the console", requestId: crypto.randomUUID() }, { signal });
            if (res.order) render(res.order);
          } catch (err) {
            if (!isAbort(err)) showProblem(alerts, err, "order");
            button.disabled = false;
          }
        } }, "Cancel"));
      }
    };
    render(o);
    rows.get(o.orderId)?.remove();
    rows.set(o.orderId, row);
    if (first) ordersBody.prepend(row);
    else ordersBody.append(row);
    if (o.status === OrderStatus.PENDING) void watch(o.orderId, render);
  };

  const watch = async (orderId: string, render: (o: Order) => void) => {
    try {
      for await (const res of clients.order.watchOrder({ orderId }, { signal })) {
        if (res.order) render(res.order);
      }
    } catch (err) {
      if (!isAbort(err)) showProblem(alerts, err, "order");
    }
  };

  if (!c.roles.includes("customer")) {
    // Only a customer places orders and has "my orders"; the catalog is for everyone.
    alerts.append(h("div", { class: "alert", role: "alert" }, "Placing orders and \"My orders\" need a customer token; yours has roles: " + (c.roles.join(", ") || "none") + "."));
    return;
  }
  try {
    const res = await clients.order.listOrders({ customerId: c.subject, pageSize: 20 }, { signal });
    for (const o of res.orders) addOrderRow(o, false);
  } catch (err) {
    if (!isAbort(err)) showProblem(alerts, err, "order");
  }
}

// ---- Operations ----

async function opsView(): Promise<void> {
  const alerts = h("div", { class: "alerts" });
  const stuckOut = h("div");
  const signal = viewAbort.signal;
  main.replaceChildren(h("h2", {}, "Operations"), alerts);
  if (!hasRole("operator")) {
    alerts.replaceChildren(h("div", { class: "alert", role: "alert" }, "Operations needs an operator token (paste one under Token)."));
  }

  const olderThan = h("input", { type: "number", min: 1, max: 604800, value: 10, inputmode: "numeric" }) as HTMLInputElement;
  const stuckForm = h("form", { novalidate: true, onsubmit: async (ev: Event) => {
    ev.preventDefault();
    clearFieldErrors(stuckForm);
    const secs = Number(olderThan.value);
    if (!Number.isInteger(secs) || secs < 1) {
      setFieldError("older-than", "a whole number of seconds, 1 or more");
      return;
    }
    try {
      const res = await clients.order.listStuckSagas({ olderThan: durationFromMs(secs * 1000), pageSize: 100 }, { signal });
      stuckOut.replaceChildren(res.sagas.length === 0 ? h("p", {}, "No saga is stuck for that long.") : h("table", {},
        h("caption", {}, `Stuck sagas${res.truncated ? " (more exist)" : ""}`),
        h("thead", {}, h("tr", {}, ...["Order", "Customer", "Last step", "Waiting for", "On", "Stalled for", "Deadline"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, ...res.sagas.map((s) => h("tr", {},
          h("th", { scope: "row" }, h("a", { href: `#/orders/${s.orderId}` }, s.orderId)), h("td", {}, h("code", {}, s.customerId)),
          h("td", {}, eventTypeName(s.lastStep)), h("td", {}, eventTypeName(s.waitingFor)), h("td", {}, s.waitingOn),
          h("td", { class: "num" }, s.stalledFor ? formatDurationSeconds(Number(s.stalledFor.seconds) + s.stalledFor.nanos / 1e9) : "—"),
          h("td", {}, formatTime(toDate(s.deadline))))))));
    } catch (err) {
      if (!isAbort(err)) showProblem(stuckOut, err, "order", (p) => (p === "older_than" ? "older-than" : undefined));
    }
  } }, field("older-than", "No progress for at least (seconds)", olderThan), h("button", { type: "submit" }, "Find stuck sagas"));

  main.append(
    h("section", { "aria-labelledby": "stuck-h" }, h("h3", { id: "stuck-h" }, "Stuck sagas"), stuckForm, stuckOut),
    ordersSection(view()),
    deliverySection({ config, signal, status, showProblem, isAbort }),
  );
}

// ---- routing ----

function route(): void {
  viewAbort.abort();
  viewAbort = new AbortController();
  status.textContent = "";
  const hash = location.hash || (loadToken() ? "#/shop" : "#/token");
  for (const a of document.querySelectorAll<HTMLAnchorElement>("nav a")) {
    if (hash.startsWith(a.getAttribute("href") ?? "-")) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const orderMatch = /^#\/orders\/([0-9a-fA-F-]{36})$/.exec(hash);
  let done: Promise<void> | void = undefined;
  if (hash === "#/token") done = tokenView();
  else if (hash === "#/shop") done = shopView();
  else if (hash === "#/ops") done = opsView();
  else if (orderMatch) done = orderView(view(), orderMatch[1]);
  else {
    main.replaceChildren(h("h2", {}, "Not found"), h("p", {}, "No such page: ", h("code", {}, hash)));
  }
  void Promise.resolve(done).catch((err: unknown) => {
    if (!isAbort(err)) main.append(h("div", { class: "alert", role: "alert" }, `Unexpected error: ${String(err)}`));
  });
  main.focus();
}

async function start(): Promise<void> {
  try {
    config = await loadConfig();
    clients = createClients(config);
  } catch (err) {
    clear(main);
    main.append(h("div", { class: "alert alert-down", role: "alert" }, (err as Error).message));
    return;
  }
  renderWho();
  window.addEventListener("hashchange", route);
  route();
}

void start();
