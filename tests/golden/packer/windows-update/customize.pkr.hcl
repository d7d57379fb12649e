# kaib: Packer template for the 'customize' phase (3 step(s), Windows build VM).
# Rendered from an ImageTemplate; see `kaib render`. Do not edit: re-render instead.
# Build: "b-4567"
# Set at run time by the builder agent: var.winrm_password.
# Needs the plugin (the builder image has it): packer plugins install github.com/rgl/windows-update v0.15.0

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

  # step 1: WindowsUpdate "defaults"
  provisioner "breakpoint" {
    disable = true
    note    = "kaib-step 1"
  }
  provisioner "windows-update" {
    update_limit = 1000
  }

  # step 2: WindowsUpdate
  provisioner "breakpoint" {
    disable = true
    note    = "kaib-step 2"
  }
  provisioner "windows-update" {
    search_criteria = "IsInstalled=0"
    filters = [
      "exclude:$_.Title -like '*Preview*'",
      "include:$true",
    ]
    update_limit    = 40
  }

  # step 3: WindowsRestart
  provisioner "breakpoint" {
    disable = true
    note    = "kaib-step 3"
  }
  provisioner "windows-restart" {
  }
}
