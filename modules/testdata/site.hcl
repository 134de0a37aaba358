# The plan of the modules tests. The facts recorded under testdata/facts/
# come from Pis that run, or are about to run, these hosts' rules: see
# facts_record_test.go. Their rules hold the names' addresses (dns_refresh
# = "0"); names_test.go covers the hosts that refresh their names.

defaults {
  dns_refresh = "0"
}

allowlist "kiosk" {
  inbound {
    from  = ["192.168.1.0/24"]
    ports = ["tcp/22"]
  }
  outbound {
    to    = ["dashboard.example.com", "api.example.com"]
    ports = ["tcp/443"]
  }
  outbound {
    to = ["203.0.113.7"]
  }
  dns         = "system"
  ping        = true
  log_drops   = true
  coexist     = ["docker"]
}

# Admits SSH only from an address that is not the operator's.
allowlist "locked" {
  inbound {
    from  = ["10.9.9.9"]
    ports = ["tcp/22"]
  }
}

group "kiosk" {
  allowlists = ["kiosk"]
}

host "pi-01" {
  address = "192.168.1.11"
  groups  = ["kiosk"]
}

host "pi-02" {
  address = "192.168.1.12"
  groups  = ["kiosk"]
}

host "pi-09" {
  address    = "192.168.1.19"
  allowlists = ["locked"]
}
