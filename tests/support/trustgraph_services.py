"""Runs one of TrustGraph's own services for the tests, from the pinned trustgraph-flow of the
virtualenv whose python runs this (.venv-trustgraph for 2.11.1, .venv-trustgraph-2.4.4 for
2.4.4, both installed by .ci/setup).

    trustgraph_services.py config-svc|flow-svc|no-auth-svc [upstream's own arguments...]

Each is upstream's process, unchanged, with one exception: config-svc keeps its table in a dict
instead of Cassandra. `InMemoryConfigTable` below stands where `ConfigTableStore` stands, with
the same async methods and the same answers (rows in key order, as Cassandra's clustering order
gives them): 2.4.4's store has the same methods as 2.11.1's but `get_keys_all_ws`, which 2.4.4
never calls. Everything else (the request handling, the version, the config push, and in 2.11.1
the copy of `__template__` into a new workspace) is upstream's own code. 2.4.4 has no
no-auth-svc (nor any IAM).
"""

import sys


class InMemoryConfigTable:
    """`trustgraph.tables.config.ConfigTableStore`, without Cassandra.

    Rows are kept by partition, (workspace, class), as Cassandra keeps them, so a read costs
    what it costs there (its partition, not the whole table): the benches count the services'
    CPU, and a shim slower than the store it replaces would inflate it.
    """

    def __init__(self, *args, **kwargs):
        self.partitions = {}  # (workspace, class) -> {key: value}
        self.version = 0

    async def inc_version(self):
        self.version += 1

    async def get_version(self):
        return self.version

    async def put_config(self, workspace, cls, key, value):
        self.partitions.setdefault((workspace, cls), {})[key] = value

    async def get_value(self, workspace, cls, key):
        return self.partitions.get((workspace, cls), {}).get(key)

    def _rows(self, workspace, cls):
        return sorted(self.partitions.get((workspace, cls), {}).items())

    def _partitions(self):
        return sorted(self.partitions.items())

    async def get_values(self, workspace, cls):
        return [[k, v] for k, v in self._rows(workspace, cls)]

    async def get_values_all_ws(self, cls):
        return [(w, k, v) for (w, c), rows in self._partitions() if c == cls for k, v in sorted(rows.items())]

    async def get_keys_all_ws(self, cls):
        return [(w, k) for (w, k, _) in await self.get_values_all_ws(cls)]

    async def get_all(self):
        return [(w, c, k, v) for (w, c), rows in self._partitions() for k, v in sorted(rows.items())]

    async def get_all_for_workspace(self, workspace):
        return [(c, k, v) for (w, c), rows in self._partitions() if w == workspace for k, v in sorted(rows.items())]

    async def get_keys(self, workspace, cls):
        return [k for k, _ in self._rows(workspace, cls)]

    async def delete_key(self, workspace, cls, key):
        self.partitions.get((workspace, cls), {}).pop(key, None)


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
