"""Property-based tests on the real apiserver: the CRDs and `kaib validate` agree on every generated case.

Every case is sent as a server-side dry-run create (nothing is stored) through the kubernetes client,
in batches on a few threads. For each case: the apiserver accepts it exactly when `kaib validate`
finds no problem; an invalid case (one known mutation, tests/strategies.py) is rejected by both,
naming the mutated field. Junk cases (any JSON somewhere in the spec) only have to get the same
verdict from both.
"""

from __future__ import annotations

import itertools
import json
import re
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from kaib.api import update_problems, validate_manifest
from kaib.api.validate_cli import MAX_MANIFEST_BYTES, MAX_OBJECT_BYTES, check_file
from tests import strategies as gen
from tests.strategies import CaseCounter, Invalid, fuzz_settings
from tests.unit.api_cases import sized

NS = "fuzz-crds"
BATCH = 10
THREADS = 4
COUNTS = CaseCounter()


@dataclass
class Verdict:
    accepted: bool
    fields: list[str]  # the field paths the apiserver named
    message: str


class Server:
    """Server-side dry-run creates of ImageTemplates and ImageBuilds."""

    def __init__(self, kube: Any, namespace: str) -> None:
        from kubernetes import client

        self.client = client
        self.api = client.CustomObjectsApi(kube.api_client())
        self.namespace = namespace
        self.pool = ThreadPoolExecutor(THREADS)
        self.names = itertools.count()

    def verdict(self, manifest: dict[str, Any]) -> Verdict:
        plural = "imagetemplates" if manifest["kind"] == "ImageTemplate" else "imagebuilds"
        try:
            self.api.create_namespaced_custom_object(
                "kaib.dev",
                "v1alpha1",
                self.namespace,
                plural,
                manifest,
                dry_run="All",
                field_validation="Strict",
            )
        except self.client.ApiException as e:
            assert e.status in (400, 422), f"apiserver answered {e.status}: {e.body}"
            body = json.loads(e.body)
            fields = [c["field"] for c in (body.get("details") or {}).get("causes") or [] if "field" in c]
            # Strict decoding (unknown fields) reports in the message only.
            fields += re.findall(r'unknown field "([^"]+)"', body["message"])
            return Verdict(False, fields, body["message"])
        return Verdict(True, [], "")

    def verdicts(self, manifests: list[dict[str, Any]]) -> list[Verdict]:
        return list(self.pool.map(self.verdict, manifests))

    def update_verdict(self, pair: tuple[dict[str, Any], dict[str, Any]]) -> Verdict:
        """Create `old` for real, then replace it with `new` as a dry run; delete `old` again."""
        old, new = pair
        plural = "imagetemplates" if old["kind"] == "ImageTemplate" else "imagebuilds"
        name = f"upd-{next(self.names)}"
        args = ("kaib.dev", "v1alpha1", self.namespace, plural)
        created = self.api.create_namespaced_custom_object(*args, {**old, "metadata": {"name": name}})
        metadata = {"name": name, "resourceVersion": created["metadata"]["resourceVersion"]}
        try:
            self.api.replace_namespaced_custom_object(
                *args, name, {**new, "metadata": metadata}, dry_run="All", field_validation="Strict"
            )
        except self.client.ApiException as e:
            assert e.status == 422, f"apiserver answered {e.status}: {e.body}"
            body = json.loads(e.body)
            fields = [c["field"] for c in body["details"].get("causes") or [] if "field" in c]
            return Verdict(False, fields, body["message"])
        finally:
            self.api.delete_namespaced_custom_object(*args, name)
        return Verdict(True, [], "")


@pytest.fixture(scope="module")
def server(kube: Any, request: pytest.FixtureRequest) -> Iterator[Server]:
    started = time.monotonic()
    srv = Server(kube, kube.namespace(NS))
    yield srv
    srv.pool.shutdown()
    COUNTS.print(request.config, f"apiserver fuzzing ({time.monotonic() - started:.1f}s)")


def _batch(strategy: st.SearchStrategy[Any], size: int = BATCH) -> st.SearchStrategy[list[Any]]:
    return st.lists(strategy, min_size=size, max_size=size)


def _check_agreement(manifest: dict[str, Any], verdict: Verdict) -> list[str]:
    problems = validate_manifest(manifest)
    assert verdict.accepted == (problems == []), (
        f"apiserver {'accepted' if verdict.accepted else 'rejected'}, kaib validate found {problems}; "
        f"apiserver: {verdict.message}\nmanifest: {manifest}"
    )
    return [path for path, _ in problems]


