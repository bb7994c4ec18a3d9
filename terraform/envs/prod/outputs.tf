output "regions" {
  description = "What each region offers the others: gateway address, Redis endpoints for mirroring, etcd peer URL, cluster, record store."
  value = {
    for n, m in local.region_outputs : n => {
      gateway_address   = m.gateway_address
      redis_endpoints   = m.redis_endpoints
      etcd_peer_url     = m.etcd_peer_url
      kubernetes        = m.kubernetes_cluster
      postgres_endpoint = m.postgres_endpoint
      target_group_arns = m.target_group_arns
    }
  }
}

output "dns_names" {
  description = "Every name in the private zone and the region it reaches."
  value       = module.dns.names
}
