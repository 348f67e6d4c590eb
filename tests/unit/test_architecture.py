"""The house plan (docs/architecture.md), checked: a unit of work is opened only in the use-case layer."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("bridge", "webhooks", "sync")


def opens_a_unit_of_work(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in (
            "unit_of_work",
            "sessions",  # `sessions()`: a session opened by hand
        ):
            return True
    return False


def test_units_of_work_are_opened_only_in_the_use_case_layer():
    outside = [
        str(path.relative_to(ROOT))
        for package in SHIPPED
        for path in (ROOT / package).rglob("*.py")
        if "usecases" not in path.parts
        and "migrations" not in path.parts
        and path.name != "db.py"
        and opens_a_unit_of_work(path)
    ]
    assert outside == []
