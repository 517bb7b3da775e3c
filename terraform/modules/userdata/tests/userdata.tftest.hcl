# terraform test: the rendered cloud-config and the variable validation.

run "defaults_render_cloud_config" {
  command = apply

  assert {
    condition     = startswith(output.user_data, "#cloud-config\n")
    error_message = "user_data must start with #cloud-config"
  }
  assert {
    condition     = [for f in yamldecode(output.user_data).write_files : f.path] == ["/etc/sysctl.d/90-ironcache-somaxconn.conf", "/etc/ironcache-bootstrap/bootstrap.env", "/etc/ironcache-bootstrap/vars.yml", "/etc/ironcache-bootstrap/site.yml", "/usr/local/sbin/ironcache-bootstrap"]
    error_message = "unexpected write_files paths"
  }
  assert {
    condition     = alltrue([for f in yamldecode(output.user_data).write_files : !can(regex("/etc/systemd/", f.path))])
    error_message = "the user-data must not write unit files: the role's templates make them"
  }
  assert {
    condition     = yamldecode(output.user_data).runcmd == [["/usr/local/sbin/ironcache-bootstrap"]]
    error_message = "runcmd must run the bootstrap script only"
  }
  assert {
    condition     = strcontains(yamldecode(output.user_data).write_files[0].content, "net.core.somaxconn = 4096\n")
    error_message = "somaxconn must default to max(backlog, 4096)"
  }
  assert {
    condition     = output.role_vars.ironcache_socket_activation == true && output.role_vars.ironcache_port == 6379 && output.role_vars.ironcache_bind == tolist(["127.0.0.1"]) && output.role_vars.ironcache_backlog == 4096 && output.role_vars.ironcache_version == "1.0.0"
    error_message = "default role variables"
  }
  assert {
    condition     = !contains(keys(output.role_vars), "ironcache_requirepass")
    error_message = "no requirepass by default"
  }
  assert {
    condition     = jsonencode(yamldecode(yamldecode(output.user_data).write_files[2].content)) == jsonencode(output.role_vars)
    error_message = "vars.yml must hold exactly the role variables"
  }
  assert {
    condition     = yamldecode(output.user_data).write_files[2].permissions == "0600"
    error_message = "vars.yml may hold the password: mode 0600"
  }
  assert {
    condition     = yamldecode(yamldecode(output.user_data).write_files[3].content)[0].roles == [{ role = "ironcache.ironcache.ironcache" }] && yamldecode(yamldecode(output.user_data).write_files[3].content)[0].connection == "local" && yamldecode(yamldecode(output.user_data).write_files[3].content)[0].hosts == "localhost"
    error_message = "the play applies ironcache.ironcache.ironcache locally"
  }
  assert {
    condition     = strcontains(yamldecode(output.user_data).write_files[1].content, "COLLECTION_TYPE='galaxy'\n") && strcontains(yamldecode(output.user_data).write_files[1].content, "COLLECTION_VERSION='1.0.0'\n") && strcontains(yamldecode(output.user_data).write_files[1].content, "ANSIBLE_METHOD='pip'\n")
    error_message = "bootstrap.env: galaxy source, version 1.0.0, ansible from pip"
  }
}

run "custom_values_reach_the_role" {
  command = apply

  variables {
    ironcache_version = "1.2.3"
    socket_activation = false
    bind              = ["10.0.0.5", "-::1"]
    port              = 7000
    backlog           = 16384
    maxmemory         = "1gb"
    maxclients        = 20000
    requirepass       = "s3cret"
    collection_source = { type = "path", path = "/srv/ironcache-ironcache-1.2.3.tar.gz" }
    ansible_install   = { method = "apt" }
    extra_role_vars   = { ironcache_loglevel = "warning", ironcache_extra_config = { "hz" = 20 } }
  }

  assert {
    condition     = output.role_vars.ironcache_socket_activation == false && output.role_vars.ironcache_port == 7000 && output.role_vars.ironcache_bind == tolist(["10.0.0.5", "-::1"]) && output.role_vars.ironcache_backlog == 16384 && output.role_vars.ironcache_maxmemory == "1gb" && output.role_vars.ironcache_maxclients == 20000
    error_message = "role variables from the module variables"
  }
  assert {
    condition     = output.role_vars.ironcache_requirepass == "s3cret" && output.role_vars.ironcache_loglevel == "warning" && output.role_vars.ironcache_extra_config.hz == 20
    error_message = "requirepass and extra role variables"
  }
  assert {
    condition     = output.somaxconn == 16384 && strcontains(yamldecode(output.user_data).write_files[0].content, "net.core.somaxconn = 16384\n")
    error_message = "somaxconn raised to the backlog"
  }
  assert {
    condition     = strcontains(yamldecode(output.user_data).write_files[1].content, "COLLECTION_TYPE='path'\n") && strcontains(yamldecode(output.user_data).write_files[1].content, "COLLECTION_PATH='/srv/ironcache-ironcache-1.2.3.tar.gz'\n") && strcontains(yamldecode(output.user_data).write_files[1].content, "COLLECTION_VERSION='1.2.3'\n") && strcontains(yamldecode(output.user_data).write_files[1].content, "ANSIBLE_METHOD='apt'\n")
    error_message = "bootstrap.env: path source, ansible from apt"
  }
}

