"""The cluster as its masters see it: every configured endpoint asked for its Raft view, and
one summary of leader, term, lag and health (``hakubectl cluster status``, the console)."""

from __future__ import annotations

import concurrent.futures
from typing import Any

from hakube.client.client import Client
from hakube.client.errors import HakubeError, Unavailable
from hakube.client.transport import short_reason


def cluster_report(client: Client, timeout: float = 2.0) -> dict[str, Any]:
    """Ask every configured endpoint for its view; summarize leader, term and health (what
    ``hakubectl cluster status`` prints and the console shows). Unavailable when no master
    answers."""
    eps = client.servers

    def ask(ep: str) -> Any:
        return client.cluster_status(endpoint=ep, timeout=timeout)

    views: dict[str, Any] = {}
    with concurrent.futures.ThreadPoolExecutor(len(eps)) as pool:
        for ep, fut in [(ep, pool.submit(ask, ep)) for ep in eps]:
            try:
                views[ep] = fut.result()
            except HakubeError as exc:
                views[ep] = exc
    answers = {ep: v for ep, v in views.items() if not isinstance(v, Exception)}
    if not answers:
        reasons = {short_reason(str(v)) for v in views.values()}
        raise Unavailable(
            f"cluster status: no master answered (tried {', '.join(eps)}): "
            f"{'; '.join(sorted(reasons))}",
            endpoints=tuple(eps),
        )
    top_commit = max(v.commit_index for v in answers.values())
    leaders = [v.leader for v in answers.values() if v.leader]
    leader = max(set(leaders), key=leaders.count) if leaders else ""
    term = max(v.term for v in answers.values())
    masters: list[dict[str, Any]] = []
    seen: dict[str, dict[str, Any]] = {}
    for ep, v in views.items():
        if isinstance(v, Exception):
            masters.append(
                {
                    "name": "",
                    "endpoint": ep,
                    "reachable": False,
                    "error": short_reason(getattr(v, "message", str(v))),
                }
            )
            continue
        if v.name in seen:  # a second address of one master (a VIP, another name): one row
            seen[v.name].setdefault("alsoVia", []).append(ep)
            continue
        masters.append(
            {
                "name": v.name,
                "endpoint": ep,
                "reachable": True,
                "state": v.raft_state,
                "leader": v.leader,
                "term": v.term,
                "commitIndex": v.commit_index,
                "appliedIndex": v.applied_index,
                "lag": max(0, top_commit - v.applied_index),
                "ready": v.ready,
                "revision": v.revision,
                "objects": v.objects,
                "storeBytes": v.store_bytes,
            }
        )
        seen[v.name] = masters[-1]
    # Members known to the answering masters but not configured here (e.g. behind a VIP).
    for v in answers.values():
        for m in v.members:
            if m.name not in seen:
                masters.append(
                    {
                        "name": m.name,
                        "endpoint": m.api_address,
                        "reachable": None,
                        "state": "connected" if m.connected else "disconnected",
                        "raftAddress": m.raft_address,
                    }
                )
                seen[m.name] = masters[-1]
    down = [m for m in masters if m["reachable"] is False]
    unseen = [m for m in masters if m["reachable"] is None]
    if len(down) == 1 and len(unseen) == 1:
        # The one configured endpoint that did not answer is the one member nobody reached.
        down[0]["name"] = unseen[0]["name"]
        masters.remove(unseen[0])
    # Count masters, not addresses: a config may name a VIP beside the masters behind it.
    total = max(len(masters), max(len(v.members) for v in answers.values()))
    ready = sum(1 for m in masters if m["reachable"] and m["ready"])
    quorum = total // 2 + 1
    healthy = bool(leader) and ready >= quorum
    return {
        "leader": leader,
        "term": term,
        "commitIndex": top_commit,
        "masters": masters,
        "ready": ready,
        "total": total,
        "quorum": quorum,
        "healthy": healthy,
    }
