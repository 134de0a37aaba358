# The lab's fleet, as `piwall-lab up` writes it. Every Pi is a kiosk: it may reach
# its dashboard and API by name over tcp/443 and ask ntp.lab the time, and only
# the operator's controller may reach it over SSH. blocked.lab and the intruder
# stay out: piwall check proves blocked.lab blocked from every Pi.

variable "admin" {
  type        = list(string)
  default     = ["198.18.0.1/32", "fd70:6977:616c::1/128"]
  description = "Where the operator's SSH sessions come from: the controller on the lab bridge."
}

defaults {
  user          = "pi"
  identity_file = "/var/lib/piwall-lab/id_ed25519"
  known_hosts   = "/var/lib/piwall-lab/known_hosts"
  revert_after  = "30s"
}

allowlist "kiosk" {
  inbound {
    from  = var.admin
    ports = ["tcp/22"]
  }
  outbound {
    to    = ["dashboard.lab", "api.lab"]
    ports = ["tcp/443"]
  }
  outbound {
    to    = ["ntp.lab"]
    ports = ["udp/123"]
  }
  expect_blocked {
    to    = ["blocked.lab"]
    ports = ["tcp/443"]
  }
  dns       = "system"
  ping      = true
  log_drops = true
}

group "kiosk" {
  allowlists = ["kiosk"]
}

host "pi-01" {
  address = "198.18.2.1"
  groups  = ["kiosk"]
}

host "pi-02" {
  address = "198.18.2.2"
  groups  = ["kiosk"]
}

host "pi-03" {
  address = "198.18.2.3"
  groups  = ["kiosk"]
}

rollout {
  parallel = 10
  canary   = 1
  batch    = 0
}
