# One region module instance per topology region: each block takes the regions of one
# cloud region (local.by_cloud) and the provider of that cloud region. The interconnect
# runs in two passes (request, then accept) for the same reason: each side of an
# inter-region peering is made with its own region's provider.

module "region_us_east_1" {
  source              = "../../modules/region"
  for_each            = local.by_cloud["us-east-1"]
  providers           = { aws = aws.us_east_1 }
  deployment          = var.deployment
  name                = each.key
  cloud_region        = each.value.cloud_region
  cidr                = each.value.cidr
  peer_cidrs          = local.peer_cidrs[each.key]
  kubernetes_version  = var.kubernetes_version
  node_size           = each.value.node_size
  node_min            = each.value.node_min
  node_max            = each.value.node_max
  postgres_size       = each.value.postgres_size
  postgres_storage_gb = each.value.postgres_storage_gb
  ports               = each.value.ports
  mirrors             = each.value.mirrors
  tags                = var.tags
}

module "interconnect_request_us_east_1" {
  source    = "../../modules/interconnect"
  for_each  = local.by_cloud["us-east-1"]
  providers = { aws = aws.us_east_1 }
  name      = each.key
  side      = "request"
  regions   = local.network
  tags      = var.tags
}

module "interconnect_accept_us_east_1" {
  source    = "../../modules/interconnect"
  for_each  = local.by_cloud["us-east-1"]
  providers = { aws = aws.us_east_1 }
  name      = each.key
  side      = "accept"
  regions   = local.network
  requests  = local.requests
  tags      = var.tags
}

module "region_us_east_2" {
  source              = "../../modules/region"
  for_each            = local.by_cloud["us-east-2"]
  providers           = { aws = aws.us_east_2 }
  deployment          = var.deployment
  name                = each.key
  cloud_region        = each.value.cloud_region
  cidr                = each.value.cidr
  peer_cidrs          = local.peer_cidrs[each.key]
  kubernetes_version  = var.kubernetes_version
  node_size           = each.value.node_size
  node_min            = each.value.node_min
  node_max            = each.value.node_max
  postgres_size       = each.value.postgres_size
  postgres_storage_gb = each.value.postgres_storage_gb
  ports               = each.value.ports
  mirrors             = each.value.mirrors
  tags                = var.tags
}

module "interconnect_request_us_east_2" {
  source    = "../../modules/interconnect"
  for_each  = local.by_cloud["us-east-2"]
  providers = { aws = aws.us_east_2 }
  name      = each.key
  side      = "request"
  regions   = local.network
  tags      = var.tags
}

module "interconnect_accept_us_east_2" {
  source    = "../../modules/interconnect"
  for_each  = local.by_cloud["us-east-2"]
  providers = { aws = aws.us_east_2 }
  name      = each.key
  side      = "accept"
  regions   = local.network
  requests  = local.requests
  tags      = var.tags
}

module "region_us_west_2" {
  source              = "../../modules/region"
  for_each            = local.by_cloud["us-west-2"]
  providers           = { aws = aws.us_west_2 }
  deployment          = var.deployment
  name                = each.key
  cloud_region        = each.value.cloud_region
  cidr                = each.value.cidr
  peer_cidrs          = local.peer_cidrs[each.key]
  kubernetes_version  = var.kubernetes_version
  node_size           = each.value.node_size
  node_min            = each.value.node_min
  node_max            = each.value.node_max
  postgres_size       = each.value.postgres_size
  postgres_storage_gb = each.value.postgres_storage_gb
  ports               = each.value.ports
  mirrors             = each.value.mirrors
  tags                = var.tags
}

module "interconnect_request_us_west_2" {
  source    = "../../modules/interconnect"
  for_each  = local.by_cloud["us-west-2"]
  providers = { aws = aws.us_west_2 }
  name      = each.key
  side      = "request"
  regions   = local.network
  tags      = var.tags
}

module "interconnect_accept_us_west_2" {
  source    = "../../modules/interconnect"
  for_each  = local.by_cloud["us-west-2"]
  providers = { aws = aws.us_west_2 }
  name      = each.key
  side      = "accept"
  regions   = local.network
  requests  = local.requests
  tags      = var.tags
}

