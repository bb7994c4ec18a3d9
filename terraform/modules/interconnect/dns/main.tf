# One private zone for the whole deployment, associated with every region's network, and
# one name per endpoint: each region's gateway, Redis primary, etcd member and hosted
# mirrors alias its internal load balancer; its record store's name points at RDS.

locals {
  # name => region for every alias record (gateway, redis, etcd, each hosted mirror).
  aliases = merge([
    for n, r in var.regions : merge(
      { (r.dns.gateway) = n, (r.dns.redis) = n, (r.dns.etcd) = n },
      { for m in r.mirrors : m.host => n },
    )
  ]...)
}

resource "aws_route53_zone" "private" {
  name    = var.zone
  comment = "homeport: every region's endpoints"
  tags    = var.tags

  dynamic "vpc" {
    for_each = var.regions
    content {
      vpc_id     = vpc.value.vpc_id
      vpc_region = vpc.value.cloud_region
    }
  }
}

resource "aws_route53_record" "endpoint" {
  for_each = local.aliases
  zone_id  = aws_route53_zone.private.zone_id
  name     = each.key
  type     = "A"

  alias {
    name                   = var.regions[each.value].endpoint_dns_name
    zone_id                = var.regions[each.value].endpoint_zone_id
    evaluate_target_health = true
  }
}

resource "aws_route53_record" "postgres" {
  for_each = var.regions
  zone_id  = aws_route53_zone.private.zone_id
  name     = each.value.dns.postgres
  type     = "CNAME"
  ttl      = 60
  records  = [each.value.postgres_host]
}
