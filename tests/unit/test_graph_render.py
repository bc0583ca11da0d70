"""`lf graph` renderers: the tree shows every construct nested where it belongs; the Mermaid
text is a well-formed flowchart (unique ids, every edge between defined nodes, escaped labels).

Pure: the IR is built by hand, so these tests do not depend on the parser.
"""

from __future__ import annotations

import io
import re

from rich.console import Console

from localflow import ir
from localflow.cli.graph_render import flow_mermaid, flow_tree, format_duration, mermaid_escape

E = ir.Expr


def run(name: str, *argv: str, **kw) -> ir.Activity:
    return ir.Activity(name, tuple(E(a) for a in argv), kw.pop("timeout_ms", 600_000), **kw)


def flow(*body, inputs=(), timeout_ms=None) -> ir.Flow:
    return ir.Flow("Demo", tuple(inputs), tuple(body), "flows/Demo.flow", timeout_ms)


def render(renderable) -> str:
    out = io.StringIO()
    Console(file=out, width=100, color_system=None).print(renderable)
    return out.getvalue()


# One flow holding every construct of the language, each at a known place.
EVERYTHING = flow(
    run("reserve", '"bin/reserve.sh"', "order_id", timeout_ms=30_000,
        retry=ir.Retry(max_attempts=4), undo=(E('"release.sh"'), E("order_id")),
        catches=(ir.Catch("exit", (2, 3), (ir.Set("note", E('"out of stock"')),)),
                 ir.Catch("error", ("CardDeclined",), (ir.Fail(E('"declined"')),)))),
    ir.WaitSignal("approval", "approve", 30_000, (ir.Catch("timeout", (), (ir.Return(E('"late"')),)),)),
    ir.Set("total", E("amount * 2")),
    ir.If("if-1", (ir.IfBranch(E("amount > 100"), (run("review", '"review.sh"'),)),
                   ir.IfBranch(E("amount > 10"), (ir.Sleep("sleep-1", 90_000),))),
          orelse=(ir.Set("tier", E('"small"')),)),
    ir.Parallel("par-1", ((run("pack", '"pack.sh"'),), (run("label", '"label.sh"'),))),
    ir.Parallel("race-1", ((ir.Sleep("sleep-2", 2_000),), (run("poll", '"poll.sh"'),)), race=True),
    ir.For("for-1", "item", E("items"), (run("ship_item", '"ship.sh"', "item"),), concurrency=4),
    ir.ChildFlow("ship", "ShipFlow", E('{"order": order_id}')),
    ir.Return(E('{"order": order_id}')),
    inputs=(ir.Input("order_id", E('"o-1"')), ir.Input("amount"), ir.Input("items", E("[]"))),
)

NODE = re.compile(r'^    (n\d+)(\["[^"]*"\]|\{"[^"]*"\})$')
EDGE = re.compile(r"^    (n\d+) (-->|-\.->)(?:\|([^|]*)\|)? (n\d+)$")


def parse_mermaid(text: str) -> tuple[dict[str, str], list[tuple[str, str, str | None, str]]]:
    """Nodes {id: shape+label} and edges (source, arrow, label, target); fails on any other line."""
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    nodes: dict[str, str] = {}
    edges = []
    for line in lines[1:]:
        if line.startswith("    %%"):
            continue
        if m := NODE.match(line):
            assert m.group(1) not in nodes, f"duplicate node id {m.group(1)}"
            nodes[m.group(1)] = m.group(2)
        elif m := EDGE.match(line):
            edges.append((m.group(1), m.group(2), m.group(3), m.group(4)))
        else:
            raise AssertionError(f"not a node or an edge: {line!r}")
    return nodes, edges


def node_id(nodes: dict[str, str], label: str) -> str:
    [found] = [nid for nid, shape in nodes.items() if shape[2:-2] == label]
    return found


# --- durations ------------------------------------------------------------------------


def test_durations_are_written_exactly_as_in_the_dsl():
    assert [format_duration(ms) for ms in (0, 500, 2_000, 90_000, 1_500, 3_600_000, 129_600_000)] == [
        "0s", "500ms", "2s", "1m30s", "1s500ms", "1h", "1d12h"]