module "region_eu_west_1" {
  source              = "../../modules/region"
  for_each            = local.by_cloud["eu-west-1"]
  providers           = { aws = aws.eu_west_1 }
  deployment          = var.deployment
  name                = each.key
  cloud_region        = each.value.cloud_region
  cidr                = each.value.cidr
  peer_cidrs          = local.peer_cidrs[each.key]
  kubernetes_version  = var.kubernetes_version
  node_size           = each.value.node_size
  node_min            = each.value.node_min
  node_max            = each.value.node_max
  postgres_size       = each.value.postgres_size
  postgres_storage_gb = each.value.postgres_storage_gb
  ports               = each.value.ports
  mirrors             = each.value.mirrors
  tags                = var.tags
}

module "interconnect_request_eu_west_1" {
  source    = "../../modules/interconnect"
  for_each  = local.by_cloud["eu-west-1"]
  providers = { aws = aws.eu_west_1 }
  name      = each.key
  side      = "request"
  regions   = local.network
  tags      = var.tags
}

module "interconnect_accept_eu_west_1" {
  source    = "../../modules/interconnect"
  for_each  = local.by_cloud["eu-west-1"]
  providers = { aws = aws.eu_west_1 }
  name      = each.key
  side      = "accept"
  regions   = local.network
  requests  = local.requests
  tags      = var.tags
}

module "region_eu_central_1" {
  source              = "../../modules/region"
  for_each            = local.by_cloud["eu-central-1"]
  providers           = { aws = aws.eu_central_1 }
  deployment          = var.deployment
  name                = each.key
  cloud_region        = each.value.cloud_region
  cidr                = each.value.cidr
  peer_cidrs          = local.peer_cidrs[each.key]
  kubernetes_version  = var.kubernetes_version
  node_size           = each.value.node_size
  node_min            = each.value.node_min
  node_max            = each.value.node_max
  postgres_size       = each.value.postgres_size
  postgres_storage_gb = each.value.postgres_storage_gb
  ports               = each.value.ports
  mirrors             = each.value.mirrors
  tags                = var.tags
}

module "interconnect_request_eu_central_1" {
  source    = "../../modules/interconnect"
  for_each  = local.by_cloud["eu-central-1"]
  providers = { aws = aws.eu_central_1 }
  name      = each.key
  side      = "request"
  regions   = local.network
  tags      = var.tags
}

module "interconnect_accept_eu_central_1" {
  source    = "../../modules/interconnect"
  for_each  = local.by_cloud["eu-central-1"]
  providers = { aws = aws.eu_central_1 }
  name      = each.key
  side      = "accept"
  regions   = local.network
  requests  = local.requests
  tags      = var.tags
}

module "region_ap_southeast_1" {
  source              = "../../modules/region"
  for_each            = local.by_cloud["ap-southeast-1"]
  providers           = { aws = aws.ap_southeast_1 }
  deployment          = var.deployment
  name                = each.key
  cloud_region        = each.value.cloud_region
  cidr                = each.value.cidr
  peer_cidrs          = local.peer_cidrs[each.key]
  kubernetes_version  = var.kubernetes_version
  node_size           = each.value.node_size
  node_min            = each.value.node_min
  node_max            = each.value.node_max
  postgres_size       = each.value.postgres_size
  postgres_storage_gb = each.value.postgres_storage_gb
  ports               = each.value.ports
  mirrors             = each.value.mirrors
  tags                = var.tags
}

module "interconnect_request_ap_southeast_1" {
  source    = "../../modules/interconnect"
  for_each  = local.by_cloud["ap-southeast-1"]
  providers = { aws = aws.ap_southeast_1 }
  name      = each.key
  side      = "request"
  regions   = local.network
  tags      = var.tags
}

module "interconnect_accept_ap_southeast_1" {
  source    = "../../modules/interconnect"
  for_each  = local.by_cloud["ap-southeast-1"]
  providers = { aws = aws.ap_southeast_1 }
  name      = each.key
  side      = "accept"
  regions   = local.network
  requests  = local.requests
  tags      = var.tags
}
