variable "deployment" {
  description = "Name of the deployment (topology `deployment.name`); prefixes every resource name."
  type        = string
}

variable "name" {
  description = "homeport region name (topology `regions[].name`), e.g. us-east."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,31}$", var.name))
    error_message = "name must be a homeport region name: lowercase letters, digits and dashes."
  }
}

variable "cloud_region" {
  description = "Cloud region the provider passed to this module targets, e.g. us-east-1. Checked against the provider so a region cannot land in the wrong place."
  type        = string
}

variable "cidr" {
  description = "The region's network range (/16 to /24), disjoint from every other region's: peering routes by it."
  type        = string
  validation {
    condition     = can(cidrhost(var.cidr, 0)) && tonumber(split("/", var.cidr)[1]) >= 16 && tonumber(split("/", var.cidr)[1]) <= 24
    error_message = "cidr must be a network such as 10.10.0.0/16, with a prefix from /16 to /24."
  }
}

variable "peer_cidrs" {
  description = "Network ranges of the other regions: the only sources allowed to reach Redis, etcd and the gateway endpoint from outside this network."
  type        = list(string)
}

variable "kubernetes_version" {
  description = "EKS control plane version, e.g. 1.31."
  type        = string
}

variable "node_size" {
  description = "Instance type of the Kubernetes nodes."
  type        = string
}

variable "node_min" {
  description = "Fewest Kubernetes nodes."
  type        = number
}

variable "node_max" {
  description = "Most Kubernetes nodes (the cluster autoscaler's ceiling)."
  type        = number
}

variable "postgres_size" {
  description = "Instance class of the region's PostgreSQL record store, e.g. db.r6g.large."
  type        = string
}

variable "postgres_storage_gb" {
  description = "Allocated storage of the record store, GiB."
  type        = number
}

variable "ports" {
  description = "Ports of the region's endpoint, from the topology addresses."
  type = object({
    gateway   = number
    redis     = number
    etcd      = number
    etcd_peer = number
  })
}

variable "mirrors" {
  description = "Mirrors this region hosts: the cross-region Redis replica of each home whose standby this region is, and the endpoint port it listens on."
  type = list(object({
    home = string
    host = string
    port = number
  }))
  default = []
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
