"""The platform image catalog (so `latest` resolves) and VM sizes (so quotas count cores)."""

from __future__ import annotations

from typing import Any

# publisher -> offer -> sku -> (osType, hyperVGeneration, versions oldest first)
PLATFORM_IMAGES: dict[str, dict[str, dict[str, tuple[str, str, list[str]]]]] = {
    "Canonical": {
        "ubuntu-24_04-lts": {
            "server": ("Linux", "V2", ["24.04.202409120", "24.04.202410140", "24.04.202411030"]),
            "server-gen1": ("Linux", "V1", ["24.04.202410140", "24.04.202411030"]),
        },
        "0001-com-ubuntu-server-jammy": {
            "22_04-lts-gen2": ("Linux", "V2", ["22.04.202409110", "22.04.202410020", "22.04.202411010"]),
            "22_04-lts": ("Linux", "V1", ["22.04.202410020", "22.04.202411010"]),
        },
    },
    "MicrosoftWindowsServer": {
        "WindowsServer": {
            "2022-datacenter-azure-edition": ("Windows", "V2", ["20348.2700.240906", "20348.2762.241006"]),
            "2019-datacenter-gensecond": ("Windows", "V2", ["17763.6293.240905", "17763.6414.241004"]),
        },
    },
}

# size -> (quota family, vCPUs)
VM_SIZES: dict[str, tuple[str, int]] = {
    "Standard_B1s": ("standardBSFamily", 1),
    "Standard_B2s": ("standardBSFamily", 2),
    "Standard_D2s_v3": ("standardDSv3Family", 2),
    "Standard_D4s_v3": ("standardDSv3Family", 4),
    "Standard_D8s_v3": ("standardDSv3Family", 8),
    "Standard_D2s_v5": ("standardDSv5Family", 2),
    "Standard_D4s_v5": ("standardDSv5Family", 4),
    "Standard_D2_v5": ("standardDv5Family", 2),
    "Standard_DS1_v2": ("standardDSv2Family", 1),
    "Standard_DS2_v2": ("standardDSv2Family", 2),
    "Standard_D2ds_v4": ("standardDDSv4Family", 2),  # AIB's default build VM
    "Standard_D1_v2": ("standardDv2Family", 1),  # AIB's default for Gen1 sources
    "Standard_A1_v2": ("standardAv2Family", 1),  # AIB's default proxy VM
}


def size_info(size: str) -> tuple[str, int] | None:
    for name, info in VM_SIZES.items():
        if name.lower() == size.lower():
            return info
    return None


def _ci(mapping: dict[str, Any], key: str) -> tuple[str, Any] | None:
    for k, v in mapping.items():
        if k.lower() == key.lower():
            return k, v
    return None


def resolve(publisher: str, offer: str, sku: str, version: str) -> tuple[str, str, str] | None:
    """(exact version, osType, hyperVGeneration) for an image reference, `latest` included."""
    p = _ci(PLATFORM_IMAGES, publisher)
    o = _ci(p[1], offer) if p else None
    s = _ci(o[1], sku) if o else None
    if s is None:
        return None
    os_type, generation, versions = s[1]
    if version.lower() == "latest":
        return versions[-1], os_type, generation
    return (version, os_type, generation) if version in versions else None


def listing(location: str, parts: list[str]) -> Any:
    """Answers .../locations/{loc}/publishers[/{p}/artifacttypes/vmimage/offers[/{o}/skus[/{s}/versions
    [/{v}]]]].

    `parts` is what follows `publishers`. None when nothing matches (the caller answers 404).
    """

    def item(name: str, rid: str) -> dict[str, Any]:
        return {"name": name, "location": location, "id": rid}

    base = f"/Subscriptions/sub/Providers/Microsoft.Compute/Locations/{location}/Publishers"
    if not parts:
        return [item(p, f"{base}/{p}") for p in PLATFORM_IMAGES]
    p = _ci(PLATFORM_IMAGES, parts[0])
    if p is None or len(parts) < 3 or parts[1].lower() != "artifacttypes" or parts[2].lower() != "vmimage":
        return None
    rest = parts[3:]
    if rest == ["offers"] or rest == []:
        return [item(o, f"{base}/{p[0]}/ArtifactTypes/VMImage/Offers/{o}") for o in p[1]]
    o = _ci(p[1], rest[1]) if len(rest) >= 2 else None
    if o is None:
        return None
    rest = rest[2:]
    if rest == ["skus"]:
        return [item(s, f"{base}/{p[0]}/ArtifactTypes/VMImage/Offers/{o[0]}/Skus/{s}") for s in o[1]]
    s = _ci(o[1], rest[1]) if len(rest) >= 2 else None
    if s is None:
        return None
    os_type, generation, versions = s[1]
    rest = rest[2:]
    vbase = f"{base}/{p[0]}/ArtifactTypes/VMImage/Offers/{o[0]}/Skus/{s[0]}/Versions"
    if rest == ["versions"]:
        return [item(v, f"{vbase}/{v}") for v in versions]
    if len(rest) == 2 and rest[0].lower() == "versions" and rest[1] in versions:
        return {
            **item(rest[1], f"{vbase}/{rest[1]}"),
            "properties": {
                "osDiskImage": {"operatingSystem": os_type},
                "hyperVGeneration": generation,
                "architecture": "x64",
                "dataDiskImages": [],
            },
        }
    return None
