"""The product has no test-only behaviour: the process environment reaches it only as the
documented settings of `rollguard run` (ROLLGUARD_<NAME>, each named in its --help), so no
variable can switch on hidden behaviour, and a key of the shipped ConfigMap (which the
Deployment loads whole as environment) can only ever be one of those settings. The drills
inject their faults from outside the process (tools/devenv/apiproxy.py, faultproxy.py)."""

from __future__ import annotations

import ast
import contextlib
import io
import re
from pathlib import Path

import yaml

from rollguard.cli import main

REPO = Path(__file__).resolve().parents[3]
PRODUCT = REPO / "operator" / "rollguard"
ENV_HELPER = "_env"  # rollguard/cli/run.py: the one function that reads ROLLGUARD_<NAME>


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text(), str(p))) for p in sorted(PRODUCT.rglob("*.py"))]


def _enclosing_functions(tree: ast.Module) -> dict[ast.AST, str]:
    """Each node of ``tree`` mapped to the name of the function it is in ("" at module level)."""
    owner: dict[ast.AST, str] = {}

    def visit(node: ast.AST, name: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = (
                child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else name
            )
            owner[child] = inner
            visit(child, inner)

    visit(tree, "")
    return owner


def _reads_environment(node: ast.AST) -> bool:
    if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
        return isinstance(node.value, ast.Name) and node.value.id == "os"
    if isinstance(node, ast.ImportFrom) and node.module == "os":
        return any(a.name in ("environ", "getenv", "environb") for a in node.names)
    return False


def _run_help() -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["run", "--help"]) == 0
    return out.getvalue()


def _documented() -> set[str]:
    return set(re.findall(r"ROLLGUARD_([A-Z_]+)", _run_help()))


def test_only_the_settings_helper_reads_the_environment() -> None:
    readers = []
    for path, tree in _modules():
        owner = _enclosing_functions(tree)
        for node in ast.walk(tree):
            if _reads_environment(node):
                readers.append(
                    (
                        str(path.relative_to(PRODUCT)),
                        getattr(node, "lineno", 0),
                        owner.get(node, ""),
                    )
                )
    assert readers, "the settings helper itself should be found"
    assert {(f, fn) for f, _, fn in readers} == {("cli/run.py", ENV_HELPER)}, readers


def test_every_variable_the_product_names_is_a_documented_setting() -> None:
    documented = _documented()
    assert {"PROMETHEUS_URL", "PRIORITY", "STANDALONE"} <= documented, documented
    read, named = set(), set()
    for _, tree in _modules():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == ENV_HELPER
            ):
                arg = node.args[0]
                assert isinstance(arg, ast.Constant), ast.dump(node)  # names are literals
                read.add(str(arg.value))
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                named |= set(re.findall(r"ROLLGUARD_([A-Z][A-Z_]*[A-Z])", node.value))
    assert read, "no settings read: the helper was renamed?"
    assert read <= documented, read - documented
    assert named <= documented, named - documented


def test_the_shipped_manifests_set_only_documented_settings() -> None:
    documented = _documented()
    docs = [d for d in yaml.safe_load_all((REPO / "deploy" / "operator.yaml").read_text()) if d]
    (config,) = [d for d in docs if d["kind"] == "ConfigMap"]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    keys = set(config["data"])
    for container in deployment["spec"]["template"]["spec"]["containers"]:
        keys |= {e["name"] for e in container.get("env") or []}
        for source in container.get("envFrom") or []:
            assert source.get("configMapRef", {}).get("name") == config["metadata"]["name"]
    assert keys, "the manifests set no settings at all?"
    assert all(k.startswith("ROLLGUARD_") for k in keys), keys
    assert {k.removeprefix("ROLLGUARD_") for k in keys} <= documented, keys
