"""Hypothesis strategies for kaib manifests: valid ImageTemplates and ImageBuilds, and invalid ones.

The valid generators cover every source type, customizer, validator, distribution type, versioning
scheme, identity and network topology, with hostile strings (quotes, `${...}`, `%{`, `{{`,
backslashes, newlines, NUL, non-ASCII, lengths at the schema's maxLength) in every free-text field
and inside the free segments of resource ids. They are useful beyond fuzzing: the engine's tests
can draw specs for one OS or one topology (e.g. "never a stuck build" over `templates(...)`).

    template_specs(os_type=None, topology=None, hostile=True) -> spec dicts (AIB names), valid;
                           os_type "Linux"/"Windows" keeps steps and source to what that OS renders
    templates(...)      -> whole ImageTemplate manifests (same arguments)
    builds()            -> ImageBuild manifests, valid
    invalid_templates() -> Invalid(manifest, path, mutation): a valid template changed in exactly one
                           way that both the CRD and `kaib validate` must reject, naming `path`
    invalid_builds()    -> the same for ImageBuild
    junk_templates()    -> (manifest, path): a valid template with one node under spec replaced by any
                           JSON; whether it is valid is not known in advance ("never crashes",
                           "the apiserver and kaib validate agree")
    junk_in(base, key)  -> the same for any document strategy, under one top-level key ("" anywhere)
    junk_status()       -> a valid template or build with any JSON as its status
    template_updates(), build_updates() -> (old, new) pairs for the update (transition) rules
    fuzz_settings(n)    -> the settings every fuzz test uses: derandomized, no deadline, n examples
                           times KAIB_FUZZ_SCALE; KAIB_FUZZ_SHRINK=0 skips shrinking
    CaseCounter         -> counts of generated cases, printed at the end of a test module

Paths are written the way `kaib validate` and the apiserver write them: spec.customize[0].inline.
Invalid cases come from two kinds of mutation: structural ones found by walking the value against
the generated CRD schema (unknown field, wrong type, too long or too short, not in the enum, pattern,
bounds, beyond int64, too many or too few items, a required field removed), and one per cross-field
rule, union membership and object-name rule (written out in `rule_mutations`).
"""

from __future__ import annotations

import copy
import json
import os
import typing
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from kaib.api import crd
from kaib.api import template as api
from kaib.api.common import MAX_ID, MAX_SHORT, MAX_TEXT

Json = Any
Spec = dict[str, Any]
Draw = Callable[[st.SearchStrategy[Any]], Any]

# -- settings of the property-based tests --------------------------------------------------------------

# Multiplies every fuzz test's number of examples, e.g. KAIB_FUZZ_SCALE=10 for a long local run.
FUZZ_SCALE = float(os.environ.get("KAIB_FUZZ_SCALE", "1"))


# KAIB_FUZZ_SHRINK=0 reports a failing case as generated: shrinking the long hostile strings can take
# minutes.
_PHASES = tuple(Phase) if os.environ.get("KAIB_FUZZ_SHRINK", "1") != "0" else (Phase.explicit, Phase.generate)


