output "instances" {
  description = "Instance id, private and public IP per name."
  value = { for name, i in aws_instance.cache : name => {
    id         = i.id
    private_ip = i.private_ip
    public_ip  = i.public_ip
  } }
}

output "security_group_id" {
  value = aws_security_group.ironcache.id
}

output "inventory_path" {
  description = "The inventory for ansible-playbook -i."
  value       = local_sensitive_file.inventory.filename
}

output "inventory_yaml" {
  description = "The inventory as YAML (terraform output -raw inventory_yaml)."
  value       = module.inventory.yaml
  sensitive   = true
}
