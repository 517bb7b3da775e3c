output "user_data" {
  description = "cloud-init user-data (#cloud-config) for the host. Sensitive: it holds requirepass when set."
  value       = local.user_data
  sensitive   = true
}

output "role_vars" {
  description = "The role variables the host's play applies; give them to the inventory (group vars) so later site.yml and upgrade runs keep the same configuration. Sensitive: it holds requirepass when set."
  value       = local.role_vars
  sensitive   = true
}

output "somaxconn" {
  description = "net.core.somaxconn the user-data writes to /etc/sysctl.d."
  value       = local.somaxconn
}

output "collection_install" {
  description = "Where the host gets the collection from (type and reference)."
  value = {
    type    = var.collection_source.type
    version = local.collection_version
    url     = var.collection_source.url
    path    = var.collection_source.path
  }
}
