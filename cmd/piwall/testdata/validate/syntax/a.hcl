allowlist "kiosk" {
  inbound {
    from = ["192.168.1.0/24"
  }
}
