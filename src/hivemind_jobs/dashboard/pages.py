"""What each page of the dashboard shows and what its actions do, over one environment's clients.

The functions here know nothing of HTTP: they take an environment and plain values and return the
context a template renders (or a short text saying what an action did).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from hivemind_jobs.client.jobs import CancelResult
from hivemind_jobs.core.job import BackgroundJob
from hivemind_jobs.core.priority import Priority, coerce_priority
from hivemind_jobs.core.states import Awaiting, Enqueued, Failed, Idle, Succeeded, registered_states
from hivemind_jobs.dashboard.filters import FILTER_KEYS, JobFilters, parse_filters
from hivemind_jobs.errors import ConfigurationError, HiveMindError, JobNotFoundError
from hivemind_jobs.query import Condition, parse_order
from hivemind_jobs.query import conditions as q
from hivemind_jobs.query.order import decode_cursor
from hivemind_jobs.storage import redact_url

if TYPE_CHECKING:
    from hivemind_jobs.environment import Environment

__all__ = [
    "bulk_ids",
    "bulk_matching",
    "colonies_page",
    "job_action",
    "job_page",
    "jobs_page",
    "overview",
    "queues_page",
    "recurring_page",
    "throughput",
]

#: jobs per page of /jobs
PAGE_SIZE = 50
#: the overview counts each state up to this many jobs (bounded index reads; "10,000+" beyond, with
#: a link that counts them all on demand)
COUNT_CAP = 10_000
#: a colony whose heartbeat is older than this is shown as stale
STALE_AFTER = timedelta(seconds=30)
_LOG_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
_CLIP = 300


# ----------------------------------------------------------------------------- text helpers


def when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def seconds_text(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} d"


def age(moment: datetime | None, now: datetime | None = None) -> str:
    if moment is None:
        return "-"
    delta = ((now or datetime.now(UTC)) - moment).total_seconds()
    return f"in {seconds_text(delta)}" if delta < 0 else f"{seconds_text(delta)} ago"


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def show_value(value: Any, limit: int = _CLIP) -> str:
    """A stored value as short JSON-like text (the template escapes it)."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ----------------------------------------------------------------------------- overview


async def overview(env: Environment) -> dict[str, Any]:
    counts = await env.jobs.count_by_state(at_most=COUNT_CAP)
    stats = await env.jobs.queue_stats()
    colonies = await env.colonies.list()
    failures = await env.jobs.search(q.state == Failed, order_by="-id", limit=8)
    now = datetime.now(UTC)
    queues = _queue_rows(stats)
    alive = [info for info in colonies if info.status == "running" and now - info.heartbeat < STALE_AFTER]
    return {
        "counts": sorted(counts.items(), key=lambda item: (-item[1], item[0])),
        "total": sum(counts.values()),
        "cap": COUNT_CAP,
        "queues": queues,
        "colonies_alive": len(alive),
        "colonies_total": len(colonies),
        "failures": list(failures),
        "storage": redact_url(env.storage.info.url),
    }


def _queue_rows(stats: Sequence[Any]) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for stat in stats:
        row = rows.setdefault(
            stat.queue,
            {
                "queue": stat.queue,
                "ready": 0,
                "delayed": 0,
                "paused": stat.paused,
                "by_priority": {},
                "oldest_due": None,
            },
        )
        if stat.oldest_due is not None and (row["oldest_due"] is None or stat.oldest_due < row["oldest_due"]):
            row["oldest_due"] = stat.oldest_due
        row["ready"] += stat.ready
        row["delayed"] += stat.delayed
        row["by_priority"][Priority(stat.priority).name.lower()] = stat.ready + stat.delayed
    return sorted(rows.values(), key=lambda row: row["queue"])


async def state_count(env: Environment, name: str) -> int:
    """Every job in the state ``name`` (one read of the state index: slow on millions, so on demand)."""
    return await env.jobs.count(q.state == name)


