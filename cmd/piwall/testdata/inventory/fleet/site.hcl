# A fleet reached as ~/.ssh/config says: kiosks through a bastion, one
# behind a proxy command, one the plan reaches directly (jump = "none",
# as ssh -J none: no ProxyJump nor ProxyCommand of ssh_config), a
# mixed-case address that Host patterns (case-sensitive) do not match, a
# lab Pi known by a host key alias.

defaults {
  user = "pi"
}

allowlist "kiosk" {
  inbound {
    from  = ["192.168.1.0/24"]
    ports = ["tcp/22", "tcp/2201"]
  }
  outbound {
    to    = ["192.168.1.1"]
    ports = ["udp/123"]
  }
}

allowlist "lab" {
  inbound {
    from  = ["10.9.0.0/24"]
    ports = ["tcp/22"]
  }
  outbound {
    to = ["198.51.100.7"]
  }
  outbound {
    to    = ["10.9.0.1"]
    ports = ["udp/123"]
  }
}

group "kiosk" {
  allowlists = ["kiosk"]
}

host "pi-01" {
  groups = ["kiosk"]
}

host "pi-02" {
  address = "Pi-02.Shop.LAN"
  groups  = ["kiosk"]
}

host "pi-03" {
  groups     = ["kiosk"]
  allowlists = ["lab"]
  user       = "admin"
}

host "pi-04" {
  address = "pi-01"
  groups  = ["kiosk"]
  port    = 2201
  jump    = "none"
}

host "lab-pi" {
  allowlists = ["lab"]
}
