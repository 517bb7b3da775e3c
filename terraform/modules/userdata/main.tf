locals {
  bootstrap_dir = "/etc/ironcache-bootstrap"
  sysctl_file   = "/etc/sysctl.d/90-ironcache-somaxconn.conf"
  somaxconn     = coalesce(var.somaxconn, max(var.backlog, 4096))

  collection_version = coalesce(var.collection_source.version, var.ironcache_version)

  # The role variables: the only thing the host's play is given. The role's templates make the
  # unit files and the configuration from them (this module writes no unit file).
  # somaxconn is raised by this user-data (sysctl.d) before the play, so the role need not.
  role_vars = merge(
    {
      ironcache_version           = var.ironcache_version
      ironcache_socket_activation = var.socket_activation
      ironcache_bind              = var.bind
      ironcache_port              = var.port
      ironcache_backlog           = var.backlog
      ironcache_manage_somaxconn  = false
      ironcache_maxmemory         = var.maxmemory
      ironcache_maxmemory_policy  = var.maxmemory_policy
      ironcache_maxclients        = var.maxclients
      ironcache_accelerators      = var.accelerators
    },
    var.accelerators ? { ironcache_wheels_dir = "/var/cache/ironcache/wheels" } : {},
    var.requirepass != "" ? { ironcache_requirepass = var.requirepass } : {},
    var.extra_role_vars,
  )

  playbook = [
    {
      name         = "Deploy IronCache on this host (rendered by the IronCache Terraform userdata module)"
      hosts        = "localhost"
      connection   = "local"
      gather_facts = false
      vars = {
        ansible_python_interpreter = "/usr/bin/python3"
      }
      vars_files = ["${local.bootstrap_dir}/vars.yml"]
      roles      = [{ role = "ironcache.ironcache.ironcache" }]
    },
  ]

  # Shell assignments read by the bootstrap script; every value is validated to a character set
  # without quotes, so single quotes are enough.
  bootstrap_env = join("", [for k, v in {
    ANSIBLE_METHOD     = var.ansible_install.method
    ANSIBLE_PIP_SPEC   = var.ansible_install.pip_spec
    ANSIBLE_VENV       = var.ansible_install.venv
    COLLECTIONS_DIR    = var.collections_dir
    COLLECTION_TYPE    = var.collection_source.type
    COLLECTION_VERSION = local.collection_version
    COLLECTION_URL     = var.collection_source.url == null ? "" : var.collection_source.url
    COLLECTION_PATH    = var.collection_source.path == null ? "" : var.collection_source.path
  } : "${k}='${v}'\n"])

  cloud_config = {
    write_files = [
      {
        path        = local.sysctl_file
        owner       = "root:root"
        permissions = "0644"
        content     = "# Written by the IronCache Terraform userdata module: room for Backlog=${var.backlog}.\nnet.core.somaxconn = ${local.somaxconn}\n"
      },
      {
        path        = "${local.bootstrap_dir}/bootstrap.env"
        owner       = "root:root"
        permissions = "0644"
        content     = local.bootstrap_env
      },
      {
        path        = "${local.bootstrap_dir}/vars.yml"
        owner       = "root:root"
        permissions = "0600"
        content     = "# Role variables rendered by Terraform (IronCache userdata module).\n${yamlencode(local.role_vars)}"
      },
      {
        path        = "${local.bootstrap_dir}/site.yml"
        owner       = "root:root"
        permissions = "0644"
        content     = yamlencode(local.playbook)
      },
      {
        path        = "/usr/local/sbin/ironcache-bootstrap"
        owner       = "root:root"
        permissions = "0755"
        content     = file("${path.module}/files/ironcache-bootstrap.sh")
      },
    ]
    # runcmd runs once per instance; a reboot does not run it again.
    runcmd = [["/usr/local/sbin/ironcache-bootstrap"]]
  }

  user_data = "#cloud-config\n${yamlencode(local.cloud_config)}"
}
