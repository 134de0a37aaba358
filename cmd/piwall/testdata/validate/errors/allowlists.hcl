# Three files, errors in each: all of them are reported in one run.
allowlist "kiosk" {
  inbound {
    from  = ["192.168.1.0/24"]
    ports = ["tcp/22"]
  }
  outbound {
    to    = ["dashbøard.example.com", "ntp.example.com"]
    ports = ["udp/1230000"]
  }
  dns = "sytem"
}