# --- the tree ---------------------------------------------------------------------------


def test_tree_root_names_the_flow_and_its_inputs_with_defaults():
    text = render(flow_tree(flow(ir.Return(E("1")), inputs=(ir.Input("a", E('"x"')), ir.Input("b")), timeout_ms=3_600_000)))

    assert text.splitlines()[0] == 'flow Demo (inputs: a="x", b; workflow timeout 1h)'


def test_tree_shows_a_step_with_its_command_timeout_retry_and_undo_compactly():
    text = render(flow_tree(EVERYTHING))

    assert ("step reserve: run bin/reserve.sh order_id "
            "(timeout 30s, retry 3, undo release.sh order_id)\n") in text


def test_tree_leaves_out_the_default_timeout_and_absent_retry():
    text = render(flow_tree(flow(run("a", '"a.sh"'))))

    assert "step a: run a.sh\n" in text


def test_tree_nests_every_construct_under_its_statement():
    lines = render(flow_tree(EVERYTHING)).splitlines()

    def depth_of(fragment: str) -> int:
        [line] = [ln for ln in lines if ln.lstrip("│├└─ ").startswith(fragment)]
        return (len(line) - len(line.lstrip("│├└─ "))) // 4

    expected = [
        ("step reserve:", 1), ("catch exit 2, 3", 2), ('set note = "out of stock"', 3),
        ('catch error "CardDeclined"', 2), ('fail "declined"', 3),
        ("step approval: wait signal approve (timeout 30s)", 1), ("catch timeout", 2), ('return "late"', 3),
        ("set total = amount * 2", 1),
        ("if amount > 100", 1), ("then", 2), ("step review: run review.sh", 3),
        ("elif amount > 10", 2), ("sleep 1m30s", 3), ("else", 2), ('set tier = "small"', 3),
        ("parallel", 1), ("step pack:", 3), ("step label:", 3),
        ("race (first wins)", 1), ("sleep 2s", 3), ("step poll:", 3),
        ("for item in items (parallel 4)", 1), ("step ship_item: run ship.sh item", 2),
        ('step ship: child flow ShipFlow (input {"order": order_id})', 1),
        ('return {"order": order_id}', 1),
    ]
    assert [(fragment, depth_of(fragment)) for fragment, _ in expected] == expected
    assert [ln.strip("│├└─ ") for ln in lines if "branch" in ln] == ["branch 1", "branch 2"] * 2


def test_tree_keeps_document_order():
    text = render(flow_tree(EVERYTHING))

    order = ["step reserve", "step approval", "set total", "if amount", "parallel", "race", "for item",
             "step ship:", "return {"]
    assert [text.index(s) for s in order] == sorted(text.index(s) for s in order)


def test_tree_does_not_read_brackets_in_flow_text_as_markup():
    text = render(flow_tree(flow(ir.Return(E('["[bold]x[/bold]", 1]')))))

    assert 'return ["[bold]x[/bold]", 1]' in text


# --- Mermaid ----------------------------------------------------------------------------


def test_mermaid_of_two_steps_is_a_straight_chain_from_start_to_end():
    text = flow_mermaid(flow(run("reserve", '"flows/bin/reserve.sh"', "order_id"),
                             run("charge", '"python3"', '"charge.py"')))

    assert text == (
        "flowchart TD\n"
        "    %% flow Demo\n"
        '    n1["Start"]\n'
        '    n2["step reserve: run reserve.sh order_id"]\n'
        '    n3["step charge: run python3 charge.py"]\n'
        '    n4["End"]\n'
        "    n1 --> n2\n"
        "    n2 --> n3\n"
        "    n3 --> n4\n"
    )


def test_mermaid_ids_are_unique_and_every_edge_joins_defined_nodes():
    nodes, edges = parse_mermaid(flow_mermaid(EVERYTHING))

    assert all(source in nodes and target in nodes for source, _, _, target in edges)
    assert nodes[node_id(nodes, "Start")] and nodes[node_id(nodes, "End")]
    assert not any(target == node_id(nodes, "Start") for _, _, _, target in edges)


