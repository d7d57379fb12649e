"""The chart's static parts, without helm: CRD copies in sync, the dashboard's queries name only our
metrics (and use each of them), values.yaml valid under values.schema.json and the schema strict."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from kaib.metrics import METRIC_NAMES

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kaib"


def _load_script(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_chart_crds_are_copies_of_the_generated_crds() -> None:
    sync = _load_script("sync_chart_crds")
    assert sync.stale() == [], "run scripts/sync_chart_crds.py"
    generated = {p.name for p in (ROOT / "crds").glob("*.yaml")}
    assert generated and generated <= {p.name for p in (CHART / "crds").glob("*.yaml")}


def test_chart_ships_kopf_peering_crds() -> None:
    docs = list(yaml.safe_load_all((CHART / "crds" / "kopf.dev_peerings.yaml").read_text()))
    names = {(d["spec"]["names"]["kind"], d["spec"]["scope"]) for d in docs}
    assert names == {("ClusterKopfPeering", "Cluster"), ("KopfPeering", "Namespaced")}
    assert all(d["spec"]["group"] == "kopf.dev" for d in docs)


# --- the dashboard --------------------------------------------------------------------------------

PROMQL_WORDS = {
    "sum", "avg", "max", "min", "count", "rate", "irate", "increase", "histogram_quantile", "by",
    "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "topk", "bottomk",
    "delta", "deriv", "abs", "clamp_min", "clamp_max", "label_replace", "time", "vector", "offset",
}  # fmt: skip
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def metric_names_in(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers outside strings, label matchers, ranges
    and by/without clauses, minus PromQL's functions and keywords."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    return {w for w in words if w not in PROMQL_WORDS}


def defined(name: str) -> str | None:
    if name in METRIC_NAMES:
        return name
    for suffix in HISTOGRAM_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in METRIC_NAMES:
            return name[: -len(suffix)]
    return None


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((CHART / "dashboards" / "kaib.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_metric_name_extraction() -> None:
    expr = 'histogram_quantile(0.95, sum by (le, step) (rate(kaib_step_duration_seconds_bucket{x="up"}[5m])))'
    assert metric_names_in(expr) == {"kaib_step_duration_seconds_bucket"}
    assert metric_names_in("sum(rate(up[5m])) / 2") == {"up"}


def test_dashboard_queries_name_only_metrics_we_define() -> None:
    exprs = dashboard_exprs()
    assert exprs
    used: set[str] = set()
    for expr in exprs:
        names = metric_names_in(expr)
        assert names, f"no metric in {expr!r}"
        for name in names:
            family = defined(name)
            assert family, f"{name!r} in {expr!r} is not a metric kaib.metrics defines"
            used.add(family)
    assert used == METRIC_NAMES, f"metrics without a panel: {sorted(METRIC_NAMES - used)}"


def test_dashboard_uses_a_datasource_variable() -> None:
    dashboard = json.loads((CHART / "dashboards" / "kaib.json").read_text())
    assert dashboard["uid"] and dashboard["title"]
    assert any(v["type"] == "datasource" for v in dashboard["templating"]["list"])
    assert all(p["datasource"]["uid"] == "${datasource}" for p in dashboard["panels"])
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


# --- values.schema.json ---------------------------------------------------------------------------


def values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return loaded


def validate(candidate: dict[str, Any]) -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.validate(candidate, schema, cls=jsonschema.Draft7Validator)


def test_default_values_match_the_schema() -> None:
    validate(values())


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        (("watchNamespaces",), ["Team_A"]),
        (("workloadIdentity", "clientId"), "not-a-guid"),
        (("azure", "armEndpoint"), "http://insecure"),
        (("image", "digest"), "latest"),
        (("operator", "maxActiveBuilds"), 0),
        (("serviceMonitor", "interval"), "often"),
        (("typo",), True),
        (("operator", "unknownKey"), 1),
    ],
)
def test_schema_rejects_bad_values(path: tuple[str, ...], bad: object) -> None:
    candidate = copy.deepcopy(values())
    target = candidate
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = bad
    with pytest.raises(jsonschema.ValidationError):
        validate(candidate)


def test_every_value_is_described_by_the_schema() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert set(values()) == set(schema["properties"])


# --- scripts/kubeconform_schemas.py: the openAPIV3 -> JSON schema translation ----------------------


def test_openapi_translation_handles_kubernetes_extensions() -> None:
    schemas = _load_script("kubeconform_schemas")
    converted = schemas._json_schema(
        {
            "type": "object",
            "properties": {
                "count": {"type": "integer", "nullable": True},
                "port": {"x-kubernetes-int-or-string": True},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {}},
                "closed": {"type": "object", "properties": {"a": {"type": "string"}}},
                "map": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "x-kubernetes-validations": [{"rule": "true"}],
        }
    )
    props = converted["properties"]
    assert props["count"]["type"] == ["integer", "null"]
    assert props["port"] == {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    assert "additionalProperties" not in props["free"]
    assert props["closed"]["additionalProperties"] is False
    assert props["map"]["additionalProperties"] == {"type": "string"}
    assert "x-kubernetes-validations" not in converted and converted["additionalProperties"] is False


def test_standalone_schema_inlines_only_reachable_definitions() -> None:
    schemas = _load_script("kubeconform_schemas")
    prefix = schemas.DEFS_PREFIX
    definitions = {
        "A": {"properties": {"b": {"$ref": "#/$defs/B"}}},
        "B": {"type": "string"},
        "Unused": {"type": "integer"},
    }
    result = schemas.standalone({"properties": {"a": {"$ref": prefix + "A"}}}, definitions)
    assert result["properties"]["a"]["$ref"] == "#/$defs/A"
    assert set(result["$defs"]) == {"A", "B"}
