"""`homeport deploy render`: turn one topology into what Terraform and Helm consume.

Out of one topology file come
- `terraform.tfvars.json`: the `regions` map that terraform/envs/<name> iterates with
  `for_each`, and the mirror links the interconnect must route;
- `helm/<region>.values.yaml`: the values of deploy/helm/homeport for each region's
  cluster, carrying the runtime topology itself, so every process in every region reads
  the very file that was rendered.

Everything is built in memory and checked before the first byte is written, so a bad
topology leaves `--out` untouched.
"""

from __future__ import annotations

import json
import os
import tempfile
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from homeport.regions.deployment import Deployment, RegionDeploy, require_deployment
from homeport.regions.errors import TopologyError
from homeport.regions.topology import Region, Topology, split_address

# Cloud regions that terraform/envs/*/providers.tf has an aliased AWS provider for.
# Providers cannot be created by for_each, so each root holds a fixed set of them and one
# region-module block per provider (tests/deploy checks this list against the HCL).
PROVIDER_SLOTS: dict[str, str] = {
    "us-east-1": "us_east_1",
    "us-east-2": "us_east_2",
    "us-west-2": "us_west_2",
    "eu-west-1": "eu_west_1",
    "eu-central-1": "eu_central_1",
    "ap-southeast-1": "ap_southeast_1",
}
GATEWAY_PORT = 50051  # the gateway's gRPC port inside the pod
ADMIN_PORT = 9100  # every pod's admin HTTP server: /metrics, /healthz, /readyz


@dataclass(frozen=True)
class Rendered:
    """The files of one render, by path relative to `--out`."""

    files: dict[str, str]


def render(topo: Topology) -> Rendered:
    """Every output file's text, or TopologyError naming the first field a render needs."""
    deployment = require_deployment(topo)
    for i, region in enumerate(topo.regions):
        _check_renderable(i, region, topo)
    files = {"terraform.tfvars.json": json.dumps(tfvars(topo, deployment), indent=2) + "\n"}
    for region in topo.regions:
        values = helm_values(topo, deployment, region)
        files[f"helm/{region.name}.values.yaml"] = yaml.dump(
            values, Dumper=_Dumper, sort_keys=False
        )
    return Rendered(files)


def _deploy(region: Region) -> RegionDeploy:
    if region.deploy is None:  # require_deployment refuses this first; kept for mypy
        raise TopologyError(f"{region.name}.deploy", None, "missing")
    return region.deploy


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings (the embedded topology) as readable `|` blocks."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def _check_renderable(i: int, region: Region, topo: Topology) -> None:
    deploy = _deploy(region)
    cloud = deploy.cloud_region
    if cloud not in PROVIDER_SLOTS:
        raise TopologyError(
            f"regions[{i}].deploy.cloud_region",
            cloud,
            f"no provider slot in terraform/envs; use one of {sorted(PROVIDER_SLOTS)} "
            "or add a slot (docs/deploy.md, 'Providers per region')",
        )
    listed = len(region.redis.replicas)
    if listed != deploy.redis.replicas:  # gateways count them for GLOBAL's WAIT
        raise TopologyError(
            f"regions[{i}].redis.replicas",
            region.redis.replicas,
            f"lists {listed} replicas but deploy.redis.replicas is "
            f"{deploy.redis.replicas}; list each replica pod's address",
        )
    # Every mirror a region hosts gets a listener on that region's endpoint, next to
    # the gateway, Redis and etcd listeners: each needs a port of its own there.
    hosted = _hosted(topo, region)
    ports = [_port(r.redis.mirror) for r in hosted]
    endpoint = {_port(a) for a in (region.gateway, region.redis.primary, region.etcd)}
    endpoint.add(_port(region.etcd_peer))
    for home, port in zip(hosted, ports, strict=True):
        if ports.count(port) > 1 or port in endpoint:
            raise TopologyError(
                f"regions[{topo.regions.index(home)}].redis.mirror",
                home.redis.mirror,
                f"port {port} is taken on {region.name!r}'s endpoint (by another mirror, "
                "the gateway, Redis or etcd); give each mirror a region hosts its own port",
            )


