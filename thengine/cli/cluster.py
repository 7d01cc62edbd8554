"""`thengine cluster ...`: make and inspect a cluster of nodes hosting partitions of hunts."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import click

from ..cluster import haproxy, litestream
from ..cluster.local import create as create_cluster
from ..cluster.move import BadMove, MoveError
from ..cluster.move import move as move_partition
from ..cluster.status import status as cluster_status_of
from ..cluster.status import wait_until_up
from ..cluster.config import DEFAULT_PARTITIONS, MAX_PARTITIONS, PARTITIONS_DIR, Cluster, ClusterError, load_cluster, parse_listen
from ..domain.fields import ID_PATTERN
from ._group import BadInput, Failure, main
from .admin import SubGroup, human_bytes, run_async


@main.group(cls=SubGroup)
def cluster() -> None:
    """Run hunts over several nodes: `thengine cluster init`."""


@cluster.command("init")
@click.argument("path", metavar="CLUSTER.toml")
@click.option("--partitions", type=click.IntRange(1, MAX_PARTITIONS), default=DEFAULT_PARTITIONS,
              show_default=True, help="Partitions of hunts, fixed for the cluster's life (a hunt's is crc32(id) % P).")
@click.option("--node", "nodes", multiple=True, required=True, metavar="NAME=HOST:PORT",
              help="A node and its listen address; repeat for each. Partitions go round-robin in this order.")
@click.option("--secret-file", type=click.Path(dir_okay=False), metavar="FILE",
              help="The token secret every node shares (made if missing). Default: cluster.secret next to the file.")
def cluster_init(path: str, partitions: int, nodes: tuple[str, ...], secret_file: str | None) -> None:
    """Write CLUSTER.toml and create each partition's database next to it.

    Partitions are spread round-robin over the nodes in the order given: with
    --node a=... --node b=..., node a hosts 0, 2, 4... and b hosts 1, 3, 5... Every
    partition database gets the cluster's token secret, so a token works on any node.

    \b
    Example:
      thengine cluster init cluster.toml --partitions 8 --node a=127.0.0.1:8801 --node b=127.0.0.1:8802
    """
    file = Path(path).absolute()
    if file.exists():
        raise BadInput(f"{path} already exists; not overwriting a cluster file")
    if not file.parent.is_dir():
        raise BadInput(f"cannot create {path}: no directory {file.parent}")
    problems: list[str] = []
    parsed: list[tuple[str, tuple[str, int]]] = []
    for spec in nodes:
        name, sep, listen = spec.partition("=")
        if not sep or not ID_PATTERN.fullmatch(name):
            problems.append(f"--node: must be NAME=HOST:PORT with a name of letters, digits, '_-.:', got {spec!r}")
            continue
        address = parse_listen(listen, f"--node {name}", problems)
        if address is not None:
            parsed.append((name, address))
    names = [name for name, _ in parsed]
    if len(set(names)) != len(names):
        problems.append(f"--node: each node needs its own name, got {', '.join(names)}")
    if len({address for _, address in parsed}) != len(parsed):
        problems.append("--node: each node needs its own HOST:PORT")
    if problems:
        raise BadInput("; ".join(problems))
    if len(parsed) > partitions:
        raise BadInput(f"--partitions {partitions} is fewer than the {len(parsed)} nodes: a node would host nothing")
    secret_path = Path(secret_file).absolute() if secret_file else file.parent / "cluster.secret"
    try:
        made = create_cluster(file, partitions, parsed, secret_path)
    except ClusterError as exc:
        raise BadInput("; ".join(exc.problems)) from None
    for node in made.nodes.values():
        click.echo(f"node {node.name} at {node.listen}: partitions {', '.join(map(str, node.partitions))}")
    click.echo(f"wrote {path} ({partitions} partitions in {file.parent / PARTITIONS_DIR}/, "
               f"token secret in {secret_path})")


@cluster.command("haproxy")
@click.argument("path", metavar="CLUSTER.toml")
@click.option("--listen", required=True, metavar="HOST:PORT", help="Where HAProxy listens for clients.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Directory for haproxy.cfg and partitions.map (made if missing).")
def cluster_haproxy(path: str, listen: str, out_dir: str) -> None:
    """Write DIR/haproxy.cfg and DIR/partitions.map for the cluster.

    Clients connect to ws://LISTEN/v1?hunt=H and reach the node hosting H's partition;
    /metrics?node=a is node a's metrics; every node is health-checked on /healthz.
    Run it with `haproxy -f DIR/haproxy.cfg -D -p PIDFILE`, from any directory.

    
    Example:
      thengine cluster haproxy cluster.toml --listen 127.0.0.1:8800 --out lb/
    """
    made = load(path)
    problems: list[str] = []
    if parse_listen(listen, "--listen", problems) is None:
        raise BadInput(problems[0])
    written = haproxy.write(made, listen=listen, out=Path(out_dir))
    click.echo(f"wrote {', '.join(str(p) for p in written)}; run: haproxy -f {written[0].absolute()} -D -p PIDFILE")


@cluster.command("litestream")
@click.argument("path", metavar="CLUSTER.toml")
@click.option("--node", "node_name", required=True, metavar="NAME", help="The node whose partitions to replicate.")
@click.option("--replica", required=True, metavar="URL",
              help="Where replicas go: file:///DIR, or s3://BUCKET/PREFIX (one sub-path per partition).")
@click.option("--sync-interval", default=litestream.DEFAULT_SYNC_INTERVAL, show_default=True, metavar="DURATION",
              help="How often new writes ship: at most this much acknowledged work is lost with the machine.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Write the config here (default: print it).")
def cluster_litestream(path: str, node_name: str, replica: str, sync_interval: str, out_file: str | None) -> None:
    """Write node NAME's Litestream config: each of its partitions to its own replica.

    Litestream is asynchronous: a machine lost for good loses the commands acknowledged
    within the last --sync-interval. Restore a partition with
    `litestream restore -config FILE -o NEW.db PARTITION.db`.

    \b
    Example:
      thengine cluster litestream cluster.toml --node a --replica file:///backups/thengine --out a.yml
      litestream replicate -config a.yml
    """
    made = load(path)
    try:
        node = made.node(node_name)
    except ClusterError as exc:
        raise BadInput(exc.problems[0]) from None
    if not replica.startswith(("file:///", "s3://", "gs://", "abs://", "sftp://")):
        raise BadInput(f"--replica: must be a Litestream replica URL such as file:///DIR or s3://BUCKET/PATH, "
                       f"got {replica!r}")
    text = litestream.config(made, node, replica=replica, sync_interval=sync_interval)
    if out_file is None:
        click.echo(text, nl=False)
    else:
        Path(out_file).write_text(text, encoding="utf-8")
        click.echo(f"wrote {out_file}: {len(node.partitions)} partitions of node {node.name}; "
                   f"run: litestream replicate -config {out_file}")


@cluster.command("status")
@click.argument("path", metavar="CLUSTER.toml")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of the table.")
@click.option("--window", type=click.FloatRange(0.1, 60), default=1.0, show_default=True, metavar="S",
              help="Seconds between the two /metrics samples that give commands/s.")
@click.option("--replica", metavar="URL",
              help="The replica URL given to `cluster litestream`: show each partition's replication lag.")
@click.option("--wait", type=click.FloatRange(0, 600), default=None, metavar="S",
              help="First wait up to S seconds for every node to answer (exit 1 if one does not): for scripts.")
def cluster_status(path: str, as_json: bool, window: float, replica: str | None, wait: float | None) -> None:
    """Show each node: up or down, its partitions with their hunts and events, commands/s,
    and with --replica how far each partition's Litestream replica is behind.

    Reads the partition databases read-only and asks each node for /healthz and /metrics,
    so it works while the cluster runs (and says which nodes are down).

    \b
    Example:
      thengine cluster status cluster.toml --replica file:///backups/thengine
      thengine cluster status cluster.toml --wait 30      # once every node is up
    """
    made = load(path)
    if wait is not None:
        down = wait_until_up(made, wait)
        if down:
            raise Failure(f"after {wait:g} s, nodes {', '.join(down)} do not answer on /healthz")
    report = cluster_status_of(made, window=window, replica=replica)
    if as_json:
        click.echo(json.dumps(report))
        return
    click.echo(f"{report['cluster']}: {report['partitions']} partitions")
    for name, node in report["nodes"].items():
        rate = "-" if node["commands_per_s"] is None else f"{node['commands_per_s']:,.1f}"
        click.echo(f"node {name} at {node['listen']}: {'up' if node['up'] else 'DOWN'}, {rate} commands/s")
        for part in node["partitions"]:
            if "error" in part:
                click.echo(f"  partition {part['partition']:>3}: {part['error']}")
            else:
                click.echo(f"  partition {part['partition']:>3}: {part['hunts']:,} hunts, {part['events']:,} events, "
                           f"seq {part['last_seq']:,}, {human_bytes(part['db_bytes'])}{_lag(part)}")


@cluster.command("move")
@click.argument("path", metavar="CLUSTER.toml")
@click.argument("partition", type=int, metavar="PARTITION")
@click.option("--to", "to", required=True, metavar="NODE", help="The node that hosts the partition from now on.")
@click.option("--haproxy", "haproxy_dir", type=click.Path(file_okay=False, exists=True), metavar="DIR",
              help="The directory `thengine cluster haproxy` wrote: its map is rewritten and set in the running "
                   "HAProxy (over DIR/haproxy.sock), so new connections reach NODE without a reload.")
def cluster_move(path: str, partition: int, to: str, haproxy_dir: str | None) -> None:
    """Move PARTITION to node NODE while both nodes run; nothing acknowledged is lost.

    The old node stops deciding the partition (its hunts get `wrong_partition`,
    naming NODE), commits everything it took and closes it; the cluster file is
    rewritten; NODE opens the partition; HAProxy's map is changed. Clients of
    `thengine.client` follow on their own. The nodes must share the cluster's
    directory (one machine, or shared storage); across machines, restore the
    partition's Litestream replica on NODE first.

    \b
    Example:
      thengine cluster move cluster.toml 3 --to b --haproxy lb/
    """
    made = load(path)
    try:
        report = run_async(partial(move_partition, made, partition, to,
                                   haproxy_dir=Path(haproxy_dir) if haproxy_dir else None))
    except BadMove as exc:
        raise BadInput(str(exc)) from None
    except MoveError as exc:
        raise Failure(str(exc)) from None
    click.echo(f"moved partition {report.partition} from node {report.source} to node {report.target} at seq "
               f"{report.seq:,}: its hunts waited {report.unavailable_s * 1000:,.0f} ms "
               f"(all done in {report.total_s * 1000:,.0f} ms); {report.proxy}")


def _lag(part: dict) -> str:
    shipping = part.get("replication")
    if shipping is None:
        return ""
    if "error" in shipping:
        return f"; replica: {shipping['error']}"
    if not shipping["unshipped"] and not shipping["lag_s"]:
        return "; replica up to date"
    return f"; replica {shipping['lag_s']:,.0f} s behind ({shipping['unshipped']} files to ship)"


def load(path: str) -> Cluster:
    """The cluster file at `path`, or a one-line (or one per problem) bad-input error."""
    try:
        return load_cluster(path)
    except ClusterError as exc:
        raise BadInput("; ".join(exc.problems)) from None
