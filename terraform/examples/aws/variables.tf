variable "region" {
  description = "AWS region."
  type        = string
  default     = "eu-central-1"
}

variable "vpc_id" {
  description = "VPC of the security group (the subnet's VPC)."
  type        = string
}

variable "subnet_id" {
  description = "Subnet of the instances."
  type        = string
}

variable "instance_names" {
  description = "One instance per name; the names are the inventory names."
  type        = list(string)
  default     = ["cache-1", "cache-2"]

  validation {
    condition     = length(var.instance_names) == length(distinct(var.instance_names)) && alltrue([for n in var.instance_names : can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]*$", n))])
    error_message = "instance_names must be unique plain names (letters, digits, _ . -), got ${jsonencode(var.instance_names)}."
  }
}

variable "instance_type" {
  description = "EC2 instance type."
  type        = string
  default     = "t3.small"
}

variable "ami_id" {
  description = "AMI to boot; null = the newest official Debian 12 (bookworm) amd64 AMI."
  type        = string
  default     = null
}

variable "key_name" {
  description = "EC2 key pair for SSH (Ansible connects with it after the first boot)."
  type        = string
}

variable "ansible_user" {
  description = "SSH user of the AMI (admin on Debian's AMIs)."
  type        = string
  default     = "admin"
}

variable "cache_client_cidrs" {
  description = "CIDRs admitted to the cache port; nothing else reaches it."
  type        = list(string)

  validation {
    condition     = alltrue([for c in var.cache_client_cidrs : can(cidrhost(c, 0))])
    error_message = "cache_client_cidrs must be CIDR blocks such as 10.0.0.0/16, got ${jsonencode(var.cache_client_cidrs)}."
  }
}

variable "ssh_cidrs" {
  description = "CIDRs admitted to SSH (the Ansible controller)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.ssh_cidrs : can(cidrhost(c, 0))])
    error_message = "ssh_cidrs must be CIDR blocks such as 203.0.113.7/32, got ${jsonencode(var.ssh_cidrs)}."
  }
}

variable "inventory_address" {
  description = "Address Ansible uses: public or private IP."
  type        = string
  default     = "private"

  validation {
    condition     = contains(["public", "private"], var.inventory_address)
    error_message = "inventory_address must be public or private, got \"${var.inventory_address}\"."
  }
}

variable "inventory_path" {
  description = "Where the inventory is written; null = inventory.yml next to this configuration."
  type        = string
  default     = null
}

# Passed to the userdata module (see its variables for validation).

variable "ironcache_version" {
  type    = string
  default = "1.0.0"
}

variable "collection_source" {
  type = object({
    type    = string
    version = optional(string)
    url     = optional(string)
    path    = optional(string)
  })
  default = { type = "galaxy" }
}

variable "port" {
  type    = number
  default = 6379
}

variable "backlog" {
  type    = number
  default = 4096
}

variable "maxmemory" {
  type    = string
  default = "256mb"
}

variable "requirepass" {
  type      = string
  default   = ""
  sensitive = true
}
