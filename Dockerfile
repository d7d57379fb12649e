# syntax=docker/dockerfile:1
# kaib images, one Dockerfile, two targets:
#   docker build --target operator -t kaib-operator .   the kopf operator (`kaib run`)
#   docker build --target builder  -t kaib-builder  .   Packer + the rgl windows-update plugin + the
#                                                       builder agent (`kaib builder-agent`), run by the
#                                                       build's Azure Container Instance
# Both run as the unprivileged user kaib (uid 10001).
#
# Pinned inputs, and how to refresh them:
# - PYTHON_IMAGE: python:3.11-slim-bookworm by its multi-arch index digest. Refresh with
#     docker buildx imagetools inspect python:3.11-slim-bookworm   (the "Digest:" line), or
#     crane digest python:3.11-slim-bookworm
#   and update the ARG below (tests/unit/test_builder_dockerfile.py checks the pin's shape).
# - PACKER_VERSION / PACKER_SHA256: from https://releases.hashicorp.com/packer/<v>/packer_<v>_SHA256SUMS
#   (the linux_amd64.zip line; verify the file's signature with HashiCorp's key).
# - WINDOWS_UPDATE_VERSION: a release of github.com/rgl/packer-plugin-windows-update; must equal
#   kaib.packer.model.WINDOWS_UPDATE_PLUGIN_VERSION (checked by the same test). The zip is checked
#   against the release's SHA256SUMS; set WINDOWS_UPDATE_SHA256 (the linux_amd64 zip's digest) to pin
#   it independently of the release page.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:528257d48c1da0dcecc2e725d1ae34498d60c965f1241e39cd6a85a8859bdf84
ARG UV_VERSION=0.13.8

# -- the Python environment (kaib and its locked dependencies), shared by both targets ------------
FROM ${PYTHON_IMAGE} AS python-env
ARG UV_VERSION
ENV UV_PROJECT_ENVIRONMENT=/opt/kaib/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY operator ./operator
RUN uv sync --frozen --no-dev --no-editable

# -- Packer and the windows-update plugin, downloaded and checksum-checked -----------------------
FROM ${PYTHON_IMAGE} AS packer
ARG PACKER_VERSION=1.13.1
ARG PACKER_SHA256=c3401da41a47d51e2ef3e78a76f625c753b6f19e81681e4cdc3bc6e6f8c699c0
ARG WINDOWS_UPDATE_VERSION=0.15.0
ARG WINDOWS_UPDATE_SHA256=""
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Download tools for this throwaway stage only (nothing of them reaches a target), hence unpinned.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl unzip \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /downloads
RUN curl -fsSLo packer.zip "https://releases.hashicorp.com/packer/${PACKER_VERSION}/packer_${PACKER_VERSION}_linux_amd64.zip" \
 && echo "${PACKER_SHA256}  packer.zip" | sha256sum -c - \
 && unzip -q packer.zip packer -d /usr/local/bin \
 && /usr/local/bin/packer version
ENV PACKER_PLUGIN_PATH=/opt/packer/plugins
RUN base="https://github.com/rgl/packer-plugin-windows-update/releases/download/v${WINDOWS_UPDATE_VERSION}" \
 && zip="packer-plugin-windows-update_v${WINDOWS_UPDATE_VERSION}_x5.0_linux_amd64.zip" \
 && curl -fsSLO "${base}/${zip}" \
 && curl -fsSLo SHA256SUMS "${base}/packer-plugin-windows-update_v${WINDOWS_UPDATE_VERSION}_SHA256SUMS" \
 && grep " ${zip}\$" SHA256SUMS | sha256sum -c - \
 && if [ -n "${WINDOWS_UPDATE_SHA256}" ]; then echo "${WINDOWS_UPDATE_SHA256}  ${zip}" | sha256sum -c -; fi \
 && unzip -q "${zip}" -d plugin \
 && packer plugins install --path "plugin/packer-plugin-windows-update_v${WINDOWS_UPDATE_VERSION}_x5.0_linux_amd64" \
      github.com/rgl/windows-update \
 && chmod -R a+rX /opt/packer

# -- target: builder -----------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder
RUN groupadd --gid 10001 kaib \
 && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/kaib --shell /usr/sbin/nologin kaib
COPY --from=packer /usr/local/bin/packer /usr/local/bin/packer
COPY --from=packer /opt/packer/plugins /opt/packer/plugins
COPY --from=python-env /opt/kaib/venv /opt/kaib/venv
ENV PATH=/opt/kaib/venv/bin:$PATH \
    PACKER_PLUGIN_PATH=/opt/packer/plugins \
    CHECKPOINT_DISABLE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /home/kaib
ENTRYPOINT ["kaib", "builder-agent"]

# -- target: operator (the default) ------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS operator
RUN groupadd --gid 10001 kaib \
 && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/kaib --shell /usr/sbin/nologin kaib
COPY --from=python-env /opt/kaib/venv /opt/kaib/venv
ENV PATH=/opt/kaib/venv/bin:$PATH \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /home/kaib
ENTRYPOINT ["kaib", "run"]
