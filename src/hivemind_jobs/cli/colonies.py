"""``hivemind colonies``: the colonies of one environment as they last reported themselves.

Each colony writes its record every ``state_sync_interval``: its status, heartbeat, counters, its
swarms (sub-swarms named by their path, ``parent/child``) with their queue groups and drones (the
job each busy drone runs), and its daemons. This command reads those records; it changes nothing.
The environment is named like ``hivemind jobs`` does (``--url`` with ``--env``/``--prefix``, or
``--app module:attribute``).

Every error is one line ``Error: ...`` on stderr and exit status 2.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import click
from rich.text import Text
from rich.tree import Tree

import hivemind_jobs as hm
from hivemind_jobs.cli.jobs import Source, _console, _echo_json, _source_options, _when, plain, run_in_environment
from hivemind_jobs.cli.views import age_text, plural
from hivemind_jobs.environment import Environment

__all__ = ["colonies", "colony_document"]


def _queues_text(groups: object) -> str:
    """Queue groups as the swarm claims them: a group's queues share one order (``a, b``); the
    groups are tried one after the other (``a, b | c``)."""
    if not isinstance(groups, list):
        return "-"
    return " | ".join(", ".join(str(queue) for queue in group) for group in groups if isinstance(group, list)) or "-"


def _drones(swarm: dict[str, Any]) -> list[dict[str, Any]]:
    found = swarm.get("drones")
    drones = [drone for drone in found if isinstance(drone, dict)] if isinstance(found, list) else []
    return [
        {"name": str(drone.get("name")), "job_id": drone.get("job_id"), "busy": drone.get("job_id") is not None}
        for drone in drones
    ]


def colony_document(info: hm.ColonyInfo, now: datetime) -> dict[str, Any]:
    """One colony as ``--json`` prints it (its whole stored state under ``state`` too)."""
    swarms = []
    for swarm in info.swarms:
        drones = _drones(swarm)
        swarms.append(
            {
                "name": str(swarm.get("name")),
                "queues": swarm.get("queues", []),
                "paused": bool(swarm.get("paused", False)),
                "busy": sum(1 for drone in drones if drone["busy"]),
                "drones": drones,
            }
        )
    return {
        "id": info.id,
        "name": info.name,
        "status": info.status,
        "host": info.host,
        "pid": info.pid,
        "started_at": info.started_at.isoformat(),
        "heartbeat": info.heartbeat.isoformat(),
        "heartbeat_age_seconds": round((now - info.heartbeat).total_seconds(), 3),
        "last_progress_at": info.last_progress_at.isoformat() if info.last_progress_at else None,
        "processed": info.state.get("processed", 0),
        "succeeded": info.state.get("succeeded", 0),
        "failed": info.state.get("failed", 0),
        "running": info.state.get("running", 0),
        "swarms": swarms,
        "daemons": plain(info.daemons),
        "state": plain(info.state),
    }


def _colony_tree(document: dict[str, Any]) -> Tree:
    status = document["status"]
    colour = {"running": "green", "stopped": "dim", "stopping": "yellow"}.get(status, "red")
    age = age_text(timedelta(seconds=max(float(document["heartbeat_age_seconds"]), 0.0)))
    heading = Text.assemble(
        ("colony ", "bold"),
        (document["name"], "bold cyan"),
        f" ({document['id']}) ",
        (status, colour),
        f" on {document['host']} pid {document['pid']}; heartbeat {age} ago; "
        f"{plural(int(document['processed']), 'job')} processed "
        f"({document['succeeded']} succeeded, {document['failed']} failed)",
    )
    tree = Tree(heading)
    nodes: dict[str, Tree] = {}
    for swarm in document["swarms"]:
        parent_path, _, short = swarm["name"].rpartition("/")
        parent = nodes.get(parent_path, tree)
        drones = swarm["drones"]
        label = Text.assemble(
            ("swarm ", "bold"),
            (short, "cyan"),
            f"  queues {_queues_text(swarm['queues'])}  {swarm['busy']}/{plural(len(drones), 'drone')} busy",
            (" (paused)" if swarm["paused"] else "", "yellow"),
        )
        node = parent.add(label)
        nodes[swarm["name"]] = node
        for drone in drones:
            if drone["busy"]:
                node.add(Text.assemble(drone["name"], " ", ("busy", "yellow"), f": job {drone['job_id']}"))
            else:
                node.add(Text.assemble(drone["name"], " ", ("idle", "dim")))
    daemons = [item for item in document["daemons"] if isinstance(item, dict)]
    if daemons:
        names = ", ".join(f"{item.get('name')} {item.get('status')}" for item in daemons)
        tree.add(Text(f"daemons: {names}", style="dim"))
    return tree


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per colony.")
@_source_options
def colonies(source: Source, as_json: bool) -> None:
    """Show the colonies of an environment as they last reported themselves: a tree per colony with
    its swarms (sub-swarms under their parent), their queues and drones (busy with a job, or
    idle), the heartbeat's age and the jobs processed.

    A colony that stopped without saying so keeps its last record until the cleanup removes it; an
    old heartbeat shows it.
    """

    async def fetch(environment: Environment) -> tuple[list[hm.ColonyInfo], datetime]:
        found = await environment.colonies.list()
        return found, datetime.now(UTC)

    infos, now = run_in_environment(source, fetch)
    documents = [colony_document(info, now) for info in sorted(infos, key=lambda item: (item.name, item.id))]
    if as_json:
        _echo_json(documents)
        return
    if not documents:
        click.echo("no colonies have reported in this environment")
        return
    console = _console()
    for document in documents:
        console.print(_colony_tree(document))
    click.echo(f"{plural(len(documents), 'colony', 'colonies')}; heartbeats as of {_when(now)} UTC")
