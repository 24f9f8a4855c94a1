"""State diagrams of an API's lifecycle: Mermaid text from the spec, and an inline SVG of it.

::

    text = mermaid(resolve_spec("croma"))      # what `jobmock apis croma --diagram` prints
    svg = render_svg(text)                      # what the dashboard and the HTML report draw

:func:`lifecycle_graph` reads the spec (status words, their roles, the allowed
transitions, the timing model's durations and outcome weights) into a :class:`Graph`;
:func:`to_mermaid` writes it as a Mermaid ``stateDiagram-v2``; :func:`parse_mermaid`
reads that subset back; :func:`to_svg` lays a graph out in layers (left to right, by
distance from the start) as boxes and arrows. No browser library and no network: a page
that shows the SVG works offline.

Pure: reads the spec model only; the mock, the report and the CLI all import it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .spec import ApiSpec

__all__ = ["Edge", "Graph", "Node", "lifecycle_graph", "mermaid", "parse_mermaid", "render_svg",
           "to_mermaid", "to_svg"]

START = "[*]"

#: Fill colours of the boxes by lifecycle role.
ROLE_FILL = {"queued": "#e8eefc", "running": "#fff4d6", "completed": "#dcf5e3",
             "failed": "#fbe0e0", "canceled": "#ececec", "expired": "#fde9d2",
             "rejected": "#efe3fa"}


@dataclass(frozen=True, slots=True)
class Node:
    """One state: its id in the diagram, its label (the status word) and its role."""

    id: str
    label: str
    role: str = ""


@dataclass(frozen=True, slots=True)
class Edge:
    """A move from one state to another (``[*]`` is the start), with its label."""

    source: str
    target: str
    label: str = ""


@dataclass(slots=True)
class Graph:
    """States and moves, in the order the spec names them."""

    title: str = ""
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)

    def node(self, node_id: str) -> Node | None:
        return next((n for n in self.nodes if n.id == node_id), None)


def _seconds(lo: float, hi: float) -> str:
    return f"{lo:g} s" if lo == hi else f"{lo:g}-{hi:g} s"


def lifecycle_graph(spec: ApiSpec) -> Graph:
    """The lifecycle of ``spec`` as a graph: every status word, every allowed transition;
    the queued and running durations and each outcome's weight (as a probability) on the
    transitions the timing model draws."""
    lc, timing = spec.lifecycle, spec.timing
    ids = {word: f"s{i}" for i, word in enumerate(lc.states)}
    graph = Graph(title=f"{spec.name} lifecycle")
    for word, role in lc.states.items():
        graph.nodes.append(Node(ids[word], word, role))
    queued, running = lc.queued, lc.running
    total = sum(w for _, w in timing.outcomes) or 1.0
    weights = dict(timing.outcomes)
    graph.edges.append(Edge(START, ids[queued], ""))
    for word, targets in lc.transitions.items():
        for target in sorted(targets, key=list(lc.states).index):
            label = ""
            if word == queued and target == running:
                label = f"after {_seconds(*timing.queued)}"
            elif target in weights and word == (running if running is not None else queued):
                after = timing.running if running is not None else timing.queued
                label = f"p={weights[target] / total:.2f}, after {_seconds(*after)}"
            graph.edges.append(Edge(ids[word], ids[target], label))
    return graph


# -- Mermaid -------------------------------------------------------------------------------

_LABEL_BAD = re.compile(r'["\n\r]')


def to_mermaid(graph: Graph) -> str:
    """``graph`` as a Mermaid ``stateDiagram-v2`` (states named by id, labelled by word;
    a class per role, so a renderer may colour them)."""
    lines = ["stateDiagram-v2"]
    if graph.title:
        lines.append(f"    %% {graph.title}")
    for n in graph.nodes:
        lines.append(f'    state "{_LABEL_BAD.sub(" ", n.label)}" as {n.id}')
    for e in graph.edges:
        label = _LABEL_BAD.sub(" ", e.label).replace(":", " ")
        lines.append(f"    {e.source} --> {e.target}" + (f": {label}" if label else ""))
    roles: dict[str, list[str]] = {}
    for n in graph.nodes:
        if n.role:
            roles.setdefault(n.role, []).append(n.id)
    for role, members in roles.items():
        lines.append(f"    classDef {role} fill:{ROLE_FILL.get(role, '#ffffff')}")
        lines.append(f"    class {','.join(members)} {role}")
    return "\n".join(lines) + "\n"


def mermaid(spec: ApiSpec) -> str:
    """The lifecycle of ``spec`` as Mermaid text."""
    return to_mermaid(lifecycle_graph(spec))


_STATE = re.compile(r'^state\s+"([^"]*)"\s+as\s+([A-Za-z_][\w]*)$')
_EDGE = re.compile(r"^(\[\*\]|[A-Za-z_][\w]*)\s*-->\s*(\[\*\]|[A-Za-z_][\w]*)\s*(?::\s*(.*))?$")
_CLASS = re.compile(r"^class\s+([\w,]+)\s+(\w+)$")


def parse_mermaid(text: str) -> Graph:
    """Read the ``stateDiagram-v2`` subset :func:`to_mermaid` writes (states, transitions with
    labels, ``%%`` comments, classes); a state named only in a transition gets its id as label.
    Raises :class:`ValueError` naming the line it cannot read."""
    graph = Graph()
    roles: dict[str, str] = {}
    seen: dict[str, str] = {}
    lines = text.splitlines()
    if not lines or lines[0].strip() not in ("stateDiagram-v2", "stateDiagram"):
        raise ValueError("a Mermaid state diagram starts with 'stateDiagram-v2'")
    for number, raw in enumerate(lines[1:], start=2):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("%%"):
            if not graph.title:
                graph.title = line[2:].strip()
            continue
        if line.startswith(("classDef ", "direction ")):
            continue
        if m := _STATE.match(line):
            seen[m.group(2)] = m.group(1)
            continue
        if m := _CLASS.match(line):
            for member in m.group(1).split(","):
                roles[member] = m.group(2)
            continue
        if m := _EDGE.match(line):
            source, target = m.group(1), m.group(2)
            for name in (source, target):
                if name != START:
                    seen.setdefault(name, name)
            graph.edges.append(Edge(source, target, (m.group(3) or "").strip()))
            continue
        raise ValueError(f"line {number}: cannot read {line!r} as a state or a transition")
    graph.nodes = [Node(i, label, roles.get(i, "")) for i, label in seen.items()]
    return graph


# -- SVG -----------------------------------------------------------------------------------

BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 150, 40, 170, 26, 24


def _ranks(graph: Graph) -> dict[str, int]:
    """Each node's layer: the longest path to it from the start, so every state sits right of
    the states that lead to it (a cycle stops growing after as many rounds as there are
    nodes); a node the start does not reach goes last."""
    out: dict[str, int] = {e.target: 0 for e in graph.edges if e.source == START}
    limit = len(graph.nodes)
    for _ in range(limit):
        moved = False
        for e in graph.edges:
            if e.source in out and e.target != START and out[e.source] + 1 < limit \
                    and out.get(e.target, -1) < out[e.source] + 1:
                out[e.target] = out[e.source] + 1
                moved = True
        if not moved:
            break
    last = max(out.values(), default=-1) + 1
    for node_ in graph.nodes:
        out.setdefault(node_.id, last)
    return out


def to_svg(graph: Graph) -> str:
    """``graph`` as a standalone ``<svg>`` element: boxes in layers, left to right, arrows
    between them labelled with the transition's label; boxes coloured by role."""
    ranks = _ranks(graph)
    columns: dict[int, list[Node]] = {}
    for n in graph.nodes:
        columns.setdefault(ranks[n.id], []).append(n)
    tallest = max((len(c) for c in columns.values()), default=1)
    spans = any(ranks.get(e.target, 0) - ranks.get(e.source, 0) > 1
                for e in graph.edges if e.source != START)
    height = PAD * 2 + tallest * BOX_H + (tallest - 1) * GAP_Y + 20 + (40 if spans else 0)
    start_x = PAD + 8
    x0 = start_x + 8 + GAP_X * 0.6
    width = int(x0 + (max(columns, default=0) + 1) * (BOX_W + GAP_X) - GAP_X + PAD)
    pos: dict[str, tuple[float, float]] = {}
    for rank, nodes in columns.items():
        col_h = len(nodes) * BOX_H + (len(nodes) - 1) * GAP_Y
        top = (height - (40 if spans else 0) - col_h) / 2
        for i, n in enumerate(nodes):
            pos[n.id] = (x0 + rank * (BOX_W + GAP_X), top + i * (BOX_H + GAP_Y))
    cy = (height - (40 if spans else 0)) / 2
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="jm-diagram" width="{width}" '
           f'height="{int(height)}" viewBox="0 0 {width} {int(height)}" role="img" '
           f'aria-label="{escape(graph.title or "state diagram")}" '
           f'font-family="system-ui, sans-serif" font-size="12">',
           f"<title>{escape(graph.title or 'state diagram')}</title>",
           '<defs><marker id="jm-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
           'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
           'fill="#555"/></marker></defs>',
           f'<circle class="jm-start" cx="{start_x}" cy="{cy}" r="7" fill="#333"/>']
    for e in graph.edges:
        out.append(_edge_svg(e, pos, (start_x, cy), height))
    for n in graph.nodes:
        x, y = pos[n.id]
        fill = ROLE_FILL.get(n.role, "#ffffff")
        terminal = n.role in ("completed", "failed", "canceled", "expired", "rejected")
        out.append(f'<g class="jm-state" data-state="{escape(n.label)}" data-role="{escape(n.role)}">'
                   f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="8" fill="{fill}" '
                   f'stroke="#444" stroke-width="{2.2 if terminal else 1.2}"/>'
                   f'<text x="{x + BOX_W / 2}" y="{y + BOX_H / 2 - 2}" text-anchor="middle" '
                   f'font-weight="600">{escape(n.label)}</text>'
                   + (f'<text x="{x + BOX_W / 2}" y="{y + BOX_H / 2 + 12}" text-anchor="middle" '
                      f'fill="#666" font-size="10">{escape(n.role)}</text>'
                      if n.role and n.role != n.label else "")
                   + "</g>")
    out.append("</svg>")
    return "".join(out)


