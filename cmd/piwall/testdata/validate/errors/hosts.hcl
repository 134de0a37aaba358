host "pi-01" {
  address = "192.168.1.11"
  groups  = ["kiosks"]
  port    = 70000
}

host "pi-02" {
  address = "192.168.1.12"
  groups  = ["kiosk"]
}
