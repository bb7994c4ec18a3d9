locals {
  slots = ["us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-1"]
  # Topology regions grouped by cloud region: the for_each of each slot's module blocks.
  by_cloud = { for c in local.slots : c => { for n, r in var.regions : n => r if r.cloud_region == c } }
  # Each region's endpoint admits the other regions' ranges, and no others.
  peer_cidrs = { for n, r in var.regions : n => [for m, o in var.regions : o.cidr if m != n] }
  # Every region module instance, by homeport region name.
  region_outputs = merge(
    module.region_us_east_1,
    module.region_us_east_2,
    module.region_us_west_2,
    module.region_eu_west_1,
    module.region_eu_central_1,
    module.region_ap_southeast_1,
  )
  network = {
    for n, m in local.region_outputs : n => {
      vpc_id                 = m.vpc_id
      cidr                   = m.cidr
      cloud_region           = m.cloud_region
      private_route_table_id = m.private_route_table_id
    }
  }
  # Peerings opened by the request pass, keyed "<requester>|<accepter>".
  requests = merge(concat(
    [for m in values(module.interconnect_request_us_east_1) : m.requests],
    [for m in values(module.interconnect_request_us_east_2) : m.requests],
    [for m in values(module.interconnect_request_us_west_2) : m.requests],
    [for m in values(module.interconnect_request_eu_west_1) : m.requests],
    [for m in values(module.interconnect_request_eu_central_1) : m.requests],
    [for m in values(module.interconnect_request_ap_southeast_1) : m.requests],
  )...)
}

check "mirror_links_have_a_path" {
  assert {
    condition = alltrue([
      for l in var.mirror_links : contains(keys(var.regions), l.home) && contains(keys(var.regions), l.standby)
    ])
    error_message = "A mirror link names a region that is not deployed; render the topology again."
  }
}

module "dns" {
  source = "../../modules/interconnect/dns"
  zone   = var.dns_zone
  regions = {
    for n, r in var.regions : n => {
      vpc_id            = local.region_outputs[n].vpc_id
      cloud_region      = r.cloud_region
      endpoint_dns_name = local.region_outputs[n].endpoint_dns_name
      endpoint_zone_id  = local.region_outputs[n].endpoint_zone_id
      postgres_host     = split(":", local.region_outputs[n].postgres_endpoint)[0]
      dns               = r.dns
      mirrors           = r.mirrors
    }
  }
  tags = var.tags
}
