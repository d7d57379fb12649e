# kaib: Packer template for the 'deprovision' phase (1 step(s), Linux build VM).
# Rendered from an ImageTemplate; see `kaib render`. Do not edit: re-render instead.
# Build: "b-0123"
# Set at run time by the builder agent: var.ssh_private_key_file.

variable "host" {
  type        = string
  description = "Private IP address of the build VM"
  default     = "10.60.1.4"
}

variable "port" {
  type        = number
  description = "SSH (Linux) or WinRM HTTPS (Windows) port of the build VM"
  default     = 22
}

variable "username" {
  type        = string
  description = "Administrator user of the build VM"
  default     = "azureuser"
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

  # step 1: Deprovision "deprovision"
  provisioner "breakpoint" {
    disable = true
    note    = "kaib-step 1"
  }
  provisioner "shell" {
    execute_command = "chmod +x {{ .Path }}; {{ .Vars }} sh -c 'if [ \"$(id -u)\" -eq 0 ]; then exec \"$0\"; else exec sudo -E \"$0\"; fi' {{ .Path }}"
    inline = [
      "if [ -f /tmp/DeprovisioningScript.sh ]; then",
      "  echo 'kaib: running /tmp/DeprovisioningScript.sh'",
      "  sh /tmp/DeprovisioningScript.sh",
      "else",
      "  if [ -x /usr/sbin/waagent ]; then",
      "    /usr/sbin/waagent -force -deprovision+user && export HISTSIZE=0 && sync",
      "  else",
      "    echo 'kaib: /usr/sbin/waagent not found: skipping waagent deprovisioning (rendered with tolerate_missing_waagent, a sandbox setting)'",
      "    export HISTSIZE=0 && sync",
      "  fi",
      "fi",
    ]
  }
}
