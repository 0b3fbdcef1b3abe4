// Labels of the order API's enums, as the views print them.
import { OrderStatus, OrderStatusSchema } from "./gen/sagasuite/order/v1/order_service_pb.js";
import { enumLabel } from "./format.js";

export function statusName(s: OrderStatus): string {
  return enumLabel(OrderStatusSchema.value[s]?.name, "ORDER_STATUS_");
}
