output "zone_id" {
  description = "The private zone's id."
  value       = aws_route53_zone.private.zone_id
}

output "names" {
  description = "Every name the zone holds, with the region whose endpoint it reaches."
  value       = merge(local.aliases, { for n, r in var.regions : r.dns.postgres => n })
}
