allowlist "kiosk" {
  inbound {
    from  = ["192.168.1.0/24"]
    ports = ["tcp/22"]
  }
  outbound {
    to    = ["192.168.1.1"]
    ports = ["udp/123"]
  }
}

host "pi-01" {
  user       = "pi"
  allowlists = ["kiosk"]
}
