# IronCache server test suite (owner: server tests): pytest driving the server from
# ironcache_src/ with redis-py (sync, asyncio, RESP3), redis-cli, redis-benchmark and
# systemd-socket-activate.
#   make server-test                                  against IronCache
#   make server-test IRONCACHE_TEST_TARGET=redis      the same expectations against redis-server
#                                                     (IronCache-only tests skip)
#   make server-test SERVER_TEST_ARGS="-k scan -x"    extra pytest arguments
#   make server-test IRONCACHE_TEST_PYTHON=/usr/bin/python3   run IronCache without uvloop/hiredis
# Needs redis-tools (redis-cli, redis-benchmark), iproute2 (ss), systemd (systemd-socket-activate;
# those tests skip without it) and redis-server for the redis target.
IRONCACHE_TEST_TARGET ?= ironcache
export IRONCACHE_TEST_TARGET
SERVER_TEST_ARGS ?=

.PHONY: server-test
server-test: venv
	cd $(ROOT)/ironcache_src && $(VENV)/bin/python -m pytest -q -p no:cacheprovider tests $(SERVER_TEST_ARGS)

TEST_LANE2 += server-test
