group "kiosks" {
  allowlists = ["kiosk"]
}

defaults {
  revert_after = "soon"
}
