# The server's import layers (owner: server): import-linter checks the contracts in
# ironcache_src/pyproject.toml ([tool.importlinter]; ironcache_src/README.md "Layers"):
# no module imports one above it, command families import no other family. About 1 s.
.PHONY: layers
layers: venv
	cd $(ROOT)/ironcache_src && $(VENV)/bin/lint-imports --no-cache

TEST_LANE2 += layers
