// The five services' Connect clients. Where each service answers browsers
// comes from /config.json, written by whoever serves the console (sagactl dev).
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";
import { OrderService } from "./gen/sagasuite/order/v1/order_service_pb.js";
import { InventoryService } from "./gen/sagasuite/inventory/v1/inventory_service_pb.js";
import { PaymentService } from "./gen/sagasuite/payment/v1/payment_service_pb.js";
import { ShippingService } from "./gen/sagasuite/shipping/v1/shipping_service_pb.js";
import { NotificationService } from "./gen/sagasuite/notification/v1/notification_service_pb.js";
import { loadToken } from "./token.js";

export const serviceNames = ["order", "inventory", "payment", "shipping", "notification"] as const;
export type ServiceName = (typeof serviceNames)[number];

export type ConsoleConfig = { services: Record<ServiceName, string> };

// loadConfig fetches and checks /config.json; a missing or malformed file is
// an Error naming what is wrong.
export async function loadConfig(): Promise<ConsoleConfig> {
  let res: Response;
  try {
    res = await fetch("config.json", { cache: "no-store" });
  } catch (e) {
    throw new Error(`cannot load config.json: ${String(e)}`);
  }
  if (!res.ok) {
    throw new Error(`cannot load config.json: HTTP ${res.status}`);
  }
  const raw: unknown = await res.json();
  const services = (raw as { services?: unknown } | null)?.services;
  if (typeof services !== "object" || services === null) {
    throw new Error("config.json has no \"services\" object");
  }
  const out: Partial<Record<ServiceName, string>> = {};
  for (const name of serviceNames) {
    const url = (services as Record<string, unknown>)[name];
    if (typeof url !== "string" || !/^https?:\/\//.test(url)) {
      throw new Error(`config.json: services.${name} must be an http(s) URL`);
    }
    out[name] = url.replace(/\/+$/, "");
  }
  return { services: out as Record<ServiceName, string> };
}

// Every call carries the current token, read at call time so a new one takes
// effect without rebuilding the clients.
export const bearer: Interceptor = (next) => async (req) => {
  const token = loadToken();
  if (token) {
    req.header.set("authorization", `Bearer ${token}`);
  }
  return next(req);
};

export type Clients = {
  order: Client<typeof OrderService>;
  inventory: Client<typeof InventoryService>;
  payment: Client<typeof PaymentService>;
  shipping: Client<typeof ShippingService>;
  notification: Client<typeof NotificationService>;
};

export function createClients(cfg: ConsoleConfig): Clients {
  const transport = (name: ServiceName) =>
    createConnectTransport({ baseUrl: cfg.services[name], useBinaryFormat: true, interceptors: [bearer] });
  return {
    order: createClient(OrderService, transport("order")),
    inventory: createClient(InventoryService, transport("inventory")),
    payment: createClient(PaymentService, transport("payment")),
    shipping: createClient(ShippingService, transport("shipping")),
    notification: createClient(NotificationService, transport("notification")),
  };
}
