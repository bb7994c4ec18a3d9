output "requests" {
  description = "Peering connections this region opened, keyed \"<requester>|<accepter>\"; the accept pass takes them."
  value       = { for n, p in aws_vpc_peering_connection.to : "${var.name}|${n}" => p.id }
}

output "peers" {
  description = "Regions this instance made a network path to, on its side."
  value       = concat(keys(local.request_peers), keys(local.accept_peers))
}
