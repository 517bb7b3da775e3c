# Thin example: the rendering lives in the provider-less modules, which the test suite runs.
# Needs AWS credentials and the hashicorp/aws provider: it is not part of the offline tests
# (they only check its formatting).

data "aws_ami" "debian12" {
  count       = var.ami_id == null ? 1 : 0
  most_recent = true
  owners      = ["136693071363"] # Debian

  filter {
    name   = "name"
    values = ["debian-12-amd64-*"]
  }
  filter {
    name   = "architecture"
    values = ["x86_64"]
  }
}

module "userdata" {
  source = "../../modules/userdata"

  ironcache_version = var.ironcache_version
  collection_source = var.collection_source
  socket_activation = true
  # All interfaces of the instance; the security group admits only cache_client_cidrs.
  bind        = ["0.0.0.0"]
  port        = var.port
  backlog     = var.backlog
  maxmemory   = var.maxmemory
  requirepass = var.requirepass
}

resource "aws_security_group" "ironcache" {
  name_prefix = "ironcache-"
  description = "IronCache: the cache port from the given CIDRs, SSH from the controller"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "cache" {
  for_each          = toset(var.cache_client_cidrs)
  security_group_id = aws_security_group.ironcache.id
  description       = "IronCache clients"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = var.port
  to_port           = var.port
}

resource "aws_vpc_security_group_ingress_rule" "ssh" {
  for_each          = toset(var.ssh_cidrs)
  security_group_id = aws_security_group.ironcache.id
  description       = "SSH for Ansible"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 22
  to_port           = 22
}

# The first boot installs packages, Ansible and the collection.
resource "aws_vpc_security_group_egress_rule" "all" {
  security_group_id = aws_security_group.ironcache.id
  description       = "Package mirrors, PyPI, Galaxy"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "-1"
}

resource "aws_instance" "cache" {
  for_each = toset(var.instance_names)

  ami                    = var.ami_id != null ? var.ami_id : data.aws_ami.debian12[0].id
  instance_type          = var.instance_type
  subnet_id              = var.subnet_id
  key_name               = var.key_name
  vpc_security_group_ids = [aws_security_group.ironcache.id]
  user_data              = module.userdata.user_data

  metadata_options {
    http_tokens = "required"
  }

  root_block_device {
    encrypted = true
  }

  tags = {
    Name = each.key
    Role = "ironcache"
  }

  lifecycle {
    # The user-data only bootstraps a new host. Later changes (configuration, upgrades) go through
    # Ansible with the inventory below, not through a replaced instance.
    ignore_changes = [user_data, ami]
  }
}

module "inventory" {
  source = "../../modules/inventory"

  hosts = [for name in var.instance_names : {
    name    = name
    address = var.inventory_address == "public" ? aws_instance.cache[name].public_ip : aws_instance.cache[name].private_ip
  }]
  # The same role variables as the user-data: site.yml and the upgrade keep the configuration.
  group_vars = merge(module.userdata.role_vars, {
    ansible_user   = var.ansible_user
    ansible_become = true
  })
}

resource "local_sensitive_file" "inventory" {
  filename        = coalesce(var.inventory_path, "${path.root}/inventory.yml")
  content         = module.inventory.yaml
  file_permission = "0600"
}
