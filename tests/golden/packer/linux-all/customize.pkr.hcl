# kaib: Packer template for the 'customize' phase (6 step(s), Linux build VM).
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

  # step 1: Shell "inline"
  provisioner "breakpoint" {
    disable = true
    note    = "kaib-step 1"
  }
  provisioner "shell" {
    binary = true
    inline = [
      "set -x",
      "apt-get update",
    ]
  }

  # step 2: Shell "from uri"
  provisioner "breakpoint" {
    disable = true
    note    = "kaib-step 2"
  }
  provisioner "shell" {
    script = "downloads/customize-02.sh"
  }

  # step 3: Shell "no checksum"
  provisioner "breakpoint" {
    disable = true
    note    = "kaib-step 3"
  }
  provisioner "shell" {
    script = "downloads/customize-03.sh"
  }

  # step 4: File "a file"
  provisioner "breakpoint" {
    disable = true
    note    = "kaib-step 4"
  }
  provisioner "file" {
    source      = "downloads/customize-04/my_file.tar.gz"
    destination = "/tmp/my file.tar.gz"
  }

  # step 5: Shell "hostile \"name\" ${x}"
  provisioner "breakpoint" {
    disable = true
    note    = "kaib-step 5"
  }
  provisioner "shell" {
    binary = true
    inline = [
      "echo 'single' \"double\" `backtick` $HOME $${HOME} $$${HOME} %%{ if x } %%%{y} $",
      "printf '%s\\n' \"back\\\\slash\" 'tab\there' \"cr\rhere\"",
      "echo multi-line-in-one-item; echo 'second\nthird'",
      "echo 'non-ASCII: é ü ß 漢字 🙂' # trailing \\",
    ]
  }

  # step 6: Shell "go template braces"
  provisioner "breakpoint" {
    disable = true
    note    = "kaib-step 6"
  }
  provisioner "shell" {
    binary = true
    script = "scripts/customize-06.sh"
  }
}
