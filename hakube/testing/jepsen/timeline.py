"""The run as a picture: one SVG with the faults, every client's operations and the lease
terms on one time axis, and the operations of any anomaly marked — to see at a glance what was
happening when something went wrong."""

from __future__ import annotations

from html import escape

from hakube.testing.jepsen.history import Op
from hakube.testing.jepsen.nemesis import Fault

_COLOURS = {"ok": "#3a3", "fail": "#e90", "info": "#d22"}


def svg(
    ops: list[Op],
    faults: list[Fault],
    leases: dict[str, list[tuple[float, float]]],
    marked: set[int],
    width: int = 1400,
) -> str:
    end = max([o.invoke for o in ops] + [f.end for f in faults] + [1.0])
    procs = sorted({o.process for o in ops})
    rows = ["faults", *(f"p{p}" for p in procs), *(f"lease {c}" for c in sorted(leases))]
    left, row_h = 90, 16
    height = row_h * (len(rows) + 2)

    def x(t: float) -> float:
        return left + (width - left - 10) * min(max(t, 0.0), end) / end

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="monospace" font-size="11">'
    ]
    for i, name in enumerate(rows):
        out.append(f'<text x="4" y="{row_h * (i + 1) + 11}">{escape(name)}</text>')
    for f in faults:
        out.append(
            f'<rect x="{x(f.start):.1f}" y="{row_h}" width="'
            f'{max(x(f.end or end) - x(f.start), 1):.1f}" height="{row_h - 2}" '
            f'fill="#99c"><title>{escape(f.describe())}</title></rect>'
        )
    for o in ops:
        y = row_h * (2 + procs.index(o.process))
        stop = o.complete if o.complete != float("inf") else end
        colour = "#000" if o.index in marked else _COLOURS[o.outcome]
        out.append(
            f'<rect x="{x(o.invoke):.1f}" y="{y + 3}" width="'
            f'{max(x(stop) - x(o.invoke), 0.6):.1f}" height="{row_h - 8}" '
            f'fill="{colour}"><title>{escape(o.describe())}</title></rect>'
        )
    for j, (_holder, spans) in enumerate(sorted(leases.items())):
        y = row_h * (2 + len(procs) + j)
        for a, b in spans:
            out.append(
                f'<rect x="{x(a):.1f}" y="{y + 3}" width="{max(x(b) - x(a), 0.6):.1f}" '
                f'height="{row_h - 8}" fill="#66a"/>'
            )
    out.append(
        f'<text x="{left}" y="{height - 4}">0 s</text>'
        f'<text x="{width - 60}" y="{height - 4}">{end:.0f} s</text></svg>'
    )
    return "\n".join(out)
