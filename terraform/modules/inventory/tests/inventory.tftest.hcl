# terraform test: the rendered inventory and the variable validation.

run "two_hosts_with_group_vars" {
  command = apply

  variables {
    hosts = [
      { name = "cache-1", address = "10.0.0.5", vars = { ironcache_maxmemory = "1gb", ironcache_bind = ["10.0.0.5"] } },
      { name = "cache-2", address = "cache-2.example.org" },
    ]
    group_vars = { ironcache_version = "1.0.0", ansible_user = "admin" }
  }

  assert {
    condition     = output.host_names == ["cache-1", "cache-2"]
    error_message = "host names in order"
  }
  assert {
    condition     = startswith(output.yaml, "# Ansible inventory")
    error_message = "the YAML starts with a comment line"
  }
  assert {
    condition     = keys(yamldecode(output.yaml).all.children) == ["ironcache"]
    error_message = "one group, ironcache, under all.children"
  }
  assert {
    condition     = yamldecode(output.yaml).all.children.ironcache.hosts["cache-1"].ansible_host == "10.0.0.5" && yamldecode(output.yaml).all.children.ironcache.hosts["cache-2"].ansible_host == "cache-2.example.org"
    error_message = "ansible_host from address"
  }
  assert {
    condition     = yamldecode(output.yaml).all.children.ironcache.hosts["cache-1"].ironcache_maxmemory == "1gb" && yamldecode(output.yaml).all.children.ironcache.hosts["cache-1"].ironcache_bind == ["10.0.0.5"]
    error_message = "host vars of any type"
  }
  assert {
    condition     = keys(yamldecode(output.yaml).all.children.ironcache.hosts["cache-2"]) == ["ansible_host"]
    error_message = "a host without vars gets ansible_host only"
  }
  assert {
    condition     = yamldecode(output.yaml).all.children.ironcache.vars == { ironcache_version = "1.0.0", ansible_user = "admin" }
    error_message = "group vars"
  }
}

run "no_group_vars_no_vars_key" {
  command = plan

  variables {
    hosts = [{ name = "c1", address = "192.0.2.1" }]
  }

  assert {
    condition     = keys(yamldecode(output.yaml).all.children.ironcache) == ["hosts"]
    error_message = "no vars key without group vars"
  }
}

run "other_group_name" {
  command = plan

  variables {
    hosts      = [{ name = "c1", address = "192.0.2.1" }]
    group_name = "cache_eu"
  }

  assert {
    condition     = keys(yamldecode(output.yaml).all.children) == ["cache_eu"]
    error_message = "group name as given"
  }
}

run "empty_inventory" {
  command = plan

  variables {
    hosts = []
  }

  assert {
    condition     = yamldecode(output.yaml).all.children.ironcache.hosts == {}
    error_message = "no hosts"
  }
}

run "host_without_address_rejected" {
  command = plan
  variables {
    hosts = [{ name = "c1" }]
  }
  expect_failures = [var.hosts]
}

run "host_name_with_space_rejected" {
  command = plan
  variables {
    hosts = [{ name = "cache 1", address = "192.0.2.1" }]
  }
  expect_failures = [var.hosts]
}

run "duplicate_names_rejected" {
  command = plan
  variables {
    hosts = [{ name = "c1", address = "192.0.2.1" }, { name = "c1", address = "192.0.2.2" }]
  }
  expect_failures = [var.hosts]
}

run "hosts_as_map_rejected" {
  command = plan
  variables {
    hosts = { c1 = { name = "c1", address = "192.0.2.1" } }
  }
  expect_failures = [var.hosts]
}

run "host_vars_not_a_map_rejected" {
  command = plan
  variables {
    hosts = [{ name = "c1", address = "192.0.2.1", vars = "ironcache_port=1" }]
  }
  expect_failures = [var.hosts]
}

run "group_name_rejected" {
  command = plan
  variables {
    hosts      = [{ name = "c1", address = "192.0.2.1" }]
    group_name = "cache-eu"
  }
  expect_failures = [var.group_name]
}