def fuzz_settings(max_examples: int) -> settings:
    """Derandomized (the same cases every run, so a CI failure reproduces), no deadline (shared CPUs)."""
    return settings(
        phases=_PHASES,
        max_examples=max(1, int(max_examples * FUZZ_SCALE)),
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


class CaseCounter(Counter[str]):
    """Generated cases by kind, for the tests to print. Keys with a ':' ("render Linux: refused")
    count a subset of another key's cases, so they are not added to the total."""

    def summary(self, title: str) -> str:
        parts = ", ".join(f"{k} {v}" for k, v in sorted(self.items()))
        total = sum(v for k, v in self.items() if ":" not in k)
        return f"{title}: {total} generated cases ({parts})"

    def print(self, config: Any, title: str) -> None:
        """Print the summary past pytest's output capture (so CI logs show the counts)."""
        if not self:
            return
        capture = config.pluginmanager.getplugin("capturemanager")
        if capture is None:
            print(self.summary(title))
            return
        with capture.global_and_fixture_disabled():
            print("\n" + self.summary(title))


# -- strings ------------------------------------------------------------------------------------------

# Pieces that break naive quoting in YAML, JSON, HCL, Go templates, shells, PowerShell and CEL.
HOSTILE = (
    '"',
    "'",
    "`",
    "\\",
    "\\\\",
    '\\"',
    "${HOME}",
    "$${x}",
    "%{ if true }",
    "{{ .Path }}",
    "{{",
    "}}",
    "$(id)",
    "$env:PATH",
    "\n",
    "\r\n",
    "\t",
    "\x00",
    "\x7f",
    "é",
    "日本語",
    "🚀",
    "\u202e",
    "\u2028",
    "\ufeff",
    "K",  # Kelvin sign: lowercases to an ASCII 'k' outside ASCII rules
    "[x]",
    "[[x]",
    "# ",
    ";",
    "&&",
    "|",
    "<>",
    "*",
    " ",
    "--x",
    "%s",
    "null",
    "true",
    "~",
)

_ANY_CHAR = st.characters(codec="utf-8")  # every code point JSON can carry (no lone surrogates)


def _fill(piece: str, size: int) -> str:
    """`piece` repeated to exactly `size` code points."""
    if size <= 0:
        return ""
    return (piece * (size // len(piece) + 1))[:size]


@cache
def text(max_size: int, *, min_size: int = 0, hostile: bool = True) -> st.SearchStrategy[str]:
    """A string of min_size..max_size code points: hostile pieces, any characters, or at the maximum."""
    if not hostile:
        return st.text(
            st.characters(min_codepoint=0x61, max_codepoint=0x7A), min_size=max(min_size, 1), max_size=12
        )
    pieces = st.lists(st.one_of(st.sampled_from(HOSTILE), st.text(_ANY_CHAR, max_size=8)), max_size=6).map(
        "".join
    )
    at_max = st.builds(
        lambda piece, short_by: _fill(piece, max_size - short_by),
        st.sampled_from((*HOSTILE, "x", "é", "🚀")),
        st.integers(0, 2),
    )
    return st.one_of(pieces, at_max).map(lambda s: (s + _fill("x", min_size - len(s)))[:max_size])


@cache
def short(hostile: bool = True) -> st.SearchStrategy[str]:
    return text(MAX_SHORT, hostile=hostile)


@cache
def long_text(hostile: bool = True) -> st.SearchStrategy[str]:
    return text(MAX_TEXT, hostile=hostile)


@cache
def uri(hostile: bool = True, min_size: int = 0) -> st.SearchStrategy[str]:
    """A free-text URL field (scriptUri, sourceUri, uri, destination): no pattern, MAX_ID long."""
    plain = st.sampled_from(["https://example.com/s.sh", "https://a.blob.core.windows.net/c/x%20y.ps1"])
    return st.one_of(plain, text(MAX_ID, min_size=min_size, hostile=hostile)) if hostile else plain


def no_action(value: str) -> str:
    """`value` without `{{` (same length): for the fields Packer Go-templates, where the API refuses it."""
    return value.replace("{{", "{x")


@cache
def segment(hostile: bool = True) -> st.SearchStrategy[str]:
    """A free segment of an ARM id (`[^/]+`): anything but '/', at least one character."""
    return text(40, min_size=1, hostile=hostile).map(lambda s: s.replace("/", "_"))


@cache
def _cased(word: str) -> st.SearchStrategy[str]:
    # ARM ids are case-insensitive: the patterns use (?i).
    return st.sampled_from([word, word.lower(), word.upper()])


@cache
@st.composite
def arm_id(draw: Draw, *parts: str, hostile: bool = True, optional_tail: int = 0) -> str:
    """`/a/{}/b/{}...`: fixed words in any ASCII case, '{}' a free segment. Sometimes MAX_ID long.

    `optional_tail` trailing parts may be left out (e.g. `versions/{}` of a gallery image id).
    """
    if optional_tail and draw(st.booleans()):
        parts = parts[:-optional_tail]
    out = [draw(segment(hostile)) if p == "{}" else draw(_cased(p)) for p in parts]
    value = "/" + "/".join(out)
    if parts[-1] == "{}" and len(value) > MAX_ID:
        value = value[:MAX_ID]
    if parts[-1] == "{}" and draw(st.integers(0, 9)) == 0:
        value += _fill("x", MAX_ID - len(value) - draw(st.integers(0, 1)))  # at (or one under) MAX_ID
    return value


_SUB_RG = ("subscriptions", "{}", "resourceGroups", "{}")


@cache
def image_id(hostile: bool = True) -> st.SearchStrategy[str]:
    return arm_id(*_SUB_RG, "providers", "Microsoft.Compute", "images", "{}", hostile=hostile)


@cache
def gallery_image_id(hostile: bool = True) -> st.SearchStrategy[str]:
    return arm_id(
        *_SUB_RG,
        "providers",
        "Microsoft.Compute",
        "galleries",
        "{}",
        "images",
        "{}",
        "versions",
        "{}",
        hostile=hostile,
        optional_tail=2,
    )


@cache
def image_version_id(hostile: bool = True) -> st.SearchStrategy[str]:
    return st.one_of(
        arm_id(
            *_SUB_RG,
            "providers",
            "Microsoft.Compute",
            "galleries",
            "{}",
            "images",
            "{}",
            "versions",
            "{}",
            hostile=hostile,
        ),
        arm_id("SharedGalleries", "{}", "images", "{}", "versions", "{}", hostile=hostile),
        arm_id("CommunityGalleries", "{}", "images", "{}", "versions", "{}", hostile=hostile),
    )


@cache
def subnet_id(hostile: bool = True) -> st.SearchStrategy[str]:
    return arm_id(
        *_SUB_RG, "providers", "Microsoft.Network", "virtualNetworks", "{}", "subnets", "{}", hostile=hostile
    )


@cache
def identity_id(hostile: bool = True) -> st.SearchStrategy[str]:
    return arm_id(
        *_SUB_RG, "providers", "Microsoft.ManagedIdentity", "userAssignedIdentities", "{}", hostile=hostile
    )


@cache
def resource_group_id(hostile: bool = True) -> st.SearchStrategy[str]:
    return arm_id(*_SUB_RG, hostile=hostile)


SUB = "00000000-0000-0000-0000-000000000001"  # a subscription id for tests that need a fixed one
GUIDS = st.uuids().flatmap(lambda u: st.sampled_from([str(u), str(u).upper()]))
_LOWER_DIGITS = "abcdefghijklmnopqrstuvwxyz0123456789"
LOCATIONS = st.one_of(
    st.sampled_from(["eastus", "westeurope", "swedencentral"]),
    st.text(_LOWER_DIGITS, min_size=1, max_size=64),
)
RUN_OUTPUT_NAMES = st.text(_LOWER_DIGITS + "ABCDEFGHIJKLMNOPQRSTUVWXYZ_.-", min_size=1, max_size=64)
DURATIONS = st.from_regex(r"([0-9]{1,4}(\.[0-9]{1,3})?(ns|us|ms|s|m|h)){1,3}", fullmatch=True)
# metadata.name as the apiserver wants it (DNS-1123 subdomain), within AIB's 64 characters.
_LABEL = r"[a-z0-9]([-a-z0-9]{0,8}[a-z0-9])?"
K8S_NAMES = st.from_regex(rf"{_LABEL}(\.{_LABEL}){{0,3}}", fullmatch=True).filter(lambda s: len(s) <= 64)
SHA256 = st.one_of(st.text("0123456789abcdefABCDEF", min_size=64, max_size=64), st.just(""))
INT64 = st.integers(-(2**63), 2**63 - 1)


def _opt(
    required: dict[str, st.SearchStrategy[Any]], optional: dict[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(required, optional=optional)


@cache
def tags(hostile: bool = True) -> st.SearchStrategy[dict[str, str]]:
    return st.dictionaries(text(64, hostile=hostile), short(hostile), max_size=3)


# -- spec pieces --------------------------------------------------------------------------------------

WINDOWS_PUBLISHERS = ("MicrosoftWindowsServer", "MicrosoftWindowsDesktop", "microsoftvisualstudio")


@cache
def platform_source(os_type: str | None, hostile: bool) -> st.SearchStrategy[Spec]:
    if os_type == "Windows":
        publisher = st.sampled_from(WINDOWS_PUBLISHERS)
    elif os_type == "Linux":
        publisher = st.one_of(st.sampled_from(["Canonical", "RedHat"]), short(hostile)).filter(
            lambda p: p.lower() not in {w.lower() for w in WINDOWS_PUBLISHERS}
        )
    else:
        publisher = st.one_of(st.sampled_from(WINDOWS_PUBLISHERS), short(hostile))
    plan = st.one_of(
        st.just({}),
        st.fixed_dictionaries(
            {"planName": short(hostile), "planProduct": short(hostile), "planPublisher": short(hostile)}
        ),
    )
    return _opt(
        {
            "type": st.just("PlatformImage"),
            "publisher": publisher,
            "offer": short(hostile),
            "sku": short(hostile),
            "version": st.one_of(st.just("latest"), short(hostile)),
        },
        {"planInfo": plan},
    )


@cache
def sources(os_type: str | None = None, hostile: bool = True) -> st.SearchStrategy[Spec]:
    return st.one_of(
        platform_source(os_type, hostile),
        st.fixed_dictionaries({"type": st.just("ManagedImage"), "imageId": image_id(hostile)}),
        st.fixed_dictionaries(
            {"type": st.just("SharedImageVersion"), "imageVersionId": image_version_id(hostile)}
        ),
    )


@cache
def _script(kind: str, hostile: bool) -> st.SearchStrategy[Spec]:
    """A Shell or PowerShell step: exactly one of scriptUri and inline."""
    common = {"name": short(hostile), "sha256Checksum": SHA256}
    if kind == "PowerShell":
        common["validExitCodes"] = st.lists(INT64, max_size=3)
    body = st.one_of(
        st.fixed_dictionaries({"scriptUri": uri(hostile, min_size=1)}),
        st.fixed_dictionaries({"inline": st.lists(long_text(hostile), min_size=1, max_size=3)}),
    )
    step = _opt({"type": st.just(kind)}, common)
    return st.builds(lambda s, b: {**s, **b}, step, body)


@cache
def shell_steps(hostile: bool = True) -> st.SearchStrategy[Spec]:
    return _script("Shell", hostile)


@cache
@st.composite
def powershell_steps(draw: Draw, hostile: bool = True) -> Spec:
    step: Spec = draw(_script("PowerShell", hostile))
    # runAsSystem true only with runElevated true; false is always allowed.
    elevated = draw(st.sampled_from([None, False, True]))
    system = draw(st.sampled_from([None, False, True] if elevated else [None, False]))
    if elevated is not None:
        step["runElevated"] = elevated
    if system is not None:
        step["runAsSystem"] = system
    return step


@cache
def file_steps(hostile: bool = True) -> st.SearchStrategy[Spec]:
    return _opt(
        {
            "type": st.just("File"),
            "sourceUri": uri(hostile, min_size=1),
            "destination": st.one_of(st.just("/tmp/f"), uri(hostile, min_size=1).map(no_action)),
        },
        {"name": short(hostile), "sha256Checksum": SHA256},
    )


@cache
def windows_restart_steps(hostile: bool = True) -> st.SearchStrategy[Spec]:
    return _opt(
        {"type": st.just("WindowsRestart")},
        {
            "name": short(hostile),
            "restartCommand": long_text(hostile).map(no_action),
            "restartCheckCommand": long_text(hostile).map(no_action),
            "restartTimeout": DURATIONS,
        },
    )


@cache
def windows_update_steps(hostile: bool = True) -> st.SearchStrategy[Spec]:
    return _opt(
        {"type": st.just("WindowsUpdate")},
        {
            "name": short(hostile),
            "searchCriteria": long_text(hostile).map(no_action),
            "filters": st.lists(text(api.MAX_FILTER, hostile=hostile).map(no_action), max_size=3),
            "updateLimit": st.integers(0, 2**63 - 1),
        },
    )


@cache
def customizers(os_type: str | None = None, hostile: bool = True) -> st.SearchStrategy[Spec]:
    linux = [shell_steps(hostile), file_steps(hostile)]
    windows = [
        powershell_steps(hostile),
        file_steps(hostile),
        windows_restart_steps(hostile),
        windows_update_steps(hostile),
    ]
    return st.one_of(
        *{"Linux": linux, "Windows": windows}.get(os_type or "", [*linux, *windows[:1], *windows[2:]])
    )


@cache
def validators(os_type: str | None = None, hostile: bool = True) -> st.SearchStrategy[Spec]:
    linux = [shell_steps(hostile), file_steps(hostile)]
    windows = [powershell_steps(hostile), file_steps(hostile)]
    return st.one_of(*{"Linux": linux, "Windows": windows}.get(os_type or "", [*linux, windows[0]]))


@cache
def validate_blocks(os_type: str | None = None, hostile: bool = True) -> st.SearchStrategy[Spec]:
    return _opt(
        {},
        {
            "continueDistributeOnFailure": st.booleans(),
            "sourceValidationOnly": st.booleans(),
            "inVMValidations": st.lists(validators(os_type, hostile), max_size=3),
        },
    )


@cache
def _shared_image(hostile: bool) -> st.SearchStrategy[Spec]:
    region = _opt(
        {"name": short(hostile)},
        {
            "replicaCount": st.integers(1, 2**63 - 1),
            "storageAccountType": st.sampled_from(["Standard_LRS", "Standard_ZRS", "Premium_LRS"]),
        },
    )
    versioning = st.one_of(
        _opt({"scheme": st.just("Latest")}, {"major": st.integers(-1, 2**63 - 1)}),
        st.just({"scheme": "Source"}),
    )
    # targetRegions, or the deprecated replicationRegions (+ storageAccountType), or neither.
    regions = st.one_of(
        st.just({}),
        st.fixed_dictionaries({"targetRegions": st.lists(region, max_size=3)}),
        _opt(
            {"replicationRegions": st.lists(short(hostile), max_size=3)},
            {"storageAccountType": st.sampled_from(["Standard_LRS", "Standard_ZRS", "Premium_LRS"])},
        ),
    )
    base = _opt(
        {"type": st.just("SharedImage"), "galleryImageId": gallery_image_id(hostile)},
        {"excludeFromLatest": st.booleans(), "versioning": versioning, "artifactTags": tags(hostile)},
    )
    return st.builds(lambda b, r: {**b, **r}, base, regions)


@cache
def distributor_bodies(hostile: bool = True) -> st.SearchStrategy[Spec]:
    """A distributor without its runOutputName."""
    return st.one_of(
        _opt(
            {"type": st.just("ManagedImage"), "imageId": image_id(hostile), "location": short(hostile)},
            {"artifactTags": tags(hostile)},
        ),
        _shared_image(hostile),
        _opt({"type": st.just("VHD")}, {"uri": uri(hostile), "artifactTags": tags(hostile)}),
    )


@cache
def distributes(hostile: bool = True) -> st.SearchStrategy[list[Spec]]:
    names = st.lists(RUN_OUTPUT_NAMES, min_size=1, max_size=3, unique=True)
    return names.flatmap(
        lambda ns: st.tuples(*[distributor_bodies(hostile) for _ in ns]).map(
            lambda bodies: [{**b, "runOutputName": n} for n, b in zip(ns, bodies, strict=True)]
        )
    )


def _other_case(value: str) -> str:
    """The same id with its non-ASCII letters in the other case: a different subnet to CEL's lowerAscii."""
    # Only one-to-one swaps ('ß' becomes 'SS'), so that the length, bounded by the schema, stays.
    return "".join(c.swapcase() if not c.isascii() and len(c.swapcase()) == 1 else c for c in value)


@cache
@st.composite
def vnet_configs(draw: Draw, topology: str | None = None, hostile: bool = True) -> Spec | None:
    """None or a vnetConfig for the topology (NoVNet, SubnetOnly, SubnetAndACI; any when None)."""
    topology = topology or draw(st.sampled_from(["NoVNet", "SubnetOnly", "SubnetAndACI"]))
    size = short(hostile)
    if topology == "NoVNet":
        return draw(st.one_of(st.none(), _opt({}, {"proxyVmSize": size})))
    subnet = draw(subnet_id(hostile))
    if topology == "SubnetOnly":
        return draw(_opt({"subnetId": st.just(subnet)}, {"proxyVmSize": size}))
    aci = draw(subnet_id(hostile).filter(lambda s: s.lower() != subnet.lower()))
    if _other_case(subnet) != subnet and draw(st.booleans()):
        aci = _other_case(subnet)
    out: Spec = {"subnetId": subnet, "containerInstanceSubnetId": aci}
    if draw(st.booleans()):
        out["proxyVmSize"] = ""
    return out


@cache
@st.composite
def vm_profiles(draw: Draw, topology: str | None = None, hostile: bool = True) -> Spec | None:
    profile: Spec = draw(
        _opt(
            {},
            {
                "vmSize": short(hostile),
                "osDiskSizeGB": st.integers(0, 2**63 - 1),
                "userAssignedIdentities": st.lists(identity_id(hostile), max_size=2),
            },
        )
    )
    vnet = draw(vnet_configs(topology, hostile))
    if vnet is not None:
        profile["vnetConfig"] = vnet
    elif topology is None and not profile and draw(st.booleans()):
        return None
    return profile


@cache
def identities(hostile: bool = True) -> st.SearchStrategy[Spec]:
    assigned = _opt({}, {"principalId": short(hostile), "clientId": short(hostile)})
    return st.one_of(
        st.just({"type": "None"}),
        st.just({"type": "None", "userAssignedIdentities": {}}),
        st.builds(
            lambda k, v: {"type": "UserAssigned", "userAssignedIdentities": {k: v}},
            identity_id(hostile),
            assigned,
        ),
    )


@cache
def _optional_spec_fields(os_type: str | None, hostile: bool) -> st.SearchStrategy[Spec]:
    state = st.sampled_from(["Enabled", "Disabled"])
    on_error = st.sampled_from(["cleanup", "abort"])
    return _opt(
        {},
        {
            "customize": st.lists(customizers(os_type, hostile), max_size=4),
            "validate": validate_blocks(os_type, hostile),
            "optimize": _opt({}, {"vmBoot": _opt({}, {"state": state})}),
            "errorHandling": _opt({}, {"onCustomizerError": on_error, "onValidationError": on_error}),
            "buildTimeoutInMinutes": st.one_of(st.just(0), st.integers(6, 960)),
            "stagingResourceGroup": resource_group_id(hostile),
            "managedResourceTags": tags(hostile),
            "autoRun": _opt({}, {"state": state}),
            "identity": identities(hostile),
        },
    )


@cache
@st.composite
def template_specs(
    draw: Draw, os_type: str | None = None, topology: str | None = None, hostile: bool = True
) -> Spec:
    """A valid ImageTemplate spec (AIB names). `os_type` Linux/Windows keeps sources and steps to that
    OS (what the Packer renderer accepts); `topology` fixes the network topology."""
    spec: Spec = {
        "azure": {"subscriptionId": draw(GUIDS), "location": draw(LOCATIONS)},
        "source": draw(sources(os_type, hostile)),
        "distribute": draw(distributes(hostile)),
    }
    if os_type == "Windows" and spec["source"]["type"] != "PlatformImage":
        # Nothing else says Windows to infer_os_type: one Windows-only step does.
        spec["customize"] = [draw(st.one_of(powershell_steps(hostile), windows_restart_steps(hostile)))]
    optional = draw(_optional_spec_fields(os_type, hostile))
    if "customize" in spec and "customize" in optional:
        optional["customize"] = spec["customize"] + optional["customize"]
    spec.update(optional)
    profile = draw(vm_profiles(topology, hostile))
    if profile is not None:
        if spec.get("optimize", {}).get("vmBoot", {}).get("state") == "Enabled" and (
            profile.get("osDiskSizeGB", 0) > 2048
        ):
            profile["osDiskSizeGB"] = draw(st.integers(0, 2048))  # vmBoot: no OS disk over 2 TB
        spec["vmProfile"] = profile
    return spec


@cache
def templates(
    os_type: str | None = None, topology: str | None = None, hostile: bool = True
) -> st.SearchStrategy[dict[str, Any]]:
    """Whole valid ImageTemplate manifests."""
    return st.builds(
        lambda name, spec: {
            "apiVersion": "kaib.dev/v1alpha1",
            "kind": "ImageTemplate",
            "metadata": {"name": name},
            "spec": spec,
        },
        K8S_NAMES,
        template_specs(os_type, topology, hostile),
    )


@cache
def builds() -> st.SearchStrategy[dict[str, Any]]:
    """Whole valid ImageBuild manifests."""
    ref = st.from_regex(r"[a-z0-9]([-a-z0-9.]{0,62}[a-z0-9])?", fullmatch=True)
    spec = _opt({"templateRef": st.fixed_dictionaries({"name": ref})}, {"cancel": st.booleans()})
    return st.builds(
        lambda name, s: {
            "apiVersion": "kaib.dev/v1alpha1",
            "kind": "ImageBuild",
            "metadata": {"name": name},
            "spec": s,
        },
        K8S_NAMES,
        spec,
    )


# -- invalid: one mutation each ----------------------------------------------------------------------


@dataclass
class Invalid:
    """A manifest that must be rejected, and the field path the rejection must name."""

    manifest: dict[str, Any]
    path: str
    mutation: str
    # False where the apiserver and validate may name a key below `path` (a map's values).
    exact: bool = True

    def named_by(self, paths: list[str]) -> bool:
        if self.exact:
            return self.path in paths
        return any(p == self.path or p.startswith((self.path + ".", self.path + "[")) for p in paths)


Key = str | int
Mutation = tuple[str, tuple[Key, ...], Callable[[Any], tuple[Any, str]]]
# A mutation: (name, where (keys from the manifest root), fn(node) -> (new node, path suffix)).
# The node is the value at `where`; the new node replaces it; the expected path is `where` plus suffix.


def render_path(keys: tuple[Key, ...]) -> str:
    out = ""
    for key in keys:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else key)
    return out


def _get(doc: Any, keys: tuple[Key, ...]) -> Any:
    for key in keys:
        doc = doc[key]
    return doc


def _replace(doc: dict[str, Any], keys: tuple[Key, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    if not keys:
        return typing.cast(dict[str, Any], value)
    parent = _get(out, keys[:-1])
    if value is _DELETE:
        del parent[keys[-1]]
    else:
        parent[keys[-1]] = value
    return out


_DELETE = object()
BAD_PATTERN = "not valid !/"  # breaks every pattern in the schema (ids, names, GUID, location, durations)
UNKNOWN = "fuzzUnknownField"


def _schema(kind: str) -> dict[str, Any]:
    root: dict[str, Any] = crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return root


def _wrong_type(value: Any) -> Any:
    if isinstance(value, bool):
        return "true"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return 7
    if isinstance(value, list):
        return "a list"
    return ["an object"]


def _too_long(value: str, limit: int) -> str:
    # Keep the value's own prefix, so that only the length is wrong where the pattern allows it.
    return value + _fill("é", limit + 1 - len(value)) if len(value) <= limit else value


def _smallest(value: list[Any]) -> Any:
    return min(value, key=lambda item: len(json.dumps(item)), default="x")


def _over_max_items(value: list[Any], limit: int) -> list[Any]:
    return value + [copy.deepcopy(_smallest(value)) for _ in range(limit + 1 - len(value))]


# The apiserver refuses requests over 3 MiB before validating anything (413), and etcd objects over
# 1.5 MiB: a mutation must not build a request that large, or it would test only that.
MAX_REQUEST = 1_000_000


def structural_mutations(value: Any, schema: dict[str, Any], keys: tuple[Key, ...]) -> Iterator[Mutation]:
    """Every way to break one node of `value` against its CRD schema, for nodes under `spec`."""
    kind = schema.get("type")
    yield "wrong-type", keys, lambda v: (_wrong_type(v), "")
    if kind == "object" and "properties" in schema:
        yield "unknown-field", keys, lambda v: ({**v, UNKNOWN: "x"}, "." + UNKNOWN)
        for prop in schema.get("required", []):
            if prop in value:
                yield "required-removed", keys, _remover(prop)
        for prop, sub in schema["properties"].items():
            if prop in value:
                yield from structural_mutations(value[prop], sub, (*keys, prop))
    elif kind == "object":  # a map
        sub = schema["additionalProperties"]
        if "maxProperties" in schema:
            filler = {} if sub["type"] == "object" else "v"
            extra = {f"k{i}": filler for i in range(schema["maxProperties"] + 1)}
            yield "too-many-properties", keys, lambda v: ({**v, **extra}, "")
        for key in value:
            if sub.get("type") != "object" or "properties" not in sub:
                yield "map-value-wrong-type", keys, _map_value(key, _wrong_type(value[key]))
            if "maxLength" in sub and isinstance(value[key], str):
                yield "map-value-too-long", keys, _map_value(key, _too_long(value[key], sub["maxLength"]))
    elif kind == "array":
        extra = schema.get("maxItems", 0) + 1 - len(value)
        if "maxItems" in schema and len(json.dumps(_smallest(value)).encode()) * extra < MAX_REQUEST:
            yield "too-many-items", keys, lambda v: (_over_max_items(v, schema["maxItems"]), "")
        if schema.get("minItems"):
            yield "too-few-items", keys, lambda v: ([], "")
        for i, item in enumerate(value):
            yield from structural_mutations(item, schema["items"], (*keys, i))
    elif kind == "string":
        if "enum" in schema:
            yield "not-in-enum", keys, lambda v: ("Bogus", "")
        if "pattern" in schema:
            yield "pattern", keys, lambda v: (BAD_PATTERN, "")
        if schema.get("minLength"):
            yield "too-short", keys, lambda v: ("", "")
        if "maxLength" in schema:
            yield "too-long", keys, lambda v: (_too_long(v, schema["maxLength"]), "")
    elif kind == "integer":
        yield "beyond-int64", keys, lambda v: (2**63, "")
        if "minimum" in schema:
            yield "below-minimum", keys, lambda v: (schema["minimum"] - 1, "")
        if "maximum" in schema:
            yield "above-maximum", keys, lambda v: (schema["maximum"] + 1, "")


def _remover(prop: str) -> Callable[[Any], tuple[Any, str]]:
    return lambda v: ({k: x for k, x in v.items() if k != prop}, "." + prop)


def _map_value(key: str, new: Any) -> Callable[[Any], tuple[Any, str]]:
    return lambda v: ({**v, key: new}, "")


# Models of each discriminated union, by the name of the field holding it.
def _variants(annotation: Any) -> dict[str, type[BaseModel]]:
    union = typing.get_args(annotation)[0]
    return {m.variant: m for m in typing.get_args(union)}


UNION_MODELS: dict[str, dict[str, type[BaseModel]]] = {
    "source": _variants(api.Source),
    "customize": _variants(api.Customizer),
    "inVMValidations": _variants(api.Validator),
    "distribute": _variants(api.Distribute),
    "versioning": _variants(api.Versioning),
}
# A valid value for each field a union variant may carry: to put it where it does not belong.
FIELD_SAMPLES: dict[str, Any] = {
    "publisher": "p",
    "offer": "o",
    "sku": "s",
    "version": "latest",
    "planInfo": {},
    "imageId": "/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/images/i",
    "imageVersionId": "/SharedGalleries/g/images/i/versions/1.0.0",
    "name": "n",
    "scriptUri": "https://x/s",
    "sha256Checksum": "",
    "inline": ["x"],
    "runElevated": True,
    "runAsSystem": False,
    "validExitCodes": [0],
    "sourceUri": "https://x/f",
    "destination": "/tmp/f",
    "restartCommand": "x",
    "restartCheckCommand": "x",
    "restartTimeout": "5m",
    "searchCriteria": "x",
    "filters": ["x"],
    "updateLimit": 1,
    "location": "eastus",
    "galleryImageId": "/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/galleries/g/images/i",
    "targetRegions": [{"name": "eastus"}],
    "replicationRegions": ["eastus"],
    "storageAccountType": "Standard_LRS",
    "excludeFromLatest": True,
    "versioning": {"scheme": "Source"},
    "uri": "https://x/v.vhd",
    "major": 1,
}


# The fields Packer Go-templates, by step type: the API refuses `{{` in them.
GO_TEMPLATED = {
    "File": ("destination",),
    "WindowsRestart": ("restartCommand", "restartCheckCommand"),
    "WindowsUpdate": ("searchCriteria", "filters"),
}


def _unions(manifest: dict[str, Any]) -> Iterator[tuple[tuple[Key, ...], dict[str, type[BaseModel]], Spec]]:
    """(keys, variant models, node) of every union object in a template manifest."""
    spec = manifest["spec"]
    yield ("spec", "source"), UNION_MODELS["source"], spec["source"]
    for i, step in enumerate(spec.get("customize") or []):
        yield ("spec", "customize", i), UNION_MODELS["customize"], step
    for i, step in enumerate((spec.get("validate") or {}).get("inVMValidations") or []):
        yield ("spec", "validate", "inVMValidations", i), UNION_MODELS["inVMValidations"], step
    for i, dist in enumerate(spec["distribute"]):
        yield ("spec", "distribute", i), UNION_MODELS["distribute"], dist
        if "versioning" in dist:
            yield ("spec", "distribute", i, "versioning"), UNION_MODELS["versioning"], dist["versioning"]


def _fields(model: type[BaseModel]) -> set[str]:
    return {f.alias or n for n, f in model.model_fields.items()}


def rule_mutations(manifest: dict[str, Any]) -> Iterator[Mutation]:
    """One mutation per cross-field rule (and union membership) that applies to this manifest."""
    spec = manifest["spec"]
    for keys, variants, node in _unions(manifest):
        tag = "scheme" if keys[-1] == "versioning" else "type"
        model = variants[node[tag]]
        own = _fields(model)
        everyone = set().union(*(_fields(m) for m in variants.values()))
        for field in sorted(everyone - own):
            yield "field-of-another-variant", keys, _adder(field, FIELD_SAMPLES[field])
        for name, info in model.model_fields.items():
            if info.is_required() and name != tag and name in node and name != "runOutputName":
                yield "variant-required-removed", keys, _remover(name)
        if node.get("type") in ("Shell", "PowerShell"):
            if "inline" in node:
                yield "script-and-inline", keys, lambda v: ({**v, "scriptUri": "https://x/s"}, "")
                yield (
                    "neither-script-nor-inline",
                    keys,
                    lambda v: ({k: x for k, x in v.items() if k != "inline"}, ""),
                )
            else:
                yield "script-and-inline", keys, lambda v: ({**v, "inline": ["x"]}, "")
                yield (
                    "neither-script-nor-inline",
                    keys,
                    lambda v: ({k: x for k, x in v.items() if k != "scriptUri"}, ""),
                )
        for field in GO_TEMPLATED.get(node.get("type", ""), ()):
            bad = ["ok", "{{ .Vars }}"] if field == "filters" else "x {{build `ID`}}"
            yield "go-template-action", keys, _adder(field, bad)
        if node.get("type") == "PowerShell" and not node.get("runElevated"):
            yield (
                "runAsSystem-without-runElevated",
                keys,
                lambda v: ({**v, "runAsSystem": True}, ".runAsSystem"),
            )
        if node.get("type") == "SharedImage":
            yield (
                "targetRegions-and-replicationRegions",
                keys,
                lambda v: (
                    {**v, "targetRegions": [{"name": "a"}], "replicationRegions": ["b"]},
                    ".targetRegions",
                ),
            )
            if "replicationRegions" not in node:
                yield (
                    "storageAccountType-without-replicationRegions",
                    keys,
                    lambda v: ({**v, "storageAccountType": "Premium_LRS"}, ".storageAccountType"),
                )
    source = spec["source"]
    if source["type"] == "PlatformImage":
        for partial in ({"planName": "n"}, {"planName": "n", "planProduct": "p"}, {"planPublisher": "q"}):
            yield "planInfo-partial", ("spec", "source"), _adder("planInfo", partial, suffix=".planInfo")
    first = spec["distribute"][0]["runOutputName"]
    yield (
        "duplicate-runOutputName",
        ("spec", "distribute"),
        lambda v: ([*v, {"type": "VHD", "runOutputName": first}], ""),
    )
    vnet = (spec.get("vmProfile") or {}).get("vnetConfig")
    if vnet is not None:
        where: tuple[Key, ...] = ("spec", "vmProfile", "vnetConfig")
        aci = "/subscriptions/s/resourceGroups/r/providers/Microsoft.Network/virtualNetworks/v/subnets/aci"
        if "subnetId" not in vnet:
            yield "aci-subnet-without-subnet", where, _adder("containerInstanceSubnetId", aci)
        else:
            if "containerInstanceSubnetId" in vnet:
                yield "proxyVmSize-with-aci-subnet", where, _adder("proxyVmSize", "Standard_A1_v2")
            # The same subnet in other ASCII letter case: ARM ids are case-insensitive.
            yield (
                "aci-subnet-same-as-subnet",
                where,
                lambda v: (
                    {**v, "containerInstanceSubnetId": _ascii_swapcase(v["subnetId"])},
                    ".containerInstanceSubnetId",
                ),
            )
    identity_keys: tuple[Key, ...] = ("spec", "identity")
    good = "/subscriptions/s/resourceGroups/r/providers/Microsoft.ManagedIdentity/userAssignedIdentities/i"
    for bad, mutation in (
        ({"type": "UserAssigned"}, "user-assigned-without-identities"),
        ({"type": "UserAssigned", "userAssignedIdentities": {}}, "user-assigned-with-no-identity"),
        ({"type": "None", "userAssignedIdentities": {good: {}}}, "none-with-identities"),
        ({"type": "UserAssigned", "userAssignedIdentities": {good + "/": {}}}, "identity-key-trailing-slash"),
        ({"type": "UserAssigned", "userAssignedIdentities": {"builder": {}}}, "identity-key-not-an-id"),
    ):
        yield mutation, identity_keys, _setter(bad, ".userAssignedIdentities")
    yield (
        "timeout-between-1-and-5",
        ("spec",),
        lambda v: ({**v, "buildTimeoutInMinutes": 1 + len(first) % 5}, ".buildTimeoutInMinutes"),
    )
    yield from metadata_mutations()
    yield (
        "template-name-too-long",
        ("metadata",),
        lambda v: ({**v, "name": _fill("a", 65 + len(first))}, ".name"),
    )


def metadata_mutations() -> Iterator[Mutation]:
    """Metadata the apiserver refuses before any schema: names (RFC 1123 subdomain, at most 253
    characters), a missing name, label and annotation keys and values, finalizers, generateName."""
    for bad in ("Upper", "under_score", "a..b", "-a", "a-", "a.", "é", _fill("a", 254)):
        yield "metadata-name-not-dns", ("metadata",), _adder("name", bad)
    yield "metadata-name-missing", ("metadata",), _without("name")
    keys = ("bad key", "a/b/c", "/a", "a/", "-a", _fill("a", 64), f"{_fill('a', 254)}/b")
    for key in (*keys, "Example.com/a"):  # annotation keys are checked lower-cased: this one is fine there
        yield "metadata-label-key", ("metadata",), _adder("labels", {key: "v"})
    for key in keys:
        yield "metadata-annotation-key", ("metadata",), _adder("annotations", {key: "v"})
    for value in ("bad value!", "-a", _fill("x", 64), "é"):
        yield "metadata-label-value", ("metadata",), _adder("labels", {"app": value})
    yield "metadata-finalizer", ("metadata",), _adder("finalizers", ["bad finalizer"])
    yield "metadata-generate-name", ("metadata",), _adder("generateName", "Bad_")


def _without(field: str) -> Callable[[Any], tuple[Any, str]]:
    return lambda v: ({k: item for k, item in v.items() if k != field}, "." + field)


def _adder(field: str, value: Any, suffix: str | None = None) -> Callable[[Any], tuple[Any, str]]:
    return lambda v: ({**v, field: copy.deepcopy(value)}, "." + field if suffix is None else suffix)


def _setter(value: Any, suffix: str) -> Callable[[Any], tuple[Any, str]]:
    return lambda v: (copy.deepcopy(value), suffix)


def _ascii_swapcase(value: str) -> str:
    return "".join(c.swapcase() if c.isascii() else c for c in value)


def _apply(manifest: dict[str, Any], mutation: Mutation) -> Invalid:
    name, keys, fn = mutation
    node = _get(manifest, keys) if keys != ("spec", "identity") or "identity" in manifest["spec"] else {}
    new, suffix = fn(copy.deepcopy(node))
    exact = not name.startswith("map-value") and name != "too-many-properties"
    return Invalid(_replace(manifest, keys, new), render_path(keys) + suffix, name, exact)


@cache
@st.composite
def invalid_templates(draw: Draw, hostile: bool = True) -> Invalid:
    """A valid template broken in exactly one way (structural or one rule)."""
    manifest = draw(templates(hostile=hostile))
    schema = _schema("ImageTemplate")["properties"]["spec"]
    mutations = [*structural_mutations(manifest["spec"], schema, ("spec",)), *rule_mutations(manifest)]
    return _apply(manifest, _pick(draw, mutations))


def _pick(draw: Draw, mutations: list[Mutation]) -> Mutation:
    # The kind first, then the site: a rule that applies at one place is drawn as often as a wrong
    # type, which applies everywhere.
    name = draw(st.sampled_from(sorted({m[0] for m in mutations})))
    return typing.cast(Mutation, draw(st.sampled_from([m for m in mutations if m[0] == name])))


@cache
@st.composite
def invalid_builds(draw: Draw) -> Invalid:
    manifest = draw(builds())
    schema = _schema("ImageBuild")["properties"]["spec"]
    mutations = [*structural_mutations(manifest["spec"], schema, ("spec",)), *metadata_mutations()]
    return _apply(manifest, _pick(draw, mutations))


# Whole-number floats (60.0, 1e3) included: every integer field of the spec refuses them with a rule
# of its own (kaib.api.common.INTEGER_RULE), as `kaib validate` does.
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
JSON_VALUES: st.SearchStrategy[Json] = st.recursive(
    st.none() | st.booleans() | INT64 | FLOATS | st.integers(-3, 3).map(float) | text(40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text(12), inner, max_size=3),
    max_leaves=6,
)


def _nodes(value: Any, keys: tuple[Key, ...]) -> Iterator[tuple[Key, ...]]:
    yield keys
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _nodes(v, (*keys, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _nodes(v, (*keys, i))


@cache
@st.composite
def junk_in(draw: Draw, base: st.SearchStrategy[dict[str, Any]], under: str) -> tuple[dict[str, Any], str]:
    """(doc, path): a document from `base` with the node at `path` under key `under` ("": anywhere)
    replaced by any JSON (often null: the apiserver prunes null fields and map values before validating)."""
    doc = draw(base)
    nodes = _nodes(doc[under], (under,)) if under else _nodes(doc, ())
    keys = draw(st.sampled_from(list(nodes)[1:]))
    value = draw(st.one_of(st.none(), JSON_VALUES))
    return _replace(doc, keys, value), render_path(keys)


@cache
def junk_status() -> st.SearchStrategy[dict[str, Any]]:
    """A valid ImageTemplate or ImageBuild with any JSON as its status (the apiserver drops it on
    create, but refuses unknown fields in it)."""
    status = st.one_of(
        JSON_VALUES, st.dictionaries(st.sampled_from(["phase", "conditions", "x"]), JSON_VALUES)
    )
    return st.builds(lambda m, v: {**m, "status": v}, st.one_of(templates(), builds()), status)


def junk_templates() -> st.SearchStrategy[tuple[dict[str, Any], str]]:
    """(manifest, path): a valid template with the node at `path` under spec replaced by any JSON."""
    return junk_in(templates(), "spec")


# -- updates -----------------------------------------------------------------------------------------


@cache
@st.composite
def template_updates(draw: Draw) -> tuple[dict[str, Any], dict[str, Any]]:
    """(old, new): two valid ImageTemplates of one name; the new spec is another one entirely, keeping
    (or not) the old `azure` and `stagingResourceGroup`, which may not change after creation."""
    old = draw(templates())
    spec = copy.deepcopy(draw(template_specs()))
    if draw(st.booleans()):
        spec["azure"] = copy.deepcopy(old["spec"]["azure"])
    elif draw(st.booleans()):  # the same home in other letter case: still a change
        azure = old["spec"]["azure"]
        spec["azure"] = {**azure, "subscriptionId": azure["subscriptionId"].swapcase()}
    if draw(st.booleans()):
        spec.pop("stagingResourceGroup", None)
        if "stagingResourceGroup" in old["spec"]:
            spec["stagingResourceGroup"] = old["spec"]["stagingResourceGroup"]
    return old, {**old, "spec": spec}


@cache
@st.composite
def build_updates(draw: Draw) -> tuple[dict[str, Any], dict[str, Any]]:
    """(old, new): an ImageBuild and an edit of it (templateRef kept or not, cancel set or unset)."""
    old = draw(builds())
    spec = copy.deepcopy(old["spec"])
    if draw(st.integers(0, 3)) == 0:
        spec["templateRef"] = {"name": draw(K8S_NAMES)}
    cancel = draw(st.sampled_from([None, False, True]))
    spec.pop("cancel", None)
    if cancel is not None:
        spec["cancel"] = cancel
    return old, {**old, "spec": spec}
