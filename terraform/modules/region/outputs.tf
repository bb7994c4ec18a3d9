output "name" {
  description = "The homeport region name."
  value       = var.name
}

output "vpc_id" {
  description = "The region's network, for the interconnect's peering."
  value       = aws_vpc.region.id
}

output "cidr" {
  description = "The region's network range."
  value       = var.cidr
}

output "cloud_region" {
  description = "The cloud region the region runs in."
  value       = var.cloud_region
}

output "private_route_table_id" {
  description = "Route table of the private subnets; the interconnect adds peer routes to it."
  value       = aws_route_table.private.id
}

output "endpoint_dns_name" {
  description = "DNS name of the region's internal load balancer (the interconnect's records alias it)."
  value       = aws_lb.endpoint.dns_name
}

output "endpoint_zone_id" {
  description = "Hosted zone of the load balancer, for alias records."
  value       = aws_lb.endpoint.zone_id
}

output "gateway_address" {
  description = "host:port of the gateway endpoint, before the interconnect names it."
  value       = "${aws_lb.endpoint.dns_name}:${var.ports.gateway}"
}

output "redis_endpoints" {
  description = "Redis endpoints other regions mirror from: the primary and each hosted mirror, host:port."
  value = merge(
    { primary = "${aws_lb.endpoint.dns_name}:${var.ports.redis}" },
    { for m in var.mirrors : "mirror-${m.home}" => "${aws_lb.endpoint.dns_name}:${m.port}" },
  )
}

output "etcd_peer_url" {
  description = "Peer URL of the region's etcd member (TLS)."
  value       = "https://${aws_lb.endpoint.dns_name}:${var.ports.etcd_peer}"
}

output "target_group_arns" {
  description = "Target group of each listener, for the chart's TargetGroupBindings."
  value       = { for k, tg in aws_lb_target_group.endpoint : k => tg.arn }
}

output "kubernetes_cluster" {
  description = "Name and API endpoint of the region's EKS cluster."
  value = {
    name     = aws_eks_cluster.region.name
    endpoint = aws_eks_cluster.region.endpoint
  }
}

output "postgres_endpoint" {
  description = "host:port of the region's record store."
  value       = aws_db_instance.region.endpoint
}

output "postgres_secret_arn" {
  description = "Secrets Manager ARN of the record store's master password."
  value       = try(aws_db_instance.region.master_user_secret[0].secret_arn, "")
}
