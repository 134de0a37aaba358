# A kiosk fleet: Raspberry Pis that show a dashboard on a screen in a shop.
# Each may open connections only to its dashboard and API (by name, over
# HTTPS) and to the time servers, and may be reached only over SSH from the
# admin network. Everything else, in and out, IPv4 and IPv6, is dropped.
#
#   piwall validate examples/site.hcl
#   piwall render examples/site.hcl --host kiosk-01 --resolve=local
#
# Offline, pin the names instead of resolving them:
#
#   piwall render examples/site.hcl --host kiosk-01 --resolver 192.168.1.1 \
#     --address dashboard.example.com=203.0.113.10,2001:db8::10 --address api.example.com=203.0.113.11 \
#     --address 0.debian.pool.ntp.org=192.0.2.123 --address 1.debian.pool.ntp.org=192.0.2.124

variable "admin_nets" {
  type        = list(string)
  default     = ["192.168.1.0/24", "fd00:1::/64"]
  description = "Where the operators' SSH sessions come from."
}

locals {
  https = ["tcp/443"]
}

defaults {
  user          = "pi"
  identity_file = "~/.ssh/id_ed25519"
  known_hosts   = "~/.ssh/known_hosts"
  revert_after  = "60s"
  dns_refresh   = "5m" # each Pi re-resolves the names below this often ("0": addresses frozen at plan time)
}

allowlist "kiosk" {
  inbound {
    from  = var.admin_nets
    ports = ["tcp/22"]
  }
  outbound {
    to    = ["dashboard.example.com", "api.example.com"]
    ports = local.https
  }
  outbound {
    to    = ["0.debian.pool.ntp.org", "1.debian.pool.ntp.org"]
    ports = ["udp/123"]
  }
  # What must stay out of reach: piwall check probes it from each Pi and
  # fails unless it times out or is refused. It opens nothing.
  expect_blocked {
    to    = ["example.org"]
    ports = ["tcp/443"]
  }
  dns       = "system"
  ping      = true
  log_drops = true
  # The Pi's own network services are kept working where its facts show
  # that it uses them, and plan says which and why: dhcp (a leased address,
  # dhclient or dhcpcd), dhcpv6 (a leased /128), mld (IPv6 up) and mdns
  # (avahi-daemon, or a host reached as NAME.local). false drops one, true
  # keeps it whatever the Pi says.
  # mdns = false
}

group "kiosks" {
  allowlists = ["kiosk"]
}

host "kiosk-01" {
  address = "192.168.1.21"
  groups  = ["kiosks"]
}

host "kiosk-02" {
  address = "192.168.1.22"
  groups  = ["kiosks"]
}

rollout {
  parallel = 10
  canary   = 1
  batch    = 5
}
