# Provider-less: this module only renders text, so `terraform init` needs no network.
terraform {
  required_version = ">= 1.9.0"
}
