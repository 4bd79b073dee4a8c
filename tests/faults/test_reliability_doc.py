"""docs/reliability.md's table and the fault suite agree: every test the table names exists in
tests/faults/, every fault test is in the table, and every row from 1 up has a test."""

import ast
import re
from pathlib import Path

import pytest

HERE = Path(__file__).parent
DOC = HERE.parents[1] / "docs" / "reliability.md"
ROW = re.compile(r"^\| (\d+) \|.*\| `(test_\w+)` \|$")


def documented() -> dict[str, int]:
    rows = {}
    for line in DOC.read_text().splitlines():
        if match := ROW.match(line):
            rows[match.group(2)] = int(match.group(1))
    return rows


def fault_tests() -> set[str]:
    names = set()
    for path in HERE.glob("test_*.py"):
        if path.name == Path(__file__).name:
            continue
        tree = ast.parse(path.read_text())
        names |= {node.name for node in tree.body if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")}
    return names


@pytest.mark.faults
def test_the_reliability_table_names_every_fault_test_and_nothing_else():
    rows = documented()
    tests = fault_tests()
    assert sorted(set(rows) - tests) == [], "the table names tests that do not exist in tests/faults/"
    assert sorted(tests - set(rows)) == [], "fault tests missing from docs/reliability.md"
    assert sorted(set(rows.values())) == list(range(1, max(rows.values()) + 1)), "every row from 1 up has a test"
