"""Django tasks (``@task``), run by HiveMind colonies through the TASKS backend."""

from django_tasks import TaskContext, task  # Django 6: from django.tasks import ...

from orders.models import Order


# --8<-- [start:tasks]
@task(queue_name="mail", priority=50)
def send_receipt(order_id: int, email: str) -> dict[str, object]:
    item = Order.objects.get(pk=order_id).item
    return {"to": email, "subject": f"Your {item}"}


@task(takes_context=True)
def attempt_number(context: TaskContext) -> int:
    return context.attempt


@task()
async def stock_level(item: str) -> int:
    return await Order.objects.filter(item=item).acount()


@task()
def out_of_stock(item: str) -> None:
    raise LookupError(f"no {item} left")


# --8<-- [end:tasks]