async def throughput(env: Environment, span: str) -> dict[str, Any]:
    """Succeeded and failed jobs per minute over the last hour, or per 15 minutes over the last day
    (counted by when they entered the state, through the state index)."""
    bucket = timedelta(minutes=1) if span == "hour" else timedelta(minutes=15)
    buckets = 60 if span == "hour" else 96
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    since = now - bucket * (buckets - 1)
    series = {}
    for state in (Succeeded, Failed):
        counts = await env.jobs.count_over_time(state, since=since, every=bucket)
        series[state.state_name.lower()] = [counts.get(index, 0) for index in range(buckets)]
    times = [int((since + bucket * index).timestamp()) for index in range(buckets)]
    return {"span": span, "bucket_seconds": int(bucket.total_seconds()), "times": times, **series}


# ----------------------------------------------------------------------------- jobs


def form_filters(form: Mapping[str, Any]) -> JobFilters:
    """The filters carried by a bulk form (hidden fields named like the /jobs parameters)."""
    getlist = getattr(form, "getlist", None)
    params = {
        key: [str(value) for value in (getlist(key) if getlist else [form.get(key)]) if value] for key in FILTER_KEYS
    }
    return parse_filters(params, datetime.now(UTC))


async def jobs_page(env: Environment, params: Any) -> dict[str, Any]:
    filters = parse_filters({key: params.getlist(key) for key in FILTER_KEYS}, datetime.now(UTC))
    order_by = params.get("order", "-id")
    after = params.get("after") or None
    if order_by not in ("-id", "id", "-created", "created", "-modified", "modified"):
        filters.errors.append(f"order {order_by!r}: use id, created or modified, with - for newest first")
        order_by = "-id"
    if after is not None:
        try:
            decode_cursor(parse_order(order_by), after)
        except HiveMindError as error:
            filters.errors.append(f"after: {error}")
            after = None
    jobs: list[BackgroundJob] = []
    next_cursor = None
    if not filters.errors:
        page = await env.jobs.search(filters.condition, order_by=order_by, limit=PAGE_SIZE, after=after)
        jobs, next_cursor = list(page), page.next_cursor
    return {
        "filters": filters,
        "jobs": jobs,
        "order": order_by,
        "after": after,
        "next_cursor": next_cursor,
        "states": sorted(registered_states()),
        "priorities": [priority.name.lower() for priority in Priority],
    }


async def job_page(env: Environment, job_id: int, level: str) -> dict[str, Any] | None:
    job = await env.jobs.try_get(job_id)
    if job is None:
        return None
    minimum = _LOG_LEVELS.get(level.lower(), 0)
    logs = [entry for entry in await env.jobs.get_logs(job_id, limit=500) if entry.level >= minimum]
    items = await env.jobs.list_data(job_id, limit=100)
    data = {}
    for name in list(items)[:20]:
        try:
            data[name] = await env.jobs.get_data(job_id, name)
        except HiveMindError as error:
            data[name] = f"(cannot be read: {error})"
    states = list(job.states)
    timeline = []
    for index, state in enumerate(states):
        following = states[index + 1] if index + 1 < len(states) else None
        end = following.elected_at if following is not None else None
        duration = (end - state.elected_at).total_seconds() if end and state.elected_at else None
        timeline.append({"state": state, "fields": state.persisted_fields(), "duration": duration})
    parent = next((state.parent_id for state in states if isinstance(state, Awaiting)), None)
    async with env.storage.transaction(readonly=True) as tx:
        links = await tx.continuation_list(job_id)
    children = sorted({link.child_id for link in links if link.parent_id == job_id})
    return {
        "job": job,
        "timeline": timeline,
        "logs": logs,
        "level": level.lower(),
        "data_items": items,
        "data": data,
        "parent": parent,
        "children": children,
        "arguments": dict(job.invocation.arguments),
        "state_fields": job.state.persisted_fields(),
        "priorities": [priority.name.lower() for priority in Priority],
    }


