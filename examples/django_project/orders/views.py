import json

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

import hivemind_jobs.contrib.django as hivemind
from orders.jobs import confirm
from orders.models import Order
from orders.tasks import send_receipt


# --8<-- [start:place_order]
@csrf_exempt
def place_order(request: HttpRequest) -> HttpResponse:
    """POST {"item": ..., "email": ...}: the order, its confirmation job and its receipt task are
    written in the request's transaction (ATOMIC_REQUESTS): an error after them leaves none."""
    body = json.loads(request.body)
    order = Order.objects.create(item=body["item"])
    with hivemind.transaction() as tx:
        job_id = tx.jobs.create(confirm, order.id)
    receipt = send_receipt.enqueue(order.id, body["email"])
    if body.get("fail"):
        raise RuntimeError("payment refused")  # the request's transaction rolls back: no order, no job
    return JsonResponse({"order": order.id, "job": job_id, "receipt": receipt.id}, status=201)


def order_status(request: HttpRequest, order_id: int) -> HttpResponse:
    # --8<-- [end:place_order]
    order = Order.objects.get(pk=order_id)
    return JsonResponse({"order": order.id, "item": order.item, "confirmed": order.confirmed})