def test_mermaid_draws_each_construct_with_its_nodes_and_labelled_edges():
    nodes, edges = parse_mermaid(flow_mermaid(EVERYTHING))
    n = lambda label: node_id(nodes, label)  # noqa: E731
    has = lambda source, target, label=None, arrow="-->": (source, arrow, label, target) in edges  # noqa: E731

    # catch: a dashed, labelled edge to the catch block, which re-joins after the step
    reserve, approval = n("step reserve: run reserve.sh order_id"), n("step approval: wait signal approve")
    assert has(reserve, n("set note = #quot;out of stock#quot;"), "catch exit 2, 3", "-.->")
    assert has(reserve, n("fail #quot;declined#quot;"), "catch error #quot;CardDeclined#quot;", "-.->")
    assert has(n("set note = #quot;out of stock#quot;"), approval) and has(reserve, approval)
    assert has(approval, n("return #quot;late#quot;"), "catch timeout", "-.->")
    # fail and return end the flow
    end = n("End")
    assert has(n("fail #quot;declined#quot;"), end) and has(n("return #quot;late#quot;"), end)
    # if: a decision with yes / elif / else edges whose ends re-join at the next statement
    decision = n("amount #62; 100")
    assert nodes[decision].startswith("{")
    assert has(n("set total = amount * 2"), decision)
    assert has(decision, n("step review: run review.sh"), "yes")
    assert has(decision, n("sleep 1m30s"), "elif amount #62; 10")
    assert has(decision, n("set tier = #quot;small#quot;"), "else")
    fork = n("parallel")
    assert all(has(last, fork) for last in (n("step review: run review.sh"), n("sleep 1m30s"),
                                             n("set tier = #quot;small#quot;")))
    # parallel: fork, one labelled edge per branch, join
    join = n("all branches done")
    assert has(fork, n("step pack: run pack.sh"), "branch 1") and has(fork, n("step label: run label.sh"), "branch 2")
    assert has(n("step pack: run pack.sh"), join) and has(n("step label: run label.sh"), join)
    # race: the same shape, labelled as a race
    race, first = n("race (first wins)"), n("first branch done")
    assert has(join, race)
    assert has(race, n("sleep 2s"), "branch 1") and has(race, n("step poll: run poll.sh"), "branch 2")
    assert has(n("sleep 2s"), first) and has(n("step poll: run poll.sh"), first)
    # for: a loop node, the body, an edge back for the next item, and a way out when done
    loop, body = n("for item in items (parallel 4)"), n("step ship_item: run ship.sh item")
    assert has(first, loop) and has(loop, body, "each item") and has(body, loop, "next item")
    child = n("step ship: child flow ShipFlow")
    assert has(loop, child, "done")
    assert has(child, n("return {#quot;order#quot;: order_id}")) and has(n("return {#quot;order#quot;: order_id}"), end)


def test_mermaid_if_without_else_falls_through_on_no():
    nodes, edges = parse_mermaid(flow_mermaid(flow(
        ir.If("if-1", (ir.IfBranch(E("ok"), (run("a", '"a.sh"'),)),)), run("b", '"b.sh"'))))

    decision, a, b = node_id(nodes, "ok"), node_id(nodes, "step a: run a.sh"), node_id(nodes, "step b: run b.sh")
    assert {(s, label, t) for s, _, label, t in edges} >= {(decision, "yes", a), (a, None, b), (decision, "no", b)}


def test_mermaid_escapes_quotes_and_syntax_characters_in_labels():
    assert mermaid_escape('say "hi" #1') == "say #quot;hi#quot; #35;1"
    assert mermaid_escape("a < b") == "a #60; b"
    assert mermaid_escape("f(x) | [y] {z}", edge=True) == "f#40;x#41; #124; #91;y#93; #123;z#125;"
    nodes, _ = parse_mermaid(flow_mermaid(flow(ir.Fail(E('f"bad {x} <b>"')))))  # no raw " inside a label

    assert node_id(nodes, "fail f#quot;bad {x} #60;b#62;#quot;")