async def job_action(env: Environment, job_id: int, action: str, priority: str) -> str:
    jobs = env.jobs
    if action == "requeue":
        result = await jobs.requeue_where(q.job.id == job_id)
        return f"job {job_id} requeued" if result.changed else f"job {job_id} was not requeued (running, or gone)"
    if action == "delete":
        deleted = await jobs.delete(job_id, reason="deleted from the dashboard")
        return f"job {job_id}: {deleted.value.replace('_', ' ')}"
    if action == "cancel":
        cancelled = await jobs.cancel(job_id, reason="cancelled from the dashboard")
        return f"job {job_id}: {cancelled.value.replace('_', ' ')}"
    if action == "priority":
        try:
            chosen = coerce_priority(int(priority) if priority.isdigit() else priority)
        except ConfigurationError as error:
            raise ConfigurationError(f"priority {priority!r}: {error}") from None
        job = await jobs.try_get(job_id)
        if job is None:
            raise JobNotFoundError(job_id, env.name)
        if not isinstance(job.state, Enqueued):
            raise ConfigurationError(f"job {job_id} is {job.state.name}: only an Enqueued job changes priority")
        result = await jobs.requeue_where(q.job.id == job_id, priority=chosen)
        return f"job {job_id} now has priority {chosen.name.lower()}" if result.changed else f"job {job_id} unchanged"
    raise ConfigurationError(f"unknown action {action!r}; use requeue, delete, cancel or priority")


async def bulk_ids(env: Environment, action: str, ids: list[int]) -> str:
    if len(ids) > 1000:
        raise ConfigurationError("at most 1,000 jobs at once; act on everything matching instead")
    if action == "cancel":
        outcomes = [await env.jobs.cancel(job_id, reason="cancelled from the dashboard") for job_id in ids]
        done = sum(outcome is not CancelResult.NOT_CANCELLABLE for outcome in outcomes)
        return f"{plural(done, 'job')} cancelled (or asked to stop) of {len(ids)} selected"
    return await bulk_matching(env, action, q.job.id.in_(ids))


async def bulk_matching(env: Environment, action: str, condition: Condition | None) -> str:
    jobs = env.jobs
    if action == "requeue":
        result = await jobs.requeue_where(condition)
        verb = "requeued"
    elif action == "delete":
        result = await jobs.delete_where(condition, reason="deleted from the dashboard")
        verb = "deleted"
    elif action == "cancel":
        waiting = q.state.is_(Enqueued, Awaiting)  # running jobs are locked: cancel them one by one
        result = await jobs.change_state_where(
            waiting if condition is None else q.where(condition, waiting),
            Idle(reason="cancelled from the dashboard"),
        )
        verb = "cancelled"
    else:
        raise ConfigurationError(f"unknown action {action!r}; use requeue, delete or cancel")
    return f"{plural(result.changed, 'job')} {verb}, {result.unchanged:,} unchanged"


# ----------------------------------------------------------------------------- recurring


async def recurring_page(env: Environment) -> dict[str, Any]:
    jobs = await env.recurring.list()
    calendars = env.recurring.calendars
    rows = []
    for job in jobs:
        try:
            explained = job.schedule.explain(calendars)
        except HiveMindError as error:
            explained = f"(cannot explain: {error})"
        rows.append({"job": job, "explain": explained})
    return {"recurring": rows}


async def recurring_job_page(env: Environment, recurring_id: str) -> dict[str, Any] | None:
    job = await env.recurring.try_get(recurring_id)
    if job is None:
        return None
    calendars = env.recurring.calendars
    upcoming: list[datetime] = []
    moment = job.next_run
    try:
        explained = job.schedule.explain(calendars)
        while moment is not None and len(upcoming) < 5:
            upcoming.append(moment)
            moment = job.schedule.next_after(moment, calendars)
    except HiveMindError as error:
        explained = f"(cannot explain: {error})"
    history = await env.recurring.history(recurring_id, limit=50)
    return {"job": job, "explain": explained, "upcoming": upcoming, "history": history}


