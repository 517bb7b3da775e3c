# IronCache release and where the collection that ships it comes from.

variable "ironcache_version" {
  description = "IronCache release to deploy (role variable ironcache_version); semantic version such as 1.0.0."
  type        = string
  default     = "1.0.0"
  nullable    = false

  validation {
    condition     = can(regex("^(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\\+[0-9A-Za-z.-]+)?$", var.ironcache_version))
    error_message = "ironcache_version must be a semantic version such as 1.0.0, got \"${var.ironcache_version}\"."
  }
}

variable "collection_source" {
  description = <<-EOT
    Where the host gets the ironcache.ironcache collection:
      { type = "galaxy", version = "1.0.0" }        ansible-galaxy from Galaxy (version defaults to ironcache_version)
      { type = "url",    url = "https://.../ironcache-ironcache-1.0.0.tar.gz" }   a collection tarball over HTTP(S)
      { type = "path",   path = "/srv/ironcache-ironcache-1.0.0.tar.gz" }        a tarball already on the image, or
      { type = "path",   path = "/srv/collections" }   a collections directory holding ansible_collections/ironcache/ironcache
  EOT
  type = object({
    type    = string
    version = optional(string)
    url     = optional(string)
    path    = optional(string)
  })
  default  = { type = "galaxy" }
  nullable = false

  validation {
    condition     = contains(["galaxy", "url", "path"], var.collection_source.type)
    error_message = "collection_source.type must be one of galaxy, url, path; got \"${var.collection_source.type}\"."
  }
  validation {
    condition = (var.collection_source.version == null ? true : can(regex(
    "^(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\\+[0-9A-Za-z.-]+)?$", var.collection_source.version)))
    error_message = "collection_source.version must be a semantic version such as 1.0.0, got ${jsonencode(var.collection_source.version)}."
  }
  validation {
    condition = (var.collection_source.type != "url" ? true : can(regex(
    "^https?://[A-Za-z0-9._~:/?#@!$&()*+,;=%-]+$", coalesce(var.collection_source.url, "-"))))
    error_message = "collection_source.url must be an http(s) URL without quotes or spaces when type is \"url\", got ${jsonencode(var.collection_source.url)}."
  }
  validation {
    condition = (var.collection_source.type != "path" ? true : can(regex(
    "^/[A-Za-z0-9._/+-]*$", coalesce(var.collection_source.path, "-"))))
    error_message = "collection_source.path must be an absolute path (letters, digits, . _ / + -) when type is \"path\", got ${jsonencode(var.collection_source.path)}."
  }
}

variable "ansible_install" {
  description = <<-EOT
    How the host gets Ansible:
      method = "pip"          (default) ansible-core from PyPI into the venv `venv`, skipped when venv/bin/ansible-playbook exists
      method = "apt"          the distribution's `ansible` package (Debian 12 ships ansible-core 2.14; prefer pip)
      method = "preinstalled" the image already has ansible-playbook (in `venv`/bin or on PATH); nothing is installed
  EOT
  type = object({
    method   = optional(string, "pip")
    pip_spec = optional(string, "ansible-core>=2.16,<2.22")
    venv     = optional(string, "/opt/ironcache-ansible")
  })
  default  = {}
  nullable = false

  validation {
    condition     = contains(["pip", "apt", "preinstalled"], var.ansible_install.method)
    error_message = "ansible_install.method must be one of pip, apt, preinstalled; got \"${var.ansible_install.method}\"."
  }
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._<>=!~,*\\[\\]-]*$", var.ansible_install.pip_spec))
    error_message = "ansible_install.pip_spec must be one pip requirement without spaces such as ansible-core>=2.16,<2.22, got \"${var.ansible_install.pip_spec}\"."
  }
  validation {
    condition     = can(regex("^/[A-Za-z0-9._/+-]+$", var.ansible_install.venv))
    error_message = "ansible_install.venv must be an absolute path, got \"${var.ansible_install.venv}\"."
  }
}

variable "collections_dir" {
  description = "Where the collection is installed on the host (ANSIBLE_COLLECTIONS_PATH of the local play)."
  type        = string
  default     = "/usr/local/share/ironcache/collections"
  nullable    = false

  validation {
    condition     = can(regex("^/[A-Za-z0-9._/+-]+$", var.collections_dir))
    error_message = "collections_dir must be an absolute path, got \"${var.collections_dir}\"."
  }
}

# Role variables (roles/ironcache). Each becomes the ironcache_* variable of the same meaning.

variable "socket_activation" {
  description = "ironcache_socket_activation: systemd holds the listening sockets (ironcache.socket)."
  type        = bool
  default     = true
  nullable    = false
}

variable "bind" {
  description = "ironcache_bind: IPv4/IPv6 addresses to listen on; a leading - marks an address as optional."
  type        = list(string)
  default     = ["127.0.0.1"]
  nullable    = false

  validation {
    condition     = length(var.bind) > 0
    error_message = "bind must list at least one IP address."
  }
  validation {
    condition = alltrue([for a in var.bind : (
      can(regex("^-?[0-9]{1,3}(\\.[0-9]{1,3}){3}$", a)) && can(cidrhost("${trimprefix(a, "-")}/32", 0))
      ) || (
      can(regex("^-?[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$", a)) && can(cidrhost("${trimprefix(a, "-")}/128", 0))
    )])
    error_message = "bind must list IP addresses (optionally prefixed with -); not an IP address: ${join(", ", [for a in var.bind : "\"${a}\"" if !((can(regex("^-?[0-9]{1,3}(\\.[0-9]{1,3}){3}$", a)) && can(cidrhost("${trimprefix(a, "-")}/32", 0))) || (can(regex("^-?[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$", a)) && can(cidrhost("${trimprefix(a, "-")}/128", 0))))])}."
  }
}