def _check_invalid(server: Server, cases: list[Invalid], kind: str) -> None:
    for case, verdict in zip(cases, server.verdicts([c.manifest for c in cases]), strict=True):
        COUNTS[kind] += 1
        event(case.mutation)
        paths = _check_agreement(case.manifest, verdict)
        assert not verdict.accepted, f"{case.mutation} at {case.path} was accepted by both"
        assert case.named_by(verdict.fields), (case.mutation, case.path, verdict.message)
        assert case.named_by(paths), (case.mutation, case.path, paths)


@fuzz_settings(25)
@given(_batch(gen.templates()))
def test_valid_templates_are_accepted(server: Server, batch: list[dict[str, Any]]) -> None:
    for manifest, verdict in zip(batch, server.verdicts(batch), strict=True):
        COUNTS["valid template"] += 1
        _check_agreement(manifest, verdict)


@fuzz_settings(50)
@given(_batch(gen.invalid_templates()))
def test_invalid_templates_are_rejected_naming_the_field(server: Server, batch: list[Invalid]) -> None:
    _check_invalid(server, batch, "invalid template")


@fuzz_settings(5)
@given(_batch(gen.builds()))
def test_valid_builds_are_accepted(server: Server, batch: list[dict[str, Any]]) -> None:
    for manifest, verdict in zip(batch, server.verdicts(batch), strict=True):
        COUNTS["valid build"] += 1
        _check_agreement(manifest, verdict)


@fuzz_settings(5)
@given(_batch(gen.invalid_builds()))
def test_invalid_builds_are_rejected_naming_the_field(server: Server, batch: list[Invalid]) -> None:
    _check_invalid(server, batch, "invalid build")


@fuzz_settings(15)
@given(_batch(gen.junk_templates()))
def test_junk_gets_the_same_verdict(server: Server, batch: list[tuple[dict[str, Any], str]]) -> None:
    manifests = [m for m, _ in batch]
    for manifest, verdict in zip(manifests, server.verdicts(manifests), strict=True):
        COUNTS["junk template"] += 1
        _check_agreement(manifest, verdict)


@fuzz_settings(10)
@given(_batch(gen.junk_status()))
def test_any_status_gets_the_same_verdict(server: Server, batch: list[dict[str, Any]]) -> None:
    for manifest, verdict in zip(batch, server.verdicts(batch), strict=True):
        COUNTS["junk status"] += 1
        _check_agreement(manifest, verdict)


@pytest.mark.parametrize("kind", ["ImageTemplate", "ImageBuild"])
def test_updates_get_the_same_verdict(server: Server, kind: str) -> None:
    """The transition rules (azure and stagingResourceGroup fixed; ImageBuild immutable but cancel)."""
    updates = gen.template_updates() if kind == "ImageTemplate" else gen.build_updates()

    # Small batches: ten pairs of large hostile templates overrun hypothesis's per-example budget.
    @fuzz_settings(25)
    @given(_batch(updates, 4))
    def check(batch: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        for (old, new), verdict in zip(batch, server.pool.map(server.update_verdict, batch), strict=True):
            COUNTS[f"{kind} update"] += 1
            problems = update_problems(old, new)
            assert verdict.accepted == (problems == []), (problems, verdict.message, old, new)
            if problems:
                COUNTS[f"{kind} update: refused"] += 1
                assert {path for path, _ in problems} <= set(verdict.fields), (problems, verdict.message)

    check()


def test_the_size_kaib_validate_allows_is_what_kubernetes_stores(server: Server) -> None:
    """`kaib validate`'s size limit, checked on real etcd: its largest manifest is stored, 1.5 MiB is not."""
    args = ("kaib.dev", "v1alpha1", server.namespace, "imagetemplates")
    largest = sized("largest", MAX_MANIFEST_BYTES)
    assert validate_manifest(largest) == [] and not check_file_lines(largest)
    server.api.create_namespaced_custom_object(*args, largest)
    server.api.delete_namespaced_custom_object(*args, "largest")
    too_large = sized("too-large", MAX_OBJECT_BYTES)
    assert validate_manifest(too_large) == [] and check_file_lines(too_large)
    with pytest.raises(server.client.exceptions.ApiException, match="request is too large"):
        server.api.create_namespaced_custom_object(*args, too_large)


def check_file_lines(doc: dict[str, Any]) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.json"
        path.write_text(json.dumps(doc))
        return check_file(str(path))