run "url_source" {
  command = plan

  variables {
    collection_source = { type = "url", url = "https://example.org/ironcache-ironcache-1.0.0.tar.gz" }
  }

  assert {
    condition     = strcontains(yamldecode(output.user_data).write_files[1].content, "COLLECTION_URL='https://example.org/ironcache-ironcache-1.0.0.tar.gz'\n")
    error_message = "bootstrap.env carries the URL"
  }
}

run "explicit_somaxconn" {
  command = plan

  variables {
    backlog   = 1024
    somaxconn = 65535
  }

  assert {
    condition     = output.somaxconn == 65535
    error_message = "somaxconn as given"
  }
}

# Validation failures: each names its variable; the pytest suite checks the messages.

run "port_zero_rejected" {
  command = plan
  variables {
    port = 0
  }
  expect_failures = [var.port]
}

run "port_too_large_rejected" {
  command = plan
  variables {
    port = 65536
  }
  expect_failures = [var.port]
}

run "port_fraction_rejected" {
  command = plan
  variables {
    port = 6379.5
  }
  expect_failures = [var.port]
}

run "backlog_zero_rejected" {
  command = plan
  variables {
    backlog = 0
  }
  expect_failures = [var.backlog]
}

run "backlog_too_large_rejected" {
  command = plan
  variables {
    backlog = 70000
  }
  expect_failures = [var.backlog]
}

run "maxmemory_words_rejected" {
  command = plan
  variables {
    maxmemory = "lots"
  }
  expect_failures = [var.maxmemory]
}

run "maxmemory_unit_rejected" {
  command = plan
  variables {
    maxmemory = "2tb"
  }
  expect_failures = [var.maxmemory]
}

run "maxmemory_policy_rejected" {
  command = plan
  variables {
    maxmemory_policy = "lru"
  }
  expect_failures = [var.maxmemory_policy]
}

run "maxclients_rejected" {
  command = plan
  variables {
    maxclients = 0
  }
  expect_failures = [var.maxclients]
}

run "bind_hostname_rejected" {
  command = plan
  variables {
    bind = ["127.0.0.1", "localhost"]
  }
  expect_failures = [var.bind]
}

run "bind_bad_ipv4_rejected" {
  command = plan
  variables {
    bind = ["256.1.1.1"]
  }
  expect_failures = [var.bind]
}

run "bind_empty_rejected" {
  command = plan
  variables {
    bind = []
  }
  expect_failures = [var.bind]
}

run "version_not_semver_rejected" {
  command = plan
  variables {
    ironcache_version = "1.0"
  }
  expect_failures = [var.ironcache_version]
}

run "collection_type_rejected" {
  command = plan
  variables {
    collection_source = { type = "ftp" }
  }
  expect_failures = [var.collection_source]
}

run "collection_url_missing_rejected" {
  command = plan
  variables {
    collection_source = { type = "url" }
  }
  expect_failures = [var.collection_source]
}

run "collection_path_relative_rejected" {
  command = plan
  variables {
    collection_source = { type = "path", path = "collections/ironcache.tar.gz" }
  }
  expect_failures = [var.collection_source]
}

run "collection_version_rejected" {
  command = plan
  variables {
    collection_source = { type = "galaxy", version = "latest" }
  }
  expect_failures = [var.collection_source]
}

run "ansible_method_rejected" {
  command = plan
  variables {
    ansible_install = { method = "yum" }
  }
  expect_failures = [var.ansible_install]
}

run "ansible_pip_spec_with_quote_rejected" {
  command = plan
  variables {
    ansible_install = { pip_spec = "ansible-core'; rm -rf /" }
  }
  expect_failures = [var.ansible_install]
}

run "extra_role_vars_foreign_name_rejected" {
  command = plan
  variables {
    extra_role_vars = { foo = 1 }
  }
  expect_failures = [var.extra_role_vars]
}

run "extra_role_vars_overlap_rejected" {
  command = plan
  variables {
    extra_role_vars = { ironcache_port = 6380 }
  }
  expect_failures = [var.extra_role_vars]
}

run "requirepass_newline_rejected" {
  command = plan
  variables {
    requirepass = "a\nb"
  }
  expect_failures = [var.requirepass]
}