def _hosted(topo: Topology, region: Region) -> list[Region]:
    """The homes whose mirror `region` hosts: those it stands by for."""
    return [r for r in topo.regions if r.standby == region.name]


def _host(address: str | None) -> str:
    return split_address(address or "")[0]


def _port(address: str | None) -> int:
    return split_address(address or "")[1]


def tfvars(topo: Topology, deployment: Deployment) -> dict[str, Any]:
    """The variables of terraform/envs/<name>: one entry per region, plus the links."""
    regions: dict[str, Any] = {}
    for region in topo.regions:
        d = _deploy(region)
        hosted = _hosted(topo, region)
        regions[region.name] = {
            "cloud_region": d.cloud_region,
            "cidr": d.cidr,
            "standby": region.standby or "",
            "node_size": d.nodes.size,
            "node_min": d.nodes.min,
            "node_max": d.nodes.max,
            "postgres_size": d.postgres.size,
            "postgres_storage_gb": d.postgres.storage_gb,
            "dns": {
                "gateway": _host(region.gateway),
                "redis": _host(region.redis.primary),
                "etcd": _host(region.etcd),
                "postgres": urllib.parse.urlsplit(region.postgres).hostname or "",
            },
            "ports": {
                "gateway": _port(region.gateway),
                "redis": _port(region.redis.primary),
                "etcd": _port(region.etcd),
                "etcd_peer": _port(region.etcd_peer),
            },
            "mirrors": [
                {"home": h.name, "host": _host(h.redis.mirror), "port": _port(h.redis.mirror)}
                for h in hosted
            ],
        }
    return {
        "deployment": deployment.name,
        "dns_zone": deployment.dns_zone,
        "kubernetes_version": deployment.kubernetes_version,
        "regions": regions,
        "mirror_links": [{"home": r.name, "standby": r.standby} for r in topo.regions if r.standby],
    }


def _etcd_cluster(topo: Topology) -> str:
    return ",".join(f"{r.name}=https://{r.etcd_peer}" for r in topo.regions)


def helm_values(topo: Topology, deployment: Deployment, region: Region) -> dict[str, Any]:
    """The chart values of one region's cluster."""
    d = _deploy(region)
    image, _, tag = deployment.image.rpartition(":")
    hosted = _hosted(topo, region)
    peers = [r.deploy.cidr for r in topo.regions if r.deploy and r.name != region.name]
    return {
        "deployment": deployment.name,
        "region": region.name,
        "image": {"repository": image or deployment.image, "tag": tag or "latest"},
        "app": deployment.app,
        "topology": topo.to_yaml(),
        "network": {"regionCidr": d.cidr, "peerCidrs": peers},
        "postgres": {"dsn": region.postgres},
        "redis": {
            "port": _port(region.redis.primary),
            "replicas": d.redis.replicas,
            "storageGi": d.redis.storage_gb,
        },
        "mirrors": [
            {
                "home": h.name,
                "source": h.redis.primary,
                "port": _port(h.redis.mirror),
            }
            for h in hosted
        ],
        "etcd": {
            "name": region.name,
            "clientPort": _port(region.etcd),
            "peerPort": _port(region.etcd_peer),
            "advertiseClientUrl": f"http://{region.etcd}",
            "advertisePeerUrl": f"https://{region.etcd_peer}",
            "initialCluster": _etcd_cluster(topo),
        },
        "gateway": {
            "replicas": d.gateways.replicas,
            "maxReplicas": d.gateways.max,
            "port": GATEWAY_PORT,
            "advertise": region.gateway,
        },
        "workers": {
            "replicas": d.workers.replicas,
            "maxReplicas": d.workers.max,
            "partitions": region.partitions,
            # Replica acks: the in-region replicas, plus the cross-region mirror for GLOBAL.
            "regionReplicas": d.redis.replicas,
            "globalReplicas": d.redis.replicas + (1 if region.redis.mirror else 0),
        },
        "adminPort": ADMIN_PORT,
    }


def write(rendered: Rendered, out: Path) -> list[Path]:
    """Write every file under `out`, each atomically (temp file, then rename)."""
    written = []
    for rel, text in rendered.files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
        written.append(path)
    return written
