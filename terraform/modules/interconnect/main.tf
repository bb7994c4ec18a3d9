# Cross-region network paths: a full mesh of VPC peerings. etcd's Raft needs every member
# to reach every other; the Redis mirror of a home needs its standby; a full mesh serves
# both, and inter-region peering traffic is encrypted by the provider.
#
# For a pair a < b (by name), a opens the peering (side "request") and b accepts it (side
# "accept"); each side routes to the other's range through it.

locals {
  self = var.regions[var.name]
  # Regions this one opens a peering to, and those whose peering it accepts.
  request_peers = var.side == "request" ? { for n, r in var.regions : n => r if n > var.name } : {}
  accept_peers  = var.side == "accept" ? { for n, r in var.regions : n => r if n < var.name } : {}
}

resource "aws_vpc_peering_connection" "to" {
  for_each    = local.request_peers
  vpc_id      = local.self.vpc_id
  peer_vpc_id = each.value.vpc_id
  peer_region = each.value.cloud_region
  auto_accept = false
  tags        = merge(var.tags, { Name = "homeport ${var.name} -> ${each.key}" })
}

resource "aws_route" "to" {
  for_each                  = local.request_peers
  route_table_id            = local.self.private_route_table_id
  destination_cidr_block    = each.value.cidr
  vpc_peering_connection_id = aws_vpc_peering_connection.to[each.key].id
}

resource "aws_vpc_peering_connection_accepter" "from" {
  for_each                  = local.accept_peers
  vpc_peering_connection_id = var.requests["${each.key}|${var.name}"]
  auto_accept               = true
  tags                      = merge(var.tags, { Name = "homeport ${each.key} -> ${var.name}" })
}

resource "aws_route" "from" {
  for_each                  = local.accept_peers
  route_table_id            = local.self.private_route_table_id
  destination_cidr_block    = each.value.cidr
  vpc_peering_connection_id = aws_vpc_peering_connection_accepter.from[each.key].id
}
