# A fleet kept as data, not as one host block a Pi: the kiosks come from a
# CSV, the shop's other Pis from the Ansible inventory the team already has.
#
#   piwall validate examples/fleet
#   piwall inventory examples/fleet --limit signage
#
# Files are read relative to this directory.

allowlist "kiosk" {
  inbound {
    from  = ["192.168.1.0/24"]
    ports = ["tcp/22"]
  }
  outbound {
    to    = ["dashboard.example.com"]
    ports = ["tcp/443"]
  }
  outbound {
    to    = ["0.debian.pool.ntp.org"]
    ports = ["udp/123"]
  }
  dns = "system"
}

allowlist "signage" {
  inbound {
    from  = ["192.168.1.0/24"]
    ports = ["tcp/22", "tcp/2222"]
  }
  outbound {
    to    = ["cms.example.com"]
    ports = ["tcp/443"]
  }
  outbound {
    to    = ["0.debian.pool.ntp.org"]
    ports = ["udp/123"]
  }
  dns = "system"
}

group "kiosk" {
  allowlists = ["kiosk"]
}

# Ansible's group signage (and its children) get the signage allowlist.
group "signage" {
  allowlists = ["signage"]
}

defaults {
  user = "pi"
}

# kiosks.csv: name,address. One host a row, named by its name column.
host "kiosk" {
  for_each = csvdecode(file("kiosks.csv"))
  name     = each.value.name
  address  = each.value.address
  groups   = ["kiosk"]
}

# hosts.ini: only the hosts of group signage; ansible_host, ansible_user,
# ansible_port and ansible_ssh_private_key_file say how to reach each.
ansible_inventory {
  path   = "hosts.ini"
  groups = ["signage"]
}
