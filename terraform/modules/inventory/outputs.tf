output "inventory" {
  description = "The inventory as an object (all.children.<group>.hosts/vars). Sensitive: group_vars may hold requirepass."
  value       = local.inventory
  sensitive   = true
}

output "yaml" {
  description = "The inventory as YAML, for `ansible-playbook -i inventory.yml`. Sensitive: group_vars may hold requirepass."
  value       = "# Ansible inventory rendered by Terraform (IronCache inventory module).\n${yamlencode(local.inventory)}"
  sensitive   = true
}

output "host_names" {
  description = "Inventory names of the hosts, in order."
  value       = [for h in local.host_list : h.name]
}
