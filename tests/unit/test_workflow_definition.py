"""A workflow definition is checked before anything is written, naming the offending step."""

from __future__ import annotations

import pytest

from workflows.definition import InvalidWorkflow, resolve_dependencies


def test_dependencies_by_name_or_index_resolve_to_indices():
    assert resolve_dependencies(["a", "b", "c"], [[], ["a"], [0, "b"]]) == [(), (0,), (0, 1)]


@pytest.mark.parametrize(
    ("names", "depends_on", "code", "field"),
    [
        ([], [], "no_steps", "steps"),
        (["a", "b"], [[], ["zzz"]], "unknown_step", "steps.1.depends_on"),
        (["a"], [["a"]], "self_dependency", "steps.0.depends_on"),
        (["a", "b"], [["b"], ["a"]], "dependency_cycle", None),
    ],
)
def test_bad_definitions_are_refused_with_a_code(names, depends_on, code, field):
    with pytest.raises(InvalidWorkflow) as refused:
        resolve_dependencies(names, depends_on)
    assert refused.value.code == code
    assert refused.value.http_status == 400
    if field is not None:
        assert refused.value.field == field
