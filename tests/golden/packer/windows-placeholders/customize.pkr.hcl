# kaib: Packer template for the 'customize' phase (8 step(s), Windows build VM).
# Rendered from an ImageTemplate; see `kaib render`. Do not edit: re-render instead.
# Placeholders: pass -var host=... -var port=... -var username=... for the build VM.
# Set at run time by the builder agent: var.winrm_password.

variable "host" {
  type        = string
  description = "Private IP address of the build VM"
}

variable "port" {
  type        = number
  description = "SSH (Linux) or WinRM HTTPS (Windows) port of the build VM"
  default     = 5986
}

variable "username" {
  type        = string
  description = "Administrator user of the build VM"
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

  # step 1: PowerShell "plain"
  provisioner "breakpoint" {
    disable = true
    note    = "kaib-step 1"
  }
  provisioner "powershell" {
    inline = [
      "Write-Output \"hello $env:COMPUTERNAME\"",
      "New-Item -Path 'C:\\kaib' -ItemType Directory",
    ]
  }

  # step 2: PowerShell "elevated"
  provisioner "breakpoint" {
    disable = true
    note    = "kaib-step 2"
  }
  provisioner "powershell" {
    inline = [
      "whoami",
    ]
    elevated_user     = var.username
    elevated_password = var.winrm_password
  }

  # step 3: PowerShell "system"
  provisioner "breakpoint" {
    disable = true
    note    = "kaib-step 3"
  }
  provisioner "powershell" {
    inline = [
      "whoami",
    ]
    elevated_user     = "SYSTEM"
    elevated_password = ""
  }

  # step 4: PowerShell "exit codes"
  provisioner "breakpoint" {
    disable = true
    note    = "kaib-step 4"
  }
  provisioner "powershell" {
    script           = "downloads/customize-04.ps1"
    valid_exit_codes = [0, 3010]
  }

  # step 5: PowerShell "format braces"
  provisioner "breakpoint" {
    disable = true
    note    = "kaib-step 5"
  }
  provisioner "powershell" {
    script = "scripts/customize-05.ps1"
  }

  # step 6: File
  provisioner "breakpoint" {
    disable = true
    note    = "kaib-step 6"
  }
  provisioner "file" {
    source      = "downloads/customize-06/app.zip"
    destination = "c:\\buildArtifacts\\app.zip"
  }

  # step 7: WindowsRestart "defaults"
  provisioner "breakpoint" {
    disable = true
    note    = "kaib-step 7"
  }
  provisioner "windows-restart" {
  }

  # step 8: WindowsRestart
  provisioner "breakpoint" {
    disable = true
    note    = "kaib-step 8"
  }
  provisioner "windows-restart" {
    restart_command       = "shutdown /r /f /t 0 /c \"packer restart\""
    restart_check_command = "powershell -command \"& {Write-Output 'restarted.'}\""
    restart_timeout       = "10m"
  }
}
