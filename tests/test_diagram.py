"""State diagrams: Mermaid from the spec, read back, drawn as SVG; `jobmock apis API --diagram`."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from click.testing import CliRunner

from jobmock import bundled_names, resolve_spec
from jobmock.cli import main
from jobmock.diagram import lifecycle_graph, mermaid, parse_mermaid, render_svg, to_mermaid

SVG = "{http://www.w3.org/2000/svg}"


def test_croma_lifecycle_as_mermaid_names_states_transitions_weights_and_timings() -> None:
    spec = resolve_spec("croma")
    text = mermaid(spec)
    lines = text.splitlines()
    assert lines[0] == "stateDiagram-v2"
    ids = {m.group(1): m.group(2) for m in re.finditer(r'state "([^"]+)" as (\w+)', text)}
    assert set(ids) == set(spec.lifecycle.states)
    assert f"    [*] --> {ids['queued']}" in lines
    # queued -> running carries the queued duration; running -> each outcome its probability
    lo, hi = spec.timing.queued
    assert f"    {ids['queued']} --> {ids['running']}: after {lo:g}-{hi:g} s" in lines
    total = sum(w for _, w in spec.timing.outcomes)
    rlo, rhi = spec.timing.running
    for word, weight in spec.timing.outcomes:
        assert f"    {ids['running']} --> {ids[word]}: p={weight / total:.2f}, after {rlo:g}-{rhi:g} s" \
            in lines, word
    # every allowed transition, and no other
    edges = re.findall(r"^    (s\d+) --> (s\d+)", text, re.MULTILINE)
    names = {v: k for k, v in ids.items()}
    assert {(names[a], names[b]) for a, b in edges} == {
        (a, b) for a, targets in spec.lifecycle.transitions.items() for b in targets}
    assert f"class {ids['completed']} completed" in text


@pytest.mark.parametrize("api", bundled_names())
def test_mermaid_reads_back_to_the_same_graph_and_draws_every_state_and_transition(api: str) -> None:
    spec = resolve_spec(api)
    graph = lifecycle_graph(spec)
    text = to_mermaid(graph)
    back = parse_mermaid(text)
    assert [(n.id, n.label, n.role) for n in back.nodes] == [(n.id, n.label, n.role) for n in graph.nodes]
    assert back.edges == graph.edges
    assert to_mermaid(back) == text

    root = ET.fromstring(render_svg(text))  # well-formed SVG
    assert root.tag == f"{SVG}svg"
    states = [g for g in root.iter(f"{SVG}g") if g.get("class") == "jm-state"]
    assert sorted(g.get("data-state") for g in states) == sorted(spec.lifecycle.states)
    roles = {g.get("data-state"): g.get("data-role") for g in states}
    assert roles == dict(spec.lifecycle.states)
    moves = [g for g in root.iter(f"{SVG}g") if g.get("class") == "jm-transition"]
    assert len(moves) == sum(len(t) for t in spec.lifecycle.transitions.values())
    labels = [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "jm-edge-label"]
    assert any(label and label.startswith("p=") for label in labels)


def test_a_line_mermaid_cannot_read_is_named() -> None:
    with pytest.raises(ValueError, match="line 3: cannot read 'a -> b'"):
        parse_mermaid("stateDiagram-v2\n    [*] --> a\n    a -> b\n")
    with pytest.raises(ValueError, match="starts with 'stateDiagram-v2'"):
        parse_mermaid("graph LR\n")


def test_labels_are_escaped_in_the_svg() -> None:
    svg = render_svg('stateDiagram-v2\n    state "<b>&x" as s0\n    [*] --> s0\n')
    assert "<b>" not in svg and "&lt;b&gt;&amp;x" in svg
    ET.fromstring(svg)


def test_jobmock_apis_api_diagram_prints_the_mermaid_and_needs_an_api() -> None:
    runner = CliRunner()
    done = runner.invoke(main, ["apis", "cloro", "--diagram"])
    assert done.exit_code == 0, done.output
    assert done.output == mermaid(resolve_spec("cloro"))
    missing = runner.invoke(main, ["apis", "--diagram"])
    assert missing.exit_code == 2 and "--diagram draws one API" in missing.output
    typo = runner.invoke(main, ["apis", "clor", "--diagram"])
    assert typo.exit_code == 1 and "Did you mean 'cloro'" in typo.output
