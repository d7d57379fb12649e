# kaib: Packer template for the 'validate' phase (3 step(s), Linux build VM).
# Rendered from an ImageTemplate; see `kaib render`. Do not edit: re-render instead.
# Placeholders: pass -var host=... -var port=... -var username=... for the build VM.
# Set at run time by the builder agent: var.ssh_private_key_file.

variable "host" {
  type        = string
  description = "Private IP address of the build VM"
}

variable "port" {
  type        = number
  description = "SSH (Linux) or WinRM HTTPS (Windows) port of the build VM"
  default     = 22
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

variable "ssh_private_key_file" {
  type        = string
  description = "Private key file (written by the builder agent)"
}

source "null" "build_vm" {
  communicator         = "ssh"
  ssh_host             = var.host
  ssh_port             = var.port
  ssh_username         = var.username
  ssh_private_key_file = var.ssh_private_key_file
  ssh_timeout          = var.communicator_timeout
}

build {
  sources = ["source.null.build_vm"]

  # step 1: Shell "check"
  provisioner "breakpoint" {
    disable = true
    note    = "kaib-step 1"
  }
  provisioner "shell" {
    binary = true
    inline = [
      "test -f /tmp/my\\ file.tar.gz",
    ]
  }

  # step 2: Shell
  provisioner "breakpoint" {
    disable = true
    note    = "kaib-step 2"
  }
  provisioner "shell" {
    script = "downloads/validate-02.sh"
  }

  # step 3: File
  provisioner "breakpoint" {
    disable = true
    note    = "kaib-step 3"
  }
  provisioner "file" {
    source      = "downloads/validate-03/expected.txt"
    destination = "/tmp/expected.txt"
  }
}
