"""Runs one of TrustGraph's own services for the tests, from the pinned trustgraph-flow in
.venv-trustgraph (installed by .ci/setup).

    trustgraph_services.py config-svc|flow-svc|no-auth-svc [upstream's own arguments...]

Each is upstream's process, unchanged, with one exception: config-svc keeps its table in a dict
instead of Cassandra. `InMemoryConfigTable` below stands where `ConfigTableStore` stands, with
the same ten async methods and the same answers (rows in key order, as Cassandra's clustering
order gives them); everything else (the request handling, the version, the config push, the
copy of `__template__` into a new workspace) is upstream's own code.
"""

import sys


class InMemoryConfigTable:
    """`trustgraph.tables.config.ConfigTableStore`, without Cassandra."""

    def __init__(self, *args, **kwargs):
        self.rows = {}  # (workspace, class, key) -> value
        self.version = 0

    async def inc_version(self):
        self.version += 1

    async def get_version(self):
        return self.version

    async def put_config(self, workspace, cls, key, value):
        self.rows[(workspace, cls, key)] = value

    async def get_value(self, workspace, cls, key):
        return self.rows.get((workspace, cls, key))

    def _sorted(self):
        return sorted(self.rows.items())

    async def get_values(self, workspace, cls):
        return [[k, v] for (w, c, k), v in self._sorted() if w == workspace and c == cls]

    async def get_values_all_ws(self, cls):
        return [(w, k, v) for (w, c, k), v in self._sorted() if c == cls]

    async def get_keys_all_ws(self, cls):
        return [(w, k) for (w, c, k), _ in self._sorted() if c == cls]

    async def get_all(self):
        return [(w, c, k, v) for (w, c, k), v in self._sorted()]

    async def get_all_for_workspace(self, workspace):
        return [(c, k, v) for (w, c, k), v in self._sorted() if w == workspace]

    async def get_keys(self, workspace, cls):
        return [k for (w, c, k), _ in self._sorted() if w == workspace and c == cls]

    async def delete_key(self, workspace, cls, key):
        self.rows.pop((workspace, cls, key), None)


def main():
    service, sys.argv = sys.argv[1], [sys.argv[1]] + sys.argv[2:]
    if service == "config-svc":
        import trustgraph.config.service.config as configuration

        configuration.ConfigTableStore = InMemoryConfigTable
        from trustgraph.config.service import run
    elif service == "flow-svc":
        from trustgraph.flow.service import run
    elif service == "no-auth-svc":
        from trustgraph.iam.noauth import run
    else:
        sys.exit(f"unknown service {service!r}: config-svc, flow-svc or no-auth-svc")
    run()


if __name__ == "__main__":
    main()
