host "pi-01" {
  address = "192.168.1.11" allowlists = ["kiosk"]
}
