"""ImageTemplate reconciliation: validation status, autoRun, and what deletion does to builds.

Template deletion while builds run (decided here, tested in the engine tests): the template's
Queued and Running builds are canceled (spec.cancel), and the template's finalizer waits until
none of them is active, because a build cleans up inside the template's staging group. Finished
builds stay, as Jobs stay after their CronJob's edits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kaib.api.defaults import source_summary, topology
from kaib.api.manifest import InvalidManifest, parse_template_spec
from kaib.controller import conditions as c
from kaib.controller.kube import BUILDS, GROUP, TEMPLATES, VERSION, Kube

ACTIVE = frozenset({"", "Queued", "Running", "Canceling"})


def validation_status(template: Mapping[str, Any], now: str) -> dict[str, Any]:
    """Ready when the spec is valid, Stalled with every problem otherwise (pure)."""
    spec = template.get("spec") or {}
    generation = (template.get("metadata") or {}).get("generation")
    current = (template.get("status") or {}).get("conditions")
    out: dict[str, Any] = {"observedGeneration": generation}
    try:
        parse_template_spec(spec)
    except InvalidManifest as exc:
        message = "; ".join(f"{path}: {problem}" for path, problem in exc.problems)
        out["message"] = f"invalid template: {message}"
        out["conditions"] = c.summarize(
            current,
            state="stalled",
            reason="InvalidSpec",
            message=out["message"],
            generation=generation,
            now=now,
        )
        return out
    out["message"] = "valid"
    out["topology"] = topology(dict(spec))
    out["sourceSummary"] = source_summary(dict(spec))
    out["conditions"] = c.summarize(
        current,
        state="succeeded",
        reason="Valid",
        message="the template is valid",
        generation=generation,
        now=now,
    )
    return out


def autorun_build(template: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ImageBuild autoRun creates (AIB: run on creation), or None."""
    spec = template.get("spec") or {}
    if ((spec.get("autoRun") or {}).get("state")) != "Enabled":
        return None
    meta = template["metadata"]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ImageBuild",
        "metadata": {
            "name": f"{meta['name'][:240]}-autorun",
            "namespace": meta["namespace"],
            "labels": {"kaib.dev/template": meta["name"][:63], "kaib.dev/trigger": "autoRun"},
        },
        "spec": {"templateRef": {"name": meta["name"]}},
    }


async def auto_run(kube: Kube, template: Mapping[str, Any]) -> str | None:
    build = autorun_build(template)
    if build is None:
        return None
    created = await kube.create(BUILDS, build["metadata"]["namespace"], build)
    return str(build["metadata"]["name"]) if created is not None else None


async def cancel_builds(kube: Kube, namespace: str, template: str) -> list[str]:
    """Cancel the template's unfinished builds; the names of those still active."""
    active = []
    for build in await kube.list(BUILDS, namespace):
        if ((build.get("spec") or {}).get("templateRef") or {}).get("name") != template:
            continue
        phase = str((build.get("status") or {}).get("phase") or "")
        if phase not in ACTIVE:
            continue
        name = build["metadata"]["name"]
        if not (build.get("spec") or {}).get("cancel"):
            await kube.patch(BUILDS, namespace, name, {"spec": {"cancel": True}})
        active.append(name)
    return active


async def record_last_build(kube: Kube, build: Mapping[str, Any], status: Mapping[str, Any]) -> None:
    """The template's status.lastBuild: the build that last started or finished (best effort)."""
    meta = build["metadata"]
    template = ((build.get("spec") or {}).get("templateRef") or {}).get("name")
    if not template:
        return
    last = {"name": meta["name"], "phase": status.get("phase")}
    for key in ("startTime", "endTime"):
        if status.get(key):
            last[key] = status[key]
    try:
        await kube.patch_status(TEMPLATES, meta["namespace"], str(template), {"lastBuild": last})
    except Exception:  # the template may be gone; the build's own status is what matters
        return
