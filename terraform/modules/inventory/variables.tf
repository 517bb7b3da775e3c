variable "hosts" {
  description = <<-EOT
    The cache hosts, in order: a list of objects
      { name = "cache-1", address = "10.0.0.5", vars = { ironcache_maxmemory = "1gb" } }
    `name` is the inventory name, `address` becomes ansible_host, `vars` (optional) are host
    variables of any type. Typed `any` so that each host's vars may differ in shape.
  EOT
  type        = any
  nullable    = false

  validation {
    condition     = can(length(var.hosts)) && !can(keys(var.hosts)) && can([for h in var.hosts : h.name]) && can([for h in var.hosts : h.address])
    error_message = "hosts must be a list of objects, each with name and address (and optional vars)."
  }
  validation {
    condition     = alltrue([for h in try([for h in var.hosts : h], []) : can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]*$", h.name))])
    error_message = "each host name must be a plain inventory name (letters, digits, _ . -), got: ${join(", ", [for h in try([for h in var.hosts : h], []) : jsonencode(try(h.name, null)) if !can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]*$", h.name))])}."
  }
  validation {
    condition     = alltrue([for h in try([for h in var.hosts : h], []) : can(regex("^[A-Za-z0-9_.:%-]+$", h.address))])
    error_message = "each host address must be an IP address or a host name, got: ${join(", ", [for h in try([for h in var.hosts : h], []) : jsonencode(try(h.address, null)) if !can(regex("^[A-Za-z0-9_.:%-]+$", h.address))])}."
  }
  validation {
    condition     = length(distinct([for h in try([for h in var.hosts : h], []) : try(h.name, "")])) == length(try([for h in var.hosts : h], []))
    error_message = "host names must be unique."
  }
  validation {
    condition     = alltrue([for h in try([for h in var.hosts : h], []) : can(keys(try(h.vars, {})))])
    error_message = "each host's vars must be a map of variable names to values."
  }
}

variable "group_name" {
  description = "Inventory group of the cache hosts; site.yml and the upgrade playbook run against `ironcache`."
  type        = string
  default     = "ironcache"
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z_][A-Za-z0-9_]*$", var.group_name))
    error_message = "group_name must be a valid Ansible group name (letters, digits, _), got \"${var.group_name}\"."
  }
}

variable "group_vars" {
  description = "Variables for the whole group, e.g. the userdata module's role_vars output (one source of truth), ansible_user, ansible_ssh_common_args."
  type        = any
  default     = {}
  nullable    = false

  validation {
    condition     = can(keys(var.group_vars))
    error_message = "group_vars must be a map of variable names to values."
  }
}
