# Filled by `homeport deploy render` (terraform.tfvars.json): never edit by hand, edit the
# topology and render again.

variable "deployment" {
  description = "Name of the deployment (topology `deployment.name`)."
  type        = string
}

variable "dns_zone" {
  description = "The private DNS zone every topology address lives in."
  type        = string
}

variable "kubernetes_version" {
  description = "EKS version of every region's cluster."
  type        = string
}

variable "regions" {
  description = "Every homeport region, by name: its cloud region, network, sizes, endpoint ports and DNS names (see modules/region)."
  type = map(object({
    cloud_region        = string
    cidr                = string
    standby             = string
    node_size           = string
    node_min            = number
    node_max            = number
    postgres_size       = string
    postgres_storage_gb = number
    dns = object({
      gateway  = string
      redis    = string
      etcd     = string
      postgres = string
    })
    ports = object({
      gateway   = number
      redis     = number
      etcd      = number
      etcd_peer = number
    })
    mirrors = list(object({
      home = string
      host = string
      port = number
    }))
  }))
  validation {
    # Keep in step with providers.tf and PROVIDER_SLOTS in regions/render.py.
    condition = alltrue([
      for r in values(var.regions) :
      contains(["us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-1"], r.cloud_region)
    ])
    error_message = "Every region's cloud_region needs a provider in providers.tf (docs/deploy.md, 'Providers per region')."
  }
}

variable "mirror_links" {
  description = "Each home and the standby region that holds its mirror; the interconnect must give each a network path."
  type = list(object({
    home    = string
    standby = string
  }))
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
