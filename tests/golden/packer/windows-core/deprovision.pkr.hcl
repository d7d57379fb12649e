# kaib: Packer template for the 'deprovision' phase (1 step(s), Windows build VM).
# Rendered from an ImageTemplate; see `kaib render`. Do not edit: re-render instead.
# Build: "b-4567"
# Set at run time by the builder agent: var.winrm_password.

variable "host" {
  type        = string
  description = "Private IP address of the build VM"
  default     = "10.60.1.5"
}

variable "port" {
  type        = number
  description = "SSH (Linux) or WinRM HTTPS (Windows) port of the build VM"
  default     = 5986
}

variable "username" {
  type        = string
  description = "Administrator user of the build VM"
  default     = "packer"
}

variable "communicator_timeout" {
  type        = string
  description = "How long to wait for the build VM to answer"
  default     = "20m"
}

variable "winrm_password" {
  type        = string
  description = "WinRM password (set by the builder agent)"
  sensitive   = true
}

source "null" "build_vm" {
  communicator   = "winrm"
  winrm_host     = var.host
  winrm_port     = var.port
  winrm_username = var.username
  winrm_password = var.winrm_password
  winrm_use_ssl  = true
  winrm_insecure = true
  winrm_timeout  = var.communicator_timeout
}

build {
  sources = ["source.null.build_vm"]

  # step 1: Deprovision "deprovision"
  provisioner "breakpoint" {
    disable = true
    note    = "kaib-step 1"
  }
  provisioner "powershell" {
    elevated_user     = var.username
    elevated_password = var.winrm_password
    inline = [
      "if (Test-Path 'c:\\DeprovisioningScript.ps1') {",
      "  Write-Output 'kaib: running c:\\DeprovisioningScript.ps1'",
      "  & 'c:\\DeprovisioningScript.ps1'",
      "} else {",
      "  Write-Output '>>> Waiting for GA Service (RdAgent) to start ...'",
      "  while ((Get-Service RdAgent).Status -ne 'Running') { Start-Sleep -s 5 }",
      "  Write-Output '>>> Waiting for GA Service (WindowsAzureTelemetryService) to start ...'",
      "  while ((Get-Service WindowsAzureTelemetryService) -and ((Get-Service WindowsAzureTelemetryService).Status -ne 'Running')) { Start-Sleep -s 5 }",
      "  Write-Output '>>> Waiting for GA Service (WindowsAzureGuestAgent) to start ...'",
      "  while ((Get-Service WindowsAzureGuestAgent).Status -ne 'Running') { Start-Sleep -s 5 }",
      "  Write-Output '>>> Sysprepping VM ...'",
      "  if (Test-Path $Env:SystemRoot\\system32\\Sysprep\\unattend.xml) {",
      "    Remove-Item $Env:SystemRoot\\system32\\Sysprep\\unattend.xml -Force",
      "  }",
      "  & $Env:SystemRoot\\System32\\Sysprep\\Sysprep.exe /oobe /generalize /quiet /quit",
      "  while ($true) {",
      "    $imageState = (Get-ItemProperty HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Setup\\State).ImageState",
      "    Write-Output $imageState",
      "    if ($imageState -eq 'IMAGE_STATE_GENERALIZE_RESEAL_TO_OOBE') { break }",
      "    Start-Sleep -s 5",
      "  }",
      "  Write-Output '>>> Sysprep complete ...'",
      "}",
    ]
  }
}
