allowlist "open" {
  inbound {
    from  = ["0.0.0.0/0"]
    ports = ["tcp/22"]
  }
  outbound {
    to    = ["192.0.2.10"]
    ports = ["tcp/443", "udp/123"]
  }
}

host "pi-01" {
  address    = "192.168.1.11"
  allowlists = ["open"]
}
