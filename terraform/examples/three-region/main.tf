# The three-region example and CI fixture: topology.yaml rendered by
#   homeport deploy render --topology topology.yaml --out .
# into terraform.tfvars.json and helm/<region>.values.yaml, fed to the prod root.
# tests/deploy renders the topology again and fails when these files drift from it.

locals {
  rendered = jsondecode(file("${path.module}/terraform.tfvars.json"))
}

module "homeport" {
  source             = "../../envs/prod"
  deployment         = local.rendered.deployment
  dns_zone           = local.rendered.dns_zone
  kubernetes_version = local.rendered.kubernetes_version
  regions            = local.rendered.regions
  mirror_links       = local.rendered.mirror_links
  tags               = { "homeport/example" = "three-region" }
}

output "regions" {
  description = "What each region offers the others (see envs/prod)."
  value       = module.homeport.regions
}
