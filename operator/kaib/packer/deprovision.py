"""AIB's hidden last step: deprovisioning (generalizing) the build VM before it is captured.

As AIB documents it: on Linux the commands of /tmp/DeprovisioningScript.sh run, and the default is
`/usr/sbin/waagent -force -deprovision+user && export HISTSIZE=0 && sync`; on Windows Sysprep runs
from c:\\DeprovisioningScript.ps1. Users override either by writing that file in a customizer, so we
run the user's file when it exists and AIB's default otherwise.
"""

from __future__ import annotations

LINUX_SCRIPT = "/tmp/DeprovisioningScript.sh"
LINUX_DEFAULT = "/usr/sbin/waagent -force -deprovision+user && export HISTSIZE=0 && sync"
WINDOWS_SCRIPT = "c:\\DeprovisioningScript.ps1"

# AIB's default Sysprep commands for Windows (image-builder-json.md, "Default Sysprep command").
WINDOWS_DEFAULT = [
    "Write-Output '>>> Waiting for GA Service (RdAgent) to start ...'",
    "while ((Get-Service RdAgent).Status -ne 'Running') { Start-Sleep -s 5 }",
    "Write-Output '>>> Waiting for GA Service (WindowsAzureTelemetryService) to start ...'",
    "while ((Get-Service WindowsAzureTelemetryService) -and "
    "((Get-Service WindowsAzureTelemetryService).Status -ne 'Running')) { Start-Sleep -s 5 }",
    "Write-Output '>>> Waiting for GA Service (WindowsAzureGuestAgent) to start ...'",
    "while ((Get-Service WindowsAzureGuestAgent).Status -ne 'Running') { Start-Sleep -s 5 }",
    "Write-Output '>>> Sysprepping VM ...'",
    "if (Test-Path $Env:SystemRoot\\system32\\Sysprep\\unattend.xml) {",
    "  Remove-Item $Env:SystemRoot\\system32\\Sysprep\\unattend.xml -Force",
    "}",
    "& $Env:SystemRoot\\System32\\Sysprep\\Sysprep.exe /oobe /generalize /quiet /quit",
    "while ($true) {",
    "  $imageState = (Get-ItemProperty "
    "HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Setup\\State).ImageState",
    "  Write-Output $imageState",
    "  if ($imageState -eq 'IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE') { break }",
    "  Start-Sleep -s 5",
    "}",
    "Write-Output '>>> Sysprep complete ...'",
]

# Runs the uploaded script as root: directly when Packer already connects as root (sandbox VMs),
# through sudo otherwise (Azure VMs: the admin user has passwordless sudo).
LINUX_EXECUTE_COMMAND = (
    "chmod +x {{ .Path }}; {{ .Vars }} sh -c "
    '\'if [ "$(id -u)" -eq 0 ]; then exec "$0"; else exec sudo -E "$0"; fi\' {{ .Path }}'
)


def linux_commands(tolerate_missing_waagent: bool) -> list[str]:
    if not tolerate_missing_waagent:
        default = [f"  {LINUX_DEFAULT}"]
    else:
        # Explicit opt-in (RenderOptions.tolerate_missing_waagent, set by the sandbox): keep the rest
        # of AIB's default and say loudly that the agent step was skipped.
        default = [
            "  if [ -x /usr/sbin/waagent ]; then",
            f"    {LINUX_DEFAULT}",
            "  else",
            "    echo 'kaib: /usr/sbin/waagent not found: skipping waagent deprovisioning"
            " (rendered with tolerate_missing_waagent, a sandbox setting)'",
            "    export HISTSIZE=0 && sync",
            "  fi",
        ]
    return [
        f"if [ -f {LINUX_SCRIPT} ]; then",
        f"  echo 'kaib: running {LINUX_SCRIPT}'",
        f"  sh {LINUX_SCRIPT}",
        "else",
        *default,
        "fi",
    ]


def windows_commands() -> list[str]:
    return [
        f"if (Test-Path '{WINDOWS_SCRIPT}') {{",
        f"  Write-Output 'kaib: running {WINDOWS_SCRIPT}'",
        f"  & '{WINDOWS_SCRIPT}'",
        "} else {",
        *[f"  {line}" for line in WINDOWS_DEFAULT],
        "}",
    ]