def _edge_svg(e: Edge, pos: dict[str, tuple[float, float]], start: tuple[float, float],
              height: float) -> str:
    if e.source == START:
        if e.target not in pos:
            return ""
        tx, ty = pos[e.target]
        x1, y1, x2, y2 = start[0] + 7, start[1], tx, ty + BOX_H / 2
        return (f'<path class="jm-edge" d="M{x1},{y1} L{x2 - 1},{y2}" stroke="#555" fill="none" '
                f'marker-end="url(#jm-arrow)"/>')
    if e.source not in pos or e.target not in pos:
        return ""
    sx, sy = pos[e.source]
    tx, ty = pos[e.target]
    if tx > sx + BOX_W + GAP_X:  # over a layer: around the boxes between, below them
        x1, y1, x2, y2 = sx + BOX_W / 2, sy + BOX_H, tx, ty + BOX_H / 2
        below = max(y for node_id, (x, y) in pos.items() if sx < x < tx) + BOX_H + 12
        lane = min(height - 4, max(below, y1 + 12))
        d = (f"M{x1},{y1} C{x1},{lane} {x1 + 40},{lane} {x1 + 80},{lane} "
             f"L{x2 - GAP_X / 2},{lane} C{x2 - 20},{lane} {x2 - 30},{y2} {x2 - 1},{y2}")
        lx, ly = (x1 + x2) / 2, lane - 4
    elif tx > sx:  # to the next layer: right side to left side
        x1, y1, x2, y2 = sx + BOX_W, sy + BOX_H / 2, tx, ty + BOX_H / 2
        mx = (x1 + x2) / 2
        d = f"M{x1},{y1} C{mx},{y1} {mx},{y2} {x2 - 1},{y2}"
        lx, ly = mx, (y1 + y2) / 2 - 4
    else:  # same layer or backwards: a loop over the top
        x1, y1, x2, y2 = sx + BOX_W / 2, sy, tx + BOX_W / 2, ty
        lift = 34 + abs(x1 - x2) * 0.15
        top = min(y1, y2) - lift
        d = f"M{x1 + 12},{y1} C{x1 + 12},{top} {x2 - 12},{top} {x2 - 12},{y2 - 1}"
        lx, ly = (x1 + x2) / 2, top + 10
    label = (f'<text class="jm-edge-label" x="{lx}" y="{ly}" text-anchor="middle" fill="#333" '
             f'font-size="10" paint-order="stroke" stroke="#fff" stroke-width="3">'
             f"{escape(e.label)}</text>") if e.label else ""
    return (f'<g class="jm-transition" data-from="{escape(e.source)}" data-to="{escape(e.target)}">'
            f'<path class="jm-edge" d="{d}" stroke="#555" fill="none" '
            f'marker-end="url(#jm-arrow)"/>{label}</g>')


def render_svg(text: str) -> str:
    """Mermaid state-diagram text (the subset :func:`to_mermaid` writes) drawn as SVG."""
    return to_svg(parse_mermaid(text))