variable "port" {
  description = "ironcache_port: TCP port, 1-65535."
  type        = number
  default     = 6379
  nullable    = false

  validation {
    condition     = var.port >= 1 && var.port <= 65535 && floor(var.port) == var.port
    error_message = "port must be an integer from 1 to 65535, got ${var.port}."
  }
}

variable "backlog" {
  description = "ironcache_backlog: listen backlog (Backlog= of ironcache.socket), 1-65535. net.core.somaxconn is raised to at least this."
  type        = number
  default     = 4096
  nullable    = false

  validation {
    condition     = var.backlog >= 1 && var.backlog <= 65535 && floor(var.backlog) == var.backlog
    error_message = "backlog must be an integer from 1 to 65535, got ${var.backlog}."
  }
}

variable "somaxconn" {
  description = "net.core.somaxconn written to /etc/sysctl.d (persistent); null = max(backlog, 4096)."
  type        = number
  default     = null

  validation {
    condition     = var.somaxconn == null ? true : (var.somaxconn >= 128 && var.somaxconn <= 2147483647 && floor(var.somaxconn) == var.somaxconn)
    error_message = "somaxconn must be null or an integer from 128 to 2147483647, got ${jsonencode(var.somaxconn)}."
  }
}

variable "maxmemory" {
  description = "ironcache_maxmemory: bytes, or a size such as 256mb or 1gb."
  type        = string
  default     = "256mb"
  nullable    = false

  validation {
    condition     = can(regex("^[0-9]+([kKmMgG][bB]?|[bB])?$", var.maxmemory))
    error_message = "maxmemory must be bytes or a size such as 256mb or 1gb, got \"${var.maxmemory}\"."
  }
}

variable "maxmemory_policy" {
  description = "ironcache_maxmemory_policy."
  type        = string
  default     = "allkeys-lru"
  nullable    = false

  validation {
    condition = contains(["noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru",
    "volatile-lfu", "volatile-random", "volatile-ttl"], var.maxmemory_policy)
    error_message = "maxmemory_policy must be a Redis eviction policy such as allkeys-lru or noeviction, got \"${var.maxmemory_policy}\"."
  }
}

variable "maxclients" {
  description = "ironcache_maxclients: 1-1000000 (also drives LimitNOFILE=)."
  type        = number
  default     = 10000
  nullable    = false

  validation {
    condition     = var.maxclients >= 1 && var.maxclients <= 1000000 && floor(var.maxclients) == var.maxclients
    error_message = "maxclients must be an integer from 1 to 1000000, got ${var.maxclients}."
  }
}

variable "requirepass" {
  description = "ironcache_requirepass: password for AUTH; empty = none. It ends up in the user-data: anyone who can read the instance's user-data can read it."
  type        = string
  default     = ""
  nullable    = false
  sensitive   = true

  validation {
    condition     = !can(regex("[\\r\\n\\x00]", var.requirepass))
    error_message = "requirepass must not contain line breaks or NUL characters."
  }
}

variable "accelerators" {
  description = "ironcache_accelerators: also install the uvloop and hiredis wheels (the host downloads them with pip, like the server's own packages)."
  type        = bool
  default     = false
  nullable    = false
}

variable "extra_role_vars" {
  description = "More role variables, name -> value (names start with ironcache_); they may not repeat the ones this module sets."
  type        = any
  default     = {}
  nullable    = false

  validation {
    condition     = can(keys(var.extra_role_vars))
    error_message = "extra_role_vars must be a map of role variable names to values."
  }
  validation {
    condition     = alltrue([for k in try(keys(var.extra_role_vars), []) : can(regex("^ironcache_[a-z0-9_]+$", k))])
    error_message = "extra_role_vars names must be role variables (ironcache_...), got: ${join(", ", [for k in try(keys(var.extra_role_vars), []) : k if !can(regex("^ironcache_[a-z0-9_]+$", k))])}."
  }
  validation {
    condition = length(setintersection(toset(try(keys(var.extra_role_vars), [])), toset([
      "ironcache_version", "ironcache_socket_activation", "ironcache_bind", "ironcache_port", "ironcache_backlog",
      "ironcache_manage_somaxconn", "ironcache_maxmemory", "ironcache_maxmemory_policy", "ironcache_maxclients",
    "ironcache_requirepass", "ironcache_accelerators", "ironcache_wheels_dir"]))) == 0
    error_message = "extra_role_vars may not set what this module's own variables set: ${join(", ", sort(setintersection(toset(try(keys(var.extra_role_vars), [])), toset(["ironcache_version", "ironcache_socket_activation", "ironcache_bind", "ironcache_port", "ironcache_backlog", "ironcache_manage_somaxconn", "ironcache_maxmemory", "ironcache_maxmemory_policy", "ironcache_maxclients", "ironcache_requirepass", "ironcache_accelerators", "ironcache_wheels_dir"]))))} (use the module variables instead)."
  }
}
