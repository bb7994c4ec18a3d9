variable "zone" {
  description = "The deployment's private DNS zone (topology `deployment.dns_zone`); every topology address is a name in it."
  type        = string
}

variable "regions" {
  description = "Per region: its network (to associate with the zone), its endpoint load balancer, its record store and the names the topology gives them."
  type = map(object({
    vpc_id            = string
    cloud_region      = string
    endpoint_dns_name = string
    endpoint_zone_id  = string
    postgres_host     = string
    dns = object({
      gateway  = string
      redis    = string
      etcd     = string
      postgres = string
    })
    mirrors = list(object({
      home = string
      host = string
      port = number
    }))
  }))
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
