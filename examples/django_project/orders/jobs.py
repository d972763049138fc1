"""A plain HiveMind job: any module-level function."""

from orders.models import Order


# --8<-- [start:confirm]
def confirm(order_id: int) -> str:
    order = Order.objects.get(pk=order_id)
    order.confirmed = True
    order.save(update_fields=["confirmed"])
    return f"order {order_id} confirmed"


# --8<-- [end:confirm]
