// A saga's timeline from notification's saga log (every event of the order, in
// occurrence order), falling back to the order service's own step history.
import { toJson } from "@bufbuild/protobuf";
import { EnvelopeSchema, EventType, EventTypeSchema, type Envelope } from "./gen/sagasuite/events/v1/envelope_pb.js";
import { CancelReasonSchema } from "./gen/sagasuite/events/v1/order_events_pb.js";
import type { Order } from "./gen/sagasuite/order/v1/order_service_pb.js";
import { enumLabel, toDate } from "./format.js";

export type Entry = {
  eventId: string;
  type: string; // e.g. PAYMENT_FAILED
  service: string; // producer; "" when unknown (order steps do not say)
  at: Date | undefined;
  causedBy: string; // the causing event's type when it is in the log, else its id
  kind: "step" | "failure" | "compensation" | "outcome";
  detail: string;
};

// Compensations undo an earlier step; failures are what made them necessary.
const compensations = new Set([EventType.STOCK_RESTORED, EventType.PAYMENT_REFUNDED, EventType.SHIPMENT_CANCELLED]);
const failures = new Set([EventType.OUT_OF_STOCK, EventType.PAYMENT_FAILED, EventType.SHIPMENT_FAILED]);
const outcomes = new Set([EventType.ORDER_COMPLETED, EventType.ORDER_CANCELLED]);

export function eventTypeName(t: EventType): string {
  return enumLabel(EventTypeSchema.value[t]?.name, "EVENT_TYPE_");
}

export function kindOf(t: EventType): Entry["kind"] {
  if (compensations.has(t)) return "compensation";
  if (failures.has(t)) return "failure";
  if (outcomes.has(t)) return "outcome";
  return "step";
}

export function fromSagaLog(events: Envelope[]): Entry[] {
  const byId = new Map(events.map((e) => [e.eventId, e]));
  return events.map((e) => {
    const cause = e.causationId ? byId.get(e.causationId) : undefined;
    return {
      eventId: e.eventId,
      type: eventTypeName(e.type),
      service: e.producer,
      at: toDate(e.occurredAt),
      causedBy: cause ? eventTypeName(cause.type) : e.causationId,
      kind: kindOf(e.type),
      detail: payloadSummary(e),
    };
  });
}

export function fromOrderSteps(order: Order): Entry[] {
  return order.steps.map((s) => ({
    eventId: s.eventId,
    type: eventTypeName(s.eventType),
    service: "",
    at: toDate(s.occurredAt),
    causedBy: "",
    kind: kindOf(s.eventType),
    detail: s.detail,
  }));
}

export function cancelReasonName(order: Order): string {
  return enumLabel(CancelReasonSchema.value[order.cancelReason]?.name, "CANCEL_REASON_");
}

// payloadSummary is the payload's fields as compact JSON, minus what the
// timeline shows already or what must not be on screen (the payment token).
function payloadSummary(e: Envelope): string {
  const json = toJson(EnvelopeSchema, e) as Record<string, unknown>;
  for (const [k, v] of Object.entries(json)) {
    if (v && typeof v === "object" && !Array.isArray(v) && k !== "occurredAt") {
      const payload = { ...(v as Record<string, unknown>) };
      delete payload.paymentMethodToken;
      delete payload.shippingAddress;
      return JSON.stringify(payload);
    }
  }
  return "";
}