async def recurring_action(env: Environment, recurring_id: str, action: str) -> str:
    recurring = env.recurring
    if action == "trigger":
        job_id = await recurring.trigger(recurring_id)
        return f"{recurring_id} triggered: job {job_id}"
    if action == "pause":
        return f"{recurring_id} paused" if await recurring.pause(recurring_id) else f"{recurring_id} was paused"
    if action == "resume":
        return f"{recurring_id} resumed" if await recurring.resume(recurring_id) else f"{recurring_id} was running"
    if action == "delete":
        return f"{recurring_id} deleted" if await recurring.delete(recurring_id) else f"{recurring_id} was gone"
    raise ConfigurationError(f"unknown action {action!r}; use trigger, pause, resume or delete")


# ----------------------------------------------------------------------------- colonies and queues


def _drones(swarm: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = swarm.get("drones")
    drones = [drone for drone in found if isinstance(drone, dict)] if isinstance(found, list) else []
    return [{"name": str(drone.get("name")), "job_id": drone.get("job_id")} for drone in drones]


def _queue_groups(groups: object) -> str:
    if not isinstance(groups, list):
        return "-"
    return " | ".join(", ".join(str(queue) for queue in group) for group in groups if isinstance(group, list)) or "-"


async def colonies_page(env: Environment) -> dict[str, Any]:
    now = datetime.now(UTC)
    rows = []
    for info in sorted(await env.colonies.list(), key=lambda info: (info.name, info.id)):
        swarms = []
        for swarm in info.swarms:
            drones = _drones(swarm)
            swarms.append(
                {
                    "name": str(swarm.get("name")),
                    "queues": _queue_groups(swarm.get("queues")),
                    "drones": drones,
                    "busy": sum(1 for drone in drones if drone["job_id"] is not None),
                }
            )
        logs = await env.colonies.daemon_logs(info.id, limit=20) if info.daemons else []
        rows.append(
            {
                "info": info,
                "stale": now - info.heartbeat > STALE_AFTER,
                "swarms": swarms,
                "daemons": info.daemons,
                "logs": logs,
            }
        )
    return {"colonies": rows}


async def queues_page(env: Environment) -> dict[str, Any]:
    stats = await env.jobs.queue_stats()
    paused = {record.queue: record for record in await env.queues.paused()}
    since = datetime.now(UTC) - timedelta(hours=1)
    rows = _queue_rows(stats)
    for row in rows:
        row["pause"] = paused.get(row["queue"])
    for name, record in paused.items():
        if name not in {row["queue"] for row in rows}:
            rows.append(
                {
                    "queue": name,
                    "ready": 0,
                    "delayed": 0,
                    "paused": True,
                    "by_priority": {},
                    "oldest_due": None,
                    "pause": record,
                }
            )
    succeeded = await env.jobs.count_by_queue(Succeeded, since=since)  # finished in the last hour
    failed = await env.jobs.count_by_queue(Failed, since=since)
    for row in rows:
        row["succeeded"] = succeeded.get(row["queue"], 0)
        row["failed"] = failed.get(row["queue"], 0)
    return {
        "queues": sorted(rows, key=lambda row: row["queue"]),
        "priorities": [priority.name.lower() for priority in Priority],
        "since": since,
    }


async def queue_action(env: Environment, queue: str, action: str) -> str:
    if action == "pause":
        paused = await env.queues.pause(queue, reason="paused from the dashboard")
        return f"queue {queue} paused" if paused else f"queue {queue} was paused"
    if action == "resume":
        return f"queue {queue} resumed" if await env.queues.resume(queue) else f"queue {queue} was not paused"
    raise ConfigurationError(f"unknown action {action!r}; use pause or resume")
