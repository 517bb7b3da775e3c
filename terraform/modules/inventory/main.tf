locals {
  # var.hosts is a tuple (each host's vars may have its own shape) or a list of objects.
  host_list = [for h in var.hosts : h]

  group = merge(
    {
      hosts = { for h in local.host_list : h.name => merge({ ansible_host = h.address }, try(h.vars, {})) }
    },
    length(keys(var.group_vars)) > 0 ? { vars = var.group_vars } : {},
  )

  inventory = {
    all = {
      children = {
        (var.group_name) = local.group
      }
    }
  }
}
