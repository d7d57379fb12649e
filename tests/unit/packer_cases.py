"""ImageTemplate specs (AIB field names) covering every customizer and validator type, shared by the
golden tests and the `packer validate` tests."""

from __future__ import annotations

from typing import Any

from kaib.packer import ConnectionFacts, RenderOptions

SHA_A = "a" * 64
SHA_B = "0123456789ABCDEF" * 4  # upper case on purpose: rendered lower case

HOSTILE_LINES = [
    "echo 'single' \"double\" `backtick` $HOME ${HOME} $${HOME} %{ if x } %%{y} $",
    "printf '%s\\n' \"back\\\\slash\" 'tab\there' \"cr\rhere\"",
    "echo multi-line-in-one-item; echo 'second\nthird'",
    "echo 'non-ASCII: é ü ß 漢字 🙂' # trailing \\",
]

LINUX_ALL: dict[str, Any] = {
    "source": {
        "type": "PlatformImage",
        "publisher": "Canonical",
        "offer": "ubuntu-24_04-lts",
        "sku": "server",
        "version": "latest",
    },
    "customize": [
        {"type": "Shell", "name": "inline", "inline": ["set -x", "apt-get update"]},
        {
            "type": "Shell",
            "name": "from uri",
            "scriptUri": "https://example.invalid/setup.sh",
            "sha256Checksum": SHA_A,
        },
        {"type": "Shell", "name": "no checksum", "scriptUri": "https://example.invalid/x.sh?sv=1&sig=abc"},
        {
            "type": "File",
            "name": "a file",
            "sourceUri": "https://example.invalid/dir/my%20file.tar.gz",
            "destination": "/tmp/my file.tar.gz",
            "sha256Checksum": SHA_B,
        },
        {"type": "Shell", "name": 'hostile "name" ${x}', "inline": HOSTILE_LINES},
        {"type": "Shell", "name": "go template braces", "inline": ["echo '{{ .Path }}' {{x}}", "echo done"]},
    ],
    "validate": {
        "inVMValidations": [
            {"type": "Shell", "name": "check", "inline": ["test -f /tmp/my\\ file.tar.gz"]},
            {"type": "Shell", "scriptUri": "https://example.invalid/validate.sh", "sha256Checksum": SHA_A},
            {
                "type": "File",
                "sourceUri": "https://example.invalid/expected.txt",
                "destination": "/tmp/expected.txt",
            },
        ]
    },
    "distribute": [],
}

WINDOWS_CORE: dict[str, Any] = {
    "source": {
        "type": "PlatformImage",
        "publisher": "MicrosoftWindowsServer",
        "offer": "WindowsServer",
        "sku": "2022-datacenter",
        "version": "latest",
    },
    "customize": [
        {
            "type": "PowerShell",
            "name": "plain",
            "inline": [
                'Write-Output "hello $env:COMPUTERNAME"',
                "New-Item -Path 'C:\\kaib' -ItemType Directory",
            ],
        },
        {"type": "PowerShell", "name": "elevated", "inline": ["whoami"], "runElevated": True},
        {
            "type": "PowerShell",
            "name": "system",
            "inline": ["whoami"],
            "runElevated": True,
            "runAsSystem": True,
        },
        {
            "type": "PowerShell",
            "name": "exit codes",
            "scriptUri": "https://example.invalid/install.ps1",
            "sha256Checksum": SHA_A,
            "validExitCodes": [0, 3010],
        },
        {"type": "PowerShell", "name": "format braces", "inline": ["'{{0}} literal braces' -f 1"]},
        {
            "type": "File",
            "sourceUri": "https://example.invalid/app.zip",
            "destination": "c:\\buildArtifacts\\app.zip",
        },
        {"type": "WindowsRestart", "name": "defaults"},
        {
            "type": "WindowsRestart",
            "restartCommand": 'shutdown /r /f /t 0 /c "packer restart"',
            "restartCheckCommand": "powershell -command \"& {Write-Output 'restarted.'}\"",
            "restartTimeout": "10m",
        },
    ],
    "validate": {
        "continueDistributeOnFailure": True,
        "inVMValidations": [
            {"type": "PowerShell", "name": "check", "inline": ["if (-not (Test-Path C:\\kaib)) { exit 1 }"]},
            {
                "type": "File",
                "sourceUri": "https://example.invalid/expected.txt",
                "destination": "c:\\expected.txt",
            },
        ],
    },
    "distribute": [],
}

WINDOWS_UPDATE: dict[str, Any] = {
    "source": {
        "type": "PlatformImage",
        "publisher": "MicrosoftWindowsServer",
        "offer": "WindowsServer",
        "sku": "2022-datacenter",
        "version": "latest",
    },
    "customize": [
        {"type": "WindowsUpdate", "name": "defaults"},
        {
            "type": "WindowsUpdate",
            "searchCriteria": "IsInstalled=0",
            "filters": ["exclude:$_.Title -like '*Preview*'", "include:$true"],
            "updateLimit": 40,
        },
        {"type": "WindowsRestart"},
    ],
    "distribute": [],
}

SOURCE_VALIDATION_ONLY: dict[str, Any] = {
    "source": {
        "type": "PlatformImage",
        "publisher": "Canonical",
        "offer": "o",
        "sku": "s",
        "version": "latest",
    },
    "validate": {
        "sourceValidationOnly": True,
        "inVMValidations": [{"type": "Shell", "inline": ["uname -a"]}],
    },
    "distribute": [],
}

LINUX_FACTS = ConnectionFacts(os_type="Linux", host="10.60.1.4", username="azureuser", build_id="b-0123")
WINDOWS_FACTS = ConnectionFacts(os_type="Windows", host="10.60.1.5", username="packer", build_id="b-4567")

# case name -> (spec, facts, options). Facts None: `kaib render`'s placeholders.
CASES: dict[str, tuple[dict[str, Any], ConnectionFacts | None, RenderOptions]] = {
    "linux-all": (LINUX_ALL, LINUX_FACTS, RenderOptions()),
    "linux-sandbox": (SOURCE_VALIDATION_ONLY, LINUX_FACTS, RenderOptions(tolerate_missing_waagent=True)),
    "linux-placeholders": (LINUX_ALL, None, RenderOptions()),
    "windows-core": (WINDOWS_CORE, WINDOWS_FACTS, RenderOptions()),
    "windows-placeholders": (WINDOWS_CORE, None, RenderOptions()),
    "windows-update": (WINDOWS_UPDATE, WINDOWS_FACTS, RenderOptions()),
}
# Cases whose templates need a provisioner Debian's packer 1.6.6 lacks (rgl/windows-update).
NEEDS_WINDOWS_UPDATE_PLUGIN = {"windows-update"}
