"""Packer template rendering (pure): an ImageTemplate spec to the HCL2 templates the builder runs.

Public API:
- `render_build(spec, facts=None, options=None, *, os_type=None) -> RenderedBuild`: every phase
  (customize, validate, deprovision) of one build; `spec` is a mapping in AIB's field names.
- `infer_os_type(spec)`: "Windows" or "Linux", when no connection facts say it.
- `write_build(build, out_dir)`: writes the templates, generated scripts and plan.json.
- `RenderedBuild.to_plan()` / `RenderedBuild.from_plan()`: the JSON the builder agent reads.
- `ConnectionFacts`, `RenderOptions`, `RenderError`.
"""

from kaib.packer.model import (
    ConnectionFacts,
    Download,
    Phase,
    RenderedBuild,
    RenderError,
    RenderOptions,
    Step,
)
from kaib.packer.render import infer_os_type, render_build
from kaib.packer.write import write_build

__all__ = [
    "ConnectionFacts",
    "Download",
    "Phase",
    "RenderError",
    "RenderOptions",
    "RenderedBuild",
    "Step",
    "infer_os_type",
    "render_build",
    "write_build",
]
